//! Property tests: every parser of outside input survives arbitrary bytes — no panic, and either
//! a value or an error that names what was wrong. Sources reached through their public entry
//! points on files written with random content (powercap, /proc, cgroup files, environments,
//! passwd, GPU mapping files), plus the config file, durations, ipmitool output.

use joulebook_exporter::config::{parse_duration, Config};
use joulebook_exporter::jobs::{GpuRef, JobDiscovery, JobsOptions};
use joulebook_exporter::node::NodeInfo;
use joulebook_exporter::sources::bmc::ipmi::parse_dcmi;
use joulebook_exporter::sources::estimate::parse_proc_stat;
use joulebook_exporter::sources::rapl::{RaplOptions, RaplSource};
use joulebook_exporter::sources::Source;
use joulebook_tests::fixture;
use proptest::prelude::*;
use std::path::Path;

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        // Near misses: digits, separators, signs, huge numbers, NULs, newlines.
        proptest::collection::vec(
            prop_oneof![
                Just(b'0'),
                Just(b'9'),
                Just(b'-'),
                Just(b','),
                Just(b' '),
                Just(b'\n'),
                Just(b'\0'),
                Just(b'='),
                Just(b'x'),
                Just(b'1')
            ],
            0..40
        ),
    ]
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        let ft = e.file_type().unwrap();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), &t).unwrap();
        } else if ft.is_dir() {
            copy(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

/// Every regular file under `root`, relative.
fn files(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn rapl_files(which in 0usize..100, content in bytes()) {
        let t = tempfile::tempdir().unwrap();
        copy(&fixture("intel-2s/sys"), &t.path().join("sys"));
        let all: Vec<_> = files(&t.path().join("sys/class/powercap"));
        std::fs::write(&all[which % all.len()], &content).unwrap();
        let mut s = RaplSource::new(RaplOptions { sysfs: t.path().join("sys"), ..Default::default() });
        for _ in 0..2 {
            if let Err(e) = s.sample() {
                prop_assert!(e.message.contains("powercap") || e.message.contains("intel-rapl"), "{}", e);
            }
        }
    }

    #[test]
    fn proc_files(which in 0usize..3, content in bytes()) {
        let t = tempfile::tempdir().unwrap();
        copy(&fixture("intel-2s/proc"), t.path());
        let name = ["cpuinfo", "meminfo", "stat"][which];
        std::fs::write(t.path().join(name), &content).unwrap();
        let _ = NodeInfo::read(t.path());
        let _ = parse_proc_stat(&String::from_utf8_lossy(&content));
    }

    #[test]
    fn cgroup_environ_passwd_and_mapping_files(which in 0usize..1000, content in bytes()) {
        let t = tempfile::tempdir().unwrap();
        copy(&fixture("cgroup/idle-gpu"), t.path());
        copy(&fixture("cgroup/slurm-v1"), &t.path().join("v1"));
        for root in [t.path().to_path_buf(), t.path().join("v1")] {
            let all = files(&root);
            std::fs::write(&all[which % all.len()], &content).unwrap();
            let mut opts = JobsOptions::under_root(&root);
            opts.mapping_dir = Some(root.join("run/dcgm-job-map"));
            let mut d = JobDiscovery::new(opts);
            let gpus: Vec<GpuRef> = (0..4).map(|i| GpuRef { uuid: format!("GPU-{i}"), index: i, minor: Some(i), ..Default::default() }).collect();
            for _ in 0..2 {
                let r = d.scan(&gpus, &[("GPU-0".into(), 2001)]);
                for p in &r.problems {
                    prop_assert!(p.contains('/') || p.contains("GPU"), "problem without a file: {}", p);
                }
            }
        }
    }

    #[test]
    fn config_text(text in "\\PC{0,200}") {
        let _ = Config::parse(&text);
        let _ = parse_duration(&text);
    }

    #[test]
    fn config_near_misses(key in prop_oneof![Just("sample_interval"), Just("web"), Just("sources"), Just("jobs"), Just("state")],
                          value in "[-a-z0-9:. \\[\\]{}]{0,30}") {
        if let Err(e) = Config::parse(&format!("{key}: {value}\n")) {
            prop_assert!(e.0.contains("line"), "{}", e.0);
        }
    }

    #[test]
    fn ipmitool_output(text in "\\PC{0,300}") {
        let _ = parse_dcmi(&text);
    }
}
