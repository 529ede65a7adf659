//! What one answer of the Prometheus API holds and how it is read: series' labels, instant
//! samples and raw series, parsed as the body arrives.
//!
//! Bounds: what an answer takes once parsed is counted as it is read (each series, label and
//! sample: [`charge`]) against a per-thread budget that the client sets for each answer
//! ([`Budget`]), so rows that take more room than their text stop at [`PARSED_FACTOR`] times the
//! cap on the answer's size, whatever their shape. The values of the descriptive labels in
//! [`CAPPED`] are cut to [`MAX_LABEL_CHARS`] characters, the last one `…`, as they are read, so
//! every format shows the cut value; labels that identify series (cluster, instance, job_id,
//! component...) are kept whole, since queries are built from them and series joined on them.

use serde::Deserialize;
use std::borrow::Cow;

/// What one answer may take in memory once parsed, in multiples of the cap on its size: a
/// job-energy row of 125 bytes takes about 360 once parsed, so such answers meet the size cap
/// first, while rows that take more room than their text (short values, dozens of empty labels)
/// are stopped by this one.
pub const PARSED_FACTOR: u64 = 3;

/// Estimated bytes of memory of one series, one label and one sample once parsed (the structs,
/// the pointers and the allocator's overhead; a label's value and an unknown name add their
/// length).
const SERIES_COST: u64 = 64;
const LABEL_COST: u64 = 64;
const SAMPLE_COST: u64 = 16;

/// The message of the serde error that stops a parse over its budget.
pub(super) const OVER_BUDGET: &str = "the answer takes more memory than its budget once parsed";

thread_local! {
    /// Estimated bytes the answer being parsed on this thread may still take; [`u64::MAX`] when
    /// no answer is being parsed (tests deserializing labels directly).
    static BUDGET: std::cell::Cell<u64> = const { std::cell::Cell::new(u64::MAX) };
}

/// Counts `bytes` against the budget of the answer being parsed on this thread.
fn charge<E: serde::de::Error>(bytes: u64) -> Result<(), E> {
    BUDGET.with(|b| match b.get().checked_sub(bytes) {
        Some(left) => {
            b.set(left);
            Ok(())
        }
        None => Err(E::custom(OVER_BUDGET)),
    })
}

/// Sets this thread's parse budget for as long as it lives.
pub(super) struct Budget;

impl Budget {
    pub(super) fn set(bytes: u64) -> Budget {
        BUDGET.with(|b| b.set(bytes));
        Budget
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        BUDGET.with(|b| b.set(u64::MAX));
    }
}

/// The longest value of a [`CAPPED`] label kept, in characters (Unicode scalar values), the
/// ellipsis included.
pub const MAX_LABEL_CHARS: usize = 256;

/// What replaces the cut end of a label value.
pub const ELLIPSIS: char = '…';

/// Labels set by the job's owner or describing hardware, shown in reports and never used to
/// build a query or to join series: cut to [`MAX_LABEL_CHARS`].
pub const CAPPED: &[&str] = &[
    "user",
    "account",
    "partition",
    "job_name",
    "model",
    "scheduler",
];

/// `value` cut to at most `max` characters, the last being [`ELLIPSIS`] when anything was cut.
pub fn cap_chars(value: String, max: usize) -> String {
    match value.char_indices().nth(max.saturating_sub(1)) {
        Some((i, _)) if value[i..].chars().nth(1).is_some() => {
            let mut v = value;
            v.truncate(i);
            v.push(ELLIPSIS);
            v
        }
        _ => value,
    }
}

/// Labels of one series, sorted by name, without `__name__` (engines differ on which functions
/// keep the metric name: Prometheus 2.x keeps it through `last_over_time` and drops it through
/// `resets`; series are matched across queries by their other labels).
///
/// Compact on purpose: a month's report holds a few hundred thousand of these at once, and a
/// `BTreeMap<String, String>` costs about three times the memory. Well-known label names are
/// not allocated.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Vec<(Cow<'static, str>, Box<str>)>);

/// Label names shared by most series, kept as static strings.
const KNOWN: &[&str] = &[
    "cluster",
    "instance",
    "job",
    "job_id",
    "component",
    "gpu_uuid",
    "model",
    "index",
    "user",
    "account",
    "partition",
    "job_name",
    "scheduler",
    "pci_bus_id",
];

impl Labels {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_ref().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_ref())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }
}

impl FromIterator<(String, String)> for Labels {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(it: I) -> Labels {
        let mut v: Vec<(Cow<'static, str>, Box<str>)> = it
            .into_iter()
            .filter(|(k, _)| k != "__name__")
            .map(|(k, v)| {
                let v = if CAPPED.contains(&k.as_str()) {
                    cap_chars(v, MAX_LABEL_CHARS)
                } else {
                    v
                };
                let key = match KNOWN.iter().find(|n| **n == k) {
                    Some(n) => Cow::Borrowed(*n),
                    None => Cow::Owned(k),
                };
                (key, v.into_boxed_str())
            })
            .collect();
        v.sort();
        v.shrink_to_fit();
        Labels(v)
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Labels, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Labels;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of label names to values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Labels, A::Error> {
                charge(SERIES_COST)?;
                let mut pairs = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, String>()? {
                    let name = if KNOWN.contains(&k.as_str()) {
                        0
                    } else {
                        k.len()
                    };
                    let value = if CAPPED.contains(&k.as_str()) {
                        v.len().min(4 * MAX_LABEL_CHARS)
                    } else {
                        v.len()
                    };
                    charge(LABEL_COST + (name + value) as u64)?;
                    pairs.push((k, v));
                }
                Ok(pairs.into_iter().collect())
            }
        }
        d.deserialize_map(V)
    }
}

/// One series of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

/// One series of a range vector (raw samples): (Unix seconds, value).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<(f64, f64)>,
}

fn parse_value(s: &str) -> f64 {
    // Prometheus writes +Inf, -Inf and NaN; f64::from_str reads "inf" and "NaN" but not "+Inf".
    match s {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => s.parse().unwrap_or(f64::NAN),
    }
}

#[derive(Deserialize)]
pub(super) struct Envelope {
    pub(super) status: String,
    pub(super) data: Option<Data>,
    #[serde(rename = "errorType")]
    pub(super) error_type: Option<String>,
    pub(super) error: Option<String>,
}

/// The `data` of an answer. Read by hand rather than as serde's adjacently tagged enum, which
/// would buffer a `result` found before its `resultType` whole, outside the parse budget: here
/// that order is an error (Prometheus and VictoriaMetrics write the type first).
pub(super) enum Data {
    Vector(Vec<VectorRow>),
    Matrix(Vec<MatrixRow>),
    /// Skipped, never kept: the reporter asks for vectors and matrices only.
    Scalar,
    String,
}

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Data, D::Error> {
        use serde::de::{Error, IgnoredAny};
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Data;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object with resultType and result")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Data, A::Error> {
                let mut kind: Option<String> = None;
                let mut data = None;
                while let Some(key) = m.next_key::<String>()? {
                    match key.as_str() {
                        "resultType" => kind = Some(m.next_value()?),
                        "result" => {
                            data = Some(match kind.as_deref() {
                                Some("vector") => Data::Vector(m.next_value()?),
                                Some("matrix") => Data::Matrix(m.next_value()?),
                                Some("scalar") => {
                                    m.next_value::<IgnoredAny>()?;
                                    Data::Scalar
                                }
                                Some("string") => {
                                    m.next_value::<IgnoredAny>()?;
                                    Data::String
                                }
                                Some(other) => {
                                    return Err(A::Error::unknown_variant(
                                        other,
                                        &["vector", "matrix", "scalar", "string"],
                                    ))
                                }
                                None => {
                                    return Err(A::Error::custom(
                                        "\"result\" comes before \"resultType\"",
                                    ))
                                }
                            })
                        }
                        _ => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                data.ok_or_else(|| A::Error::missing_field("result"))
            }
        }
        d.deserialize_map(V)
    }
}

impl Data {
    pub(super) fn rows(&self) -> usize {
        match self {
            Data::Vector(v) => v.len(),
            Data::Matrix(m) => m.len(),
            Data::Scalar | Data::String => 1,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct VectorRow {
    pub(super) metric: Labels,
    pub(super) value: (f64, Num),
}

#[derive(Deserialize)]
pub(super) struct MatrixRow {
    pub(super) metric: Labels,
    pub(super) values: Vec<(f64, Num)>,
}

/// A sample's value, written by Prometheus as a string ("1.5", "+Inf", "NaN"), parsed as it is
/// read: no string is kept, and each one counts against the parse budget.
pub(super) struct Num(pub(super) f64);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Num, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a sample value (a string such as \"1.5\" or \"+Inf\")")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Num, E> {
                charge(SAMPLE_COST)?;
                Ok(Num(parse_value(s)))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_sorted_without_name() {
        let l: Labels =
            serde_json::from_str(r#"{"job_id":"7","__name__":"x","instance":"n1","zz":"<q>"}"#)
                .unwrap();
        assert_eq!(l.get("instance"), Some("n1"));
        assert_eq!(l.get("zz"), Some("<q>"));
        assert_eq!(l.get("__name__"), None);
        let keys: Vec<&str> = l.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["instance", "job_id", "zz"]);
    }

    #[test]
    fn descriptive_labels_are_capped_with_an_ellipsis_identity_labels_kept() {
        let long = "é".repeat(10_000);
        let json = serde_json::json!({"job_name": long, "user": "bob", "instance": long,
            "account": "x".repeat(MAX_LABEL_CHARS)});
        let l: Labels = serde_json::from_value(json).unwrap();
        let name = l.get("job_name").unwrap();
        assert_eq!(name.chars().count(), MAX_LABEL_CHARS);
        assert!(name.ends_with('…') && name.starts_with("éé"), "{name}");
        assert_eq!(l.get("user"), Some("bob"));
        // Exactly the cap: kept as it is.
        assert_eq!(l.get("account").unwrap(), "x".repeat(MAX_LABEL_CHARS));
        assert_eq!(l.get("instance").unwrap().chars().count(), 10_000);
        assert_eq!(cap_chars("abcd".into(), 3), "ab…");
        assert_eq!(cap_chars("abc".into(), 3), "abc");
        assert_eq!(cap_chars(String::new(), 3), "");
    }

    /// What an answer holds once parsed is bounded whatever its shape: rows of empty labels
    /// (tiny text, large in memory) stop at the budget; an ordinary answer passes; a `result`
    /// before its `resultType` is refused instead of buffered.
    #[test]
    fn parsing_is_bounded_by_the_budget() {
        let rows = |labels: usize, n: usize| {
            let metric: Vec<String> = (0..labels).map(|i| format!("\"l{i}\":\"\"")).collect();
            let row = format!(
                "{{\"metric\":{{{}}},\"value\":[1,\"2.5\"]}}",
                metric.join(",")
            );
            format!(
                "{{\"resultType\":\"vector\",\"result\":[{}]}}",
                vec![row; n].join(",")
            )
        };
        let text = rows(30, 1000);
        let parse = |budget: u64, t: &str| {
            let _b = Budget::set(budget);
            serde_json::from_str::<Data>(t)
        };
        // About 300 bytes of text a row, about 2,000 bytes of memory.
        let e = parse(3 * text.len() as u64, &text).err().unwrap();
        assert!(e.is_data() && e.to_string().starts_with(OVER_BUDGET), "{e}");
        let Ok(Data::Vector(v)) = parse(u64::MAX, &text) else {
            panic!("no vector")
        };
        assert_eq!((v.len(), v[0].value.1 .0), (1000, 2.5));
        // The benchmark's job-energy rows: 125 bytes of text, about 360 of memory.
        let row = r#"{"metric":{"cluster":"big","component":"cpu","instance":"node123:9977","job_id":"12345"},"value":[1793491200,"1234567.891"]}"#;
        let ordinary = format!(
            "{{\"resultType\":\"vector\",\"result\":[{}]}}",
            vec![row; 1000].join(",")
        );
        assert!(parse(PARSED_FACTOR * ordinary.len() as u64, &ordinary).is_ok());
        // The budget is this thread's for the parse only.
        assert_eq!(BUDGET.with(|b| b.get()), u64::MAX);
        let reversed = r#"{"result":[],"resultType":"vector"}"#;
        let e = parse(u64::MAX, reversed).err().unwrap();
        assert!(e.to_string().contains("before"), "{e}");
    }

    #[test]
    fn prometheus_special_values() {
        assert_eq!(parse_value("+Inf"), f64::INFINITY);
        assert!(parse_value("NaN").is_nan());
        assert_eq!(parse_value("1.5e3"), 1500.0);
    }
}
