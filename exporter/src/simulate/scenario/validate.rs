//! Checks a parsed scenario's values, section by section: each error is the dotted key and what
//! is wrong with it (`Scenario::parse` adds the line).

use super::*;
use std::collections::{BTreeMap, BTreeSet};

impl Scenario {
    /// Checks values; returns the dotted key and what is wrong.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let (start, end) = self.validate_timing()?;
        let (names, nodes) = self.validate_nodes()?;
        self.validate_projects()?;
        self.validate_jobs(&nodes, start, end)?;
        self.validate_calendar(&names, start, end)?;
        self.validate_loads_and_faults(&names, &nodes, start, end)
    }

    /// The cluster name, intervals and period; returns the period (start, end), Unix seconds.
    fn validate_timing(&self) -> Result<(f64, f64), (String, String)> {
        check_name("cluster", &self.cluster)?;
        let step = self.sample_interval();
        let scrape = self.scrape_interval.0;
        if !(scrape >= 1.0 && scrape.fract() == 0.0) {
            return bad(
                "scrape_interval".into(),
                format!("{scrape} s: must be a whole number of seconds, at least 1 s"),
            );
        }
        if !(step >= 1.0 && step.fract() == 0.0 && (scrape / step).fract() == 0.0) {
            return bad(
                "sample_interval".into(),
                format!(
                    "{step} s: must be a whole number of seconds, at least 1 s, that divides the scrape interval ({scrape} s)"
                ),
            );
        }
        if self.start.0.fract() != 0.0 || self.start.0 < 0.0 {
            return bad(
                "start".into(),
                "must be a whole second at or after 1970-01-01".into(),
            );
        }
        let d = self.duration.0;
        if !(d >= scrape && d <= 400.0 * 86400.0) {
            return bad(
                "duration".into(),
                format!("{d} s: must be between one scrape interval and 400 days"),
            );
        }
        if self.grace_period() < scrape {
            return bad(
                "grace_period".into(),
                format!(
                    "{} s is shorter than the scrape interval ({scrape} s): a job's final counters would be dropped before they are scraped",
                    self.grace_period()
                ),
            );
        }
        Ok((self.start.0, self.start.0 + d))
    }

    /// Node groups; returns the node names and the nodes.
    fn validate_nodes(&self) -> Result<(BTreeSet<String>, Vec<NodeSpec>), (String, String)> {
        let step = self.sample_interval();
        if self.node_groups.is_empty() {
            return bad("node_groups".into(), "at least one node group".into());
        }
        let mut names = BTreeSet::new();
        for (i, g) in self.node_groups.iter().enumerate() {
            let k = |f: &str| format!("node_groups[{i}].{f}");
            check_name(&k("name"), &g.name)?;
            if let Some(p) = &g.prefix {
                check_name(&k("prefix"), p)?;
            }
            if let Some(p) = &g.partition {
                check_name(&k("partition"), p)?;
            }
            if g.count == 0 || g.count > 100_000 {
                return bad(k("count"), format!("{}: must be 1..100000", g.count));
            }
            for (f, v, max) in [
                ("sockets", g.sockets, 16),
                ("cores_per_socket", g.cores_per_socket, 1024),
                ("threads_per_core", g.threads_per_core, 8),
            ] {
                if v == 0 || v > max {
                    return bad(k(f), format!("{v}: must be 1..{max}"));
                }
            }
            if g.memory.0 == 0 {
                return bad(k("memory"), "must be more than 0 bytes".into());
            }
            check_power(&k("package_watts"), g.package_watts)?;
            let mut zones = vec![("rapl_range_uj", g.rapl_range_uj, g.package_watts.max)];
            if let Some(p) = g.dram_watts {
                check_power(&k("dram_watts"), p)?;
                zones.push(("rapl_dram_range_uj", g.rapl_dram_range_uj, p.max));
            }
            for (key, range, watts) in zones {
                // The exporter corrects one wrap per sample; two wraps between samples are
                // invisible to it (and to any reader of the counter).
                if range as f64 <= watts * step * 1e6 {
                    return bad(
                        k(key),
                        format!(
                            "{range} µJ wraps more than once per sample interval at {watts} W ({step} s): use a range above {:.0} µJ or a shorter sample_interval",
                            watts * step * 1e6
                        ),
                    );
                }
            }
            if let Some(b) = &g.bmc {
                check_power(&k("bmc.other_watts"), b.other_watts)?;
            }
            if let Some(gpu) = &g.gpus {
                check_gpus(i, gpu)?;
            }
        }
        let nodes = self.nodes();
        for n in &nodes {
            if !names.insert(n.name.clone()) {
                return bad(
                    "node_groups".into(),
                    format!(
                        "two nodes are named {:?}: give the groups distinct prefixes",
                        n.name
                    ),
                );
            }
        }
        Ok((names, nodes))
    }

    /// Projects and their users.
    fn validate_projects(&self) -> Result<(), (String, String)> {
        if self.projects.is_empty() {
            return bad("projects".into(), "at least one project".into());
        }
        let class_names: BTreeSet<&str> =
            self.jobs.classes.iter().map(|c| c.name.as_str()).collect();
        let mut projects = BTreeSet::new();
        let mut users = BTreeSet::new();
        for (i, p) in self.projects.iter().enumerate() {
            let k = |f: &str| format!("projects[{i}].{f}");
            check_name(&k("name"), &p.name)?;
            if !projects.insert(p.name.as_str()) {
                return bad(k("name"), format!("project {:?} listed twice", p.name));
            }
            if let Some(cs) = &p.classes {
                if cs.is_empty() {
                    return bad(k("classes"), "empty: leave it out for all classes".into());
                }
                for c in cs {
                    if !class_names.contains(c.as_str()) {
                        return bad(k("classes"), format!("no job class named {c:?}"));
                    }
                }
            }
            if let Some(f) = &p.final_runs {
                if f.pattern.matches('*').count() != 1 {
                    return bad(
                        k("final_runs.pattern"),
                        format!("{:?} must hold exactly one * (the job's name)", f.pattern),
                    );
                }
                if !(0.0..=1.0).contains(&f.share) {
                    return bad(k("final_runs.share"), format!("{}: must be 0..1", f.share));
                }
                if !(f.duration_factor.is_finite() && f.duration_factor > 0.0) {
                    return bad(
                        k("final_runs.duration_factor"),
                        format!("{}: must be > 0", f.duration_factor),
                    );
                }
            }
            let list = self.users_of(i);
            if list.is_empty() {
                return bad(
                    k("users"),
                    "at least one user (users or generated_users)".into(),
                );
            }
            for (j, (u, w)) in list.iter().enumerate() {
                check_name(&format!("projects[{i}].users[{j}].name"), u)?;
                if !(w.is_finite() && *w > 0.0) {
                    return bad(
                        format!("projects[{i}].users[{j}].weight"),
                        format!("{w}: must be > 0"),
                    );
                }
                if !users.insert(u.clone()) {
                    return bad(
                        format!("projects[{i}].users"),
                        format!("user {u:?} is in two projects (or listed twice)"),
                    );
                }
            }
        }
        Ok(())
    }

    /// The job mix: count or arrival rate, classes, explicit jobs.
    fn validate_jobs(
        &self,
        nodes: &[NodeSpec],
        start: f64,
        end: f64,
    ) -> Result<(), (String, String)> {
        let j = &self.jobs;
        match (j.count, j.arrivals_per_hour) {
            (Some(_), Some(_)) => {
                return bad(
                    "jobs.count".into(),
                    "give either count or arrivals_per_hour, not both".into(),
                )
            }
            (Some(c), None) if c > 10_000_000 => {
                return bad("jobs.count".into(), format!("{c}: at most 10,000,000"))
            }
            (None, Some(r)) if !(r.is_finite() && (0.0..=100_000.0).contains(&r)) => {
                return bad(
                    "jobs.arrivals_per_hour".into(),
                    format!("{r}: must be 0..100000"),
                )
            }
            (None, None) if j.explicit.is_empty() => {
                return bad(
                    "jobs.count".into(),
                    "give count or arrivals_per_hour (or explicit jobs)".into(),
                )
            }
            _ => {}
        }
        if j.classes.is_empty() {
            return bad("jobs.classes".into(), "at least one job class".into());
        }
        let mut seen = BTreeSet::new();
        for (i, c) in j.classes.iter().enumerate() {
            let k = |f: &str| format!("jobs.classes[{i}].{f}");
            if c.name.is_empty() || !seen.insert(c.name.as_str()) {
                return bad(k("name"), format!("{:?}: empty or listed twice", c.name));
            }
            self.check_class(k, c, nodes)?;
        }
        if j.classes.iter().all(|c| c.weight == 0.0) && j.count.unwrap_or(1) > 0 {
            return bad("jobs.classes".into(), "every class has weight 0".into());
        }
        for i in 0..self.projects.len() {
            let allowed = self.classes_of(i);
            if allowed.iter().all(|c| self.jobs.classes[*c].weight == 0.0) {
                return bad(
                    format!("projects[{i}].classes"),
                    "the project's classes all have weight 0".into(),
                );
            }
        }
        for (i, e) in j.explicit.iter().enumerate() {
            let k = |f: &str| format!("jobs.explicit[{i}].{f}");
            self.check_explicit(k, e, nodes, start, end)?;
        }
        Ok(())
    }

    /// Job class `c` (its name already checked); `k` makes its dotted keys.
    fn check_class(
        &self,
        k: impl Fn(&str) -> String,
        c: &JobClass,
        nodes: &[NodeSpec],
    ) -> Result<(), (String, String)> {
        if !(c.weight.is_finite() && c.weight >= 0.0) {
            return bad(k("weight"), format!("{}: must be >= 0", c.weight));
        }
        let members: Vec<&NodeSpec> = nodes
            .iter()
            .filter(|n| n.partition == c.partition)
            .collect();
        if members.is_empty() {
            return bad(
                k("partition"),
                format!("no node group has partition {:?}", c.partition),
            );
        }
        let max_cores = members
            .iter()
            .map(|n| self.node_groups[n.group].physical_cores())
            .max()
            .unwrap_or(0);
        let max_gpus = members
            .iter()
            .map(|n| self.node_groups[n.group].gpu_count())
            .max()
            .unwrap_or(0);
        for (f, opts, lo, hi) in [
            ("nodes", c.nodes.options(), 1, members.len() as u32),
            ("cores", c.cores.options(), 1, max_cores),
            ("gpus", c.gpus.options(), 0, max_gpus),
        ] {
            if opts.is_empty() {
                return bad(k(f), "empty list".into());
            }
            if let Some(v) = opts.iter().find(|v| **v < lo || **v > hi) {
                return bad(
                    k(f),
                    format!(
                        "{v} cannot run in partition {:?} (possible: {lo}..{hi})",
                        c.partition
                    ),
                );
            }
        }
        let dd = &c.duration;
        let min = dd.min.map_or(0.0, |m| m.0);
        if !(dd.median.0 > 0.0 && dd.max.0 >= dd.median.0 && min <= dd.median.0) {
            return bad(
                k("duration"),
                "needs 0 < median, min <= median <= max".into(),
            );
        }
        if !(dd.sigma.is_finite() && (0.0..=5.0).contains(&dd.sigma)) {
            return bad(k("duration.sigma"), format!("{}: must be 0..5", dd.sigma));
        }
        for (f, r) in [("cpu_util", &c.cpu_util), ("gpu_util", &c.gpu_util)] {
            if let Range::Between(v) = r {
                if v.len() != 2 {
                    return bad(k(f), "a number or [low, high]".into());
                }
            }
            let (lo, hi) = r.bounds();
            if !(0.0 <= lo && lo <= hi && hi <= 1.0) {
                return bad(k(f), format!("[{lo}, {hi}] must lie in 0..1, low <= high"));
            }
        }
        Ok(())
    }

    /// Explicit job `e`; `k` makes its dotted keys.
    fn check_explicit(
        &self,
        k: impl Fn(&str) -> String,
        e: &ExplicitJob,
        nodes: &[NodeSpec],
        start: f64,
        end: f64,
    ) -> Result<(), (String, String)> {
        let j = &self.jobs;
        if self.project_of_user(&e.user).is_none() {
            return bad(k("user"), format!("no project has user {:?}", e.user));
        }
        let Some(c) = j.classes.iter().find(|c| c.name == e.class) else {
            return bad(k("class"), format!("no job class named {:?}", e.class));
        };
        if !(start..end).contains(&e.submit.0) {
            return bad(k("submit"), "outside the simulated period".into());
        }
        if e.duration.0 <= 0.0 {
            return bad(k("duration"), "must be > 0".into());
        }
        let members: Vec<&NodeSpec> = nodes
            .iter()
            .filter(|n| n.partition == c.partition)
            .collect();
        let fits = members.iter().filter(|n| {
            let g = &self.node_groups[n.group];
            e.cores.unwrap_or(1) <= g.physical_cores() && e.gpus.unwrap_or(0) <= g.gpu_count()
        });
        let nodes = e.nodes.unwrap_or(1);
        if fits.count() < nodes as usize || nodes == 0 || e.cores == Some(0) {
            return bad(
                k("cores"),
                format!("the job cannot fit in partition {:?}", c.partition),
            );
        }
        for (f, v) in [("cpu_util", e.cpu_util), ("gpu_util", e.gpu_util)] {
            if let Some(v) = v {
                if !(0.0..=1.0).contains(&v) {
                    return bad(k(f), format!("{v}: must be 0..1"));
                }
            }
        }
        Ok(())
    }

    /// Arrival shape, maintenance windows and exporter restarts.
    fn validate_calendar(
        &self,
        names: &BTreeSet<String>,
        start: f64,
        end: f64,
    ) -> Result<(), (String, String)> {
        if let Some(n) = &self.arrivals.night {
            for (f, v) in [("from", &n.from), ("to", &n.to)] {
                if parse_hhmm(v).is_none() {
                    return bad(format!("arrivals.night.{f}"), format!("{v:?} is not HH:MM"));
                }
            }
            if !(0.0..=1.0).contains(&n.factor) {
                return bad("arrivals.night.factor".into(), "must be 0..1".into());
            }
        }
        if let Some(f) = self.arrivals.weekend_factor {
            if !(0.0..=1.0).contains(&f) {
                return bad("arrivals.weekend_factor".into(), "must be 0..1".into());
            }
        }
        for (i, w) in self.maintenance.iter().enumerate() {
            if w.duration.0 <= 0.0 || w.start.0 + w.duration.0 <= start || w.start.0 >= end {
                return bad(
                    format!("maintenance[{i}].start"),
                    "the window must have a duration and overlap the simulated period".into(),
                );
            }
        }
        for (i, r) in self.restarts.iter().enumerate() {
            if !names.contains(&r.node) {
                return bad(
                    format!("restarts[{i}].node"),
                    format!("no node named {:?}", r.node),
                );
            }
            if !(r.at.0 > start && r.at.0 + r.downtime.0 < end) {
                return bad(
                    format!("restarts[{i}].at"),
                    "the exporter must stop and start again inside the simulated period".into(),
                );
            }
            if r.downtime.0 <= 0.0 {
                return bad(format!("restarts[{i}].downtime"), "must be > 0".into());
            }
        }
        Ok(())
    }

    /// Load outside jobs, then faults.
    fn validate_loads_and_faults(
        &self,
        names: &BTreeSet<String>,
        nodes: &[NodeSpec],
        start: f64,
        end: f64,
    ) -> Result<(), (String, String)> {
        let in_period = |at: f64, d: f64| d > 0.0 && at >= start && at + d <= end;
        for (i, l) in self.stray_load.iter().enumerate() {
            let k = |f: &str| format!("stray_load[{i}].{f}");
            if !names.contains(&l.node) {
                return bad(k("node"), format!("no node named {:?}", l.node));
            }
            if !in_period(l.start.0, l.duration.0) {
                return bad(
                    k("start"),
                    "the load must have a duration and lie inside the simulated period".into(),
                );
            }
            for (f, v) in [("cpu_util", l.cpu_util), ("gpu_util", l.gpu_util)] {
                if !(0.0..=1.0).contains(&v) {
                    return bad(k(f), format!("{v}: must be 0..1"));
                }
            }
        }
        self.validate_faults(nodes, start, end)
    }

    /// Faults of the exporter's sources and sampler.
    fn validate_faults(
        &self,
        nodes: &[NodeSpec],
        start: f64,
        end: f64,
    ) -> Result<(), (String, String)> {
        let in_period = |at: f64, d: f64| d > 0.0 && at >= start && at + d <= end;
        let groups: BTreeMap<&str, &NodeGroup> = nodes
            .iter()
            .map(|n| (n.name.as_str(), &self.node_groups[n.group]))
            .collect();
        for (i, f) in self.faults.iter().enumerate() {
            let k = |x: &str| format!("faults[{i}].{x}");
            let Some(g) = groups.get(f.node.as_str()) else {
                return bad(k("node"), format!("no node named {:?}", f.node));
            };
            let d = f.duration.map_or(0.0, |d| d.0);
            match f.kind {
                FaultKind::GpuCounterJump => {
                    if g.gpu_count() == 0 {
                        return bad(k("node"), format!("{}: has no GPU", f.node));
                    }
                    if !(f.start.0 > start && f.start.0 < end) {
                        return bad(k("start"), "must lie inside the simulated period".into());
                    }
                }
                FaultKind::SourceDown | FaultKind::SamplerStall => {
                    if !in_period(f.start.0, d) {
                        return bad(
                            k("duration"),
                            "the fault needs a duration and must lie inside the simulated period"
                                .into(),
                        );
                    }
                }
            }
            if f.kind == FaultKind::SourceDown {
                let has = match f.source {
                    None => return bad(k("source"), "rapl, nvml, amdgpu, intel_gpu or bmc".into()),
                    Some(FaultSource::Rapl) => true,
                    Some(FaultSource::Nvml) => g.gpu_maker() == Some(GpuMaker::Nvidia),
                    Some(FaultSource::Amdgpu) => g.gpu_maker() == Some(GpuMaker::Amd),
                    Some(FaultSource::IntelGpu) => g.gpu_maker() == Some(GpuMaker::Intel),
                    Some(FaultSource::Bmc) => g.bmc.is_some(),
                };
                if !has {
                    return bad(
                        k("source"),
                        format!("{}: the node has no such source", f.node),
                    );
                }
            }
        }
        Ok(())
    }
}

/// A node group's `gpus` (group `i`).
fn check_gpus(i: usize, gpu: &Gpus) -> Result<(), (String, String)> {
    let k = |f: &str| format!("node_groups[{i}].gpus.{f}");
    if gpu.count == 0 || gpu.count > 64 {
        return bad(k("count"), format!("{}: must be 1..64", gpu.count));
    }
    check_power(
        &k("idle_watts"),
        Power {
            idle: gpu.idle_watts,
            max: gpu.max_watts,
        },
    )?;
    if let Some(l) = gpu.power_limit_watts {
        if !(l.is_finite() && l > 0.0) {
            return bad(k("power_limit_watts"), format!("{l}: must be > 0"));
        }
    }
    if !gpu
        .uuid_prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return bad(k("uuid_prefix"), "letters, digits, - and _ only".into());
    }
    if let Some(mig) = &gpu.mig {
        if gpu.vendor != GpuMaker::Nvidia {
            return bad(k("mig"), "MIG is NVIDIA's: drop `vendor`".into());
        }
        if let Some(x) = mig.iter().find(|x| ![1, 2, 3, 4, 7].contains(*x)) {
            return bad(
                k("mig"),
                format!("{x}: an instance is 1, 2, 3, 4 or 7 slices"),
            );
        }
        let sum: u32 = mig.iter().sum();
        if mig.is_empty() || sum > MIG_SLICES {
            return bad(
                k("mig"),
                format!("{mig:?}: 1 to {MIG_SLICES} slices in all"),
            );
        }
    }
    Ok(())
}

fn bad<T>(key: String, msg: String) -> Result<T, (String, String)> {
    Err((key, msg))
}

/// Names end up in label values and node names: keep them to a safe set so that no escaping is
/// ever needed where the simulator writes them itself.
fn check_name(key: &str, v: &str) -> Result<(), (String, String)> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err((
            key.to_string(),
            format!("{v:?}: use 1 to 64 letters, digits, '-', '_' or '.'"),
        ))
    }
}

fn check_power(key: &str, p: Power) -> Result<(), (String, String)> {
    if p.idle.is_finite() && p.max.is_finite() && 0.0 <= p.idle && p.idle <= p.max && p.max > 0.0 {
        Ok(())
    } else {
        Err((
            key.to_string(),
            format!(
                "idle {} W and max {} W: need 0 <= idle <= max, max > 0",
                p.idle, p.max
            ),
        ))
    }
}
