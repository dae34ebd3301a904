//! `cargo xtask dist`: the Debian packages, built reproducibly.
//!
//! The release binary is built for each architecture's target (cross-linked with
//! Debian's `gcc-aarch64-linux-gnu` for arm64) with every build path remapped, the
//! package tree is staged with fixed modes, and `dpkg-deb` packs it with its times
//! clamped to `SOURCE_DATE_EPOCH` (the commit's time): the same commit gives the same
//! bytes, wherever it is checked out.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{root, run};

/// The environment variable that makes `xtask` a `RUSTC_WRAPPER` adding the path
/// remappings (see [`wrap_rustc`]); its value is the remappings, one per line.
pub const REMAP_ENV: &str = "NAT64_XTASK_REMAP";

/// A Debian architecture the package is built for.
pub struct Arch {
    pub debian: &'static str,
    pub triple: &'static str,
    /// Debian packages the cross build needs (none for the build machine's own).
    pub apt: &'static [&'static str],
    /// The linker, for cargo's `CARGO_TARGET_<TRIPLE>_LINKER`.
    pub linker: Option<&'static str>,
}

pub const ARCHES: &[Arch] = &[
    Arch { debian: "amd64", triple: "x86_64-unknown-linux-gnu", apt: &[], linker: None },
    Arch {
        debian: "arm64",
        triple: "aarch64-unknown-linux-gnu",
        apt: &["gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross"],
        linker: Some("aarch64-linux-gnu-gcc"),
    },
];

pub fn arch(name: &str) -> Result<&'static Arch> {
    ARCHES.iter().find(|a| a.debian == name).with_context(|| {
        format!(
            "--arch {name:?}: not one of {}",
            ARCHES.iter().map(|a| a.debian).collect::<Vec<_>>().join(", ")
        )
    })
}

/// The host's Debian architecture (the one whose binary can write the manual page and
/// the completions).
pub fn host_arch() -> Result<&'static Arch> {
    match std::env::consts::ARCH {
        "x86_64" => arch("amd64"),
        "aarch64" => arch("arm64"),
        other => bail!("building on {other} is not supported: amd64 or arm64"),
    }
}

pub struct Options {
    pub arches: Vec<&'static Arch>,
    pub revision: String,
    pub maintainer: String,
    pub out: PathBuf,
}

/// Checks a Debian revision: digits, letters and `+ . ~`, starting with a digit.
pub fn check_revision(r: &str) -> Result<()> {
    let ok = r.starts_with(|c: char| c.is_ascii_digit())
        && r.chars().all(|c| c.is_ascii_alphanumeric() || "+.~".contains(c));
    if !ok {
        bail!("--revision {r:?}: must start with a digit and hold only letters, digits and + . ~");
    }
    Ok(())
}

/// The workspace's version, from `[workspace.package]` in Cargo.toml.
fn version() -> Result<String> {
    let text = fs::read_to_string(root().join("Cargo.toml"))?;
    let mut in_package = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[workspace.package]";
        } else if in_package && let Some(v) = line.strip_prefix("version") {
            let v = v.trim_start().trim_start_matches('=').trim().trim_matches('"');
            return Ok(v.to_string());
        }
    }
    bail!("Cargo.toml: no version in [workspace.package]")
}

/// `SOURCE_DATE_EPOCH` if set, else the time of the commit checked out.
fn source_date_epoch() -> Result<u64> {
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        return v.trim().parse().with_context(|| format!("SOURCE_DATE_EPOCH={v:?}: not a number of seconds"));
    }
    let out = Command::new("git")
        .args(["log", "-1", "--format=%ct"])
        .current_dir(root())
        .output()
        .context("git log")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().with_context(|| {
        format!("no commit time from git ({:?}): set SOURCE_DATE_EPOCH", String::from_utf8_lossy(&out.stderr))
    })
}

/// Where cargo and rustup keep sources that end up in paths of the binary.
fn home_dir(var: &str, default: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(default)))
}

/// The `--remap-path-prefix` values: the checkout, cargo's registry and rustup's
/// toolchains (the kernel crate builds `core` from source) get fixed names.
fn remaps() -> Vec<String> {
    let mut v = Vec::new();
    if let Some(h) = home_dir("RUSTUP_HOME", ".rustup") {
        v.push(format!("{}=/rustup", h.display()));
    }
    if let Some(h) = home_dir("CARGO_HOME", ".cargo") {
        v.push(format!("{}=/cargo", h.display()));
    }
    v.push(format!("{}=/nat64", root().display()));
    v
}

/// Runs as `RUSTC_WRAPPER`: `argv[1]` is rustc, the rest its arguments. Compilations
/// (not cargo's probes) get the remappings of [`REMAP_ENV`]. Both the release build and
/// the kernel crate's nested build (aya-build sets its own rustflags, but keeps the
/// wrapper) go through here.
pub fn wrap_rustc(remaps: &str, args: &[String]) -> Result<()> {
    use std::os::unix::process::CommandExt as _;
    let (rustc, rest) = args.split_first().context("RUSTC_WRAPPER called without rustc")?;
    let mut cmd = Command::new(rustc);
    cmd.args(rest);
    if rest.iter().any(|a| a == "--crate-name") {
        cmd.args(remaps.lines().map(|r| format!("--remap-path-prefix={r}")));
    }
    Err(cmd.exec()).with_context(|| format!("exec {rustc}"))
}

/// Builds nat64-ctl for `arch` in release; the binary's path.
fn build(arch: &Arch, epoch: u64) -> Result<PathBuf> {
    println!("dist: building nat64-ctl for {} ({})", arch.debian, arch.triple);
    let wrapper = std::env::current_exe().context("xtask's own path")?;
    // Without address-space randomisation: the eBPF object's BTF comes out of the
    // linker (bpf-linker 0.13, LLVM 22) with two types in an order that follows where
    // they were allocated, so one build in about eight differed from the next; with the
    // addresses fixed every build is the same.
    let mut c = Command::new("setarch");
    c.current_dir(root())
        .args(["-R", "--"])
        .arg(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--locked", "-p", "nat64-ctl", "--target", arch.triple])
        .arg("--target-dir")
        .arg(target_dir())
        .env("RUSTC_WRAPPER", wrapper)
        .env(REMAP_ENV, remaps().join("\n"))
        .env("SOURCE_DATE_EPOCH", epoch.to_string());
    if let Some(linker) = arch.linker {
        let var = format!("CARGO_TARGET_{}_LINKER", arch.triple.to_uppercase().replace('-', "_"));
        c.env(var, linker);
    }
    run(&mut c)?;
    Ok(target_dir().join(arch.triple).join("release/nat64-ctl"))
}

/// The release builds' own target folder: their flags differ from `cargo build`'s, so
/// that neither rebuilds the other's dependencies.
fn target_dir() -> PathBuf {
    root().join("target/dist/cargo")
}

fn output(cmd: &mut Command) -> Result<Vec<u8>> {
    let out = cmd.output().with_context(|| format!("spawning {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}

/// `Depends` for the binary's shared libraries: each library's package, at least at the
/// newest symbol version the binary needs from it (what dpkg-shlibdeps would say, for
/// the few libraries a Rust binary links).
fn shlib_depends(bin: &Path) -> Result<Vec<String>> {
    let dynamic = String::from_utf8(output(Command::new("readelf").arg("-dW").arg(bin))?)?;
    let versions = String::from_utf8(output(Command::new("readelf").arg("-VW").arg(bin))?)?;
    let mut deps: Vec<(&str, &str)> = Vec::new();
    for line in dynamic.lines().filter(|l| l.contains("(NEEDED)")) {
        let lib = line.split('[').nth(1).and_then(|s| s.strip_suffix(']')).context("readelf NEEDED line")?;
        let (package, tag) = match lib {
            "libc.so.6"
            | "libm.so.6"
            | "libpthread.so.0"
            | "libdl.so.2"
            | "librt.so.1"
            | "libutil.so.1"
            | "ld-linux-x86-64.so.2"
            | "ld-linux-aarch64.so.1" => ("libc6", "GLIBC_"),
            "libgcc_s.so.1" => ("libgcc-s1", "GCC_"),
            other => {
                bail!("{}: links {other}, whose Debian package this script does not know", bin.display())
            }
        };
        if !deps.contains(&(package, tag)) {
            deps.push((package, tag));
        }
    }
    let mut out = Vec::new();
    for (package, tag) in deps {
        let newest = versions
            .split_whitespace()
            .filter_map(|w| w.strip_prefix(tag))
            .filter_map(|v| v.split('.').map(|n| n.parse::<u32>().ok()).collect::<Option<Vec<u32>>>())
            .max();
        out.push(match newest {
            Some(v) => {
                format!("{package} (>= {})", v.iter().map(|n| n.to_string()).collect::<Vec<_>>().join("."))
            }
            None => package.to_string(),
        });
    }
    Ok(out)
}

/// Writes `data` to `root/path` with `mode`, making the folders (0755).
fn put(tree: &Path, path: &str, data: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let dst = tree.join(path.trim_start_matches('/'));
    let dir = dst.parent().context("path without a folder")?;
    fs::create_dir_all(dir)?;
    fs::write(&dst, data).with_context(|| format!("writing {}", dst.display()))?;
    fs::set_permissions(&dst, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write as _;
    let mut child = Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("gzip")?;
    child.stdin.take().context("gzip stdin")?.write_all(data)?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("gzip failed: {}", out.status);
    }
    Ok(out.stdout)
}

/// What `nat64-ctl <args>` prints, by the host's binary.
fn ctl_text(host_bin: &Path, args: &[&str]) -> Result<Vec<u8>> {
    output(Command::new(host_bin).args(args))
}

const DESCRIPTION: &str = "\
IPv4/IPv6 translator in eBPF: SIIT, CLAT and stateful NAT64
 nat64 translates between IPv4 and IPv6 in the kernel's data path (XDP on
 Ethernet, TC on any device), driven by one control program, nat64-ctl:
 .
  * SIIT (RFC 7915, RFC 6052 prefixes, RFC 7757 EAM tables);
  * CLAT (RFC 6877, 464XLAT), the NAT64 prefix found by RFC 8781 or RFC 7050;
  * PLAT: stateful NAT64 (RFC 6146) with RFC 6888's limits, port blocks,
    BIB logging and session sync between nodes; or a dynamic IPv4 pool
    behind the kernel's masquerade.
 .
 Every packet is counted under one outcome (nat64-ctl stats, Prometheus).
 Needs Linux >= 6.6 with BTF. One systemd unit per instance: nat64@.service
 runs /etc/nat64/<instance>.json.";

/// The staged tree of one package, built from `bin` (the architecture's binary) and
/// `host_bin` (the host's, for the manual page and completions).
fn stage(
    tree: &Path,
    arch: &Arch,
    version: &str,
    o: &Options,
    bin: &Path,
    host_bin: &Path,
    epoch: u64,
) -> Result<()> {
    if tree.exists() {
        fs::remove_dir_all(tree)?;
    }
    let src = root();
    put(tree, "usr/sbin/nat64-ctl", &fs::read(bin)?, 0o755)?;
    let unit = fs::read_to_string(src.join("dist/nat64@.service"))?;
    if !unit.contains("/usr/local/sbin/nat64-ctl") {
        bail!("dist/nat64@.service: no /usr/local/sbin/nat64-ctl to point at the package's binary");
    }
    put(
        tree,
        "lib/systemd/system/nat64@.service",
        unit.replace("/usr/local/sbin/", "/usr/sbin/").as_bytes(),
        0o644,
    )?;
    put(tree, "usr/share/man/man1/nat64-ctl.1.gz", &gzip(&ctl_text(host_bin, &["manpage"])?)?, 0o644)?;
    for (shell, path) in [
        ("bash", "usr/share/bash-completion/completions/nat64-ctl"),
        ("zsh", "usr/share/zsh/vendor-completions/_nat64-ctl"),
        ("fish", "usr/share/fish/vendor_completions.d/nat64-ctl.fish"),
    ] {
        put(tree, path, &ctl_text(host_bin, &["completions", shell])?, 0o644)?;
    }
    let doc = "usr/share/doc/nat64";
    put(tree, &format!("{doc}/README.md"), &fs::read(src.join("README.md"))?, 0o644)?;
    let mut pages: Vec<_> =
        fs::read_dir(src.join("docs"))?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    pages.sort();
    for page in pages.iter().filter(|p| p.extension().is_some_and(|e| e == "md")) {
        let name = page.file_name().context("page name")?.to_string_lossy();
        put(tree, &format!("{doc}/docs/{name}"), &fs::read(page)?, 0o644)?;
    }
    let mut examples: Vec<_> =
        fs::read_dir(src.join("dist/examples"))?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    examples.sort();
    for ex in &examples {
        let name = ex.file_name().context("example name")?.to_string_lossy();
        put(tree, &format!("{doc}/examples/{name}"), &fs::read(ex)?, 0o644)?;
    }
    put(tree, &format!("{doc}/copyright"), copyright().as_bytes(), 0o644)?;
    put(
        tree,
        &format!("{doc}/changelog.Debian.gz"),
        &gzip(changelog(version, o, epoch)?.as_bytes())?,
        0o644,
    )?;
    // The folder the unit reads, empty: the operator's files go there.
    fs::create_dir_all(tree.join("etc/nat64"))?;

    let mut depends = shlib_depends(bin)?;
    depends.push("iproute2".into());
    let control = format!(
        "Package: nat64\nVersion: {version}\nArchitecture: {}\nMaintainer: {}\nInstalled-Size: {}\n\
         Depends: {}\nRecommends: nftables\nSection: net\nPriority: optional\nDescription: {DESCRIPTION}\n",
        arch.debian,
        o.maintainer,
        installed_size(tree)?,
        depends.join(", "),
    );
    let md5sums = md5sums(tree)?;
    put(tree, "DEBIAN/control", control.as_bytes(), 0o644)?;
    put(tree, "DEBIAN/md5sums", md5sums.as_bytes(), 0o644)?;
    for script in ["postinst", "prerm", "postrm"] {
        put(tree, &format!("DEBIAN/{script}"), &fs::read(src.join("dist/debian").join(script))?, 0o755)?;
    }
    Ok(())
}

fn copyright() -> String {
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
     Upstream-Name: nat64\n\n\
     Files: *\n\
     Copyright: the nat64 developers\n\
     License: MIT or Apache-2.0\n \
     On Debian systems the Apache License 2.0 is in /usr/share/common-licenses/Apache-2.0.\n \
     The MIT license: https://opensource.org/license/mit\n"
        .to_string()
}

fn changelog(version: &str, o: &Options, epoch: u64) -> Result<String> {
    let date = output(Command::new("date").args(["-u", "-R", "-d", &format!("@{epoch}")]))?;
    Ok(format!(
        "nat64 ({version}) unstable; urgency=medium\n\n  * Release {version}.\n\n -- {}  {}\n",
        o.maintainer,
        String::from_utf8_lossy(&date).trim()
    ))
}

/// Every file under `tree` (not DEBIAN), sorted, relative.
fn files(tree: &Path) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        for e in fs::read_dir(dir)? {
            let p = e?.path();
            if p.is_dir() {
                walk(&p, base, out)?;
            } else {
                out.push(p.strip_prefix(base)?.to_path_buf());
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(tree, tree, &mut out)?;
    out.retain(|p| !p.starts_with("DEBIAN"));
    out.sort();
    Ok(out)
}

fn installed_size(tree: &Path) -> Result<u64> {
    let mut bytes = 0;
    for f in files(tree)? {
        bytes += fs::metadata(tree.join(&f))?.len().div_ceil(1024) * 1024;
    }
    Ok(bytes.div_ceil(1024))
}

fn md5sums(tree: &Path) -> Result<String> {
    let list = files(tree)?;
    let out = output(Command::new("md5sum").args(&list).current_dir(tree))?;
    Ok(String::from_utf8(out)?)
}

/// Builds every package asked for; their paths.
pub fn dist(o: &Options) -> Result<Vec<PathBuf>> {
    let epoch = source_date_epoch()?;
    let version = format!("{}-{}", version()?, o.revision);
    let host = host_arch()?;
    let host_bin = build(host, epoch)?;
    fs::create_dir_all(&o.out)?;
    let mut made = Vec::new();
    for arch in &o.arches {
        let bin = if arch.triple == host.triple { host_bin.clone() } else { build(arch, epoch)? };
        let tree = root().join("target/dist/tree").join(arch.debian);
        stage(&tree, arch, &version, o, &bin, &host_bin, epoch)?;
        let deb = o.out.join(format!("nat64_{version}_{}.deb", arch.debian));
        run(Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&tree)
            .arg(&deb)
            .env("SOURCE_DATE_EPOCH", epoch.to_string()))?;
        let sum = output(Command::new("sha256sum").arg(&deb))?;
        let sum = String::from_utf8_lossy(&sum);
        println!("dist: made {} (sha256 {})", deb.display(), sum.split_whitespace().next().unwrap_or("?"));
        made.push(deb);
    }
    Ok(made)
}
