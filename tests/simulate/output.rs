//! The output file itself: same seed same bytes, what promtool needs, the restart marker, the
//! balance jobs + unallocated = node, owner counters, and every job against the truth.

use super::*;

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let run = small();
    let dir = tempfile::tempdir().unwrap();
    let (out, truth) = simulate(&fixture("simulate/small.yaml"), dir.path(), "b", &[]);
    assert!(
        std::fs::read(&out).unwrap() == run.text.as_bytes(),
        "two runs with the same seed differ"
    );
    let t: Value = serde_json::from_slice(&std::fs::read(&truth).unwrap()).unwrap();
    assert_eq!(t, run.truth);
    let (out, _) = simulate(
        &fixture("simulate/small.yaml"),
        dir.path(),
        "c",
        &["--seed", "8"],
    );
    assert!(std::fs::read(&out).unwrap() != run.text.as_bytes());
}

#[test]
fn the_file_is_what_promtool_needs() {
    let run = small();
    assert!(run.text.ends_with("# EOF\n"));
    assert_eq!(run.text.matches("# EOF").count(), 1);
    let mut described = std::collections::HashSet::new();
    let mut last_ts: BTreeMap<String, i64> = BTreeMap::new();
    for line in run.text.lines() {
        if let Some(meta) = line.strip_prefix("# ") {
            if meta != "EOF" {
                assert!(
                    described.insert(meta.split(' ').take(2).collect::<Vec<_>>().join(" ")),
                    "metadata written twice: {line}"
                );
            }
            continue;
        }
        let l = parse_line(line).unwrap();
        for k in ["instance", "job", "cluster"] {
            assert!(l.labels.contains_key(k), "{line}");
        }
        assert_eq!(l.labels["cluster"], "testlab");
        assert_eq!(l.labels["job"], "joulebook");
        let series = line.rsplitn(3, ' ').nth(2).unwrap().to_string();
        if let Some(prev) = last_ts.insert(series, l.ts) {
            assert!(l.ts > prev, "series out of time order: {line}");
        }
    }
}

/// A restart that lost its state file (`lose_state`): the node's counters start again from zero
/// and its restart marker moves to the first cycle after it; the other nodes' markers stay.
#[test]
fn restart_without_state_moves_the_restart_marker() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let text = std::fs::read_to_string(fixture("simulate/small.yaml")).expect("small.yaml");
    let text = text
        .replace("duration: 12h", "duration: 4h")
        .replace("  - {start: 2025-03-03T12:00:00Z, duration: 1h}\n", "")
        .replace("maintenance:\n", "")
        .replace("downtime: 30s}", "downtime: 30s, lose_state: true}");
    assert!(
        text.contains("lose_state: true"),
        "small.yaml's restart changed"
    );
    let scenario = dir.path().join("lost.yaml");
    std::fs::write(&scenario, text).expect("write lost.yaml");
    let (out, truth) = simulate(&scenario, dir.path(), "l", &[]);
    let truth: Value = serde_json::from_slice(&std::fs::read(truth).expect("truth")).expect("JSON");
    let up = truth["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["name"] == "cpu01")
        .and_then(|n| n["restarts"][0]["up_unix"].as_f64())
        .expect("cpu01's restart");
    let lines = samples(&std::fs::read_to_string(out).expect("output"));
    let mut markers: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut cpu_energy: Vec<(i64, f64)> = Vec::new();
    for l in &lines {
        let inst = l.labels["instance"].clone();
        if l.name == "joulebook_counters_start_time_seconds" {
            markers.entry(inst).or_default().insert(l.value as u64);
        } else if inst == "cpu01:9977"
            && l.name == "joulebook_node_joules_total"
            && l.labels["component"] == "cpu"
        {
            cpu_energy.push((l.ts, l.value));
        }
    }
    let cpu01 = &markers["cpu01:9977"];
    assert_eq!(cpu01.len(), 2, "{markers:?}");
    assert_eq!(
        cpu01.last().copied(),
        Some(up as u64),
        "moved to the first cycle after"
    );
    assert!(markers
        .iter()
        .filter(|(i, _)| *i != "cpu01:9977")
        .all(|(_, m)| m.len() == 1));
    assert!(
        cpu_energy.windows(2).any(|w| w[1].1 < w[0].1 / 2.0),
        "the counters started again from zero"
    );
}

#[test]
fn jobs_plus_unallocated_equal_the_node_and_counters_only_grow() {
    jobs_plus_unallocated_equal_the_node_and_counters_only_grow_in(small());
    jobs_plus_unallocated_equal_the_node_and_counters_only_grow_in(intel());
}

fn jobs_plus_unallocated_equal_the_node_and_counters_only_grow_in(run: &Run) {
    let lines = samples(&run.text);
    let restarts = restart_ups(run);
    // Per instance and timestamp: node and unallocated by component; the job values scraped.
    let mut node: BTreeMap<Key, BTreeMap<String, i64>> = BTreeMap::new();
    let mut unallocated: BTreeMap<Key, BTreeMap<String, i64>> = BTreeMap::new();
    let mut jobs_at: BTreeMap<Key, Vec<(String, String, i64)>> = BTreeMap::new();
    let mut last: BTreeMap<String, (i64, f64)> = BTreeMap::new();
    let mut wraps = 0.0f64;
    // The restart marker of each instance: set by its first cycle, kept through every restart
    // (the simulator's exporters resume from their state file).
    let mut marker: BTreeMap<String, f64> = BTreeMap::new();
    for l in &lines {
        let inst = l.labels["instance"].clone();
        if l.name == "joulebook_counters_start_time_seconds" {
            let first = *marker.entry(inst.clone()).or_insert(l.value);
            assert_eq!(l.value, first, "{inst}: the marker moved at {}", l.ts);
            assert!(
                l.value > 0.0 && l.value <= l.ts as f64,
                "{inst}: {}",
                l.value
            );
        }
        let series = format!("{}{:?}", l.name, l.labels);
        let counter = l.name.ends_with("_total");
        if let Some((ts, prev)) = last.insert(series.clone(), (l.ts, l.value)) {
            if counter && l.value < prev {
                // Only the exporter's own health counters restart with the process (they are
                // not in the state file), at the first scrape after it came back; energy and
                // job counters never go back.
                let health =
                    ["joulebook_samples_total", "joulebook_wraps_total"].contains(&l.name.as_str());
                let restarted = restarts[&inst].iter().any(|up| ts < *up && *up <= l.ts);
                assert!(
                    health && restarted,
                    "{series} went from {prev} to {} between {ts} and {}",
                    l.value,
                    l.ts
                );
            }
        }
        let key = (inst, l.ts);
        match l.name.as_str() {
            "joulebook_node_joules_total" => {
                node.entry(key)
                    .or_default()
                    .insert(l.labels["component"].clone(), uj(l.value));
            }
            "joulebook_unallocated_joules_total" => {
                unallocated
                    .entry(key)
                    .or_default()
                    .insert(l.labels["component"].clone(), uj(l.value));
            }
            "joulebook_job_joules_total" => jobs_at.entry(key).or_default().push((
                l.labels["job_id"].clone(),
                l.labels["component"].clone(),
                uj(l.value),
            )),
            "joulebook_wraps_total" if l.labels["source"] == "rapl" => wraps = wraps.max(l.value),
            _ => {}
        }
    }
    assert!(
        wraps > 100.0,
        "the small RAPL ranges should wrap often: {wraps}"
    );
    assert_eq!(
        marker.keys().collect::<Vec<_>>(),
        restarts.keys().collect::<Vec<_>>(),
        "every node publishes the marker"
    );
    let checked = assert_balanced(&node, &unallocated, &jobs_at);
    assert!(checked > 2000, "{checked}");
}

/// (instance, Unix seconds) of a scrape.
type Key = (String, i64);

/// The Unix seconds at which each instance's exporter came back from a restart, by instance.
fn restart_ups(run: &Run) -> BTreeMap<String, Vec<i64>> {
    run.truth["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let ups = n["restarts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["up_unix"].as_i64().unwrap())
                .collect();
            (format!("{}:9977", n["name"].as_str().unwrap()), ups)
        })
        .collect()
}

/// Asserts jobs (the last value of every job seen so far) + unallocated = node at every scrape
/// of every instance, per component; returns how many were checked.
fn assert_balanced(
    node: &BTreeMap<Key, BTreeMap<String, i64>>,
    unallocated: &BTreeMap<Key, BTreeMap<String, i64>>,
    jobs_at: &BTreeMap<Key, Vec<(String, String, i64)>>,
) -> usize {
    let mut job_last: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    let mut checked = 0;
    for ((inst, ts), comps) in node {
        for (job, comp, v) in jobs_at.get(&(inst.clone(), *ts)).into_iter().flatten() {
            job_last.insert((inst.clone(), job.clone(), comp.clone()), *v);
        }
        for (comp, n) in comps {
            let jobs: i64 = job_last
                .iter()
                .filter(|((i, _, c), _)| i == inst && c == comp)
                .map(|(_, v)| v)
                .sum();
            let un = unallocated[&(inst.clone(), *ts)][comp];
            assert_eq!(
                jobs + un,
                *n,
                "{inst} at {ts}, {comp}: jobs {jobs} + unallocated {un} != node {n}"
            );
            checked += 1;
        }
    }
    checked
}

#[test]
fn owner_counters_are_the_sums_of_their_jobs_counters() {
    owner_counters_are_the_sums_of_their_jobs_counters_in(small());
    owner_counters_are_the_sums_of_their_jobs_counters_in(intel());
}

/// At every node and timestamp, each (account, user) pair's energy counter equals the sum of the
/// last values of its jobs' counters on that node, to the microjoule, per component (so owners +
/// unallocated = node too), and its core-seconds the sum of its jobs' (to float rounding).
fn owner_counters_are_the_sums_of_their_jobs_counters_in(run: &Run) {
    type Pair = (String, String);
    let lines = samples(&run.text);
    // Per (instance, job): its pair, from joulebook_job_info.
    let mut owner_of: BTreeMap<(String, String), Pair> = BTreeMap::new();
    for l in lines.iter().filter(|l| l.name == "joulebook_job_info") {
        let pair = (l.labels["account"].clone(), l.labels["user"].clone());
        owner_of.insert(
            (l.labels["instance"].clone(), l.labels["job_id"].clone()),
            pair,
        );
    }
    // Last value of every job and owner series so far, by (instance, pair, component).
    let mut jobs: BTreeMap<(String, String, String), (Pair, i64)> = BTreeMap::new();
    let mut job_core: BTreeMap<(String, String), (Pair, f64)> = BTreeMap::new();
    let mut owners: BTreeMap<(String, Pair, String), i64> = BTreeMap::new();
    let mut owner_core: BTreeMap<(String, Pair), f64> = BTreeMap::new();
    let mut by_time: BTreeMap<(String, i64), Vec<&Line>> = BTreeMap::new();
    for l in &lines {
        by_time
            .entry((l.labels["instance"].clone(), l.ts))
            .or_default()
            .push(l);
    }
    let (mut checked, mut pairs_seen) = (0, std::collections::BTreeSet::new());
    for ((inst, ts), ls) in &by_time {
        for l in ls {
            let pair = || (l.labels["account"].clone(), l.labels["user"].clone());
            let job_pair = || owner_of[&(inst.clone(), l.labels["job_id"].clone())].clone();
            match l.name.as_str() {
                "joulebook_job_joules_total" => {
                    let k = (
                        inst.clone(),
                        l.labels["job_id"].clone(),
                        l.labels["component"].clone(),
                    );
                    jobs.insert(k, (job_pair(), uj(l.value)));
                }
                "joulebook_job_core_seconds_total" => {
                    job_core.insert(
                        (inst.clone(), l.labels["job_id"].clone()),
                        (job_pair(), l.value),
                    );
                }
                "joulebook_owner_joules_total" => {
                    owners.insert(
                        (inst.clone(), pair(), l.labels["component"].clone()),
                        uj(l.value),
                    );
                }
                "joulebook_owner_core_seconds_total" => {
                    owner_core.insert((inst.clone(), pair()), l.value);
                }
                _ => {}
            }
        }
        for ((i, pair, comp), v) in owners.iter().filter(|((i, _, _), _)| i == inst) {
            let sum: i64 = jobs
                .iter()
                .filter(|((ji, _, c), (p, _))| ji == i && c == comp && p == pair)
                .map(|(_, (_, v))| v)
                .sum();
            assert_eq!(
                *v, sum,
                "{i} at {ts}, {pair:?} {comp}: owner {v} != its jobs {sum}"
            );
            pairs_seen.insert(pair.clone());
            checked += 1;
        }
        for ((i, pair), v) in owner_core.iter().filter(|((i, _), _)| i == inst) {
            let sum: f64 = job_core
                .iter()
                .filter(|((ji, _), (p, _))| ji == i && p == pair)
                .map(|(_, (_, v))| v)
                .sum();
            assert!(
                (v - sum).abs() <= 1e-6 * sum.max(1.0),
                "{i} at {ts}, {pair:?}: {v} != {sum}"
            );
        }
    }
    assert!(checked > 1000, "{checked}");
    assert!(pairs_seen.len() >= 2, "{pairs_seen:?}");
}

#[test]
fn every_job_ends_at_its_truth_and_the_truth_agrees_with_the_hardware() {
    every_job_ends_at_its_truth_and_the_truth_agrees_with_the_hardware_in(small());
    every_job_ends_at_its_truth_and_the_truth_agrees_with_the_hardware_in(intel());
}

fn every_job_ends_at_its_truth_and_the_truth_agrees_with_the_hardware_in(run: &Run) {
    let lines = samples(&run.text);
    let mut final_j: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    let mut info: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for l in &lines {
        match l.name.as_str() {
            "joulebook_job_joules_total" => {
                let node = l.labels["instance"].trim_end_matches(":9977").to_string();
                final_j.insert(
                    (
                        l.labels["job_id"].clone(),
                        node,
                        l.labels["component"].clone(),
                    ),
                    l.value,
                );
            }
            "joulebook_job_info" => {
                info.insert(l.labels["job_id"].clone(), l.labels.clone());
            }
            _ => {}
        }
    }
    let t = &run.truth;
    assert_eq!(t["schema"], "joulebook-simulate-truth/1");
    let jobs = t["jobs"].as_array().unwrap();
    assert!(jobs.len() >= 50);
    let mut seen_multi = false;
    let mut seen_tiny = false;
    for j in jobs {
        let id = j["id"].as_str().unwrap();
        if j["start_unix"].is_null() {
            continue;
        }
        let meta = &info[id];
        for k in ["user", "account", "partition"] {
            assert_eq!(meta[k], j[k].as_str().unwrap(), "job {id} {k}");
        }
        assert_eq!(meta["job_name"], j["name"].as_str().unwrap());
        for (node, by_comp) in j["by_node"].as_object().unwrap() {
            for (comp, v) in by_comp.as_object().unwrap() {
                let got = final_j[&(id.to_string(), node.clone(), comp.clone())];
                assert_eq!(got, v.as_f64().unwrap(), "job {id} on {node}, {comp}");
            }
        }
        let nodes = j["nodes"].as_array().unwrap().len();
        seen_multi |= nodes > 1;
        seen_tiny |= j["name"] == "tiny";
        // The model's share, computed from the hardware alone, matches the exporter's integer
        // attribution to within 1 µJ per split per cycle, except where a restart moved the
        // downtime's energy to the jobs running when the exporter came back.
        if !j["affected_by_restart"].as_bool().unwrap() {
            let cycles = (j["end_unix"]
                .as_i64()
                .unwrap_or(t["end_unix"].as_i64().unwrap())
                - j["start_unix"].as_i64().unwrap()) as f64
                / t["sample_interval_s"].as_f64().unwrap();
            for (comp, v) in j["energy_j"].as_object().unwrap() {
                let model = j["model_energy_j"][comp].as_f64().unwrap();
                let got = v.as_f64().unwrap();
                assert!(
                    got <= model + 1e-6 && model - got <= cycles * 8e-6 * nodes as f64 + 1e-6,
                    "job {id} {comp}: exporter {got} J, model {model} J"
                );
            }
        }
    }
    assert!(seen_multi && seen_tiny);
    for n in t["nodes"].as_array().unwrap() {
        assert_eq!(
            n["energy_j"], n["hardware_j"],
            "{}: exporter vs hardware",
            n["name"]
        );
        for (c, v) in n["energy_j"].as_object().unwrap() {
            let parts =
                uj(n["jobs_j"][c].as_f64().unwrap()) + uj(n["unallocated_j"][c].as_f64().unwrap());
            assert_eq!(parts, uj(v.as_f64().unwrap()), "{} {c}", n["name"]);
        }
    }
    // The days add up to the totals.
    for c in t["components"].as_array().unwrap() {
        let c = c.as_str().unwrap();
        let days: i64 = t["days"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| uj(d["node_j"][c].as_f64().unwrap()))
            .sum();
        assert_eq!(days, uj(t["totals"]["node_j"][c].as_f64().unwrap()), "{c}");
    }
}
