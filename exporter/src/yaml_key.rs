//! Where a dotted key is written in a YAML file, for error messages of the exporter's
//! configuration, the web configuration and scenarios.
//!
//! Rules: a key such as `sources.hwmon.sensors[1].id` is looked for segment by segment, each one
//! only among the children of the one before (`[i]` picks the i-th list item), so a key never
//! points at a same-named key of another section or item. When a segment cannot be found (a flow
//! mapping `{...}`, say) the line of the deepest one found is given; `None` when not even the
//! first is there. Imports nothing from the crate.

use std::path::Path;

/// The 1-based line of a dotted key such as `node_groups[1].gpus.max_watts`.
pub fn line_of_key(text: &str, dotted: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let content = |i: usize| {
        let t = lines[i].trim();
        !t.is_empty() && !t.starts_with('#') && t != "---"
    };
    // The block searched for the next segment: lines [lo, hi).
    let (mut lo, mut hi) = (0usize, lines.len());
    let mut found: Option<usize> = None;
    for seg in dotted.split('.') {
        let (name, index) = match seg.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        // The block's keys are written at the column of its first line.
        let Some(first) = (lo..hi).find(|&i| content(i)) else {
            return found.map(|p| p + 1);
        };
        let col = key_column(lines[first]);
        let Some(line) = (lo..hi).find(|&i| {
            content(i) && key_column(lines[i]) == col && names_key(&lines[i][col..], name)
        }) else {
            return found.map(|p| p + 1);
        };
        found = Some(line);
        // The key's children: the lines below it indented past the key, or a list written at
        // the key's own indentation.
        let end = (line + 1..hi)
            .find(|&i| {
                content(i) && {
                    let at = indent(lines[i]);
                    !(at > col || (at == col && is_item(lines[i])))
                }
            })
            .unwrap_or(hi);
        (lo, hi) = (line + 1, end);
        let Some(want) = index else { continue };
        // The list's items start with "- " at the indentation of the first one.
        let Some(dash) = (lo..hi).find(|&i| content(i)).map(|i| indent(lines[i])) else {
            return found.map(|p| p + 1);
        };
        let starts: Vec<usize> = (lo..hi)
            .filter(|&i| content(i) && indent(lines[i]) == dash && is_item(lines[i]))
            .collect();
        let Some(&item) = starts.get(want) else {
            return found.map(|p| p + 1);
        };
        found = Some(item);
        // The item's keys: on the dash line itself, then indented past the dash.
        let next = starts.get(want + 1).copied().unwrap_or(hi);
        (lo, hi) = (item, next);
    }
    found.map(|p| p + 1)
}

/// `WHAT file PATH: line N: KEY: MSG` (the line where it can be found).
pub fn key_error(what: &str, path: &Path, text: &str, key: &str, msg: &str) -> String {
    let line = line_of_key(text, key)
        .map(|l| format!(" line {l}:"))
        .unwrap_or_default();
    format!("{what} file {}:{line} {key}: {msg}", path.display())
}

fn indent(l: &str) -> usize {
    l.len() - l.trim_start_matches(' ').len()
}

fn is_item(l: &str) -> bool {
    let t = l.trim_start_matches(' ');
    t == "-" || t.starts_with("- ")
}

/// The column where a line's key starts: past its indentation and any `- ` list markers.
fn key_column(l: &str) -> usize {
    let mut at = indent(l);
    while l[at..].starts_with("- ") {
        at += 2;
        at += indent(&l[at..]);
    }
    at
}

/// Whether `body` starts with the key `name`, plain or quoted, and its colon.
fn names_key(body: &str, name: &str) -> bool {
    [
        format!("{name}:"),
        format!("\"{name}\":"),
        format!("'{name}':"),
    ]
    .iter()
    .any(|k| {
        body.strip_prefix(k.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_nested_keys() {
        let text = "cluster: x\nnode_groups:\n  - name: a\n    count: 1\n  - name: b\n    count: 2\n    gpus:\n      count: 4\n      max_watts: 3\n";
        assert_eq!(line_of_key(text, "cluster"), Some(1));
        assert_eq!(line_of_key(text, "node_groups[0].count"), Some(4));
        assert_eq!(line_of_key(text, "node_groups[1].name"), Some(5));
        assert_eq!(line_of_key(text, "node_groups[1].count"), Some(6));
        assert_eq!(line_of_key(text, "node_groups[1].gpus.max_watts"), Some(9));
        assert_eq!(line_of_key(text, "node_groups[2].name"), Some(2));
        assert_eq!(line_of_key(text, "nothing"), None);
    }

    #[test]
    fn a_key_is_found_only_under_its_parents() {
        // `timeout:` first appears in another section and the wanted one is further down.
        let text = "jobs:\n  timeout: 1\nsources:\n  rapl:\n    timeout: 2\n  bmc:\n    url: x\n    timeout: 0\n";
        assert_eq!(line_of_key(text, "sources.bmc.timeout"), Some(8));
        assert_eq!(line_of_key(text, "sources.rapl.timeout"), Some(5));
        // Not under bmc: the deepest segment found, never a sibling's key.
        let text = "sources:\n  bmc:\n    url: x\n  rapl:\n    timeout: 2\n";
        assert_eq!(line_of_key(text, "sources.bmc.timeout"), Some(2));
        // A key whose name ends another one's, and a value that looks like a key.
        let text = "a:\n  max_timeout: 1\n  note: \"timeout: 3\"\n  timeout: 4\n";
        assert_eq!(line_of_key(text, "a.timeout"), Some(4));
    }

    #[test]
    fn lists_comments_quotes_and_flow_mappings() {
        let text = "# head\nsensors:\n- id: a\n  role: cpu\n\n- id: b\n  # role: x\n  role: node\n";
        assert_eq!(line_of_key(text, "sensors[1].role"), Some(8));
        assert_eq!(line_of_key(text, "sensors[0].role"), Some(4));
        let text = "users:\n  \"alice\": x\n  'bob': y\nweb: {listen: 1}\n";
        assert_eq!(line_of_key(text, "users.bob"), Some(3));
        assert_eq!(line_of_key(text, "web.listen"), Some(4));
        let text = "- - a: 1\n";
        assert_eq!(line_of_key(text, "a"), Some(1));
    }

    #[test]
    fn errors_name_the_file_line_and_key() {
        let e = key_error("config", Path::new("/x.yaml"), "a:\n  b: 1\n", "a.b", "bad");
        assert_eq!(e, "config file /x.yaml: line 2: a.b: bad");
        let e = key_error("config", Path::new("/x.yaml"), "", "a.b", "bad");
        assert_eq!(e, "config file /x.yaml: a.b: bad");
    }
}
