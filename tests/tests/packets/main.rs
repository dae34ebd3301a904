//! Packet tests: real bytes through the real, kernel-verified XDP and TC programs
//! (BPF_PROG_TEST_RUN), compared byte for byte with packets built independently.
//! Each table row is (input frame, expected verdict, expected output frame). One file
//! a feature; `common` holds the frame builders, the table runner and `both!`, which
//! runs every test once through XDP and once through TC.

mod basics;
mod common;
mod dynamic_pool;
mod eam;
mod forwarding;
mod fragments;
mod hairpinning;
mod icmp_errors;
mod mtu;
mod stateful;
mod stateful_pool4;
mod stateful_simopen;
mod stateful_sync;
