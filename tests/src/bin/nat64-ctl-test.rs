fn main() {
    nat64_ctl::cli::main();
}
