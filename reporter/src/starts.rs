//! The restart marker, `joulebook_counters_start_time_seconds`: per node, the Unix time since
//! which its exporter's counters have only grown (their last start from zero; a resume from the
//! state file keeps it, since a resumed counter never goes below what was published).
//!
//! Rule: a node whose marker, read near the period's end, is older than a window's start (less
//! [`CLOCK_SKEW_S`]) had no counter start inside the window, so none of its counters went down
//! there and `last − base` is exact without a `resets` pass over its samples. Nodes without the
//! marker (older exporters, or silent near the end), and nodes where it is recent, keep the
//! exact slow path. A name met in several clusters counts only if every one of them has it.

use std::collections::BTreeMap;

/// How far a node's clock (which stamps the marker) may be behind the server's (which stamps
/// the samples) before a start could be taken for older than it was: one hour, far beyond NTP.
pub const CLOCK_SKEW_S: f64 = 3600.0;

/// The latest marker of each instance whose every node published one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CounterStarts(BTreeMap<String, f64>);

impl CounterStarts {
    /// From the marker by (cluster, instance) and every (cluster, instance) met: an instance
    /// is kept only when each of its nodes has a finite marker (the latest one counts).
    pub fn new(
        markers: impl IntoIterator<Item = ((String, String), f64)>,
        nodes: impl IntoIterator<Item = (String, String)>,
    ) -> CounterStarts {
        let markers: BTreeMap<(String, String), f64> =
            markers.into_iter().filter(|(_, v)| v.is_finite()).collect();
        let mut out: BTreeMap<String, f64> = BTreeMap::new();
        let mut missing: Vec<String> = Vec::new();
        for key in nodes.into_iter().chain(markers.keys().cloned()) {
            match markers.get(&key) {
                Some(&v) => {
                    let e = out.entry(key.1).or_insert(v);
                    *e = e.max(v);
                }
                None => missing.push(key.1),
            }
        }
        for i in missing {
            out.remove(&i);
        }
        CounterStarts(out)
    }

    /// Instances whose counters have only grown since `from` (Unix seconds), sorted.
    pub fn grown_since(&self, from: i64) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(_, m)| **m + CLOCK_SKEW_S < from as f64)
            .map(|(i, _)| i.as_str())
            .collect()
    }

    /// Whether `instance`'s counters have only grown since `from`.
    pub fn has_grown_since(&self, instance: &str, from: i64) -> bool {
        self.0
            .get(instance)
            .is_some_and(|m| *m + CLOCK_SKEW_S < from as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(c: &str, i: &str) -> (String, String) {
        (c.to_string(), i.to_string())
    }

    #[test]
    fn only_nodes_whose_marker_is_older_than_the_window_skip_the_pass() {
        let s = CounterStarts::new(
            [
                (k("c", "old"), 1_000.0),
                (k("c", "new"), 90_000.0),
                (k("c", "nan"), f64::NAN),
            ],
            [k("c", "old"), k("c", "new"), k("c", "nan"), k("c", "none")],
        );
        // The clock allowance: a start within an hour before the window is not old enough.
        assert_eq!(s.grown_since(4_600), Vec::<&str>::new());
        assert_eq!(s.grown_since(4_601), vec!["old"]);
        assert_eq!(s.grown_since(100_000), vec!["new", "old"]);
        assert!(s.has_grown_since("old", 5_000));
        assert!(!s.has_grown_since("new", 5_000));
        assert!(!s.has_grown_since("nan", 1e12 as i64), "no finite marker");
        assert!(!s.has_grown_since("none", 1e12 as i64), "no marker");
    }

    #[test]
    fn a_name_in_several_clusters_needs_the_marker_in_each() {
        let s = CounterStarts::new(
            [
                (k("a", "n1"), 1_000.0),
                (k("b", "n1"), 2_000.0),
                (k("a", "n2"), 1_000.0),
            ],
            [k("a", "n1"), k("b", "n1"), k("a", "n2"), k("b", "n2")],
        );
        assert_eq!(
            s.grown_since(5_601),
            vec!["n1"],
            "latest of a and b; n2 lacks b's"
        );
        assert_eq!(s.grown_since(4_700), Vec::<&str>::new());
    }
}
