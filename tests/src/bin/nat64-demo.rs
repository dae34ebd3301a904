//! The built-in demo: a namespace lab with an IPv6-only host and an IPv4-only host,
//! nat64-ctl translating between them, traffic crossing both ways, the counters,
//! then everything removed. Run through `cargo xtask demo` (as root).

use std::{
    process::Command,
    thread,
    time::{Duration, Instant},
};

use nat64_tests::lab::{SiitLab, V4_HOST, V4_HOST_AS_V6, V6_HOST, V6_HOST_AS_V4, wait_until};

fn show(title: &str) {
    println!("\n== {title}");
}

/// Runs a command in a namespace, printing it and its output; returns success.
fn step(lab: &SiitLab, ns: &str, who: &str, cmd: &str) -> bool {
    println!("[{who}]$ {cmd}");
    let out = lab.lab.exec(ns, cmd);
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    out.status.success()
}

fn main() {
    let ctl = std::env::var("NAT64_CTL").unwrap_or_else(|_| {
        let exe = std::env::current_exe().expect("own path");
        exe.with_file_name("nat64-ctl").to_string_lossy().into_owned()
    });
    assert!(std::path::Path::new(&ctl).exists(), "nat64-ctl not found at {ctl}: run `cargo xtask demo`");
    let t = Instant::now();
    let mut lab = SiitLab::new();
    show("lab");
    println!("IPv6-only host  [{}]  {V6_HOST}            (seen from IPv4 as {V6_HOST_AS_V4}, EAM)", lab.v6);
    println!("translator      [{}]  XDP on to6 and to4, pool6 64:ff9b:1::/96", lab.x);
    println!(
        "IPv4-only host  [{}]  {V4_HOST}             (seen from IPv6 as {V4_HOST_AS_V6}, pool6)",
        lab.v4
    );
    println!("config ({}):\n{}", lab.config.display(), std::fs::read_to_string(&lab.config).unwrap());

    show("start the translator: nat64-ctl run --config ...");
    lab.start(&ctl);
    let (v4, v6) = (lab.v4.clone(), lab.v6.clone());

    let www4 = std::env::temp_dir().join(format!("nat64-demo4-{}", lab.instance));
    let www6 = std::env::temp_dir().join(format!("nat64-demo6-{}", lab.instance));
    for (d, text) in [(&www4, "hello from the IPv4-only host\n"), (&www6, "hello from the IPv6-only host\n")]
    {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("index.html"), text).unwrap();
    }
    lab.lab
        .spawn_in(&v4, &format!("python3 -m http.server 80 --bind 0.0.0.0 --directory {}", www4.display()));
    lab.lab.spawn_in(&v6, &format!("python3 -m http.server 80 --bind :: --directory {}", www6.display()));
    for ns in [&v4, &v6] {
        wait_until(Duration::from_secs(10), || !lab.lab.exec(ns, "ss -H -ltn sport = :80").stdout.is_empty());
    }

    let mut ok = true;
    show("IPv6-only host -> IPv4-only host");
    ok &= step(&lab, &v6, "v6", &format!("ping -6 -c 3 -i 0.2 {V4_HOST_AS_V6}"));
    ok &= step(&lab, &v6, "v6", &format!("curl -sS --max-time 10 http://[{V4_HOST_AS_V6}]/"));
    show("IPv4-only host -> IPv6-only host");
    ok &= step(&lab, &v4, "v4", &format!("ping -c 3 -i 0.2 {V6_HOST_AS_V4}"));
    ok &= step(&lab, &v4, "v4", &format!("curl -sS --max-time 10 http://{V6_HOST_AS_V4}/"));

    show("nat64-ctl translate");
    for a in [V6_HOST, V4_HOST, "10.1.2.3"] {
        let out = lab.ctl(&ctl, &["translate", a]);
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
    show("nat64-ctl stats");
    thread::sleep(Duration::from_millis(100));
    let out = lab.ctl(&ctl, &["stats"]);
    print!("{}", String::from_utf8_lossy(&out.stdout));

    show("stop and clean up");
    let out = lab.stop();
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    drop(lab);
    let _ = std::fs::remove_dir_all(&www4);
    let _ = std::fs::remove_dir_all(&www6);
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&left.stdout).contains("n64-"), "namespaces left behind");
    println!(
        "namespaces removed; demo {} in {:.1} s",
        if ok { "succeeded" } else { "FAILED" },
        t.elapsed().as_secs_f64()
    );
    if !ok {
        std::process::exit(1);
    }
}
