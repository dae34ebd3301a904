//! The crates' modules import one way only: no file of nat64-common, nat64-ebpf or
//! nat64-ctl reaches, through `crate::`, `super::` or `self::` paths, a file that
//! reaches it back. Read from the sources: every path into the crate is resolved to
//! the file that defines its longest module prefix, and the graph of files is searched
//! for strongly connected components (Tarjan). Test modules (`#[cfg(test)] mod ...
//! { ... }`) are left out: they sit above the file they test.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The crate's modules: module path ("" for the root, "a::b") -> file.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().unwrap() != "bin" {
                    stack.push(p);
                }
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                parts.pop();
            }
            out.insert(parts.join("::"), p);
        }
    }
    out
}

/// `text` without comments, string literals and `#[cfg(test)]` items.
fn code(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if text[i..].starts_with("//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if text[i..].starts_with("/*") {
            i = text[i..].find("*/").map_or(b.len(), |e| i + e + 2);
        } else if b[i] == b'"' && !text[..i].ends_with('\'') {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else if text[i..].starts_with("#[cfg(test)]") {
            // Skip the attribute and the item after it: up to its matching close
            // brace, or to a `;` before any brace.
            i += "#[cfg(test)]".len();
            let mut depth = 0;
            while i < b.len() {
                match b[i] {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                    }
                    b';' if depth == 0 => {
                        i += 1;
                        break;
                    }
                    _ => {}
                }
                i += 1;
            }
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Every path a use tree starting at `s` names, as segment lists (`a::{b, c::d}` gives
/// [a, b] and [a, c, d]).
fn use_tree(s: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let b = s.as_bytes();
    let mut path = prefix;
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'{' {
            i += 1;
            loop {
                while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b',') {
                    i += 1;
                }
                if i >= b.len() || b[i] == b'}' {
                    return i + 1;
                }
                i += use_tree(&s[i..], path.clone(), out);
            }
        }
        let start = i;
        while i < b.len() && ident_char(b[i]) {
            i += 1;
        }
        if start == i {
            out.push(path);
            return i;
        }
        path.push(s[start..i].to_string());
        if s[i..].starts_with("::") {
            i += 2;
        } else {
            out.push(path);
            return i;
        }
    }
}

/// The files `module`'s file reaches.
fn edges(module: &str, text: &str, mods: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let code = code(text);
    let b = code.as_bytes();
    let here: Vec<String> =
        if module.is_empty() { vec![] } else { module.split("::").map(String::from).collect() };
    let mut out = BTreeSet::new();
    // Paths from a child module's name (`nat::run()` in translate/mod.rs).
    let children: Vec<String> = mods
        .keys()
        .filter_map(|k| {
            let rest =
                if module.is_empty() { Some(k.as_str()) } else { k.strip_prefix(module)?.strip_prefix("::") };
            rest.filter(|r| !r.is_empty() && !r.contains("::")).map(|r| format!("{r}::"))
        })
        .collect();
    let starts = ["crate::", "super::", "self::"].into_iter().map(String::from).chain(children);
    for start in starts {
        let start = start.as_str();
        let mut from = 0;
        while let Some(at) = code[from..].find(start) {
            let at = from + at;
            from = at + start.len();
            if at > 0 && (ident_char(b[at - 1]) || b[at - 1] == b':') {
                continue;
            }
            let mut base = match start {
                "crate::" => vec![],
                "super::" => here[..here.len().saturating_sub(1)].to_vec(),
                _ => here.clone(),
            };
            if !["crate::", "super::", "self::"].contains(&start) {
                base.push(start.trim_end_matches("::").to_string());
            }
            let mut paths = Vec::new();
            use_tree(&code[from..], base, &mut paths);
            for mut p in paths {
                // `super::super::x`
                while p.len() > 1 && p.last().is_some_and(|s| s == "super") {
                    p.pop();
                }
                while !p.is_empty() && !mods.contains_key(&p.join("::")) {
                    p.pop();
                }
                let target = p.join("::");
                if target != module {
                    out.insert(target);
                }
            }
        }
    }
    out
}

/// The strongly connected components of more than one file.
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        for w in t.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut c = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(w);
                c.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if c.len() > 1 {
                c.sort();
                t.out.push(c);
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: vec![],
        on: BTreeSet::new(),
        out: vec![],
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn graph(krate: &str) -> BTreeMap<String, BTreeSet<String>> {
    let src = root().join(krate).join("src");
    let mods = modules(&src);
    let mut g = BTreeMap::new();
    for (m, file) in &mods {
        // The crate root declares the modules; what it imports from them is not a layer.
        if m.is_empty() {
            continue;
        }
        let mut e = edges(m, &fs::read_to_string(file).unwrap(), &mods);
        e.remove("");
        g.insert(m.clone(), e);
    }
    g
}

fn no_circles_in(krate: &str) {
    let g = graph(krate);
    assert!(g.len() > 3, "{krate}: found only {} modules", g.len());
    let found = circles(&g);
    assert!(
        found.is_empty(),
        "{krate}: modules that import each other (directly or round a circle):\n{}",
        found
            .iter()
            .map(|c| {
                let within: Vec<String> = c
                    .iter()
                    .map(|m| {
                        format!("  {m} -> {:?}", g[m].iter().filter(|x| c.contains(x)).collect::<Vec<_>>())
                    })
                    .collect();
                within.join("\n")
            })
            .collect::<Vec<_>>()
            .join("\n  --\n")
    );
}

#[test]
fn the_checker_finds_a_circle_and_reads_use_trees() {
    let mods: BTreeMap<String, PathBuf> =
        ["a", "b", "c", "c::d"].iter().map(|m| (m.to_string(), PathBuf::from(m))).collect();
    let e = edges(
        "c::d",
        "use crate::{a::X, b::{Y, z::W}};\n// crate::c\nfn f() { super::g(); \"crate::a\"; }",
        &mods,
    );
    assert_eq!(e, ["a", "b", "c"].iter().map(|s| s.to_string()).collect());
    let e = edges("c", "use d::X;", &mods);
    assert_eq!(e, ["c::d".to_string()].into_iter().collect());
    let e = edges("a", "#[cfg(test)]\nmod tests { use crate::b::X; }\nfn f() {}", &mods);
    assert!(e.is_empty(), "{e:?}");
    let g: BTreeMap<String, BTreeSet<String>> =
        [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec!["a"])]
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect();
    assert_eq!(circles(&g), vec![vec!["a".to_string(), "b".into(), "c".into()]]);
}

#[test]
fn nat64_common_imports_one_way() {
    no_circles_in("nat64-common");
}

#[test]
fn nat64_ebpf_imports_one_way() {
    no_circles_in("nat64-ebpf");
}

#[test]
fn nat64_ctl_imports_one_way() {
    no_circles_in("nat64-ctl");
}
