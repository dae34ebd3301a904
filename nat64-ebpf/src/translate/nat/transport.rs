//! A packet's transport address as the NAT stages see it (ports or ICMP identifier,
//! where the checksum lies), and the small things every NAT stage takes.

use nat64_common::{
    counters::Counter,
    maps::{Bib4Key, Bib6Key, Globals, NatConfig},
    nat::PROTO_ICMP,
};

use crate::translate::{
    l4::{TCP_CHECK, UDP_CHECK},
    step::Step,
};
use crate::{
    hdr::{IPPROTO_TCP, IPPROTO_UDP},
    maps::{BIB6, NAT_CFG, globals},
    packet::Packet,
    verdict::{Action, pack},
};

pub(crate) const ICMP6_ECHO_REQUEST: u8 = 128;
pub(crate) const ICMP6_ECHO_REPLY: u8 = 129;
pub(crate) const ICMP_ECHO_REQUEST: u8 = 8;
pub(crate) const ICMP_ECHO_REPLY: u8 = 0;
pub(crate) const ICMP4_PORT_UNREACH: u8 = 3;
pub(crate) const EEXIST: i64 = 17;
pub(crate) const E2BIG: i64 = 7;
pub(crate) const BPF_NOEXIST: u64 = 1;
/// How long a first fragment's mapping serves the fragments after it (boot-time ns).
pub(crate) const FRAG_LIFETIME_NS: u64 = 5_000_000_000;

#[inline(always)]
pub(crate) fn finish(action: Action, c: Counter) -> Step {
    Step::Finish(pack(action, c))
}

/// Why a map insertion failed with `e` (a negative errno): the table is full, or the
/// kernel had no memory for the entry.
#[inline(always)]
pub(crate) fn insert_failed(e: i64) -> Counter {
    if -e == E2BIG { Counter::DropNatTableFull } else { Counter::DropNatAllocFailed }
}

/// Where a transport header keeps what the NAT rewrites: the port or identifier
/// (offset), the checksum (offset), and whether it is UDP's (0 means none).
pub(crate) struct L4At {
    pub(crate) port: usize,
    pub(crate) check: usize,
    pub(crate) udp: bool,
}

/// A packet's transport header as the NAT sees it.
pub(crate) struct Transport {
    pub(crate) at: L4At,
    /// The BIB's protocol (ICMP for both ICMP versions).
    pub(crate) proto: u8,
    /// TCP flags; for ICMP the type.
    pub(crate) flags: u8,
    pub(crate) sport: u16,
    pub(crate) dport: u16,
}

/// The transport header at `off` of protocol `nh`: TCP, UDP, or an echo of ICMP
/// protocol `icmp` (1 or 58) whose type is one of `echo`. What the NAT rewrites is the
/// source port (6->4) or, with `to_v6`, the destination port; for an echo the
/// identifier, which is both ports.
#[inline(always)]
pub(crate) fn transport<P: Packet>(
    pkt: &P,
    off: usize,
    nh: u8,
    icmp: u8,
    echo: [u8; 2],
    to_v6: bool,
    quoted: bool,
) -> Result<Transport, Counter> {
    if nh == IPPROTO_TCP || nh == IPPROTO_UDP {
        let p = pkt.load::<[u8; 4]>(off).ok_or(Counter::DropMalformed)?;
        let (check, udp, flags) = if nh == IPPROTO_TCP {
            // A packet quoted in an ICMP error may end after its first 8 bytes.
            let flags = match pkt.load::<[u8; 2]>(off + 12) {
                Some(f) => f[1],
                None if quoted => 0,
                None => return Err(Counter::DropMalformed),
            };
            (off + TCP_CHECK, false, flags)
        } else {
            (off + UDP_CHECK, true, 0)
        };
        let at = L4At { port: if to_v6 { off + 2 } else { off }, check, udp };
        let (sport, dport) = (u16::from_be_bytes([p[0], p[1]]), u16::from_be_bytes([p[2], p[3]]));
        return Ok(Transport { at, proto: nh, flags, sport, dport });
    }
    if nh != icmp {
        return Err(Counter::DropNatUnsupported);
    }
    let i = pkt.load::<[u8; 8]>(off).ok_or(Counter::DropMalformed)?;
    if i[0] != echo[0] && i[0] != echo[1] {
        return Err(Counter::DropNatUnsupported);
    }
    let id = u16::from_be_bytes([i[4], i[5]]);
    let at = L4At { port: off + 4, check: off + 2, udp: false };
    Ok(Transport { at, proto: PROTO_ICMP, flags: i[0], sport: id, dport: id })
}

/// The BIB6 entry of `k6`, copied.
#[inline(always)]
pub(crate) fn bib6(k6: &Bib6Key) -> Option<Bib4Key> {
    // SAFETY: a value of the map, copied out at once.
    BIB6.get_ptr(k6).map(|p| unsafe { *p })
}

#[inline(always)]
pub(crate) fn config() -> Option<(&'static Globals, &'static NatConfig)> {
    let g = globals()?;
    if !g.flag(Globals::FLAG_STATEFUL) {
        return None;
    }
    Some((g, NAT_CFG.get(0)?))
}
