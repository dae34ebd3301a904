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
