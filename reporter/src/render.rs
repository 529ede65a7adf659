//! Formats a [`Report`]: Tera templates for HTML (autoescaped), Markdown and plain text, and
//! serde for JSON. The built-in templates can be replaced one by one from a directory
//! (`--templates DIR` holding `report.html`, `report.md` or `report.txt`).
//!
//! Escaping: HTML relies on Tera's autoescaping (templates named `*.html`); Markdown passes every
//! string through the `md` filter and plain text through `line`. Numbers go through `num`, `pct`,
//! `ratio` and `g` so that all formats round alike.

use crate::model::Report;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tera::{Tera, Value};

pub const HTML: &str = "report.html";
pub const MD: &str = "report.md";
pub const TXT: &str = "report.txt";

const BUILTIN: [(&str, &str); 3] = [
    (HTML, include_str!("../templates/report.html")),
    (MD, include_str!("../templates/report.md")),
    (TXT, include_str!("../templates/report.txt")),
];

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

fn tera_error(e: tera::Error) -> RenderError {
    // Tera's Display is the outermost message; the cause names the line and the variable.
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    RenderError(msg)
}

pub struct Renderer {
    tera: Tera,
}

impl Renderer {
    /// The built-in templates, each replaced by a file of the same name in `dir` if present.
    pub fn new(dir: Option<&Path>) -> Result<Renderer, RenderError> {
        let mut tera = Tera::default();
        for (name, builtin) in BUILTIN {
            let text = match dir.map(|d| d.join(name)) {
                Some(p) if p.exists() => std::fs::read_to_string(&p).map_err(|e| {
                    RenderError(format!("cannot read template {}: {e}", p.display()))
                })?,
                _ => builtin.to_string(),
            };
            tera.add_raw_template(name, &text)
                .map_err(|e| RenderError(format!("template {name}: {}", tera_error(e))))?;
        }
        tera.autoescape_on(vec![".html"]);
        tera.register_filter("num", filter_num);
        tera.register_filter("pct", filter_pct);
        tera.register_filter("ratio", filter_ratio);
        tera.register_filter("g", filter_g);
        tera.register_filter("md", filter_md);
        tera.register_filter("line", filter_line);
        Ok(Renderer { tera })
    }

    /// Renders `template` with the report as `r` and `images` (chart name → URL or `cid:`).
    pub fn render(
        &self,
        template: &str,
        report: &Report,
        images: &BTreeMap<String, String>,
    ) -> Result<String, RenderError> {
        let mut ctx = tera::Context::new();
        ctx.insert("r", report);
        ctx.insert("images", images);
        self.tera
            .render(template, &ctx)
            .map_err(|e| RenderError(format!("template {template}: {}", tera_error(e))))
    }
}

pub fn json(report: &Report) -> Result<String, RenderError> {
    serde_json::to_string_pretty(report)
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(|e| RenderError(format!("JSON: {e}")))
}

fn number(v: &Value, name: &str) -> tera::Result<Option<f64>> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => Ok(n.as_f64()),
        other => Err(tera::Error::msg(format!(
            "filter {name} expects a number, got {other}"
        ))),
    }
}

/// `1234567.891` → `1,234,567.9` with `d` decimals (default 1).
pub fn format_num(v: f64, d: usize) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let s = format!("{:.*}", d, v.abs());
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i.to_string(), Some(f.to_string())),
        None => (s.clone(), None),
    };
    let mut grouped = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    let neg = v < 0.0 && s.chars().any(|c| c.is_ascii_digit() && c != '0');
    format!(
        "{}{grouped}{}",
        if neg { "-" } else { "" },
        frac.map(|f| format!(".{f}")).unwrap_or_default()
    )
}

fn filter_num(v: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let d = args.get("d").and_then(Value::as_u64).unwrap_or(1) as usize;
    Ok(Value::String(
        number(v, "num")?.map_or("n/a".into(), |x| format_num(x, d)),
    ))
}

fn filter_pct(v: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    Ok(Value::String(number(v, "pct")?.map_or("n/a".into(), |x| {
        format!("{} %", format_num(x * 100.0, 1))
    })))
}

fn filter_ratio(v: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    Ok(Value::String(
        number(v, "ratio")?.map_or("n/a".into(), |x| format!("{}×", format_num(x, 2))),
    ))
}

/// Integers without decimals, other numbers as Rust prints them (ranks like 1.5, constants).
fn filter_g(v: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    Ok(Value::String(number(v, "g")?.map_or("n/a".into(), |x| {
        if x.fract() == 0.0 && x.abs() < 1e15 {
            format!("{}", x as i64)
        } else {
            format!("{x}")
        }
    })))
}

/// Escapes a string for a Markdown table cell or paragraph.
pub fn escape_md(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '\n' | '\r' => o.push(' '),
            '|' | '\\' | '*' | '_' | '`' | '[' | ']' | '#' | '~' => {
                o.push('\\');
                o.push(ch);
            }
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

fn filter_md(v: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    Ok(Value::String(escape_md(&value_text(v))))
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn filter_line(v: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    Ok(Value::String(
        value_text(v)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect(),
    ))
}

/// The cluster report of `ds` with the default configuration, for the tests of the formats.
#[cfg(test)]
pub(crate) fn cluster_report(ds: &crate::data::Dataset) -> Report {
    crate::model::build(
        ds,
        &crate::config::Config::default(),
        &crate::model::Options {
            scope: crate::model::ScopeKind::Cluster,
            cluster: None,
            generated_at: 0,
            anonymize_users: false,
            zone: crate::period::Zone::utc(),
            all_jobs: true,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(format_num(1234567.891, 1), "1,234,567.9");
        assert_eq!(format_num(999.96, 1), "1,000.0");
        assert_eq!(format_num(-12.0, 0), "-12");
        assert_eq!(format_num(-0.01, 1), "0.0");
        assert_eq!(format_num(f64::NAN, 1), "n/a");
    }

    fn empty_report() -> Report {
        cluster_report(&crate::data::Dataset::default())
    }

    #[test]
    fn templates_override_from_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("report.md"), "custom {{ r.title | md }}").unwrap();
        let r = Renderer::new(Some(dir.path())).unwrap();
        let rep = empty_report();
        let md = r.render(MD, &rep, &BTreeMap::new()).unwrap();
        assert!(md.starts_with("custom Energy report"), "{md}");
        let html = r.render(HTML, &rep, &BTreeMap::new()).unwrap();
        assert!(html.contains("No data for this period"), "{html}");
        std::fs::write(dir.path().join("report.txt"), "{{ r.nope.deeper }}").unwrap();
        let r = Renderer::new(Some(dir.path())).unwrap();
        let e = r.render(TXT, &rep, &BTreeMap::new()).unwrap_err().0;
        assert!(e.contains("report.txt"), "{e}");
        std::fs::write(dir.path().join("report.txt"), "{% if %}").unwrap();
        assert!(Renderer::new(Some(dir.path())).is_err());
    }

    #[test]
    fn empty_report_renders_everywhere() {
        let r = Renderer::new(None).unwrap();
        let rep = empty_report();
        for t in [HTML, MD, TXT] {
            let out = r.render(t, &rep, &BTreeMap::new()).unwrap();
            assert!(out.contains("No data"), "{t}: {out}");
        }
        assert!(json(&rep).unwrap().contains("\"has_data\": false"));
    }

    #[test]
    fn markdown_escaping() {
        assert_eq!(escape_md("a|b\n<script>*x*"), "a\\|b &lt;script&gt;\\*x\\*");
    }
}
