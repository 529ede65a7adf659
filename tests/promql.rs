//! Every PromQL expression joulebook ships, extracted from the Grafana dashboards
//! (`dashboards/*.json`) and the Prometheus rule files (`deploy/prometheus/rules/*.yml`), so that
//! a test can run each against a Prometheus holding data: [`all_expressions`] is the list to
//! loop over. Dashboard expressions come with their template variables substituted by values that
//! match any series ([`substitute_variables`]), so that each is a plain PromQL query.
//!
//! Also a small PromQL scanner ([`metric_names`]) that lists the metric names an expression
//! reads, which the deploy tests check against `joulebook_common::ALL_METRICS` and the recording
//! rules.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Where an expression comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A recording rule: its `record` name.
    Recording(String),
    /// An alerting rule: its `alert` name.
    Alert(String),
    /// A dashboard panel target: dashboard uid, panel title, target refId.
    Panel {
        dashboard: String,
        panel: String,
        ref_id: String,
    },
    /// A dashboard template variable's `label_values(SELECTOR, label)` query, as its selector.
    Variable { dashboard: String, name: String },
}

/// One expression, ready to query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expression {
    /// The file it was read from.
    pub file: PathBuf,
    pub origin: Origin,
    /// PromQL with no template variable left.
    pub expr: String,
    /// True when the expression reads a metric joulebook does not publish yet (see
    /// [`PENDING_METRICS`]): a test against simulated data may expect nothing from it.
    pub pending: bool,
}

/// Metrics that dashboards use before the exporter publishes them: the BMC source is being
/// written (the node dashboard already compares BMC power with RAPL + GPU). Remove a name here
/// when it lands in `joulebook_common::ALL_METRICS`; the deploy tests fail if one is both.
pub const PENDING_METRICS: &[&str] = &[];

/// Values substituted for Grafana's built-in variables.
const BUILTINS: &[(&str, &str)] = &[
    ("__rate_interval", "5m"),
    ("__interval", "1m"),
    ("__range", "1d"),
    ("__range_s", "86400"),
    ("__range_ms", "86400000"),
];

/// Replaces `$name` and `${name}` in a dashboard expression: Grafana's built-ins by fixed values
/// (`$__rate_interval` → `5m`, `$__range` → `1d`), a variable listed in `values` by its value,
/// and any other variable by `.*` (they all appear inside `=~"..."` matchers, which the deploy
/// tests check). Unknown `$` sequences are left as they are.
pub fn substitute_variables(expr: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, consumed) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                // ${name} or ${name:format}
                Some(end) => (inner[..end].split(':').next().unwrap_or(""), end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
            continue;
        }
        let value = BUILTINS
            .iter()
            .chain(values.iter())
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .unwrap_or(".*");
        out.push_str(value);
        rest = &after[consumed..];
    }
    out.push_str(rest);
    out
}

/// Template variable names used in an expression (`$name`, `${name}`), built-ins excluded.
pub fn variables_used(expr: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let mut rest = expr;
    while let Some(pos) = rest.find('$') {
        let after = &rest[pos + 1..];
        let name = if let Some(inner) = after.strip_prefix('{') {
            inner[..inner.find('}').unwrap_or(0)]
                .split(':')
                .next()
                .unwrap_or("")
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            &after[..end]
        };
        if !name.is_empty() && !name.starts_with("__") {
            used.insert(name.to_string());
        }
        rest = after;
    }
    used
}

/// PromQL keywords that look like identifiers, besides the modifiers of [`LABEL_LISTS`].
const KEYWORDS: &[&str] = &[
    "and", "or", "unless", "offset", "bool", "atan2", "inf", "nan",
];

/// Aggregation operators: `sum by (x) (...)` puts a label list between the name and its call.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "limitk",
    "limit_ratio",
];

/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names an expression reads: identifiers that are not functions, aggregations,
/// keywords, label names (in `{...}` matchers or `by (...)` lists), strings, numbers or
/// durations. `#` comments are skipped. A scanner, not a parser: it is meant for the
/// expressions joulebook writes, and the deploy tests also run promtool on the rules.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    // Depth of an open `by (...)`-style label list, in parentheses.
    let mut label_list_depth: Option<usize> = None;
    let mut paren_depth = 0usize;
    let mut expect_label_list = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '"' | '\'' | '`' => i = skip_quoted(&chars, i),
            '{' | '[' => {
                // Label matchers and range/subquery durations hold no metric name.
                let close = if c == '{' { '}' } else { ']' };
                i += 1;
                while i < chars.len() && chars[i] != close {
                    i = match chars[i] {
                        '"' | '\'' => skip_quoted(&chars, i),
                        _ => i + 1,
                    };
                }
                i += 1;
            }
            '(' => {
                paren_depth += 1;
                if expect_label_list {
                    label_list_depth = Some(paren_depth);
                    expect_label_list = false;
                }
                i += 1;
            }
            ')' => {
                if label_list_depth == Some(paren_depth) {
                    label_list_depth = None;
                }
                paren_depth = paren_depth.saturating_sub(1);
                i += 1;
            }
            c if c.is_ascii_digit()
                || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                // Numbers (1e9, 0x1F, 0.3725) and durations (5m, 1h30m).
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let lower = word.to_ascii_lowercase();
                let mut j = i;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                let next = chars.get(j).copied();
                if label_list_depth.is_some() {
                    // A label name in by (...), on (...), group_left (...).
                } else if LABEL_LISTS.contains(&lower.as_str()) {
                    expect_label_list = next == Some('(');
                } else if KEYWORDS.contains(&lower.as_str())
                    || AGGREGATIONS.contains(&lower.as_str())
                    || next == Some('(')
                {
                    // A keyword, or a function or aggregation call.
                } else {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// The index after the string that opens at `chars[i]` (`\` escapes, except in backquotes).
fn skip_quoted(chars: &[char], mut i: usize) -> usize {
    let q = chars[i];
    i += 1;
    while i < chars.len() && chars[i] != q {
        if chars[i] == '\\' && q != '`' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

#[derive(Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
struct RuleGroup {
    #[allow(dead_code)]
    name: String,
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    #[serde(default)]
    record: Option<String>,
    #[serde(default)]
    alert: Option<String>,
    expr: String,
}

/// The rule files shipped in `deploy/prometheus/rules` (not their unit tests).
pub fn rule_files(root: &Path) -> Vec<PathBuf> {
    yaml_files(&root.join("deploy/prometheus/rules"))
}

/// The dashboards shipped in `dashboards/`.
pub fn dashboard_files(root: &Path) -> Vec<PathBuf> {
    let dir = root.join("dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("folder entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("folder entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    files.sort();
    files
}

fn is_pending(expr: &str) -> bool {
    metric_names(expr)
        .iter()
        .any(|n| PENDING_METRICS.contains(&n.as_str()))
}

/// Every rule's expression in a rule file, in file order.
pub fn rule_expressions(file: &Path) -> Vec<Expression> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let parsed: RuleFile = serde_saphyr::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: not a rule file: {e}", file.display()));
    let mut out = Vec::new();
    for group in parsed.groups {
        for rule in group.rules {
            let origin = match (rule.record, rule.alert) {
                (Some(r), None) => Origin::Recording(r),
                (None, Some(a)) => Origin::Alert(a),
                _ => panic!(
                    "{}: a rule needs exactly one of record and alert",
                    file.display()
                ),
            };
            let expr = rule.expr.trim().to_string();
            out.push(Expression {
                file: file.to_path_buf(),
                origin,
                pending: is_pending(&expr),
                expr,
            });
        }
    }
    out
}

/// The names recorded by the recording rules of these files.
pub fn recorded_names(files: &[PathBuf]) -> BTreeSet<String> {
    files
        .iter()
        .flat_map(|f| rule_expressions(f))
        .filter_map(|e| match e.origin {
            Origin::Recording(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// Panels of a dashboard, rows' nested panels included.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(p);
        for inner in p["panels"].as_array().into_iter().flatten() {
            out.push(inner);
        }
    }
    out
}

/// Default values of a dashboard's textbox and constant variables (`co2_intensity` → `44.2`).
pub fn variable_defaults(dashboard: &Value) -> Vec<(String, String)> {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| matches!(v["type"].as_str(), Some("textbox" | "constant")))
        .filter_map(|v| {
            Some((
                v["name"].as_str()?.to_string(),
                v["query"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// Splits `label_values(SELECTOR, label)` into its selector and label; `None` for other queries.
pub fn label_values_query(query: &str) -> Option<(&str, &str)> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let (selector, label) = inner.rsplit_once(',')?;
    Some((selector.trim(), label.trim()))
}

/// Every expression of a dashboard: its panels' targets and its `label_values` variable
/// queries (as their series selector), with variables substituted.
pub fn dashboard_expressions(file: &Path) -> Vec<Expression> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let d: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", file.display()));
    let uid = d["uid"].as_str().unwrap_or("").to_string();
    let defaults = variable_defaults(&d);
    let values: Vec<(&str, &str)> = defaults
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut out = Vec::new();
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"].as_str() != Some("query") {
            continue;
        }
        let query = v["query"]["query"]
            .as_str()
            .or_else(|| v["query"].as_str())
            .unwrap_or("");
        if let Some((selector, _)) = label_values_query(query) {
            let expr = substitute_variables(selector, &values);
            out.push(Expression {
                file: file.to_path_buf(),
                origin: Origin::Variable {
                    dashboard: uid.clone(),
                    name: v["name"].as_str().unwrap_or("").to_string(),
                },
                pending: is_pending(&expr),
                expr,
            });
        }
    }
    for p in panels(&d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let Some(raw) = t["expr"].as_str() else {
                continue;
            };
            let expr = substitute_variables(raw, &values);
            out.push(Expression {
                file: file.to_path_buf(),
                origin: Origin::Panel {
                    dashboard: uid.clone(),
                    panel: p["title"].as_str().unwrap_or("").to_string(),
                    ref_id: t["refId"].as_str().unwrap_or("").to_string(),
                },
                pending: is_pending(&expr),
                expr,
            });
        }
    }
    out
}

/// Every expression of every dashboard and rule file under the repository `root`.
pub fn all_expressions(root: &Path) -> Vec<Expression> {
    let mut out = Vec::new();
    for f in rule_files(root) {
        out.extend(rule_expressions(&f));
    }
    for f in dashboard_files(root) {
        out.extend(dashboard_expressions(&f));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn metric_names_skip_functions_labels_keywords_strings_and_numbers() {
        let e = r#"
            sum by (cluster, account) (   # a comment naming not_a_metric
                rate(joulebook_job_joules_total{cluster=~"$cluster", job_id!="x y"}[5m])
              * on (cluster, instance, job_id) group_left (account, user)
                joulebook_job_info
            ) / 3.6e6 > bool 0.5
            or label_replace(vector(1), "component", "cpu", "", "")
            unless instance:joulebook_node_power_watts:rate5m offset 1h
            and topk(10, up) and time() - joulebook_last_sample_timestamp_seconds > 300
        "#;
        assert_eq!(
            metric_names(e),
            set(&[
                "instance:joulebook_node_power_watts:rate5m",
                "joulebook_job_info",
                "joulebook_job_joules_total",
                "joulebook_last_sample_timestamp_seconds",
                "up",
            ])
        );
    }

    #[test]
    fn metric_names_with_nested_parentheses_in_label_lists_and_subqueries() {
        let e = "max_over_time((a_total - b)[1h:5m]) * ignoring(x) group_right c";
        assert_eq!(metric_names(e), set(&["a_total", "b", "c"]));
        // A name after a closed by-list is a metric again.
        let e = "sum without (gpu_uuid) (d) + on() group_left e";
        assert_eq!(metric_names(e), set(&["d", "e"]));
    }

    #[test]
    fn variables_are_substituted_by_matching_values() {
        let e = r#"sum(rate(x{cluster=~"$cluster",instance=~"${node}"}[$__rate_interval])) * $co2_intensity / ${__range_s}"#;
        assert_eq!(
            substitute_variables(e, &[("co2_intensity", "44.2")]),
            r#"sum(rate(x{cluster=~".*",instance=~".*"}[5m])) * 44.2 / 86400"#
        );
        assert_eq!(
            variables_used(e),
            set(&["cluster", "co2_intensity", "node"])
        );
        // A lone dollar and ${name:format} are handled.
        assert_eq!(substitute_variables("a $ b", &[]), "a $ b");
        assert_eq!(substitute_variables("${user:regex}", &[]), ".*");
        assert_eq!(
            substitute_variables("increase(x[$__range])", &[]),
            "increase(x[1d])"
        );
    }

    #[test]
    fn label_values_queries_are_split() {
        assert_eq!(
            label_values_query(r#"label_values(joulebook_job_info{cluster=~"$cluster"}, account)"#),
            Some((r#"joulebook_job_info{cluster=~"$cluster"}"#, "account"))
        );
        assert_eq!(label_values_query("query_result(up)"), None);
    }

    #[test]
    fn rule_files_yield_every_rule_with_its_origin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("r.yml");
        std::fs::write(
            &f,
            "groups:\n  - name: g\n    interval: 5m\n    rules:\n      - record: a:b:c\n        expr: sum(x)\n      - alert: A\n        expr: |\n          joulebook_bmc_power_watts > 1\n        for: 1h\n        labels: {severity: info}\n",
        )
        .expect("write");
        let e = rule_expressions(&f);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].origin, Origin::Recording("a:b:c".into()));
        assert_eq!(e[0].expr, "sum(x)");
        assert!(!e[0].pending);
        assert_eq!(e[1].origin, Origin::Alert("A".into()));
        assert_eq!(e[1].expr, "joulebook_bmc_power_watts > 1");
        // The BMC metrics have landed: nothing is pending.
        assert!(!e[1].pending);
    }

    #[test]
    fn dashboards_yield_targets_and_variable_selectors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("d.json");
        let d = serde_json::json!({
            "uid": "u",
            "templating": {"list": [
                {"name": "cluster", "type": "query",
                 "query": {"query": "label_values(joulebook_build_info, cluster)", "refId": "x"}},
                {"name": "co2_intensity", "type": "textbox", "query": "44.2"},
            ]},
            "panels": [
                {"title": "P", "targets": [{"refId": "A", "expr": "sum(x{cluster=~\"$cluster\"}) * $co2_intensity"}]},
                {"type": "row", "title": "R", "panels": [
                    {"title": "Q", "targets": [{"refId": "B", "expr": "rate(y[$__rate_interval])"}]},
                ]},
            ],
        });
        std::fs::write(&f, d.to_string()).expect("write");
        let e = dashboard_expressions(&f);
        let exprs: Vec<&str> = e.iter().map(|x| x.expr.as_str()).collect();
        assert_eq!(
            exprs,
            vec![
                "joulebook_build_info",
                "sum(x{cluster=~\".*\"}) * 44.2",
                "rate(y[5m])"
            ]
        );
        assert_eq!(
            e[2].origin,
            Origin::Panel {
                dashboard: "u".into(),
                panel: "Q".into(),
                ref_id: "B".into()
            }
        );
    }
}
