//! One view of a packet for every attach point, so the translation engine is written
//! once: XDP (`XdpPacket`) and TC (`TcPacket`, with or without an Ethernet header)
//! implement it here.

use aya_ebpf::{
    bindings::{BPF_F_INGRESS, BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR, bpf_adj_room_mode::BPF_ADJ_ROOM_MAC},
    helpers::generated as h,
    programs::{TcContext, XdpContext},
};

use crate::hdr::{ETH_LEN, ETH_P_IPV6};

/// What the TC entry brings into the linear area of a packet that is not all there (a
/// GRO-merged or GSO packet, a NIC's paged buffer): the Ethernet, IP and transport
/// headers with room to spare (14 + 60 + 60 for IPv4; 14 + 40 + extension headers +
/// 60 for IPv6). Translating TCP and UDP rewrites headers only; the stages that read
/// further make the rest linear themselves (`Packet::linearize`). Pulling all of a
/// 64 KB GSO packet copied it whole, on every packet.
pub const PULL_HEADERS: u32 = 192;

/// The mark (`skb->tc_index`) of a packet the held stage sent back into a device's
/// ingress (`Packet::clone_to`): already translated, the TC programs let it pass.
pub const HELD_MARK: u32 = 0x4e36;

pub trait Packet {
    /// Bytes before the IP header (14 with Ethernet, 0 on L3 devices).
    const L2_LEN: usize;

    fn start(&self) -> usize;
    fn end(&self) -> usize;
    fn ingress_ifindex(&self) -> u32;
    /// The link-layer protocol (ETH_P_*), big-endian value as a number.
    fn l3_proto(&self) -> Option<u16>;
    fn ctx_ptr(&self) -> *mut core::ffi::c_void;

    /// Replaces the `old_len`-byte L3 header by `new_len` bytes of room, keeping what
    /// follows it in place, and sets the link-layer protocol to `proto`.
    fn resize_l3(&mut self, old_len: usize, new_len: usize, proto: u16) -> Result<(), ()>;

    /// Copies `len` packet bytes from `off` into `buf` (bpf_xdp_load_bytes /
    /// bpf_skb_load_bytes).
    fn load_bytes(&self, off: usize, buf: *mut u8, len: u32) -> bool;

    /// Cuts the packet to `len` bytes (link-layer padding after the IP datagram).
    fn truncate(&mut self, len: usize) -> Result<(), ()>;

    /// Copies `len` bytes from `buf` into the packet at `off` (bpf_xdp_store_bytes /
    /// bpf_skb_store_bytes).
    fn store_bytes(&mut self, off: usize, buf: *const u8, len: u32) -> bool;

    /// Makes the packet `len` bytes long, cutting or growing its tail (new bytes are
    /// the caller's to write).
    fn set_len(&mut self, len: usize) -> Result<(), ()>;

    /// An L3 packet (TC on a device without Ethernet) gets an Ethernet header in front,
    /// its type from the packet's protocol and its addresses left for the caller, so
    /// it can be redirected into an Ethernet device. Nothing to do elsewhere.
    #[inline(always)]
    fn push_eth(&mut self) -> bool {
        true
    }

    /// For a packet about to be redirected (TC): the flow hash the kernel picks the
    /// egress's transmit queue by. bpf_skb_change_proto cleared it: without one the
    /// kernel runs its flow dissector and SipHash on every packet (about a tenth of
    /// the CPU of a 64-byte packet through a veth). The hash the packet arrived with
    /// (a NIC's receive hash, over its ports) is kept, else `fallback` is taken.
    /// Nothing to do in XDP.
    #[inline(always)]
    fn set_flow_hash(&mut self, _fallback: u32) {}

    /// Sends a copy of the packet out of `ifindex`, or into its ingress (`ingress`,
    /// marked with `HELD_MARK`); TC only (bpf_clone_redirect): false elsewhere.
    #[inline(always)]
    fn clone_to(&mut self, _ifindex: u32, _ingress: bool) -> bool {
        false
    }

    /// For a packet the kernel merged (GRO) or will segment (GSO): the payload size of
    /// each segment; 0 for a plain packet (always, in XDP).
    #[inline(always)]
    fn gso_size(&self) -> u32 {
        0
    }

    /// Updates the TCP/UDP checksum at `off` for a pseudo-header whose sum went from
    /// `old` to `new` (RFC 1624); UDP never gets a zero. In place by default.
    #[inline(always)]
    fn fix_pseudo_check(&mut self, off: usize, old: u32, new: u32, udp: bool) -> Option<()> {
        self.fix_l4_check(off, old, new, udp)
    }

    /// `fix_pseudo_check` for a field the transport checksum covers itself (a port):
    /// on TC a partial checksum (to be completed by the device) is left alone.
    #[inline(always)]
    fn fix_l4_check(&mut self, off: usize, old: u32, new: u32, udp: bool) -> Option<()> {
        let c = u16::from_be_bytes(self.load::<[u8; 2]>(off)?);
        let mut n = nat64_common::checksum::update(c, old, new);
        if udp {
            n = nat64_common::checksum::udp_nonzero(n);
        }
        self.store(off, n.to_be_bytes())
    }

    /// Whether the packet can be rewritten for and redirected out of a device.
    const HAS_ETH: bool = Self::L2_LEN == ETH_LEN;

    /// An XDP program: it redirects through TX_PORTS, into devices that take XDP frames.
    const XDP: bool = false;

    /// The packet's length (on TC, with what lies beyond the linear area).
    #[inline(always)]
    fn len(&self) -> usize {
        self.end() - self.start()
    }

    /// Makes all of the packet directly readable (`start()..end()` covers `len()`), for
    /// the stages that read past the headers (ICMP errors, replies, held fragments). TC
    /// brings only the headers into the linear area at the entry (`PULL_HEADERS`).
    #[inline(always)]
    fn linearize(&mut self) -> bool {
        true
    }

    /// A pointer to `T` at `off`, when the whole `T` lies inside the packet.
    ///
    /// One-byte reads go through two-byte ones (`load::<[u8; 2]>`): LLVM turns the
    /// bound check of a one-byte read into `p >= end`, from which the verifier learns
    /// no readable range.
    #[inline(always)]
    fn ptr_at<T>(&self, off: usize) -> Option<*mut T> {
        let p = self.start() + off;
        if p + core::mem::size_of::<T>() > self.end() {
            return None;
        }
        Some(p as *mut T)
    }

    #[inline(always)]
    fn load<T: Copy>(&self, off: usize) -> Option<T> {
        // SAFETY: bounds checked by ptr_at.
        self.ptr_at::<T>(off).map(|p| unsafe { core::ptr::read_unaligned(p) })
    }

    /// Copies `N` packet bytes (a multiple of 4) at `off` into `dst`, four at a time.
    /// Volatile so that LLVM emits plain loads and stores: a `memcpy` call becomes a
    /// looping subprogram that the verifier walks again on every path.
    #[inline(always)]
    fn load_into<const N: usize>(&self, off: usize, dst: &mut [u8; N]) -> Option<()> {
        let p = self.ptr_at::<[u8; N]>(off)? as *const u32;
        let d = dst.as_mut_ptr() as *mut u32;
        let mut i = 0;
        while i < N / 4 {
            // SAFETY: both ranges hold N bytes (bounds checked above); unaligned access
            // is allowed for packet and map memory.
            unsafe { core::ptr::write_volatile(d.add(i), core::ptr::read_volatile(p.add(i))) };
            i += 1;
        }
        Some(())
    }

    /// Copies `src` (a multiple of 4 bytes) into the packet at `off`, as `load_into`.
    #[inline(always)]
    fn store_from<const N: usize>(&mut self, off: usize, src: &[u8; N]) -> Option<()> {
        let p = self.ptr_at::<[u8; N]>(off)? as *mut u32;
        let s = src.as_ptr() as *const u32;
        let mut i = 0;
        while i < N / 4 {
            // SAFETY: as in load_into.
            unsafe { core::ptr::write_volatile(p.add(i), core::ptr::read_volatile(s.add(i))) };
            i += 1;
        }
        Some(())
    }

    /// Copies `N` words of packet bytes at `off` into `dst` (in memory order), one
    /// load and store each; volatile for the reason given at `load_into`.
    #[inline(always)]
    fn load_words<const N: usize>(&self, off: usize, dst: &mut [u32; N]) -> Option<()> {
        let p = self.ptr_at::<[u32; N]>(off)? as *const u32;
        let mut i = 0;
        while i < N {
            // SAFETY: bounds checked above; unaligned access is allowed for packet
            // memory, and `dst` is a `[u32; N]`.
            unsafe { core::ptr::write_volatile(dst.as_mut_ptr().add(i), core::ptr::read_volatile(p.add(i))) };
            i += 1;
        }
        Some(())
    }

    /// The four packet bytes at `off` as a word in memory order, in one load (a
    /// `load::<[u8; 4]>` is four).
    #[inline(always)]
    fn load_word(&self, off: usize) -> Option<u32> {
        // SAFETY: bounds checked by ptr_at; unaligned access is allowed for packet memory.
        self.ptr_at::<u32>(off).map(|p| unsafe { core::ptr::read_volatile(p) })
    }

    /// Copies `src` words into the packet at `off`, as `load_words`.
    #[inline(always)]
    fn store_words<const N: usize>(&mut self, off: usize, src: &[u32; N]) -> Option<()> {
        let p = self.ptr_at::<[u32; N]>(off)? as *mut u32;
        let mut i = 0;
        while i < N {
            // SAFETY: as in load_words.
            unsafe { core::ptr::write_volatile(p.add(i), core::ptr::read_volatile(src.as_ptr().add(i))) };
            i += 1;
        }
        Some(())
    }

    #[inline(always)]
    fn store<T: Copy>(&mut self, off: usize, v: T) -> Option<()> {
        // SAFETY: bounds checked by ptr_at.
        self.ptr_at::<T>(off).map(|p| unsafe { core::ptr::write_unaligned(p, v) })
    }
}

pub struct XdpPacket<'a> {
    ctx: &'a XdpContext,
}

impl<'a> XdpPacket<'a> {
    #[inline(always)]
    pub fn new(ctx: &'a XdpContext) -> Self {
        Self { ctx }
    }
}

impl Packet for XdpPacket<'_> {
    const L2_LEN: usize = ETH_LEN;
    const XDP: bool = true;

    #[inline(always)]
    fn start(&self) -> usize {
        self.ctx.data()
    }

    #[inline(always)]
    fn end(&self) -> usize {
        self.ctx.data_end()
    }

    #[inline(always)]
    fn ingress_ifindex(&self) -> u32 {
        self.ctx.ingress_ifindex() as u32
    }

    #[inline(always)]
    fn l3_proto(&self) -> Option<u16> {
        self.load::<[u8; 2]>(12).map(u16::from_be_bytes)
    }

    #[inline(always)]
    fn ctx_ptr(&self) -> *mut core::ffi::c_void {
        self.ctx.ctx.cast()
    }

    #[inline(always)]
    fn resize_l3(&mut self, old_len: usize, new_len: usize, proto: u16) -> Result<(), ()> {
        // Three words, not twelve bytes (see `load_words`).
        let mut macs = [0u32; 3];
        self.load_words(0, &mut macs).ok_or(())?;
        let delta = old_len as i32 - new_len as i32;
        // SAFETY: helper call; every pointer is re-derived and re-checked afterwards.
        if unsafe { h::bpf_xdp_adjust_head(self.ctx.ctx, delta) } != 0 {
            return Err(());
        }
        self.store_words(0, &macs).ok_or(())?;
        self.store(12, proto.to_be_bytes()).ok_or(())?;
        Ok(())
    }

    #[inline(always)]
    fn load_bytes(&self, off: usize, buf: *mut u8, len: u32) -> bool {
        // SAFETY: helper call; the kernel checks `off`/`len` against the packet and the
        // verifier checks `len` against the buffer.
        unsafe { h::bpf_xdp_load_bytes(self.ctx.ctx, off as u32, buf.cast(), len) == 0 }
    }

    #[inline(always)]
    fn store_bytes(&mut self, off: usize, buf: *const u8, len: u32) -> bool {
        // SAFETY: as load_bytes, the other way.
        unsafe { h::bpf_xdp_store_bytes(self.ctx.ctx, off as u32, buf as *mut _, len) == 0 }
    }

    #[inline(always)]
    fn set_len(&mut self, len: usize) -> Result<(), ()> {
        let delta = len as i32 - self.len() as i32;
        // SAFETY: helper call with the context; the kernel checks the tailroom.
        if delta != 0 && unsafe { h::bpf_xdp_adjust_tail(self.ctx.ctx, delta) } != 0 {
            return Err(());
        }
        Ok(())
    }

    #[inline(always)]
    fn truncate(&mut self, len: usize) -> Result<(), ()> {
        let cur = self.len();
        if cur <= len {
            return Ok(());
        }
        let delta = len as i32 - cur as i32;
        // SAFETY: helper call with the context and a negative delta.
        if unsafe { h::bpf_xdp_adjust_tail(self.ctx.ctx, delta) } != 0 {
            return Err(());
        }
        Ok(())
    }
}

/// A packet seen by a TC program (TCX), on an Ethernet device (`L2` = 14) or an L3
/// device such as WireGuard or TUN (`L2` = 0). The program brings the headers into the
/// linear area first (`PULL_HEADERS`): `start()..end()` covers them, `len()` is the
/// whole packet's, and `linearize` brings the rest for the stages that read it.
pub struct TcPacket<'a, const L2: usize> {
    ctx: &'a TcContext,
    /// skb->hash as it was before `resize_l3` changed the protocol (which clears it).
    hash: u32,
}

impl<'a, const L2: usize> TcPacket<'a, L2> {
    #[inline(always)]
    pub fn new(ctx: &'a TcContext) -> Self {
        Self { ctx, hash: 0 }
    }

    #[inline(always)]
    pub fn ifindex(&self) -> u32 {
        // SAFETY: the context pointer the kernel passed to the program.
        unsafe { (*self.ctx.skb.skb).ifindex }
    }
}

impl<const L2: usize> Packet for TcPacket<'_, L2> {
    const L2_LEN: usize = L2;

    #[inline(always)]
    fn start(&self) -> usize {
        self.ctx.data()
    }

    #[inline(always)]
    fn end(&self) -> usize {
        self.ctx.data_end()
    }

    #[inline(always)]
    fn ingress_ifindex(&self) -> u32 {
        self.ifindex()
    }

    #[inline(always)]
    fn l3_proto(&self) -> Option<u16> {
        if L2 == ETH_LEN {
            self.load::<[u8; 2]>(12).map(u16::from_be_bytes)
        } else {
            // SAFETY: the context pointer the kernel passed to the program.
            Some(u16::from_be(unsafe { (*self.ctx.skb.skb).protocol } as u16))
        }
    }

    #[inline(always)]
    fn ctx_ptr(&self) -> *mut core::ffi::c_void {
        self.ctx.skb.skb.cast()
    }

    #[inline(always)]
    fn resize_l3(&mut self, old_len: usize, new_len: usize, proto: u16) -> Result<(), ()> {
        let cur = self.l3_proto().ok_or(())?;
        let mut delta = new_len as i32 - old_len as i32;
        if cur != proto {
            // SAFETY: the context pointer the kernel passed to the program.
            self.hash = unsafe { (*self.ctx.skb.skb).hash };
            // Sets skb->protocol (and the GSO type) and grows or shrinks the network
            // header by the 20 bytes between the two base headers.
            self.ctx.skb.change_proto(proto.to_be(), 0).map_err(|_| ())?;
            delta -= if proto == ETH_P_IPV6 { 20 } else { -20 };
        }
        if delta != 0 {
            // The rest (options, extension or fragment headers) right after the MAC
            // header: what follows the L3 header stays where it is.
            self.ctx.skb.adjust_room(delta, BPF_ADJ_ROOM_MAC, 0).map_err(|_| ())?;
        }
        if L2 == ETH_LEN {
            self.store(12, proto.to_be_bytes()).ok_or(())?;
        }
        Ok(())
    }

    #[inline(always)]
    fn load_bytes(&self, off: usize, buf: *mut u8, len: u32) -> bool {
        // SAFETY: helper call; the kernel checks `off`/`len` against the packet and the
        // verifier checks `len` against the buffer.
        unsafe { h::bpf_skb_load_bytes(self.ctx.skb.skb.cast(), off as u32, buf.cast(), len) == 0 }
    }

    #[inline(always)]
    fn store_bytes(&mut self, off: usize, buf: *const u8, len: u32) -> bool {
        // SAFETY: as load_bytes, the other way.
        unsafe { h::bpf_skb_store_bytes(self.ctx.skb.skb.cast(), off as u32, buf as *mut _, len, 0) == 0 }
    }

    #[inline(always)]
    fn set_len(&mut self, len: usize) -> Result<(), ()> {
        if self.len() == len {
            return Ok(());
        }
        // SAFETY: helper call with the context.
        if unsafe { h::bpf_skb_change_tail(self.ctx.skb.skb.cast(), len as u32, 0) } != 0 {
            return Err(());
        }
        Ok(())
    }

    #[inline(always)]
    fn gso_size(&self) -> u32 {
        // SAFETY: the context pointer the kernel passed to the program.
        unsafe { (*self.ctx.skb.skb).gso_size }
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.ctx.len() as usize
    }

    #[inline(always)]
    fn linearize(&mut self) -> bool {
        let len = self.ctx.len();
        self.end() - self.start() >= len as usize || self.ctx.skb.pull_data(len).is_ok()
    }

    #[inline(always)]
    fn push_eth(&mut self) -> bool {
        if L2 == ETH_LEN {
            return true;
        }
        // SAFETY: the context pointer the kernel passed to the program.
        let proto = unsafe { (*self.ctx.skb.skb).protocol } as u16;
        // SAFETY: helper call with the context; bpf_skb_change_head is made for this
        // (an L3 skb given a MAC header to be redirected into an L2 device).
        if unsafe { h::bpf_skb_change_head(self.ctx.skb.skb.cast(), ETH_LEN as u32, 0) } != 0 {
            return false;
        }
        // skb->protocol holds the type in network order, as the header does.
        self.store(12, proto.to_ne_bytes()).is_some()
    }

    #[inline(always)]
    fn set_flow_hash(&mut self, fallback: u32) {
        let h = if self.hash != 0 { self.hash } else { fallback };
        // SAFETY: helper call with the context.
        unsafe { h::bpf_set_hash(self.ctx.skb.skb.cast(), h) };
    }

    #[inline(always)]
    fn clone_to(&mut self, ifindex: u32, ingress: bool) -> bool {
        let skb = self.ctx.skb.skb;
        // SAFETY: the context pointer the kernel passed to the program; tc_index is
        // writable for TC programs. The mark goes with the copy only.
        unsafe {
            let old = (*skb).tc_index;
            if ingress {
                (*skb).tc_index = HELD_MARK;
            }
            let r =
                h::bpf_clone_redirect(skb.cast(), ifindex, if ingress { BPF_F_INGRESS as u64 } else { 0 });
            (*skb).tc_index = old;
            r == 0
        }
    }

    /// Through the kernel's helper, which knows what the checksum field holds: the
    /// pseudo-header seed of a partial checksum (CHECKSUM_PARTIAL: packets merged by
    /// GRO, local senders) takes the change the other way round from a full checksum.
    #[inline(always)]
    fn fix_pseudo_check(&mut self, off: usize, old: u32, new: u32, udp: bool) -> Option<()> {
        // Replacing a 16-bit word `from` by `to` moves the sum as the pseudo-header did;
        // the helper takes them as they would lie in the packet (network order).
        let from = nat64_common::checksum::fold(old).to_be() as u64;
        let to = nat64_common::checksum::fold(new).to_be() as u64;
        let flags = BPF_F_PSEUDO_HDR as u64 | 2 | if udp { BPF_F_MARK_MANGLED_0 as u64 } else { 0 };
        self.ctx.skb.l4_csum_replace(off, from, to, flags).ok()
    }

    #[inline(always)]
    fn fix_l4_check(&mut self, off: usize, old: u32, new: u32, udp: bool) -> Option<()> {
        let from = nat64_common::checksum::fold(old).to_be() as u64;
        let to = nat64_common::checksum::fold(new).to_be() as u64;
        let flags = 2 | if udp { BPF_F_MARK_MANGLED_0 as u64 } else { 0 };
        self.ctx.skb.l4_csum_replace(off, from, to, flags).ok()
    }

    #[inline(always)]
    fn truncate(&mut self, len: usize) -> Result<(), ()> {
        if self.len() <= len {
            return Ok(());
        }
        // SAFETY: helper call with the context.
        if unsafe { h::bpf_skb_change_tail(self.ctx.skb.skb.cast(), len as u32, 0) } != 0 {
            return Err(());
        }
        Ok(())
    }
}
