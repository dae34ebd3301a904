//! The kernel programs are the `nat64` binary target; this library target only lets
//! nat64-ctl name this package as a build dependency so cargo rebuilds it on change.
#![no_std]
