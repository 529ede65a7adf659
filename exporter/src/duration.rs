//! Durations, the one parser for the exporter's flags, its configuration, the web configuration
//! and the simulator's scenarios: seconds (`1.5`) or a number with a unit (`500ms`, `2s`, `1m`,
//! `1h`, `1d`, `1w`), never negative or infinite. Imports nothing from the crate. Each reader
//! checks its own range (`sample_interval: 1d` parses, then fails its key's check).

use serde::{Deserialize, Serialize};

/// A duration written as seconds (`1.5`) or with a unit (`500ms`, `2s`, `1m`, `1h`, `1d`, `1w`).
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

/// The units, each with its length in seconds; `ms` before `s` and `m`, which end it.
const UNITS: [(&str, f64); 6] = [
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
    ("d", 86400.0),
    ("w", 7.0 * 86400.0),
];

/// Parses `1.5`, `500ms`, `2s`, `1m`, `1h`, `1d`, `1w` (a space may separate number and unit).
/// Errors quote the value and list the units.
pub fn parse_duration(t: &str) -> Result<f64, String> {
    let t = t.trim();
    let (num, mult) = UNITS
        .iter()
        .find_map(|&(unit, mult)| t.strip_suffix(unit).map(|n| (n, mult)))
        .unwrap_or((t, 1.0));
    match num.trim().parse::<f64>().map(|v| v * mult) {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!(
            "invalid duration {t:?}: use seconds (1.5) or a unit (500ms, 2s, 1m, 1h, 1d, 1w)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit() {
        assert_eq!(parse_duration("1.5"), Ok(1.5));
        assert_eq!(parse_duration("90"), Ok(90.0));
        assert_eq!(parse_duration("500ms"), Ok(0.5));
        assert_eq!(parse_duration("2s"), Ok(2.0));
        assert_eq!(parse_duration("5m"), Ok(300.0));
        assert_eq!(parse_duration("2h"), Ok(7200.0));
        assert_eq!(parse_duration("30d"), Ok(30.0 * 86400.0));
        assert_eq!(parse_duration("1w"), Ok(604800.0));
        assert_eq!(parse_duration(" 1.5 d "), Ok(129600.0));
        assert_eq!(parse_duration("0s"), Ok(0.0));
    }

    #[test]
    fn errors_quote_the_value_and_list_the_units() {
        for bad in [
            "5 parsecs",
            "-1s",
            "-2",
            "nan",
            "inf",
            "1e308w",
            "",
            "ms",
            "1 y",
            "2sm",
            "1ss",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains(&format!("{:?}", bad.trim())), "{bad}: {e}");
            assert!(e.contains("1d, 1w"), "{bad}: {e}");
        }
    }

    #[test]
    fn serde_reads_numbers_and_text() {
        #[derive(Deserialize)]
        struct T {
            a: Seconds,
            b: Seconds,
        }
        let t: T = serde_saphyr::from_str("a: 2\nb: 1d\n").unwrap();
        assert_eq!((t.a, t.b), (Seconds(2.0), Seconds(86400.0)));
        let e = serde_saphyr::from_str::<T>("a: 2\nb: 3 fortnights\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("3 fortnights"), "{e}");
    }
}
