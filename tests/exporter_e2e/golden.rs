//! Golden files: each fixture's first scrape, volatile values masked, checked by promtool and
//! compared with its `metrics.golden` (refreshed with `JOULEBOOK_UPDATE_GOLDEN=1`).

use super::*;

/// Replaces values that change from run to run, so the rest can be compared exactly. An owner
/// pair's `since` label, kept at the first sample like the counters, reads `<counters start>`
/// when it is the whole second of `joulebook_counters_start_time_seconds`.
fn mask_volatile(text: &str) -> String {
    let volatile = [
        "joulebook_sample_duration_seconds",
        "joulebook_last_sample_timestamp_seconds",
        "joulebook_counters_start_time_seconds",
    ];
    let counters_start = text
        .lines()
        .find_map(|l| l.strip_prefix("joulebook_counters_start_time_seconds "))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| format!("since=\"{}\"", v.floor() as i64));
    let mut out = String::new();
    for line in text.lines() {
        let line = mask_since(line, counters_start.as_deref());
        match line.rsplit_once(' ') {
            Some((series, _)) if volatile.iter().any(|v| series.starts_with(v)) => {
                out.push_str(series);
                out.push_str(" <volatile>\n");
            }
            _ => {
                out.push_str(&line);
                out.push('\n');
            }
        }
    }
    out
}

/// `line` with its `since="…"` label as `<counters start>` when it is `counters_start`, else
/// `<volatile>`.
fn mask_since(line: &str, counters_start: Option<&str>) -> String {
    let Some(at) = line.find("since=\"") else {
        return line.to_string();
    };
    let len = line[at + 7..].find('"').map_or(line.len() - at, |e| e + 8);
    let value = &line[at..at + len];
    let shown = if Some(value) == counters_start {
        "since=\"<counters start>\""
    } else {
        "since=\"<volatile>\""
    };
    format!("{}{shown}{}", &line[..at], &line[at + len..])
}

fn golden(name: &str) {
    let root = fixture(name);
    // A long interval: the scrape sees exactly the first sample.
    let e = start(&root, &["--sample.interval=60s"]);
    check_golden(name, &root.join("metrics.golden"), &e.scrape());
}

fn check_golden(name: &str, path: &Path, text: &str) {
    promtool_check_metrics(text);
    let got = mask_volatile(text);
    if std::env::var_os("JOULEBOOK_UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with JOULEBOOK_UPDATE_GOLDEN=1 cargo test -p joulebook-tests --test exporter_e2e golden",
            path.display()
        )
    });
    assert_eq!(
        got,
        want,
        "{name}: /metrics differs from {} (refresh with JOULEBOOK_UPDATE_GOLDEN=1 if intended)",
        path.display()
    );
}

#[test]
fn golden_intel_two_sockets() {
    golden("intel-2s");
}

#[test]
fn golden_amd_epyc() {
    golden("amd-epyc");
}

#[test]
fn golden_no_powercap() {
    golden("no-powercap");
}

#[test]
fn golden_wrapping() {
    golden("wrapping");
}

/// The Intel node with the jobs of cgroup fixture `jobs`, after its first sample: job series
/// at 0, metadata from the prolog's records, the kernel and the jobs' environments.
fn golden_jobs(jobs: &str) {
    let dir = copy_fixture("intel-2s");
    joulebook_tests::copy_tree(&fixture(&format!("cgroup/{jobs}")), dir.path());
    let mut args = job_args(dir.path());
    args.push("--sample.interval=60s".into());
    args.push(format!(
        "--jobs.record-dir={}",
        dir.path().join("run/joulebook/jobs").display()
    ));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = Exporter::start(&refs);
    check_golden(
        jobs,
        &fixture(&format!("cgroup/{jobs}")).join("metrics.golden"),
        &e.scrape(),
    );
}

#[test]
fn golden_slurm_jobs() {
    golden_jobs("slurm-v1");
}

/// Slurm 26.05: jobs in SLUID folders, published under their numeric ids with their SLUIDs.
#[test]
fn golden_slurm_sluid_jobs() {
    golden_jobs("slurm-sluid");
}

/// A node upgraded to 26.05 while a `job_<id>` job still runs.
#[test]
fn golden_slurm_upgrade_jobs() {
    golden_jobs("slurm-upgrade");
}

#[test]
fn golden_intel_dies() {
    golden("intel-clx-ap");
}

#[test]
fn golden_amd_mirrored_dies() {
    golden("amd-zen4-ccd");
}

#[test]
fn golden_amd_mi250x() {
    golden("amd-mi250x");
}

#[test]
fn golden_amd_mi300x() {
    golden("amd-mi300x");
}

#[test]
fn golden_intel_gpus() {
    golden("intel-gpus");
}

#[test]
fn golden_grace_hopper() {
    golden("grace-hopper");
}
