//! Durations in the exporter's configuration files: seconds (`1.5`) or a number with a unit
//! (`500ms`, `2s`, `1m`, `1h`). Imports nothing from the crate, so the configuration and the web
//! configuration both read it.

use serde::{Deserialize, Serialize};

/// A duration written as seconds (`1.5`) or with a unit (`500ms`, `2s`, `1m`, `1h`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "DurationRepr", into = "String")]
pub struct Seconds(pub f64);

#[derive(Deserialize)]
#[serde(untagged)]
enum DurationRepr {
    Number(f64),
    Text(String),
}

impl TryFrom<DurationRepr> for Seconds {
    type Error = String;
    fn try_from(r: DurationRepr) -> Result<Self, String> {
        match r {
            DurationRepr::Number(n) => Ok(Seconds(n)),
            DurationRepr::Text(t) => parse_duration(&t).map(Seconds),
        }
    }
}

impl From<Seconds> for String {
    fn from(s: Seconds) -> String {
        format!("{}s", s.0)
    }
}

/// Parses `500ms`, `1s`, `1.5`, `2m`, `1h`. Errors quote the value.
pub fn parse_duration(t: &str) -> Result<f64, String> {
    let t = t.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v * mult),
        _ => Err(format!(
            "invalid duration {t:?}: use seconds (1.5) or a unit (500ms, 2s, 1m, 1h)"
        )),
    }
}
