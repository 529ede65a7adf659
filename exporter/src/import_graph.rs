//! Test: the modules of this crate import one another without a cycle, so each has a place in
//! one order from the lowest (`energy`, `node`, `sources`…) to the highest (`app`). A module is a
//! top-level file or folder of `src/`, with `sources/bmc` on its own; an import is a
//! `crate::module` path outside comments, `#[cfg(test)]` code and `tests.rs` files, or `bmc::`
//! in the rest of `sources`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The module a source file belongs to; `None` for the crate roots.
fn module_of(rel: &Path) -> Option<String> {
    let parts: Vec<String> = rel
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    match parts.as_slice() {
        [root] if root == "lib" || root == "main" => None,
        [a, b, ..] if a == "sources" && b == "bmc" => Some("sources::bmc".into()),
        [a, ..] => Some(a.clone()),
        [] => None,
    }
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The modules `text` (the file of `module`) imports.
fn imports(module: &str, text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut out = BTreeSet::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or("");
        for (i, _) in line.match_indices("crate::") {
            let rest = &line[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let target = if name == "sources" && rest["sources".len()..].starts_with("::bmc") {
                "sources::bmc".to_string()
            } else {
                name
            };
            out.insert(target);
        }
        let declares = line.trim_start().starts_with("pub mod bmc") || line.contains("mod bmc;");
        if module == "sources" && line.contains("bmc::") && !declares {
            out.insert("sources::bmc".into());
        }
    }
    out.remove(module);
    out.remove("");
    out
}

/// The import graph of `src`: module → the modules it imports.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut all = Vec::new();
    files(src, &mut all);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in all {
        // A module's tests (`x/tests.rs`) are test code, like `#[cfg(test)]` in a file.
        if p.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let Some(m) = module_of(p.strip_prefix(src).unwrap_or(&p)) else {
            continue;
        };
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        g.entry(m.clone()).or_default().extend(imports(&m, &text));
    }
    g
}

/// A cycle of `g`, as the path of modules around it, if there is one.
fn cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut c = path[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for next in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, g, done, path) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(n, g, &mut done, &mut Vec::new()))
}

#[test]
fn the_modules_import_one_another_without_a_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph(&src);
    // The check sees the imports that once made the circle.
    assert!(g["metrics"].contains("snapshot"), "{g:?}");
    assert!(g["sources::bmc"].contains("sources"), "{g:?}");
    assert!(g["accounting"].contains("attribution"), "{g:?}");
    assert_eq!(cycle(&g), None, "import graph: {g:#?}");
}

#[test]
fn a_cycle_is_found() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let edge = |g: &mut BTreeMap<String, BTreeSet<String>>, a: &str, b: &str| {
        g.entry(a.into()).or_default().insert(b.into());
    };
    edge(&mut g, "app", "sampler");
    edge(&mut g, "sampler", "energy");
    edge(&mut g, "energy", "sources");
    assert_eq!(cycle(&g), None);
    edge(&mut g, "sources", "sampler");
    assert_eq!(
        cycle(&g),
        Some(vec![
            "sampler".to_string(),
            "energy".into(),
            "sources".into(),
            "sampler".into()
        ])
    );
    // `bmc::` in the sources module is an import of the BMC source; declaring it is not.
    assert!(imports("sources", "pub mod bmc;\nuse x;").is_empty());
    assert_eq!(
        imports("sources", "pub b: Option<bmc::BmcStatus>,"),
        BTreeSet::from(["sources::bmc".to_string()])
    );
    assert_eq!(
        imports(
            "metrics",
            "use crate::sources::bmc::X; // crate::app\n#[cfg(test)]\nuse crate::app;"
        ),
        BTreeSet::from(["sources::bmc".to_string()])
    );
}
