//! The command line without a running instance: `check` and `translate --config`.

use std::{
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

static SEQ: AtomicU32 = AtomicU32::new(0);

const CTL: &str = env!("CARGO_BIN_EXE_nat64-ctl-test");

fn with_config(json: &str, args: &[&str]) -> (bool, String, String) {
    let path = std::env::temp_dir().join(format!(
        "nat64-cli-{}-{}.json",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(&path, json).unwrap();
    let mut full: Vec<&str> = args.to_vec();
    let p = path.to_string_lossy().into_owned();
    full.extend(["--config", &p]);
    let out = Command::new(CTL).args(&full).output().unwrap();
    let _ = std::fs::remove_file(&path);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const GOOD: &str = r#"{
    "interfaces": [{"name": "eth0", "attach": "xdp"}],
    "pool6": "64:ff9b::/96",
    "eamt": [{"ipv4": "192.0.2.0/24", "ipv6": "2001:db8:6::/120"}],
    "denylist4": ["8.8.4.0/24"]
}"#;

#[test]
fn check_accepts_a_good_file() {
    let (ok, out, err) = with_config(GOOD, &["check"]);
    assert!(ok, "{err}");
    assert!(out.contains("valid") && out.contains("1 EAMT entries") && out.contains("64:ff9b::/96"), "{out}");
}

#[test]
fn check_tells_the_mode_and_prefix() {
    let clat = r#"{
    "mode": "clat",
    "interfaces": [{"name": "wg0", "attach": "tc"}],
    "pref64": "auto",
    "eamt": [{"ipv4": "100.64.0.0/24", "ipv6": "2001:db8:c1a7::/120"}]
}"#;
    let (ok, out, err) = with_config(clat, &["check"]);
    assert!(ok, "{err}");
    assert!(out.contains("mode clat") && out.contains("pref64 auto (RFC 7050, at start)"), "{out}");
    let (ok, out, _) = with_config(GOOD, &["check"]);
    assert!(ok && out.contains("mode siit") && out.contains("pool6 64:ff9b::/96"), "{out}");
}

#[test]
fn check_names_the_key_and_reason() {
    let bad = GOOD.replace("64:ff9b::/96", "64:ff9b::/80");
    let (ok, _, err) = with_config(&bad, &["check"]);
    assert!(!ok);
    assert!(err.contains("pool6") && err.contains("80"), "{err}");
    let bad = GOOD.replace("\"denylist4\"", "\"denylist\"");
    let (ok, _, err) = with_config(&bad, &["check"]);
    assert!(!ok);
    assert!(err.contains("unknown field") && err.contains("denylist"), "{err}");
}

#[test]
fn translate_with_a_config_file_explains_each_rule() {
    let cases = [
        ("192.0.2.7", "192.0.2.7 -> 2001:db8:6::7 (EAM 192.0.2.0/24 <-> 2001:db8:6::/120)"),
        ("2001:db8:6::7", "2001:db8:6::7 -> 192.0.2.7 (EAM"),
        ("8.8.8.8", "8.8.8.8 -> 64:ff9b::808:808 (pool6 64:ff9b::/96)"),
        ("64:ff9b::808:808", "64:ff9b::808:808 -> 8.8.8.8 (pool6"),
        ("8.8.4.4", "8.8.4.4 is not translated: it is in denylist4"),
        ("10.0.0.1", "not translated: pool6 is the Well-Known Prefix"),
        ("127.0.0.1", "not translated: it is in a range never translated"),
        ("2001:db8:99::1", "not translated: no EAMT entry covers it"),
    ];
    for (addr, want) in cases {
        let (ok, out, err) = with_config(GOOD, &["translate", addr]);
        assert!(ok, "{addr}: {err}");
        assert!(out.contains(want), "{addr}: got {out:?}, want it to contain {want:?}");
    }
}

#[test]
fn check_and_translate_tell_the_dynamic_pool() {
    let plat = r#"{
    "interfaces": [{"name": "eth1", "attach": "xdp"}],
    "pool6": "64:ff9b::/96",
    "dynamic-pool": "10.64.0.0/23",
    "dynamic-pool-lease": 600,
    "state-file": "/var/lib/nat64/x.json",
    "masquerade": {"interface": "eth0"}
}"#;
    let (ok, out, err) = with_config(plat, &["check"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("dynamic pool 10.64.0.0/23 (10.64.0.0 to 10.64.1.255, 512 addresses) (lease 600 s, state /var/lib/nat64/x.json) masqueraded behind eth0"),
        "{out}"
    );
    for (addr, want) in [
        (
            "2001:db8::5",
            "2001:db8::5 -> an address of the dynamic pool 10.64.0.0/23, handed out on its first packet",
        ),
        (
            "10.64.1.7",
            "10.64.1.7 is not translated: no host holds this address of the dynamic pool 10.64.0.0/23",
        ),
        ("64:ff9b::808:808", "64:ff9b::808:808 -> 8.8.8.8 (pool6"),
    ] {
        let (ok, out, err) = with_config(plat, &["translate", addr]);
        assert!(ok && out.contains(want), "{addr}: {out}{err}");
    }
    let (ok, _, err) = with_config(&plat.replace("10.64.0.0/23", "10.0.0.0/8"), &["check"]);
    assert!(!ok && err.contains("dynamic-pool: \"10.0.0.0/8\": at most 65536 addresses"), "{err}");
}
