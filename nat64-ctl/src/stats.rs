//! `nat64-ctl stats`: the counters as a table or JSON.

use nat64_common::counters::{Counter, CounterValue, Kind};
use serde_json::{Value, json};

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Translated => "translated",
        Kind::Forward => "forwarding",
        Kind::Pass => "passed (not translated)",
        Kind::Drop => "dropped (not translated)",
        Kind::Event => "events",
    }
}

/// A readable table, grouped by kind; zero counters are shown too so the list of
/// reasons is always complete.
pub fn table(counters: &[(Counter, CounterValue)]) -> String {
    let mut out = String::new();
    for kind in [Kind::Translated, Kind::Forward, Kind::Pass, Kind::Drop, Kind::Event] {
        out.push_str(&format!("{}\n", kind_name(kind)));
        for (c, v) in counters.iter().filter(|(c, _)| c.kind() == kind) {
            out.push_str(&format!("  {:<26} {:>14} pkts {:>16} bytes\n", c.name(), v.packets, v.bytes));
        }
    }
    out
}

pub fn json(counters: &[(Counter, CounterValue)]) -> Value {
    let mut m = serde_json::Map::new();
    for (c, v) in counters {
        m.insert(c.name().to_string(), json!({"packets": v.packets, "bytes": v.bytes}));
    }
    Value::Object(m)
}

/// Prometheus labels of a counter: direction, protocol, result, reason.
pub fn labels(c: Counter) -> [(&'static str, &'static str); 4] {
    let name = c.name();
    let (direction, protocol, result, reason) = if let Some(rest) = name.strip_prefix("xlat_") {
        let (dir, proto) = rest.split_once('_').unwrap_or((rest, ""));
        (dir, proto, "translated", "")
    } else if let Some(r) = name.strip_prefix("fwd_") {
        ("", "", "forwarded", r)
    } else if let Some(r) = name.strip_prefix("pass_") {
        ("", "", "passed", r)
    } else if let Some(r) = name.strip_prefix("drop_") {
        ("", "", "dropped", r)
    } else if let Some(r) = name.strip_prefix("icmp_") {
        ("", "", "icmp_error", r)
    } else {
        ("", "", "event", name)
    };
    [("direction", direction), ("protocol", protocol), ("result", result), ("reason", reason)]
}

/// The Prometheus text exposition (format 0.0.4) of the counters and the maps' fill.
pub fn prometheus(
    instance: &str,
    counters: &[(Counter, CounterValue)],
    gauges: &[(&str, &str, u64)],
) -> String {
    let mut out = String::new();
    let label_text = |c: Counter| {
        let mut s = format!("instance=\"{instance}\"");
        for (k, v) in labels(c) {
            s += &format!(",{k}=\"{v}\"");
        }
        s
    };
    for (metric, help, pick) in [
        (
            "nat64_packets_total",
            "Packets by outcome: result translated/passed/dropped counts each packet once; forwarded, icmp_error and event count besides.",
            true,
        ),
        ("nat64_bytes_total", "Bytes of those packets, as they arrived.", false),
    ] {
        out += &format!("# HELP {metric} {help}\n# TYPE {metric} counter\n");
        for (c, v) in counters {
            let n = if pick { v.packets } else { v.bytes };
            out += &format!("{metric}{{{}}} {n}\n", label_text(*c));
        }
    }
    for (metric, help, value) in gauges {
        out += &format!(
            "# HELP {metric} {help}\n# TYPE {metric} gauge\n{metric}{{instance=\"{instance}\"}} {value}\n"
        );
    }
    out += &format!(
        "# HELP nat64_build_info The nat64-ctl build serving these metrics.\n# TYPE nat64_build_info gauge\n\
         nat64_build_info{{instance=\"{instance}\",version=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    );
    out
}
