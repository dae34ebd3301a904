//! The benchmark's programs are the `bench-progs` binary target; this library target
//! only lets nat64-bench name this package as a build dependency so cargo rebuilds it
//! on change.
#![no_std]
