//! nat64-ctl's command line, built in this package so that the benchmark's test can
//! run it (`CARGO_BIN_EXE_nat64-ctl-bench`) for the paths that need a running instance.
fn main() {
    nat64_ctl::cli::main();
}
