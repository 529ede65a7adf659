//! The scenario file: a cluster, its users and its workload over a period, in YAML.
//!
//! Parsed with serde-saphyr like the exporter's configuration (`crate::config`): unknown keys and
//! wrong types are errors with the file, line and column; values are then checked here, and an
//! error names the file, the line (where the key can be found in the text) and the dotted key
//! (`node_groups[1].gpus.max_watts`). `main` turns every such error into exit status 2.
//!
//! Every key is documented in `docs/simulate.md`; keep the two in step.

//!
//! The format's parts: `values` (durations, times, sizes, choices and ranges), `nodes` (node
//! groups and their hardware), `jobs` (projects, users and the job mix), `events` (maintenance,
//! restarts, load outside jobs, faults), `time` (RFC 3339 and calendar helpers); `validate`
//! checks the values of each section after parsing.

mod events;
mod jobs;
mod nodes;
mod time;
mod validate;
mod values;

pub use events::*;
pub use jobs::*;
pub use nodes::*;
pub use time::*;
pub use values::*;

use serde::Deserialize;
use std::fmt;
use std::path::Path;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The `cluster` label added to every sample.
    pub cluster: String,
    pub start: Instant,
    pub duration: Span,
    /// Timestamps written: one scrape of every node every this often.
    pub scrape_interval: Span,
    /// The virtual sampler's cycle; default: the scrape interval.
    #[serde(default)]
    pub sample_interval: Option<Span>,
    /// Default seed (`--seed` overrides).
    #[serde(default)]
    pub seed: Option<u64>,
    /// The exporter's `jobs.grace_period`; default max(180 s, 2 scrape intervals).
    #[serde(default)]
    pub grace_period: Option<Span>,
    pub node_groups: Vec<NodeGroup>,
    pub projects: Vec<Project>,
    pub jobs: Jobs,
    #[serde(default)]
    pub arrivals: Arrivals,
    #[serde(default)]
    pub maintenance: Vec<Window>,
    #[serde(default)]
    pub restarts: Vec<Restart>,
    /// Load outside any job (a process started by hand, a GPU kept busy after its job ended).
    #[serde(default)]
    pub stray_load: Vec<StrayLoad>,
    /// Faults of the exporter's sources and sampler.
    #[serde(default)]
    pub faults: Vec<Fault>,
}

/// A scenario error: file, line where known, key and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioError(pub String);

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScenarioError {}

/// A node of the expanded cluster.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub name: String,
    /// Index into [`Scenario::node_groups`].
    pub group: usize,
    pub partition: String,
}

impl Scenario {
    /// Reads, parses and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ScenarioError(format!("cannot read scenario file {}: {e}", path.display()))
        })?;
        Scenario::parse(&text).map_err(|(line, key, msg)| {
            let line = line.map(|l| format!(" line {l}:")).unwrap_or_default();
            let key = if key.is_empty() {
                String::new()
            } else {
                format!(" {key}:")
            };
            ScenarioError(format!(
                "scenario file {}:{line}{key} {msg}",
                path.display()
            ))
        })
    }

    /// Parses and checks scenario text. Errors are (line, dotted key, message).
    pub fn parse(text: &str) -> Result<Scenario, (Option<usize>, String, String)> {
        let s: Scenario =
            serde_saphyr::from_str(text).map_err(|e| (None, String::new(), e.to_string()))?;
        s.validate()
            .map_err(|(key, msg)| (line_of_key(text, &key), key, msg))?;
        Ok(s)
    }

    pub fn sample_interval(&self) -> f64 {
        self.sample_interval.unwrap_or(self.scrape_interval).0
    }

    pub fn grace_period(&self) -> f64 {
        self.grace_period
            .map(|g| g.0)
            .unwrap_or_else(|| (2.0 * self.scrape_interval.0).max(180.0))
    }

    /// Every node, in order: groups as listed, numbers ascending.
    pub fn nodes(&self) -> Vec<NodeSpec> {
        let mut out = Vec::new();
        for (g, group) in self.node_groups.iter().enumerate() {
            let width = group.count.to_string().len().max(2);
            let prefix = group.prefix.as_deref().unwrap_or(&group.name);
            for i in 1..=group.count {
                out.push(NodeSpec {
                    name: format!("{prefix}{i:0width$}"),
                    group: g,
                    partition: group.partition().to_string(),
                });
            }
        }
        out
    }

    /// (name, weight) of project `i`'s users.
    pub fn users_of(&self, i: usize) -> Vec<(String, f64)> {
        let p = &self.projects[i];
        let mut out: Vec<(String, f64)> =
            p.users.iter().map(|u| (u.name.clone(), u.weight)).collect();
        if let Some(g) = &p.generated_users {
            let prefix = g.prefix.clone().unwrap_or_else(|| format!("{}-u", p.name));
            let width = g.count.to_string().len().max(2);
            out.extend((1..=g.count).map(|n| {
                (
                    format!("{prefix}{n:0width$}"),
                    1.0 / (n as f64).powf(g.zipf),
                )
            }));
        }
        out
    }

    /// Indices of the job classes project `i` submits.
    pub fn classes_of(&self, i: usize) -> Vec<usize> {
        let all = self.jobs.classes.iter().enumerate();
        match &self.projects[i].classes {
            None => all.map(|(c, _)| c).collect(),
            Some(names) => all
                .filter(|(_, c)| names.contains(&c.name))
                .map(|(c, _)| c)
                .collect(),
        }
    }

    pub fn project_of_user(&self, user: &str) -> Option<usize> {
        (0..self.projects.len()).find(|i| self.users_of(*i).iter().any(|(u, _)| u == user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_scenarios_are_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for f in [
            "deploy/demo/scenario.yaml",
            "bench/scenario-200.yaml",
            "tests/fixtures/simulate/small.yaml",
        ] {
            let s = Scenario::load(&root.join(f)).unwrap_or_else(|e| panic!("{e}"));
            assert!(!s.nodes().is_empty(), "{f}");
        }
        let demo = Scenario::load(&root.join("deploy/demo/scenario.yaml")).unwrap();
        assert_eq!(demo.nodes().len(), 15);
        let users: usize = (0..demo.projects.len())
            .map(|p| demo.users_of(p).len())
            .sum();
        assert_eq!((demo.projects.len(), users), (6, 25));
        let bench = Scenario::load(&root.join("bench/scenario-200.yaml")).unwrap();
        let users: usize = (0..bench.projects.len())
            .map(|p| bench.users_of(p).len())
            .sum();
        assert_eq!(
            (bench.nodes().len(), users, bench.jobs.count),
            (200, 300, Some(80_000))
        );
    }

    /// Scenario durations go through the exporter's one parser: days and weeks read, a bad
    /// value quoted with where it is.
    #[test]
    fn durations_use_the_one_parser() {
        let base = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/simulate/small.yaml"),
        )
        .unwrap();
        let s = Scenario::parse(&base.replacen("duration: 12h", "duration: 2d", 1)).unwrap();
        assert_eq!(s.duration, Span(2.0 * 86400.0));
        let s = Scenario::parse(&base.replacen("max: 3h}", "max: 1w}", 1)).unwrap();
        assert_eq!(s.jobs.classes[0].duration.max, Span(7.0 * 86400.0));
        let (_, _, msg) =
            Scenario::parse(&base.replacen("duration: 12h", "duration: 12 parsecs", 1))
                .unwrap_err();
        assert!(
            msg.contains("\"12 parsecs\"") && msg.contains("1d, 1w") && msg.contains("line 7"),
            "{msg}"
        );
    }

    #[test]
    fn values_are_checked_with_their_key_and_line() {
        let base = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/simulate/small.yaml"),
        )
        .unwrap();
        let cases = [
            (
                "scrape_interval: 60s",
                "scrape_interval: 45s",
                "sample_interval",
            ),
            (
                "rapl_range_uj: 10000000000",
                "rapl_range_uj: 1000",
                "node_groups[0].rapl_range_uj",
            ),
            (
                "pattern: \"final-*\"",
                "pattern: \"final\"",
                "projects[0].final_runs.pattern",
            ),
            (
                "{from: \"20:00\"",
                "{from: \"25:00\"",
                "arrivals.night.from",
            ),
            (
                "count: 60",
                "count: 60\n  arrivals_per_hour: 3",
                "jobs.count",
            ),
        ];
        for (from, to, key) in cases {
            if key.is_empty() || !base.contains(from) {
                continue;
            }
            let text = base.replacen(from, to, 1);
            let (line, k, msg) = Scenario::parse(&text).unwrap_err();
            assert_eq!(k, key, "{msg}");
            assert!(line.is_some(), "{key}: {msg}");
        }
        let text = base.replacen("rapl_range_uj: 10000000000", "rapl_range_uj: 1000", 1);
        let (line, _, _) = Scenario::parse(&text).unwrap_err();
        assert_eq!(
            line,
            base.lines()
                .position(|l| l.contains("rapl_range_uj"))
                .map(|i| i + 1)
        );
    }
}
