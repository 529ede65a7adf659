//! Scalar values of the scenario format: durations, points in time, sizes, and choices or
//! ranges to draw from.

use serde::Deserialize;

/// A duration: seconds (`90`) or a number with a unit (`500ms`, `30s`, `5m`, `2h`, `30d`, `1w`),
/// read by the exporter's one parser, [`crate::duration::parse_duration`].
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(try_from = "NumOrText")]
pub struct Span(pub f64);

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrText {
    Number(f64),
    Text(String),
}

impl TryFrom<NumOrText> for Span {
    type Error = String;
    fn try_from(r: NumOrText) -> Result<Self, String> {
        match r {
            NumOrText::Number(n) if n.is_finite() && n >= 0.0 => Ok(Span(n)),
            NumOrText::Number(n) => Err(format!("invalid duration {n}: must be >= 0")),
            NumOrText::Text(t) => crate::duration::parse_duration(&t).map(Span),
        }
    }
}

/// A point in time: Unix seconds (`1740787200`) or RFC 3339 (`2025-03-01T00:00:00Z`).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(try_from = "NumOrText")]
pub struct Instant(pub f64);

impl TryFrom<NumOrText> for Instant {
    type Error = String;
    fn try_from(r: NumOrText) -> Result<Self, String> {
        match r {
            NumOrText::Number(n) if n.is_finite() => Ok(Instant(n)),
            NumOrText::Number(n) => Err(format!("invalid time {n}")),
            NumOrText::Text(t) => match t.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(Instant(n)),
                _ => super::parse_rfc3339(&t).map(Instant),
            },
        }
    }
}

/// A size in bytes: a number (`1073741824`) or with a unit (`512GiB`, `64G`, `1.5TiB`). `G`/`GB`
/// are read as GiB, as `free`, Slurm's `RealMemory` and `/proc/meminfo` mean them.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(try_from = "NumOrText")]
pub struct Bytes(pub u64);

impl TryFrom<NumOrText> for Bytes {
    type Error = String;
    fn try_from(r: NumOrText) -> Result<Self, String> {
        let bad = |t: &str| format!("invalid size {t:?}: use bytes or a unit (64GiB, 512G, 1TiB)");
        match r {
            NumOrText::Number(n) if n.is_finite() && n >= 0.0 => Ok(Bytes(n as u64)),
            NumOrText::Number(n) => Err(bad(&n.to_string())),
            NumOrText::Text(t) => {
                let s = t.trim();
                let split = s
                    .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                    .unwrap_or(s.len());
                let (num, unit) = s.split_at(split);
                let mult: u64 = match unit.trim() {
                    "" | "B" => 1,
                    "K" | "KB" | "KiB" => 1 << 10,
                    "M" | "MB" | "MiB" => 1 << 20,
                    "G" | "GB" | "GiB" => 1 << 30,
                    "T" | "TB" | "TiB" => 1 << 40,
                    _ => return Err(bad(s)),
                };
                match num.parse::<f64>() {
                    Ok(v) if v.is_finite() && v >= 0.0 => Ok(Bytes((v * mult as f64) as u64)),
                    _ => Err(bad(s)),
                }
            }
        }
    }
}

/// One value or a list to draw from uniformly (`gpus: 4` or `gpus: [1, 2, 4]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Choice<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Clone> Choice<T> {
    pub fn options(&self) -> Vec<T> {
        match self {
            Choice::One(v) => vec![v.clone()],
            Choice::Many(v) => v.clone(),
        }
    }
}

/// A fixed value or a `[low, high]` range to draw from uniformly (utilisation).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Range {
    Fixed(f64),
    Between(Vec<f64>),
}

impl Range {
    pub fn bounds(&self) -> (f64, f64) {
        match self {
            Range::Fixed(v) => (*v, *v),
            Range::Between(v) => (
                v.first().copied().unwrap_or(0.0),
                v.get(1).or(v.first()).copied().unwrap_or(0.0),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_sizes() {
        let span = |t: &str| Span::try_from(NumOrText::Text(t.into()));
        assert_eq!(span("30d"), Ok(Span(30.0 * 86400.0)));
        assert_eq!(span("1w"), Ok(Span(7.0 * 86400.0)));
        assert_eq!(span("5m"), Ok(Span(300.0)));
        assert_eq!(span("500ms"), Ok(Span(0.5)));
        assert_eq!(span("90"), Ok(Span(90.0)));
        assert_eq!(Span::try_from(NumOrText::Number(90.0)), Ok(Span(90.0)));
        let e = span("5 parsecs").unwrap_err();
        assert!(e.contains("\"5 parsecs\"") && e.contains("1d, 1w"), "{e}");
        assert!(Span::try_from(NumOrText::Number(-1.0)).is_err());
        assert_eq!(
            Bytes::try_from(NumOrText::Text("512GiB".into())),
            Ok(Bytes(512 << 30))
        );
        assert!(Bytes::try_from(NumOrText::Text("12 bananas".into())).is_err());
    }
}
