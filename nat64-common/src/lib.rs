//! Types and pure translation logic shared by the eBPF data path and `nat64-ctl`.
//!
//! Everything here is `no_std` and free of kernel helpers so the host can unit-test
//! exactly the code the data path runs.
#![no_std]

pub mod addr;
pub mod checksum;
pub mod counters;
pub mod icmp;
pub mod maps;
pub mod nat;
pub mod options;
pub mod ranges;
pub mod rfc6052;
pub mod stages;
pub mod words;
