//! nat64-ctl: loads, configures and inspects the nat64 eBPF translator.

pub mod apply;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod explain;
pub mod general;
pub mod load;
pub mod metrics;
pub mod natlog;
pub mod netdev;
pub mod nexthop;
pub mod notify;
pub mod pool;
pub mod ports;
pub mod pref64;
pub mod ra;
pub mod running;
pub mod simopen;
pub mod stats;
pub mod status;
pub mod sweep;
pub mod sync;
pub mod sys;
pub mod tables;

/// The eBPF object built by build.rs (empty when built with AYA_BUILD_SKIP=1).
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/nat64"));
