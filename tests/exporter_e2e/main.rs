//! The built `joulebook-exporter` on fixture trees, on 127.0.0.1.
//!
//! One module a topic: `golden`, `service`, `cpu`, `gpus`, `jobs`; the helpers they share are here.

mod cpu;
mod golden;
mod gpus;
mod jobs;
mod service;

use joulebook_tests::{
    copy_fixture, fixture, http_get, promtool_check_metrics, write_value, Exporter,
};
use std::path::Path;
use std::process::Command;

fn fixture_args(root: &Path) -> Vec<String> {
    vec![
        format!("--path.sysfs={}", root.join("sys").display()),
        format!("--path.procfs={}", root.join("proc").display()),
        "--source.nvml=off".into(),
        // Never this machine's own cgroups: fixtures only.
        "--jobs.enabled=off".into(),
    ]
}

fn start(root: &Path, extra: &[&str]) -> Exporter {
    let mut args = fixture_args(root);
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Exporter::start(&refs)
}

fn job_args(root: &Path) -> Vec<String> {
    let mut a = fixture_args(root);
    a.retain(|x| x != "--jobs.enabled=off");
    a.extend([
        format!("--path.cgroupfs={}", root.join("sys/fs/cgroup").display()),
        format!("--path.rootfs={}", root.display()),
        "--jobs.enabled=on".into(),
        "--source.estimate=off".into(),
    ]);
    a
}

fn pkg(root: &Path, socket: u32) -> std::path::PathBuf {
    root.join(format!("sys/class/powercap/intel-rapl:{socket}/energy_uj"))
}

fn powercap(dir: &Path, zone: &str) -> std::path::PathBuf {
    dir.join("sys/class/powercap").join(zone).join("energy_uj")
}

/// Writes an amdgpu energy accumulator (2^-16 J a count) into a fixture's `gpu_metrics`, at the
/// kernel's offset for the table's revision, the way sysfs changes: all at once.
fn set_gpu_counter(dir: &Path, card: u32, offset: usize, joules: u64) {
    let path = dir.join(format!("sys/class/drm/card{card}/device/gpu_metrics"));
    let mut table = std::fs::read(&path).unwrap();
    table[offset..offset + 8].copy_from_slice(&(joules * 65536).to_le_bytes());
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &table).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

/// Each of `want`'s series has its value in `s`.
fn assert_values(s: &joulebook_tests::Samples, want: &[(&str, f64)]) {
    for (series, value) in want {
        assert_eq!(s.must(series), *value, "{series}");
    }
}
