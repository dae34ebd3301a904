//! The Debian packages (`cargo xtask dist`): built, installed on this machine with
//! apt-get, run as the unit runs it, upgraded under traffic, removed and purged; the
//! same bytes from another checkout; the arm64 binary under qemu-user.
//!
//! The tests build release binaries and install a package system-wide: they take one
//! lock, so that one runs at a time.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Mutex,
    time::Duration,
};

use nat64_tests::lab::{
    SiitLab, UdpStream, V4_HOST_AS_V6, V6_HOST_AS_V4, must, run, sha256_file, unique_tag,
};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `cargo xtask dist --out <out> args...` in the checkout `dir`; the packages it made.
fn dist(dir: &Path, out: &Path, args: &[&str], epoch: Option<&str>) -> Vec<PathBuf> {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(dir).args(["xtask", "dist", "--out"]).arg(out).args(args);
    if let Some(e) = epoch {
        c.env("SOURCE_DATE_EPOCH", e);
    }
    let o = c.output().expect("cargo xtask dist");
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "cargo xtask dist {args:?} in {}:\n{text}", dir.display());
    let debs: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.strip_prefix("dist: made "))
        .filter_map(|l| l.split_whitespace().next())
        .map(PathBuf::from)
        .collect();
    assert!(!debs.is_empty(), "cargo xtask dist named no package:\n{text}");
    debs
}

fn out_dir(what: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nat64-dist-{what}-{}", unique_tag()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn dpkg_status() -> String {
    let o = Command::new("dpkg-query").args(["-W", "-f=${Status} ${Version}", "nat64"]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The files and folders a package holds, as installed paths.
fn contents(deb: &Path) -> Vec<String> {
    must(&format!("dpkg-deb -c {}", deb.display()))
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches('.').trim_end_matches('/').to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn apt_install(deb: &Path) {
    let o = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .arg(deb)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "apt-get install {}: {}{}",
        deb.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The installed unit's `ExecStart` for `instance`, as systemd would run it.
fn exec_start(instance: &str) -> Vec<String> {
    let unit = std::fs::read_to_string("/lib/systemd/system/nat64@.service").unwrap();
    let line = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("the unit has ExecStart");
    line.split_whitespace().map(|w| w.replace("%i", instance)).collect()
}

fn translates(lab: &SiitLab) {
    lab.lab.must_in(&lab.v6, &format!("ping -6 -c 2 -i 0.2 -W 2 {V4_HOST_AS_V6}"));
    lab.lab.must_in(&lab.v4, &format!("ping -4 -c 2 -i 0.2 -W 2 {V6_HOST_AS_V4}"));
}

/// The package as an operator meets it: apt-get installs it with its dependencies
/// from Debian; the unit passes `systemd-analyze verify` (its binary and manual page
/// exist); the unit's own command line translates the demo's lab; an upgrade to the
/// next revision (apt-get install, then the restart systemd does) loses none of a
/// steady UDP stream; `dpkg -r` ends translation and leaves the operator's
/// configuration; `dpkg -P` leaves nothing else.
#[test]
fn the_package_installs_translates_upgrades_under_traffic_and_purges() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let before = dpkg_status();
    assert!(
        !before.starts_with("install ok installed"),
        "a nat64 package is installed on this machine ({before}); this test installs and purges its own"
    );
    if !before.is_empty() {
        run("dpkg -P nat64");
    }
    let out = out_dir("install");
    let first = dist(&workspace(), &out, &["--revision", "1"], None).remove(0);
    let second = dist(&workspace(), &out, &["--revision", "2"], None).remove(0);
    let arch = must("dpkg --print-architecture").trim().to_string();
    assert_eq!(first.file_name().unwrap().to_string_lossy(), format!("nat64_{VERSION}-1_{arch}.deb"));
    let files = contents(&first);
    for f in [
        "/usr/sbin/nat64-ctl",
        "/lib/systemd/system/nat64@.service",
        "/usr/share/man/man1/nat64-ctl.1.gz",
        "/usr/share/bash-completion/completions/nat64-ctl",
        "/usr/share/zsh/vendor-completions/_nat64-ctl",
        "/usr/share/fish/vendor_completions.d/nat64-ctl.fish",
        "/usr/share/doc/nat64/copyright",
        "/usr/share/doc/nat64/changelog.Debian.gz",
        "/usr/share/doc/nat64/README.md",
        "/usr/share/doc/nat64/examples/plat.json",
        "/etc/nat64",
    ] {
        assert!(files.iter().any(|p| p == f), "{f} is not in the package: {files:#?}");
    }

    apt_install(&first);
    assert!(dpkg_status().starts_with(&format!("install ok installed {VERSION}-1")), "{}", dpkg_status());
    assert_eq!(must("/usr/sbin/nat64-ctl --version").trim(), format!("nat64-ctl {VERSION}"));
    assert_eq!(must("man -w nat64-ctl").trim(), "/usr/share/man/man1/nat64-ctl.1.gz");
    for ex in ["siit", "clat", "plat"] {
        must(&format!(
            "/usr/sbin/nat64-ctl --instance {ex} check --config /usr/share/doc/nat64/examples/{ex}.json"
        ));
    }

    let mut lab = SiitLab::new();
    let config = PathBuf::from(format!("/etc/nat64/{}.json", lab.instance));
    std::fs::copy(&lab.config, &config).unwrap();
    lab.lab.files.push(config.clone());
    // systemd-analyze verify loads the instance the way systemd would (the binary must
    // exist, the manual page named in Documentation= too).
    let unit_copy = std::env::temp_dir().join(format!("nat64-{}", unique_tag()));
    std::fs::create_dir_all(&unit_copy).unwrap();
    let instance_unit = unit_copy.join(format!("nat64@{}.service", lab.instance));
    std::fs::copy("/lib/systemd/system/nat64@.service", &instance_unit).unwrap();
    let verify = Command::new("systemd-analyze").arg("verify").arg(&instance_unit).output().unwrap();
    std::fs::remove_dir_all(&unit_copy).unwrap();
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );

    let argv = exec_start(&lab.instance);
    assert_eq!(argv[0], "/usr/sbin/nat64-ctl");
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    lab.start_argv(&argv, "/usr/sbin/nat64-ctl");
    translates(&lab);
    lab.lab.spawn_in(&lab.v4, "python3 -m http.server 8080 --bind 0.0.0.0 --directory /usr/share/doc/nat64");
    nat64_tests::lab::wait_listening(&lab.lab, &lab.v4, 8080, "tcp");
    let page = lab.lab.must_in(
        &lab.v6,
        &format!("curl -sS --max-time 10 http://[{V4_HOST_AS_V6}]:8080/examples/plat.json"),
    );
    assert!(page.contains("\"pool4\""), "{page}");

    // The upgrade, under traffic: apt-get replaces the files, then the unit restarts (the
    // maintainer script asks systemd; here the test does what systemd does).
    let stream = UdpStream::start(&mut lab, 500.0, 12.0);
    std::thread::sleep(Duration::from_secs(2));
    apt_install(&second);
    assert!(dpkg_status().starts_with(&format!("install ok installed {VERSION}-2")), "{}", dpkg_status());
    let stopped = lab.stop();
    assert!(stopped.status.success(), "{}", String::from_utf8_lossy(&stopped.stderr));
    lab.start_argv(&argv, "/usr/sbin/nat64-ctl");
    stream.finish_intact();
    translates(&lab);

    // Removal ends translation (the maintainer script detaches the instance) and keeps
    // the operator's file; purge removes what nat64 wrote.
    must("dpkg -r nat64");
    let pins = PathBuf::from(format!("/sys/fs/bpf/nat64/{}", lab.instance));
    assert!(!pins.exists(), "{} is left after dpkg -r", pins.display());
    let gone = lab.lab.exec(&lab.v6, &format!("ping -6 -c 1 -W 1 {V4_HOST_AS_V6}"));
    assert!(!gone.status.success(), "still translating after dpkg -r");
    assert!(config.exists(), "dpkg -r removed the operator's {}", config.display());
    assert!(!Path::new("/usr/sbin/nat64-ctl").exists());
    must("dpkg -P nat64");
    assert_eq!(dpkg_status(), "", "dpkg still knows nat64 after a purge");
    for f in &files {
        let p = Path::new(f);
        let shared = p.is_dir() && !f.contains("nat64");
        if f == "/etc/nat64" || shared {
            continue;
        }
        assert!(!p.exists(), "{f} is left after dpkg -P");
    }
    for f in ["/var/lib/nat64", "/run/nat64"] {
        assert!(!Path::new(f).exists(), "{f} is left after dpkg -P");
    }
    let left: Vec<_> = std::fs::read_dir("/etc/nat64").unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(left, vec![config.clone()], "only the operator's file stays in /etc/nat64");
    std::fs::remove_file(&config).unwrap();
    let _ = std::fs::remove_dir("/etc/nat64");
    std::fs::remove_dir_all(&out).unwrap();
}

/// The same commit built in another checkout (another path, its own target folder)
/// gives a package of the same bytes.
#[test]
fn the_package_is_the_same_bytes_from_another_checkout() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let epoch = "1767225600";
    let here = out_dir("here");
    let a = dist(&workspace(), &here, &[], Some(epoch)).remove(0);
    let copy = std::env::temp_dir().join(format!("nat64-checkout-{}", unique_tag()));
    let files = must(&format!(
        "git -C {} ls-files -co --exclude-standard -z | tr '\\0' '\\n'",
        workspace().display()
    ));
    for f in files.lines().filter(|f| workspace().join(f).is_file()) {
        let dst = copy.join(f);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(workspace().join(f), &dst).unwrap();
    }
    let there = out_dir("there");
    let b = dist(&copy, &there, &[], Some(epoch)).remove(0);
    let (sa, sb) = (sha256_file(&a), sha256_file(&b));
    println!("{}: {sa}\n{}: {sb}", a.display(), b.display());
    std::fs::remove_dir_all(&copy).unwrap();
    std::fs::remove_dir_all(&here).unwrap();
    std::fs::remove_dir_all(&there).unwrap();
    assert_eq!(sa, sb, "two builds of the same sources differ");
}

/// The arm64 package, cross-built here: its binary (run by qemu-user) answers
/// `--version`, checks the example configurations and computes a translation.
#[test]
fn the_arm64_package_runs_under_qemu() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = out_dir("arm64");
    let deb = dist(&workspace(), &out, &["--arch", "arm64"], None).remove(0);
    assert!(deb.to_string_lossy().ends_with("_arm64.deb"), "{}", deb.display());
    let info = must(&format!("dpkg-deb -f {} Architecture Depends", deb.display()));
    assert!(info.contains("Architecture: arm64") && info.contains("libc6 (>="), "{info}");
    let tree = out.join("tree");
    must(&format!("dpkg-deb -x {} {}", deb.display(), tree.display()));
    let bin = tree.join("usr/sbin/nat64-ctl");
    assert!(must(&format!("readelf -h {}", bin.display())).contains("AArch64"));
    let qemu =
        |args: &str| must(&format!("qemu-aarch64-static -L /usr/aarch64-linux-gnu {} {args}", bin.display()));
    assert_eq!(qemu("--version").trim(), format!("nat64-ctl {VERSION}"));
    let examples = tree.join("usr/share/doc/nat64/examples");
    for ex in ["siit", "clat", "plat"] {
        let said = qemu(&format!("--instance {ex} check --config {}/{ex}.json", examples.display()));
        assert!(said.contains("valid"), "{said}");
    }
    let said = qemu(&format!("translate --config {}/siit.json 2001:db8:6::5", examples.display()));
    assert!(said.contains("192.0.2.21"), "{said}");
    std::fs::remove_dir_all(&out).unwrap();
}
