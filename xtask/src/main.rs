//! `cargo xtask`: set up a fresh machine, run the demo, the tests and the benchmark.
//! Every command first installs what is missing (one line per step) and skips what
//! is already there.

mod dist;

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "nat64 project tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what building and testing need (Debian packages, nightly rust-src, bpf-linker).
    Setup,
    /// Run the translator on a built-in namespace lab and show traffic crossing it.
    Demo,
    /// Check formatting and lints (cargo fmt --check, clippy -D warnings).
    Lint,
    /// Run every test (unit, packet, end-to-end) after the lint checks. Needs root.
    Test {
        /// Extra arguments for `cargo test` (after `--`), e.g. a test name filter.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Build the Debian packages, nat64_<version>-<revision>_<arch>.deb: nat64-ctl (the
    /// eBPF object inside), the systemd unit, the manual page, completions, example
    /// configurations. Reproducible: the same commit gives the same bytes.
    Dist {
        /// Debian architecture, amd64 or arm64 (cross-built); repeat for both. Default:
        /// the build machine's.
        #[arg(long = "arch", value_name = "ARCH")]
        arches: Vec<String>,
        /// Debian revision: 1 for a release's first package, higher for a rebuild of
        /// the same version.
        #[arg(long, default_value = "1")]
        revision: String,
        /// The Maintainer field (default: $DEBFULLNAME <$DEBEMAIL>, else "nat64 <nat64@localhost>").
        #[arg(long)]
        maintainer: Option<String>,
        /// Folder for the packages (default: target/dist).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Benchmark: traffic through kernel forwarding, XDP forwarding, TAYGA and nat64
    /// (XDP, TC) side by side in namespaces, then ns per packet under BPF_PROG_TEST_RUN.
    Bench {
        /// Shorter runs: a few minutes in all.
        #[arg(long)]
        quick: bool,
        /// Runs per path measurement (median and spread; at least 3).
        #[arg(long)]
        runs: Option<u32>,
        /// Only one section: paths, plat or per-packet.
        #[arg(long)]
        section: Option<String>,
        /// Only these paths, comma-separated: forward, xdp-forward, tayga, nat64-xdp, nat64-xdp-gro, nat64-tc,
        /// stateful-xdp, stateful-tc, forward-l3, nat64-tc-l3 (TUN devices); the plat section:
        /// forward, masquerade-xdp, tayga-masquerade, stateful-xdp, stateful-tc.
        #[arg(long)]
        paths: Option<String>,
        /// BPF_PROG_TEST_RUN repetitions per call (per-packet section).
        #[arg(long)]
        repeat: Option<u32>,
        /// BPF_PROG_TEST_RUN calls per row; the median is reported.
        #[arg(long)]
        rounds: Option<u32>,
    },
}

/// Debian packages the build needs: bpf-linker's (LLVM 22).
const BUILD_PACKAGES: &[&str] = &["llvm-22-dev", "libpolly-22-dev", "zlib1g-dev", "libzstd-dev"];

/// Debian packages the tests and the demo drive (ip, ethtool, ping, curl, python3 for
/// the HTTP/UDP peers, nsenter, traceroute, WireGuard in user space for the L3-device
/// tests, unbound as DNS64, nftables for the NAT64 pool's masquerade, keepalived for
/// the two-node failover; pmacct's nfacctd as the IPFIX collector of the NAT log; TAYGA
/// and iperf3 for the benchmark).
const TEST_PACKAGES: &[&str] = &[
    "iproute2",
    "ethtool",
    "iputils-ping",
    "curl",
    "python3",
    "util-linux",
    "procps",
    "traceroute",
    "wireguard-go",
    "wireguard-tools",
    "unbound",
    "nftables",
    "keepalived",
    "pmacct",
    "tayga",
    "iperf3",
    "tcpdump",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn step(name: &str, f: impl FnOnce() -> Result<String>) -> Result<()> {
    let t = std::time::Instant::now();
    match f() {
        Ok(what) => {
            println!("setup: {name:<24} {what} ({:.1} s)", t.elapsed().as_secs_f64());
            Ok(())
        }
        Err(e) => {
            println!("setup: {name:<24} FAILED");
            Err(e.context(format!("setup step '{name}'")))
        }
    }
}

fn ok(cmd: &mut Command) -> bool {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("spawning {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn apt_missing(packages: &[&'static str]) -> Vec<&'static str> {
    packages
        .iter()
        .copied()
        .filter(|p| {
            let out = Command::new("dpkg-query").args(["-W", "-f=${Status}", p]).output();
            !out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect()
}

/// What building, the demo and the benchmark need.
fn setup() -> Result<()> {
    setup_for(&[BUILD_PACKAGES, TEST_PACKAGES].concat(), &[])
}

/// What the tests need: [`setup`]'s and the packages' builds for every architecture,
/// with qemu to run the binaries of the others.
fn setup_tests() -> Result<()> {
    let mut apt = [BUILD_PACKAGES, TEST_PACKAGES, &["qemu-user-static"]].concat();
    let mut targets = Vec::new();
    for arch in dist::ARCHES {
        apt.extend(arch.apt);
        targets.push(arch.triple);
    }
    setup_for(&apt, &targets)
}

/// Installs the Debian packages `apt` and the Rust standard libraries of `targets`
/// when missing, and the toolchain pieces every build needs.
fn setup_for(apt: &[&'static str], targets: &[&str]) -> Result<()> {
    step("debian packages", || {
        let missing = apt_missing(apt);
        if missing.is_empty() {
            return Ok("already installed".into());
        }
        if !is_root() {
            bail!("missing {} and not root: run as root or `apt-get install` them", missing.join(" "));
        }
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
        Ok(format!("installed {}", missing.join(" ")))
    })?;
    step("rust targets", || {
        let out =
            Command::new("rustup").args(["target", "list", "--installed"]).output().context("rustup")?;
        let have = String::from_utf8_lossy(&out.stdout).into_owned();
        let missing: Vec<&str> = targets.iter().copied().filter(|t| !have.lines().any(|l| l == *t)).collect();
        if missing.is_empty() {
            return Ok("present".into());
        }
        run(Command::new("rustup").args(["target", "add"]).args(&missing))?;
        Ok(format!("installed {}", missing.join(" ")))
    })?;
    step("nightly toolchain", || {
        if ok(Command::new("rustup").args(["run", "nightly", "rustc", "--version"])) {
            return Ok("present".into());
        }
        run(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))?;
        Ok("installed".into())
    })?;
    step("nightly rust-src", || {
        let out = Command::new("rustup")
            .args(["component", "list", "--toolchain", "nightly", "--installed"])
            .output()
            .context("rustup")?;
        if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.starts_with("rust-src")) {
            return Ok("present".into());
        }
        run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))?;
        Ok("installed".into())
    })?;
    step("bpf-linker (llvm-22)", || {
        if ok(Command::new("bpf-linker").arg("--version")) {
            return Ok("present".into());
        }
        let path = format!("/usr/lib/llvm-22/bin:{}", std::env::var("PATH").unwrap_or_default());
        run(Command::new("cargo")
            .args(["install", "bpf-linker", "--no-default-features", "--features", "llvm-22"])
            .env("PATH", path))?;
        Ok("installed".into())
    })?;
    step("rustfmt and clippy", || {
        if ok(Command::new("cargo").args(["fmt", "--version"]))
            && ok(Command::new("cargo").args(["clippy", "--version"]))
        {
            return Ok("present".into());
        }
        run(Command::new("rustup").args(["component", "add", "rustfmt", "clippy"]))?;
        Ok("installed".into())
    })?;
    step("clippy for the kernel crate (nightly)", || {
        if ok(Command::new("rustup").args(["run", "nightly", "cargo", "clippy", "--version"])) {
            return Ok("present".into());
        }
        run(Command::new("rustup").args(["component", "add", "clippy", "--toolchain", "nightly"]))?;
        Ok("installed".into())
    })?;
    step("bpffs", || {
        if ok(Command::new("sh").args(["-c", "stat -f -c %T /sys/fs/bpf | grep -q bpf"])) {
            return Ok("mounted".into());
        }
        run(Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]))?;
        Ok("mounted now".into())
    })?;
    Ok(())
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn lint() -> Result<()> {
    println!("lint: cargo fmt --check");
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    println!("lint: cargo clippy --all-targets -- -D warnings");
    run(cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]))?;
    // The kernel crates are not default members (the host cannot build them): clippy
    // for the BPF target, as their build does, and their documentation with every link
    // resolved, so that a comment cannot name an item that is gone.
    for krate in ["nat64-ebpf", "bench-ebpf"] {
        println!("lint: {krate}: cargo clippy --target bpfel-unknown-none -- -D warnings");
        run(bpf_cargo("clippy").args(["--", "-D", "warnings"]).current_dir(root().join(krate)))?;
        println!("lint: {krate}: cargo doc (broken intra-doc links are errors)");
        run(bpf_cargo("doc")
            .args(["--no-deps", "--document-private-items"])
            .env("RUSTDOCFLAGS", "-D rustdoc::broken_intra_doc_links -D rustdoc::private_intra_doc_links")
            .current_dir(root().join(krate)))?;
    }
    Ok(())
}

/// `cargo <what>` with the nightly toolchain for the BPF target, as aya-build builds
/// the kernel crates, in a target folder of its own.
fn bpf_cargo(what: &str) -> Command {
    let mut c = Command::new("rustup");
    c.args([
        "run",
        "nightly",
        "cargo",
        what,
        "--release",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
    ])
    .arg("--target-dir")
    .arg(root().join("target/lint-ebpf"));
    c
}

/// Runs the whole suite, echoing cargo's output, and closes with one total line
/// ("N passed, N failed") summed over every test binary.
fn test(args: &[String]) -> Result<()> {
    use std::io::{BufRead as _, BufReader};
    let mut child = cargo()
        .args([
            "test",
            "--workspace",
            "--exclude",
            "nat64-ebpf",
            "--exclude",
            "nat64-bench-ebpf",
            "--no-fail-fast",
            "--",
        ])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("spawning cargo test")?;
    let (mut passed, mut failed, mut ignored) = (0u64, 0u64, 0u64);
    let stdout = child.stdout.take().context("cargo test stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split(['.', ';']) {
                let mut w = part.split_whitespace();
                if let (Some(n), Some(what)) = (w.next().and_then(|n| n.parse::<u64>().ok()), w.next()) {
                    match what {
                        "passed" => passed += n,
                        "failed" => failed += n,
                        "ignored" => ignored += n,
                        _ => {}
                    }
                }
            }
        }
    }
    let status = child.wait()?;
    println!("tests: {passed} passed, {failed} failed, {ignored} skipped");
    if !status.success() || failed > 0 {
        bail!("cargo test failed: {status}");
    }
    if passed == 0 {
        bail!("no test ran");
    }
    Ok(())
}

fn require_root(what: &str) -> Result<()> {
    if !is_root() {
        bail!("{what} needs root (it loads eBPF programs and creates network namespaces): run it as root");
    }
    Ok(())
}

fn main() -> ExitCode {
    // `cargo xtask dist` runs the release builds with this binary as RUSTC_WRAPPER.
    if let Ok(remaps) = std::env::var(dist::REMAP_ENV) {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if let Err(e) = dist::wrap_rustc(&remaps, &args) {
            eprintln!("xtask (rustc wrapper): {e:#}");
        }
        return ExitCode::FAILURE;
    }
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Setup => setup(),
        Cmd::Demo => {
            require_root("the demo")?;
            setup()?;
            run(cargo().args(["build", "--release", "-p", "nat64-ctl", "-p", "nat64-tests", "--bins"]))?;
            let dir = root().join("target/release");
            run(Command::new(dir.join("nat64-demo")).env("NAT64_CTL", dir.join("nat64-ctl")))
        }
        Cmd::Lint => {
            setup()?;
            lint()
        }
        Cmd::Test { args } => {
            require_root("the test suite")?;
            setup_tests()?;
            lint()?;
            test(&args)
        }
        Cmd::Dist { arches, revision, maintainer, out } => {
            let arches = if arches.is_empty() {
                vec![dist::host_arch()?]
            } else {
                arches.iter().map(|a| dist::arch(a)).collect::<Result<Vec<_>>>()?
            };
            dist::check_revision(&revision)?;
            let maintainer = maintainer.unwrap_or_else(|| {
                match (std::env::var("DEBFULLNAME"), std::env::var("DEBEMAIL")) {
                    (Ok(n), Ok(e)) => format!("{n} <{e}>"),
                    _ => "nat64 <nat64@localhost>".into(),
                }
            });
            let mut apt = BUILD_PACKAGES.to_vec();
            apt.extend(arches.iter().flat_map(|a| a.apt.iter().copied()));
            let targets: Vec<&str> = arches.iter().map(|a| a.triple).collect();
            setup_for(&apt, &targets)?;
            let out = out.unwrap_or_else(|| root().join("target/dist"));
            dist::dist(&dist::Options { arches, revision, maintainer, out })?;
            Ok(())
        }
        Cmd::Bench { quick, runs, section, paths, repeat, rounds } => {
            require_root("the benchmark")?;
            setup()?;
            run(cargo().args(["build", "--release", "-p", "nat64-ctl", "-p", "nat64-bench", "--bins"]))?;
            let dir = root().join("target/release");
            let mut bench = Command::new(dir.join("nat64-bench"));
            bench.env("NAT64_CTL", dir.join("nat64-ctl"));
            if quick {
                bench.arg("--quick");
            }
            for (flag, value) in [("--runs", runs), ("--repeat", repeat), ("--rounds", rounds)] {
                if let Some(v) = value {
                    bench.args([flag, &v.to_string()]);
                }
            }
            for (flag, value) in [("--section", section), ("--paths", paths)] {
                if let Some(v) = value {
                    bench.args([flag, &v]);
                }
            }
            run(&mut bench)
        }
    }
}
