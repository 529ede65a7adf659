//! The docs stay true to the code: every metric defined in `joulebook_common` is in the README's
//! metric table with its type and labels; every relative link of the README, ARCHITECTURE.md,
//! docs/ and the reporter's README reaches a file (and heading); docs/configuration.md lists
//! exactly the flags of the built binaries' `--help`, the keys of the exporter's
//! `--check-config` and the fields of the reporter's configuration structs.

#[test]
fn readme_lists_every_metric_with_its_type_and_labels() {
    let readme = std::fs::read_to_string(joulebook_tests::repo_root().join("README.md")).unwrap();
    for m in joulebook_common::ALL_METRICS {
        let name = m.name();
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("README's metric table has no row for {name}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[2], m.kind.as_str(), "{name}: type");
        let labels: Vec<&str> = cells[3]
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        assert_eq!(labels, m.labels, "{name}: labels");
    }
}

/// The README is read in a first hour: what joulebook is, how to set it up, the metric table;
/// depth lives in docs/ (issue 15). About 12 KB at most.
#[test]
fn readme_stays_short() {
    let readme = std::fs::read_to_string(joulebook_tests::repo_root().join("README.md")).unwrap();
    assert!(
        readme.len() <= 12 * 1024,
        "README.md is {} bytes, more than 12 KiB: move the depth to a page of docs/ and link it",
        readme.len()
    );
}

#[test]
fn architecture_names_every_exporter_module() {
    let arch =
        std::fs::read_to_string(joulebook_tests::repo_root().join("ARCHITECTURE.md")).unwrap();
    let src = joulebook_tests::repo_root().join("exporter/src");
    for entry in std::fs::read_dir(&src).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let module = name.trim_end_matches(".rs");
        if module == "lib" || module == "main" {
            continue;
        }
        assert!(
            arch.contains(&format!("`{module}")),
            "ARCHITECTURE.md does not mention {module}"
        );
    }
}

// ---- Links ----------------------------------------------------------------------------------

/// The documents whose relative links must resolve.
fn documents() -> Vec<std::path::PathBuf> {
    let root = joulebook_tests::repo_root();
    let mut docs = vec![
        root.join("README.md"),
        root.join("ARCHITECTURE.md"),
        root.join("reporter/README.md"),
    ];
    let mut pages: Vec<_> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    docs.extend(pages);
    docs
}

/// A document's lines outside fenced code blocks.
fn prose_lines(text: &str) -> Vec<&str> {
    let mut in_fence = false;
    text.lines()
        .filter(|l| {
            if l.trim_start().starts_with("```") {
                in_fence = !in_fence;
                return false;
            }
            !in_fence
        })
        .collect()
}

/// The targets of the inline links `[text](target)` of a document's prose.
fn link_targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose_lines(text) {
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            match after.find(')') {
                Some(j) => {
                    out.push(after[..j].to_string());
                    rest = &after[j + 1..];
                }
                None => break,
            }
        }
    }
    out
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens; a repeated
/// heading gets `-1`, `-2`…
fn anchors(text: &str) -> std::collections::BTreeSet<String> {
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    let mut out = std::collections::BTreeSet::new();
    for line in prose_lines(text) {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        // `[text](url)` renders as text.
        let mut plain = String::new();
        let mut rest = heading.trim();
        while let Some(i) = rest.find("](") {
            let close = rest[i..].find(')').map(|j| i + j + 1).unwrap_or(rest.len());
            plain.push_str(&rest[..i]);
            rest = &rest[close..];
        }
        plain.push_str(rest);
        let slug: String = plain
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = seen.entry(slug.clone()).or_insert(0);
        out.insert(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    out
}

#[test]
fn relative_links_point_at_existing_files_and_headings() {
    let mut broken = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() {
                doc.clone()
            } else {
                doc.parent().unwrap().join(path)
            };
            if !file.exists() {
                broken.push(format!("{}: {target}: no such file", doc.display()));
                continue;
            }
            if let Some(anchor) = anchor {
                if file.extension().is_some_and(|e| e == "md") {
                    let linked = std::fs::read_to_string(&file).unwrap();
                    if !anchors(&linked).contains(anchor) {
                        broken.push(format!("{}: {target}: no such heading", doc.display()));
                    }
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn anchors_follow_githubs_rule() {
    let a = anchors(
        "# A\n## The reporter's file (`--config site.yaml`)\n## Two\n## Two\n```\n# not\n```\n",
    );
    let want = ["a", "the-reporters-file---config-siteyaml", "two", "two-1"];
    assert_eq!(a.into_iter().collect::<Vec<_>>(), want);
}

// ---- The configuration reference ------------------------------------------------------------

fn configuration_page() -> String {
    std::fs::read_to_string(joulebook_tests::repo_root().join("docs/configuration.md")).unwrap()
}

/// Standard output of a built binary, which must succeed.
fn run(bin: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(joulebook_tests::binary(bin))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{bin} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{bin} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The long flags `--help` lists in its option lines (not those its descriptions mention).
fn help_flags(help: &str) -> Vec<String> {
    let mut flags = Vec::new();
    for line in help.lines().map(str::trim_start) {
        if !line.starts_with('-') {
            continue;
        }
        for word in line.split_whitespace() {
            let word = word.trim_end_matches(',');
            if let Some(flag) = word.strip_prefix("--") {
                let flag: String = flag
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                    .collect();
                flags.push(format!("--{flag}"));
            } else if !word.starts_with('-') {
                break;
            }
        }
    }
    flags
}

/// Every `--flag` written in a text.
fn written_flags(text: &str) -> std::collections::BTreeSet<String> {
    let bytes = text.as_bytes();
    let mut out = std::collections::BTreeSet::new();
    let is_flag_char = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-';
    let mut i = 0;
    while let Some(j) = text[i..].find("--") {
        let start = i + j;
        let before_ok = start == 0 || !is_flag_char(bytes[start - 1]);
        let mut end = start + 2;
        while end < bytes.len() && is_flag_char(bytes[end]) {
            end += 1;
        }
        let flag = text[start..end].trim_end_matches(['.', '-']);
        if before_ok && flag.len() > 2 && bytes[start + 2].is_ascii_lowercase() {
            out.insert(flag.to_string());
        }
        i = end.max(start + 2);
    }
    out
}

fn all_help_flags() -> std::collections::BTreeSet<String> {
    let mut flags = std::collections::BTreeSet::new();
    for (bin, args) in [
        ("joulebook-exporter", &["--help"][..]),
        ("joulebook-exporter", &["simulate", "--help"]),
        ("joulebook-exporter", &["hash-password", "--help"]),
        ("joulebook-report", &["--help"]),
        ("joulebook-report", &["job", "--help"]),
        ("joulebook-report", &["email", "--help"]),
    ] {
        let help = run(bin, args);
        let found = help_flags(&help);
        assert!(
            found.contains(&"--help".to_string()),
            "{bin} {args:?}: {help}"
        );
        flags.extend(found);
    }
    flags
}

/// `written` (what docs/configuration.md lists) holds exactly `real` (what the code has): a
/// missing entry fails with `missing` before it, an invented one with `unknown`.
fn assert_same_entries(
    real: &std::collections::BTreeSet<String>,
    written: &std::collections::BTreeSet<String>,
    missing: &str,
    unknown: &str,
) {
    let lacks: Vec<_> = real.difference(written).collect();
    assert!(lacks.is_empty(), "{missing}{lacks:?}");
    let extra: Vec<_> = written.difference(real).collect();
    assert!(extra.is_empty(), "{unknown}{extra:?}");
}

#[test]
fn configuration_page_lists_every_flag_and_only_real_ones() {
    let page = configuration_page();
    let written = written_flags(&page);
    let real = all_help_flags();
    assert_same_entries(
        &real,
        &written,
        "docs/configuration.md does not list ",
        "docs/configuration.md lists flags no binary has: ",
    );
}

/// The first ```yaml block after a heading of the page.
fn yaml_block_after(page: &str, heading: &str) -> String {
    let at = page
        .find(heading)
        .unwrap_or_else(|| panic!("docs/configuration.md has no heading {heading}"));
    let rest = &page[at..];
    let start = rest.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let end = rest[start..].find("```").expect("the block's end");
    rest[start..start + end].to_string()
}

/// Dotted paths of every key of a YAML document (not into lists, nor under `skip` keys, whose
/// children are the site's own names).
fn key_paths(yaml: &str, what: &str, skip: &[&str]) -> std::collections::BTreeSet<String> {
    let value: serde_json::Value =
        serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{what}: {e}\n{yaml}"));
    let mut out = std::collections::BTreeSet::new();
    fn walk(
        v: &serde_json::Value,
        prefix: &str,
        skip: &[&str],
        out: &mut std::collections::BTreeSet<String>,
    ) {
        if let serde_json::Value::Object(map) = v {
            for (k, child) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(path.clone());
                if !skip.contains(&path.as_str()) {
                    walk(child, &path, skip, out);
                }
            }
        }
    }
    walk(&value, "", skip, &mut out);
    out
}

#[test]
fn configuration_page_lists_every_exporter_key_and_only_real_ones() {
    let dir = tempfile::tempdir().unwrap();
    let effective = run(
        "joulebook-exporter",
        &[
            "--check-config",
            "--path.sysfs",
            dir.path().to_str().unwrap(),
            "--path.procfs",
            dir.path().to_str().unwrap(),
        ],
    );
    let real = key_paths(&effective, "--check-config output", &[]);
    assert!(real.contains("sources.bmc.timeout"), "{effective}");
    let page = configuration_page();
    let written = key_paths(
        &yaml_block_after(&page, "## The configuration file"),
        "docs/configuration.md",
        &[],
    );
    assert_same_entries(
        &real,
        &written,
        "docs/configuration.md lacks ",
        "docs/configuration.md lists keys the exporter does not have: ",
    );
}

/// The reporter's configuration keys: the fields of the structs in `reporter/src/config.rs`
/// (all of them `deny_unknown_fields`), read from the source.
fn reporter_fields() -> std::collections::BTreeSet<String> {
    let src = std::fs::read_to_string(joulebook_tests::repo_root().join("reporter/src/config.rs"))
        .unwrap();
    let mut fields = std::collections::BTreeSet::new();
    let mut in_struct = false;
    for line in src.lines() {
        if line.starts_with("pub struct ") && line.ends_with('{') {
            in_struct = true;
        } else if line.starts_with('}') {
            in_struct = false;
        } else if in_struct {
            if let Some(field) = line.trim().strip_prefix("pub ") {
                if let Some((name, _)) = field.split_once(':') {
                    fields.insert(name.to_string());
                }
            }
        }
    }
    fields
}

#[test]
fn configuration_page_lists_every_reporter_key_and_only_real_ones() {
    let real = reporter_fields();
    assert!(real.contains("max_answer_mib"), "{real:?}");
    let page = configuration_page();
    let paths = key_paths(
        &yaml_block_after(&page, "## The reporter's configuration file"),
        "docs/configuration.md (reporter)",
        &["best_run.jobs", "recipients.projects", "recipients.users"],
    );
    let written: std::collections::BTreeSet<String> = paths
        .iter()
        .filter(|p| {
            ![
                "best_run.jobs.",
                "recipients.projects.",
                "recipients.users.",
            ]
            .iter()
            .any(|s| p.starts_with(s))
        })
        .map(|p| p.rsplit('.').next().unwrap().to_string())
        .collect();
    assert_same_entries(
        &real,
        &written,
        "docs/configuration.md lacks ",
        "docs/configuration.md lists keys the reporter does not have: ",
    );
}
