//! BPF_PROG_TEST_RUN harness: the real object, loaded and verified by the kernel,
//! configured through the same code nat64-ctl uses, fed real bytes, through the XDP
//! program or the TC program (Ethernet).

use std::{collections::HashMap, process::Command};

use aya::{
    Ebpf,
    programs::{SchedClassifier, TestRun, TestRunOptions, Xdp},
};
use nat64_common::counters::Counter;
use nat64_ctl::{
    apply,
    config::Config,
    load::{self, TC_PROGRAM, XDP_PROGRAM},
    tables::Tables,
};

/// The configuration the packet tests and the bench load. The harness's fresh
/// network namespace has no routes, so translated packets take the "hand to the
/// kernel" path unless a test adds routes and neighbours.
pub const TEST_CONFIG: &str = r#"{
    "interfaces": [{"name": "lo", "attach": "xdp"}],
    "ipv4-addr": "198.51.100.1",
    "ipv6-addr": "3fff::1",
    "pool6": "64:ff9b::/96",
    "eamt": [
        {"ipv4": "192.0.2.0/24", "ipv6": "2001:db8:6::/120"},
        {"ipv4": "93.184.216.34", "ipv6": "2001:db8:7::34"}
    ],
    "denylist4": ["8.8.4.0/24"]
}"#;

/// Under TEST_CONFIG: IPv6 host 2001:db8:6::5 is 192.0.2.5 by EAM; 8.8.8.8 is
/// 64:ff9b::808:808 by pool6.
pub const H6: &str = "2001:db8:6::5";
pub const H4: &str = "192.0.2.5";
pub const R6: &str = "64:ff9b::808:808";
pub const R4: &str = "8.8.8.8";

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;

/// Moves the calling thread into a new, empty network namespace (with `lo` up), so
/// the FIB lookups of the program under test see only what the test sets up. Child
/// processes started from this thread inherit it.
pub fn enter_fresh_netns() {
    // SAFETY: unshare affects only the calling thread's network namespace.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "unshare(CLONE_NEWNET) failed: {}", std::io::Error::last_os_error());
    sh("ip link set lo up");
}

/// Runs a shell command in the current thread's namespaces and panics on failure.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().expect("spawning sh");
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The context BPF_PROG_TEST_RUN takes for an XDP program: `struct xdp_md { data,
/// data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex }` for a frame
/// of `len` bytes arriving on `ifindex`.
pub fn xdp_md(len: usize, ifindex: u32) -> [u32; 6] {
    [0, len as u32, 0, ifindex, 0, 0]
}

/// The context's bytes, as BPF_PROG_TEST_RUN's `ctx_in` takes them.
pub fn ctx_bytes(fields: &[u32]) -> Vec<u8> {
    fields.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

/// Which attach point's program a harness runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Xdp,
    /// The TC program for Ethernet devices. Its verdicts are reported in XDP terms:
    /// TC_ACT_OK as XDP_PASS, TC_ACT_SHOT as XDP_DROP, TC_ACT_REDIRECT as XDP_TX when
    /// the program answered the sender (`icmp_sent` moved), else XDP_REDIRECT.
    Tc,
}

const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;
const TC_ACT_REDIRECT: u32 = 7;

fn program(kind: Kind) -> &'static str {
    match kind {
        Kind::Xdp => XDP_PROGRAM,
        Kind::Tc => TC_PROGRAM,
    }
}

pub struct Harness {
    pub ebpf: Ebpf,
    pub tables: Tables,
    pub kind: Kind,
    /// Stateful NAT64's sweep program, loaded on first use.
    sweeper: Option<nat64_ctl::sweep::Sweeper>,
    /// Session sync's import program, loaded on first use.
    importer: Option<nat64_ctl::sync::import::Importer>,
}

/// What one run of the program did.
#[derive(Debug)]
pub struct Outcome {
    /// The verdict as XDP spells it; `XDP_TX` for a reply sent back out of the port
    /// it came in on, whichever way the program sent it (see `raw`).
    pub action: u32,
    /// What the program returned (for TC: `TC_ACT_*`). An XDP reply on a port that
    /// takes XDP frames is a redirect into that port, XDP_TX elsewhere.
    pub raw: u32,
    pub frame: Vec<u8>,
}

impl Harness {
    /// Loads the program into a fresh network namespace and applies `config` (the
    /// JSON an operator would write; interfaces are not attached).
    pub fn new(config: &str) -> Self {
        Self::with(Kind::Xdp, config)
    }

    /// Loads the program of `kind` the same way.
    pub fn with(kind: Kind, config: &str) -> Self {
        crate::require_root();
        enter_fresh_netns();
        let cfg = Config::from_json(config).expect("test config is valid");
        let name = program(kind);
        // Stateful NAT64's tables sized as `max-sessions` asks (as `nat64-ctl run` does);
        // the default size in the other modes, whose tests may switch to mode "nat64".
        let sizes =
            if cfg.nat64.is_some() { cfg.nat_sizes() } else { (nat64_common::maps::SESSIONS_MAX_ENTRIES, 1) };
        let mut ebpf =
            load::load_pinned(&[name], None, sizes).unwrap_or_else(|e| panic!("loading {name}: {e:#}"));
        let mut tables = Tables::take(&mut ebpf, None).expect("maps");
        apply::apply_config(&mut tables, &cfg).expect("applying config");
        Self { ebpf, tables, kind, sweeper: None, importer: None }
    }

    /// Runs stateful NAT64's sweep in the kernel as if it were `now` (boot-time ns).
    pub fn sweep(&mut self, now: u64) -> nat64_common::maps::Sweep {
        self.sweeper().run(Some(now)).unwrap_or_else(|e| panic!("sweep: {e:#}"))
    }

    /// Ends every dynamic session and BIB entry (`nat64-ctl session flush`).
    pub fn flush(&mut self) -> nat64_common::maps::Sweep {
        self.sweeper().flush().unwrap_or_else(|e| panic!("flush: {e:#}"))
    }

    fn sweeper(&mut self) -> &mut nat64_ctl::sweep::Sweeper {
        if self.sweeper.is_none() {
            let s =
                nat64_ctl::sweep::Sweeper::load(&mut self.ebpf).unwrap_or_else(|e| panic!("sweep: {e:#}"));
            self.sweeper = Some(s);
        }
        self.sweeper.as_mut().expect("loaded")
    }

    /// Imports a peer's `records` as if it were `now` (boot-time ns), as session sync
    /// does: what the import program did.
    pub fn sync_import(
        &mut self,
        records: &[nat64_ctl::sync::wire::SessionRecord],
        now: u64,
    ) -> nat64_ctl::sync::import::Imported {
        if self.importer.is_none() {
            let i = nat64_ctl::sync::import::Importer::load(&mut self.ebpf)
                .unwrap_or_else(|e| panic!("sync import: {e:#}"));
            self.importer = Some(i);
        }
        let i = self.importer.as_mut().expect("loaded");
        i.import(records, Some(now)).unwrap_or_else(|e| panic!("sync import: {e:#}"))
    }

    fn program(&self) -> &'static str {
        program(self.kind)
    }

    /// Runs `frame` once as if received on `ifindex` (0: the namespace's loopback).
    pub fn run_on(&self, frame: &[u8], ifindex: u32) -> Outcome {
        let mut out = vec![0u8; frame.len() + 256];
        let mut ctx = Vec::new();
        let fields: &[u32] = match self.kind {
            Kind::Xdp => &xdp_md(frame.len(), ifindex),
            // struct __sk_buff up to ifindex: len, pkt_type, mark, queue_mapping, protocol,
            // vlan_present, vlan_tci, vlan_proto, priority, ingress_ifindex, ifindex
            // (the kernel takes only some fields from the caller; the rest stay zero)
            Kind::Tc => &[0, 0, 0, 0, 0, 0, 0, 0, 0, ifindex, ifindex],
        };
        ctx.extend_from_slice(&ctx_bytes(fields));
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.data_out = Some(&mut out);
        if ifindex != 0 {
            opts.ctx_in = Some(&ctx);
        }
        let sent = self.count(Counter::IcmpSent);
        let r = match self.kind {
            Kind::Xdp => <&Xdp>::try_from(self.ebpf.program(XDP_PROGRAM).expect("program"))
                .expect("xdp")
                .test_run(opts),
            Kind::Tc => <&SchedClassifier>::try_from(self.ebpf.program(self.program()).expect("program"))
                .expect("tc")
                .test_run(opts),
        }
        .expect("BPF_PROG_TEST_RUN");
        out.truncate(r.data_size_out as usize);
        let replied = self.count(Counter::IcmpSent) > sent;
        let action = match (self.kind, r.return_value) {
            (Kind::Xdp, XDP_REDIRECT) if replied => XDP_TX,
            (Kind::Xdp, a) => a,
            (_, TC_ACT_OK) => XDP_PASS,
            (_, TC_ACT_SHOT) => XDP_DROP,
            (_, TC_ACT_REDIRECT) if replied => XDP_TX,
            (_, TC_ACT_REDIRECT) => XDP_REDIRECT,
            (_, a) => panic!("TC program returned {a}, not a verdict it uses"),
        };
        Outcome { action, raw: r.return_value, frame: out }
    }

    pub fn run(&self, frame: &[u8]) -> Outcome {
        self.run_on(frame, 0)
    }

    /// Packet counts by counter name.
    pub fn counters(&self) -> HashMap<&'static str, u64> {
        self.tables.counters().expect("counters").into_iter().map(|(c, v)| (c.name(), v.packets)).collect()
    }

    pub fn count(&self, c: Counter) -> u64 {
        self.counters()[c.name()]
    }

    /// Makes `ifindex` an attached Ethernet port, as nat64-ctl would: a target of TC
    /// redirects, and of XDP redirects when it takes XDP frames (`xdp_frames`).
    pub fn port(&mut self, ifindex: u32, xdp_frames: bool) {
        use nat64_common::maps::{PortState, PortWhy};
        let state = if xdp_frames {
            PortState { flags: PortState::XDP_TARGET, why: PortWhy::NdoXmit as u32 }
        } else {
            PortState { flags: 0, why: PortWhy::VethPeer as u32 }
        };
        self.tables.port_set(ifindex, state).expect("writing PORTS and TX_PORTS");
    }
}
