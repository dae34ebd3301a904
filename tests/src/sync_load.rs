//! Session sync under load: node A makes new sessions at a set rate (real frames of new
//! UDP flows into its XDP program), node B takes them over the sync link; what B holds
//! when A's stream ends, how long it takes to hold all of them, what was dropped and
//! where, and how much memory each nat64-ctl holds. The two-node test and the
//! benchmark's sync section both run it.
//!
//! ```text
//!  [c] generator (AF_PACKET) -- north [A] south -- [s] 198.51.100.10
//!                                      ha  10.99.0.1
//!                                       |
//!                                      ha  10.99.0.2 [B] north -- [stub]
//! ```

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    os::fd::AsRawFd as _,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    lab::{Lab, json, packets},
    packet::{L4, V6Opts, eth6, ipv6},
};

/// Flows per IPv6 host (a /64 each).
const PER_HOST: u32 = 256;
/// The IPv4 destination, as the IPv6 hosts reach it through 64:ff9b::/96.
const SERVER4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
/// The discard port.
const DPORT: u16 = 9;

/// What one run found.
#[derive(Debug, Clone)]
pub struct Report {
    /// Frames the generator sent, and in how long.
    pub sent: u64,
    pub send_secs: f64,
    /// Sessions node A made (`nat_session_created`), and its frames translated.
    pub made_on_a: u64,
    pub translated_on_a: u64,
    /// Sessions B made from A's reports when A's stream ended, and when it stopped
    /// growing (or reached A's count).
    pub on_b_at_end: u64,
    pub on_b: u64,
    /// Seconds from the end of A's stream until B held all it was going to.
    pub catch_up_secs: f64,
    /// Events lost on A: the ring buffer full (`sync_events_lost`), the queue to the
    /// peers full (`sync_events_dropped`); datagrams B saw missing (sequence gaps).
    pub lost_ring: u64,
    pub dropped_queue: u64,
    pub missing_datagrams: u64,
    /// B's refusals (none in a clean run): conflicts, failures, and any refused datagram.
    pub refused_on_b: u64,
    /// nat64-ctl's resident memory (KiB) on A and B before the stream and after.
    pub rss_a: (u64, u64),
    pub rss_b: (u64, u64),
    /// The datagrams B accepted and the records in them.
    pub accepted_on_b: u64,
}

/// Runs one load: `rate` new flows a second for `secs` seconds on A (`ctl`: the
/// nat64-ctl binary).
pub fn run(ctl: &str, rate: u32, secs: u32) -> Report {
    let mut lab = Lab::new();
    let t = lab.tag.clone();
    let (c, s, a, b, stub) =
        (lab.add_ns("c"), lab.add_ns("s"), lab.add_ns("na"), lab.add_ns("nb"), lab.add_ns("stub"));
    lab.link(&c, "eth0", &a, "north");
    lab.link(&a, "south", &s, "eth0");
    lab.link(&a, "ha", &b, "ha");
    lab.link(&b, "north", &stub, "eth0");
    lab.must_in(
        &a,
        "ip -6 addr add 2001:db8:100::1/64 dev north nodad && ip -6 route add 2001:db8::/32 via 2001:db8:100::10 && \
         ip addr add 198.51.100.1/24 dev south && ip addr add 10.99.0.1/24 dev ha && \
         sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1",
    );
    lab.must_in(&b, "ip addr add 10.99.0.2/24 dev ha");
    lab.must_in(&c, "ip -6 addr add 2001:db8:100::10/64 dev eth0 nodad && ethtool -K eth0 gro on >/dev/null");
    // The server drops what it gets, silently (no ICMP errors back at this rate).
    lab.must_in(
        &s,
        &format!(
            "ip addr add {SERVER4}/24 dev eth0 && ip route add 203.0.113.0/26 via 198.51.100.1 && \
             ethtool -K eth0 gro on >/dev/null && sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv4.icmp_msgs_per_sec=0"
        ),
    );
    let dir = std::env::temp_dir().join(format!("nat64-syncload-{t}"));
    std::fs::create_dir_all(&dir).unwrap();
    lab.dirs.push(dir.clone());
    let key = crate::lab::sync_key(&dir);
    let sessions = (rate as u64 * secs as u64 * 5 / 4).next_power_of_two().max(1 << 20);
    let mut ctls = Vec::new();
    let mut instances = Vec::new();
    for (k, (ns, ifs)) in [(&a, vec!["north", "south"]), (&b, vec!["north"])].into_iter().enumerate() {
        let k1 = k + 1;
        let instance = format!("sl{k1}-{t}");
        let v = serde_json::json!({
            "instance": instance,
            "mode": "nat64",
            "interfaces": ifs.iter().map(|i| serde_json::json!({"name": i, "attach": "xdp"})).collect::<Vec<_>>(),
            "pool6": "64:ff9b::/96",
            "pool4": [{"prefix": "203.0.113.0/26"}],
            "wkp-allow-non-global": true,
            "max-sessions": sessions,
            "sync": {
                "listen": format!("10.99.0.{k1}:6464"),
                "peers": [format!("10.99.0.{}:6464", 3 - k1)],
                "key-file": key.display().to_string(),
            },
        });
        let config = dir.join(format!("n{k1}.json"));
        std::fs::write(&config, v.to_string()).unwrap();
        ctls.push(lab.start_ctl(ns, ctl, &config, &instance));
        instances.push(instance);
    }
    let pid = |i: usize, lab: &mut Lab| lab.child(ctls[i]).id();
    let (pa, pb) = (pid(0, &mut lab), pid(1, &mut lab));
    let rss_before = (rss_kib(pa), rss_kib(pb));
    let mac = lab.must_in(&a, "cat /sys/class/net/north/address");
    let dst_mac = parse_mac(mac.trim());

    // The frames, made before the clock starts.
    let total = rate * secs;
    let frames: Vec<Vec<u8>> = (0..total).map(|i| frame(i, dst_mac)).collect();
    let (sent, send_secs) = send_paced(&c, "eth0", &frames, rate);
    let end = Instant::now();

    let stats =
        |lab: &Lab, ns: &str, i: usize| json(lab.ctl(ns, ctl, &instances[i], &["stats", "--json"]), "stats");
    let made = |s: &Value| packets(s, "sync_sessions_made");
    let on_b_at_end = made(&stats(&lab, &b, 1));
    // B holds all it will when its count stops growing for 2 s (or reaches A's).
    let mut last = (on_b_at_end, Instant::now());
    let made_on_a_now = packets(&stats(&lab, &a, 0), "nat_session_created");
    let mut caught = end;
    while last.1.elapsed() < Duration::from_secs(2) && end.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
        let n = made(&stats(&lab, &b, 1));
        if n != last.0 {
            last = (n, Instant::now());
            caught = Instant::now();
        }
        if n >= made_on_a_now {
            break;
        }
    }
    let sa = stats(&lab, &a, 0);
    let sb = stats(&lab, &b, 1);
    let status_b = json(lab.ctl(&b, ctl, &instances[1], &["status", "--json"]), "status");
    let report = Report {
        sent,
        send_secs,
        made_on_a: packets(&sa, "nat_session_created"),
        translated_on_a: packets(&sa, "xlat_6to4_udp"),
        on_b_at_end,
        on_b: made(&sb),
        catch_up_secs: caught.saturating_duration_since(end).as_secs_f64(),
        lost_ring: packets(&sa, "sync_events_lost"),
        dropped_queue: packets(&sa, "sync_events_dropped"),
        missing_datagrams: status_b["sync"]["peers"][0]["missing"].as_u64().unwrap_or(0),
        refused_on_b: [
            "sync_sessions_conflict",
            "sync_sessions_failed",
            "sync_refused_auth",
            "sync_malformed",
            "sync_replayed",
        ]
        .iter()
        .map(|c| packets(&sb, c))
        .sum(),
        rss_a: (rss_before.0, rss_kib(pa)),
        rss_b: (rss_before.1, rss_kib(pb)),
        accepted_on_b: packets(&sb, "sync_messages_accepted"),
    };
    drop(lab);
    report
}

/// Flow `i`'s first frame: UDP from host `i / PER_HOST` (2001:db8:a:HOST::5), port
/// 10000 + `i % PER_HOST`, to the server through 64:ff9b::/96.
fn frame(i: u32, dst_mac: [u8; 6]) -> Vec<u8> {
    let host = i / PER_HOST;
    let src = Ipv6Addr::new(0x2001, 0xdb8, 0xa + (host >> 16) as u16, host as u16, 0, 0, 0, 5);
    let o = SERVER4.octets();
    let dst = Ipv6Addr::new(
        0x64,
        0xff9b,
        0,
        0,
        0,
        0,
        u16::from_be_bytes([o[0], o[1]]),
        u16::from_be_bytes([o[2], o[3]]),
    );
    let l4 = L4::Udp {
        sport: 10_000 + (i % PER_HOST) as u16,
        dport: DPORT,
        data: vec![0; 2],
        zero_checksum: false,
    };
    let mut f = eth6(&ipv6(src, dst, V6Opts::default(), &l4));
    f[..6].copy_from_slice(&dst_mac);
    f
}

fn parse_mac(s: &str) -> [u8; 6] {
    let mut m = [0u8; 6];
    for (i, p) in s.split(':').enumerate().take(6) {
        m[i] = u8::from_str_radix(p, 16).expect("a MAC address");
    }
    m
}

/// nat64-ctl's resident memory in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Sends `frames` out of `dev` in namespace `ns` at `rate` a second (from a thread that
/// enters the namespace); how many went and in how long.
fn send_paced(ns: &str, dev: &str, frames: &[Vec<u8>], rate: u32) -> (u64, f64) {
    crate::lab::in_netns(ns, || {
        // SAFETY: plain socket(2).
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
        // SAFETY: we own the fd from here.
        let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let name = std::ffi::CString::new(dev).unwrap();
        // SAFETY: a NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert_ne!(ifindex, 0, "no {dev} in {ns}");
        // SAFETY: a zeroed sockaddr_ll filled for the device.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = ifindex as i32;
        addr.sll_halen = 6;
        let started = Instant::now();
        let mut sent = 0u64;
        // In batches of a tenth of a millisecond's worth, one sendmmsg(2) each.
        let batch = (rate as usize / 10_000).clamp(1, 64);
        for (b, chunk) in frames.chunks(batch).enumerate() {
            let due = Duration::from_secs_f64((b * batch) as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
            let mut iov: Vec<libc::iovec> = chunk
                .iter()
                .map(|f| libc::iovec { iov_base: f.as_ptr() as *mut _, iov_len: f.len() })
                .collect();
            let mut msgs: Vec<libc::mmsghdr> = iov
                .iter_mut()
                .map(|v| {
                    // SAFETY: a zeroed mmsghdr, then its fields set.
                    let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                    m.msg_hdr.msg_name = (&raw const addr) as *mut _;
                    m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                    m.msg_hdr.msg_iov = v;
                    m.msg_hdr.msg_iovlen = 1;
                    m
                })
                .collect();
            let mut at = 0;
            while at < msgs.len() {
                // SAFETY: headers pointing at our frames and address, alive for the call.
                let r = unsafe {
                    libc::sendmmsg(sock.as_raw_fd(), msgs[at..].as_mut_ptr(), (msgs.len() - at) as u32, 0)
                };
                if r > 0 {
                    at += r as usize;
                    sent += r as u64;
                    continue;
                }
                let e = std::io::Error::last_os_error();
                // The device's queue full: the rest again, a moment later.
                assert_eq!(e.raw_os_error(), Some(libc::ENOBUFS), "sending: {e}");
                std::thread::yield_now();
            }
        }
        (sent, started.elapsed().as_secs_f64())
    })
}
