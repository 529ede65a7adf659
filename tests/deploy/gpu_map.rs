//! The prolog/epilog GPU mapping scripts (Slurm and OAR) on temporary folders, and the built
//! exporter reading what they wrote.

use super::*;

fn helper() -> PathBuf {
    deploy("gpu-map/joulebook-gpu-map")
}

/// Runs a script with a clean environment plus `env`; returns (status, stderr).
fn sh(script: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let o = Command::new("/bin/sh")
        .arg(script)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run /bin/sh");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

/// This host's name, as OAR's resource lines give it.
fn host() -> String {
    let out = Command::new("uname").arg("-n").output().expect("uname -n");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An OAR resources file: one line per (`gpudevice`, host).
fn write_oar_resources(path: &Path, devices: &[(&str, &str)]) {
    let lines: String = devices
        .iter()
        .enumerate()
        .map(|(i, (dev, host))| {
            format!(
                "besteffort = 'NO' , gpudevice = '{dev}' , host = '{host}' , resource_id = '{}'\n",
                i + 1
            )
        })
        .collect();
    std::fs::write(path, lines).unwrap();
}

/// The mapping directory as the exporter sees it: GPU file → job ids (dot files ignored).
fn mapping(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let mut m = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return m;
    };
    for e in entries {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if name.starts_with('.') {
            continue;
        }
        let lines = read(&e.path()).lines().map(str::to_string).collect();
        m.insert(name, lines);
    }
    m
}

fn map_of(entries: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
        .collect()
}

struct MapDir {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    records: PathBuf,
}

impl MapDir {
    fn new() -> MapDir {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run/joulebook/gpu-map");
        let records = tmp.path().join("run/joulebook/jobs");
        MapDir {
            _tmp: tmp,
            dir,
            records,
        }
    }
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("JOULEBOOK_GPU_MAP_DIR", self.dir.display().to_string()),
            ("JOULEBOOK_RECORD_DIR", self.records.display().to_string()),
            ("JOULEBOOK_GPU_MAP_HELPER", helper().display().to_string()),
        ]
    }
    /// An OAR prologue or epilogue (`script`, with `args`) on a node without NVIDIA GPUs whose
    /// DRM class is `drm` and whose job resources are the file `resources`.
    fn oar_drm(&self, script: &str, args: &[&str], drm: &Path, resources: &Path) -> (i32, String) {
        let mut env = self.env();
        env.push((
            "JOULEBOOK_NVIDIA_PROC",
            "/nonexistent/no-nvidia".to_string(),
        ));
        env.push(("JOULEBOOK_DRM_CLASS", drm.display().to_string()));
        env.push(("JOULEBOOK_OAR_RESOURCES", resources.display().to_string()));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        sh(&deploy(script), args, &env)
    }
    /// The Slurm Prolog as slurmd runs it.
    fn slurm(&self, script: &str, job: &str, gpus: Option<&str>) -> (i32, String) {
        let mut env = self.env();
        env.push(("SLURM_JOB_ID", job.to_string()));
        if let Some(g) = gpus {
            env.push(("SLURM_JOB_GPUS", g.to_string()));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        sh(&deploy(&format!("slurm/{script}")), &[], &env)
    }
    fn helper(&self, args: &[&str]) -> (i32, String) {
        self.helper_with(args, &[])
    }
    fn helper_with(&self, args: &[&str], extra: &[(&str, &str)]) -> (i32, String) {
        let env = self.env();
        let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.extend_from_slice(extra);
        sh(&helper(), args, &env)
    }
}

#[test]
fn slurm_prolog_and_epilog_write_and_remove_the_mapping() {
    let m = MapDir::new();
    assert_eq!(m.slurm("prolog.sh", "101", Some("0,1")).0, 0);
    assert_eq!(mapping(&m.dir), map_of(&[("0", &["101"]), ("1", &["101"])]));
    // Another job shares GPU 1 (one line per job); a third holds no GPU.
    assert_eq!(m.slurm("prolog.sh", "102", Some("1")).0, 0);
    assert_eq!(m.slurm("prolog.sh", "103", None).0, 0);
    assert_eq!(
        mapping(&m.dir),
        map_of(&[("0", &["101"]), ("1", &["101", "102"])])
    );
    // Files are world-readable: the exporter runs as a dynamic user.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(m.dir.join("1"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    // The epilog removes the job's lines, and files left empty.
    assert_eq!(m.slurm("epilog.sh", "101", Some("0,1")).0, 0);
    assert_eq!(mapping(&m.dir), map_of(&[("1", &["102"])]));
    assert_eq!(m.slurm("epilog.sh", "102", None).0, 0);
    assert_eq!(mapping(&m.dir), map_of(&[]));
    // CUDA_VISIBLE_DEVICES when SLURM_JOB_GPUS is absent; UUIDs and MIG instances.
    let mut env = m.env();
    env.push(("SLURM_JOB_ID", "104".into()));
    env.push((
        "CUDA_VISIBLE_DEVICES",
        "GPU-0a1b2c3d-0000-4000-8000-000000000000,2.1".into(),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(sh(&deploy("slurm/prolog.sh"), &[], &env).0, 0);
    assert_eq!(
        mapping(&m.dir),
        map_of(&[
            ("2.1", &["104"]),
            ("GPU-0a1b2c3d-0000-4000-8000-000000000000", &["104"])
        ])
    );
}

/// The prolog records what slurmd put in its environment, cleaned (no control characters, 256
/// bytes at most), with the SLUID linked to the record; the epilog removes both.
#[test]
fn slurm_prolog_writes_the_job_record_and_the_epilog_removes_it() {
    let m = MapDir::new();
    let long = "x".repeat(1000);
    let mut env = m.env();
    for (k, v) in [
        ("SLURM_JOB_ID", "4242"),
        ("SLURM_JOB_SLUID", "sEKNKTV3WPV500"),
        ("SLURM_JOB_USER", "alice"),
        ("SLURM_JOB_UID", "1000"),
        ("SLURM_JOB_ACCOUNT", "physics"),
        ("SLURM_JOB_PARTITION", "gpu"),
        ("SLURM_JOB_NAME", "two\nlines\u{7}=x"),
        ("SLURM_JOB_GPUS", "0,1"),
        ("SLURM_JOB_COMMENT", long.as_str()),
    ] {
        env.push((k, v.to_string()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, err) = sh(&deploy("slurm/prolog.sh"), &[], &env);
    assert_eq!((code, err.as_str()), (0, ""));
    let record = m.records.join("4242");
    assert_eq!(
        read(&record),
        "job_id=4242\nsluid=sEKNKTV3WPV500\nuser=alice\nuid=1000\naccount=physics\npartition=gpu\njob_name=twolines=x\ngpus=0,1\n"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&record).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644);
    let link = m.records.join("sEKNKTV3WPV500");
    assert_eq!(std::fs::read_link(&link).unwrap(), PathBuf::from("4242"));
    // A value past 256 bytes is cut; a bad SLUID or uid is left out.
    let (code, _) = m.helper_with(
        &["record", "7"],
        &[
            ("JOULEBOOK_JOB_NAME", long.as_str()),
            ("JOULEBOOK_JOB_SLUID", "s../../x"),
            ("JOULEBOOK_JOB_UID", "0;id"),
        ],
    );
    assert_eq!(code, 0);
    let text = read(&m.records.join("7"));
    assert!(
        text.contains(&format!("job_name={}\n", "x".repeat(256))),
        "{text}"
    );
    assert!(!text.contains("sluid=") && !text.contains("uid="), "{text}");
    // The epilog removes the record and its link, and nothing else.
    assert_eq!(m.slurm("epilog.sh", "4242", None).0, 0);
    assert!(!record.exists() && !link.is_symlink());
    assert!(m.records.join("7").exists());
}

#[test]
fn a_requeued_job_takes_its_new_gpus_only() {
    let m = MapDir::new();
    assert_eq!(m.helper(&["set", "7", "0", "1"]).0, 0);
    assert_eq!(m.helper(&["set", "8", "1"]).0, 0);
    assert_eq!(m.helper(&["set", "7", "3"]).0, 0);
    assert_eq!(mapping(&m.dir), map_of(&[("1", &["8"]), ("3", &["7"])]));
    assert_eq!(m.helper(&["remove", "8"]).0, 0);
    assert_eq!(m.helper(&["remove", "999"]).0, 0);
    assert_eq!(mapping(&m.dir), map_of(&[("3", &["7"])]));
}

/// Hostile job ids and GPU lists write nothing, and the scheduler entry points still exit 0 (a
/// failing prolog would drain the node).
#[test]
fn hostile_input_writes_nothing_and_never_fails_the_job() {
    let m = MapDir::new();
    let outside = m._tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    for (job, gpus) in [
        ("1;touch ../outside/pwned", "0"),
        ("../../outside/x", "0"),
        ("12\n13", "0"),
        ("", "0"),
        ("-1", "0"),
        ("123456789012345678901", "0"),
        ("55", "../../outside/pwned"),
        ("55", "0/../../outside/pwned"),
        ("55", "*"),
        ("55", "$(touch /tmp/pwned)"),
        ("55", "GPU-../../x"),
        ("55", ".1"),
        ("55", "0 ; rm -rf /"),
    ] {
        let (code, err) = m.slurm("prolog.sh", job, Some(gpus));
        assert_eq!(code, 0, "{job:?} {gpus:?}: {err}");
        assert!(
            err.contains("mapping not updated"),
            "{job:?} {gpus:?}: {err}"
        );
        assert_eq!(mapping(&m.dir), map_of(&[]), "{job:?} {gpus:?}");
    }
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    // The admin commands say no with status 1.
    let (code, err) = m.helper(&["set", "1x", "0"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("invalid job id"), "{err}");
    assert_eq!(m.helper(&["bogus"]).0, 1);
    // The helper missing: the prolog logs it and lets the job run.
    let (code, err) = sh(
        &deploy("slurm/prolog.sh"),
        &[],
        &[
            ("JOULEBOOK_GPU_MAP_HELPER", "/nonexistent/joulebook-gpu-map"),
            ("SLURM_JOB_ID", "5"),
        ],
    );
    assert_eq!(code, 0);
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn links_are_never_followed() {
    let m = MapDir::new();
    let victim = m._tmp.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::create_dir_all(&m.dir).unwrap();
    // A planted link where a GPU file goes is replaced, not written through.
    std::os::unix::fs::symlink(&victim, m.dir.join("0")).unwrap();
    assert_eq!(m.helper(&["set", "5", "0"]).0, 0);
    assert_eq!(read(&victim), "precious\n");
    assert!(!m.dir.join("0").is_symlink());
    assert_eq!(mapping(&m.dir), map_of(&[("0", &["5"])]));
    // A link as the lock file is not truncated through.
    std::fs::remove_file(m.dir.join(".lock")).unwrap();
    std::os::unix::fs::symlink(&victim, m.dir.join(".lock")).unwrap();
    assert_eq!(m.helper(&["remove", "5"]).0, 0);
    assert_eq!(read(&victim), "precious\n");
    // A mapping directory that is a link: nothing is written.
    let m2 = MapDir::new();
    let elsewhere = m2._tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::create_dir_all(m2.dir.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &m2.dir).unwrap();
    let (code, err) = m2.slurm("prolog.sh", "6", Some("0"));
    assert_eq!(code, 0);
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

/// Prologs of many jobs sharing one GPU at once: the lock keeps every line.
#[test]
fn concurrent_prologs_lose_no_job() {
    let m = MapDir::new();
    let env = m.env();
    let children: Vec<_> = (0..16)
        .map(|i| {
            Command::new("/bin/sh")
                .arg(deploy("slurm/prolog.sh"))
                .env_clear()
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .env("SLURM_JOB_ID", (1000 + i).to_string())
                .env("SLURM_JOB_GPUS", "0,1")
                .spawn()
                .expect("spawn")
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let map = mapping(&m.dir);
    for gpu in ["0", "1"] {
        let mut jobs = map[gpu].clone();
        jobs.sort();
        let expected: Vec<String> = (0..16).map(|i| (1000 + i).to_string()).collect();
        assert_eq!(jobs, expected, "GPU {gpu}");
    }
}

/// OAR: the `gpudevice` property (device minor) of the job's resources on this node, resolved
/// to the GPU's UUID through the driver's /proc files.
#[test]
fn oar_prologue_maps_this_nodes_gpudevices_to_uuids() {
    let m = MapDir::new();
    let root = m._tmp.path();
    let proc = root.join("proc-nvidia");
    for (bus, uuid, minor) in [
        ("0000:17:00.0", "GPU-aaaa-1111", 3),
        ("0000:18:00.0", "GPU-bbbb-2222", 0),
    ] {
        let d = proc.join("gpus").join(bus);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("information"),
            format!("Model: \t\t NVIDIA H100\nIRQ: \t\t 42\nGPU UUID: \t {uuid}\nDevice Minor: \t {minor}\n"),
        )
        .unwrap();
    }
    let host = String::from_utf8(Command::new("uname").arg("-n").output().unwrap().stdout).unwrap();
    let host = host.trim();
    let res = root.join("42_resources");
    std::fs::write(
        &res,
        format!(
            "besteffort = 'NO' , cpuset = '0' , gpu = '7' , gpudevice = '3' , host = '{host}' , network_address = '{host}' , resource_id = '1'\n\
             besteffort = 'NO' , gpudevice = '0' , host = 'another-node' , resource_id = '2'\n\
             besteffort = 'NO' , cpuset = '1' , host = '{host}' , resource_id = '3'\n"
        ),
    )
    .unwrap();
    let mut env = m.env();
    env.push(("JOULEBOOK_NVIDIA_PROC", proc.display().to_string()));
    env.push(("JOULEBOOK_OAR_RESOURCES", res.display().to_string()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, err) = sh(
        &deploy("oar/prologue"),
        &["42", "alice", "/tmp/nodes"],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(mapping(&m.dir), map_of(&[("GPU-aaaa-1111", &["42"])]));
    let (code, err) = sh(
        &deploy("oar/epilogue"),
        &["42", "alice", "/tmp/nodes"],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(mapping(&m.dir), map_of(&[]));
    // A bad job id from OAR: logged, exit 0.
    let (code, err) = sh(&deploy("oar/prologue"), &["42/../x"], &env);
    assert_eq!(code, 0);
    assert!(err.contains("invalid OAR job id"), "{err}");
}

/// OAR on an AMD node: a `gpudevice` that no NVIDIA GPU has is a DRM minor (card or render
/// node), resolved to ROCm's `GPU-<unique_id>` through the amdgpu device's `unique_id`; a minor
/// with no such device, or a `unique_id` that is no hex id, is logged and not mapped.
#[test]
fn oar_prologue_maps_amd_drm_minors_to_rocm_uuids() {
    let m = MapDir::new();
    let root = m._tmp.path();
    let drm = root.join("class-drm");
    for (name, id) in [
        ("card1", "a1b2c3d4e5f60718\n"),
        ("renderD130", "0123456789ABCDEF\n"),
        ("card3", "../../etc\n"),
    ] {
        let d = drm.join(name).join("device");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("unique_id"), id).unwrap();
    }
    let host = host();
    let res = root.join("43_resources");
    write_oar_resources(
        &res,
        &[
            ("1", &host),
            ("130", &host),
            ("3", &host),
            ("7", &host),
            ("1", "another-node"),
        ],
    );
    let (code, err) = m.oar_drm("oar/prologue", &["43", "alice", "/tmp/nodes"], &drm, &res);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        mapping(&m.dir),
        map_of(&[
            ("GPU-0123456789ABCDEF", &["43"]),
            ("GPU-a1b2c3d4e5f60718", &["43"])
        ])
    );
    for minor in ["3", "7"] {
        assert!(
            err.contains(&format!("DRM minor {minor} under")),
            "minor {minor} not logged: {err}"
        );
    }
    let (code, err) = m.oar_drm("oar/epilogue", &["43", "alice", "/tmp/nodes"], &drm, &res);
    assert_eq!(code, 0, "{err}");
    assert_eq!(mapping(&m.dir), map_of(&[]));
}

/// The built exporter reads what the Slurm prolog wrote: jobs 801 and 802 of the idle-gpu
/// fixture (cgroup v2) hold GPUs 1 and 2, 3 of the fake NVML; after 802's epilog, it holds none.
#[test]
fn the_exporter_reads_the_mapping_the_prolog_wrote() {
    use joulebook_tests::fake_nvml::{build_fake_nvml, write_state, FakeGpu, FakeNvmlState};
    let root = copy_fixture("no-powercap");
    copy_tree(&fixture("cgroup/idle-gpu"), root.path());
    let r = root.path();
    let map = r.join("run/joulebook/gpu-map");
    let records = r.join("run/joulebook/jobs");
    let m = MapDir {
        _tmp: tempfile::tempdir().unwrap(),
        dir: map.clone(),
        records: records.clone(),
    };
    assert_eq!(m.slurm("prolog.sh", "801", Some("1")).0, 0);
    assert_eq!(m.slurm("prolog.sh", "802", Some("2,3")).0, 0);

    let lib_dir = tempfile::tempdir().unwrap();
    let lib = build_fake_nvml(lib_dir.path());
    let state_path = lib_dir.path().join("nvml.state");
    let gpus: Vec<FakeGpu> = (0..4).map(|n| FakeGpu::h100(n, 1_000_000)).collect();
    let uuid = |n: usize| gpus[n].uuid.clone();
    write_state(
        &state_path,
        &FakeNvmlState {
            gpus: gpus.clone(),
            ..Default::default()
        },
    );
    let e = Exporter::start_with_env(
        &[
            &format!("--path.sysfs={}", r.join("sys").display()),
            &format!("--path.procfs={}", r.join("proc").display()),
            &format!("--path.cgroupfs={}", r.join("sys/fs/cgroup").display()),
            &format!("--path.rootfs={}", r.display()),
            "--jobs.enabled=on",
            "--source.nvml=on",
            &format!("--nvml.library={}", lib.display()),
            &format!("--jobs.gpu-mapping-dir={}", map.display()),
            &format!("--jobs.record-dir={}", records.display()),
            "--sample.interval=100ms",
        ],
        &[("FAKE_NVML_STATE", state_path.as_path())],
    );
    e.wait_samples("jobs", 2.0);
    let s = e.samples();
    let held = |s: &joulebook_tests::Samples, job: &str, n: usize| {
        s.get(&format!(
            "joulebook_job_gpu_info{{job_id=\"{job}\",gpu_uuid=\"{}\"}}",
            uuid(n)
        ))
    };
    assert_eq!(
        held(&s, "801", 1),
        Some(1.0),
        "{:#?}\n{}",
        s.family("joulebook_job_gpu_info"),
        e.log_text()
    );
    assert_eq!(held(&s, "802", 2), Some(1.0));
    assert_eq!(held(&s, "802", 3), Some(1.0));
    assert_eq!(
        s.family("joulebook_job_gpu_info").len(),
        3,
        "{:#?}",
        s.family("joulebook_job_gpu_info")
    );
    assert_eq!(s.must("joulebook_job_allocated_gpus{job_id=\"802\"}"), 2.0);
    // The prolog's records are the jobs' metadata.
    let info = s.family("joulebook_job_info");
    assert_eq!(info.len(), 2, "{info:#?}");
    for (labels, _) in &info {
        assert!(labels.contains("metadata=\"prolog\""), "{labels}");
    }

    // Job 802's epilog: its GPUs are unallocated from the next cycle on.
    assert_eq!(m.slurm("epilog.sh", "802", None).0, 0);
    e.wait_samples("jobs", 3.0);
    let s = e.samples();
    assert_eq!(held(&s, "802", 2), None);
    assert_eq!(s.must("joulebook_job_allocated_gpus{job_id=\"802\"}"), 0.0);
    assert_eq!(held(&s, "801", 1), Some(1.0));
}

/// OAR on an Intel node: a `gpudevice` that is an Intel GPU's DRM minor (card or render node)
/// becomes the GPU's index as the exporter numbers Intel GPUs (those with an xe or i915 energy
/// counter, in PCI address order: the integrated GPU is none); an unknown minor is logged. On a
/// node that also has an AMD GPU, whose indices would collide, nothing Intel is mapped.
#[test]
fn oar_prologue_maps_intel_drm_minors_to_exporter_indices() {
    let m = MapDir::new();
    let root = m._tmp.path();
    let drm = root.join("class-drm");
    intel_drm(&drm);
    let host = host();
    let res = root.join("44_resources");
    write_oar_resources(
        &res,
        &[("129", &host), ("2", &host), ("0", &host), ("7", &host)],
    );
    let prologue =
        |m: &MapDir| m.oar_drm("oar/prologue", &["44", "alice", "/tmp/nodes"], &drm, &res);
    let (code, err) = prologue(&m);
    assert_eq!(code, 0, "{err}");
    // 0000:3a:00.0 is Intel GPU 0, 0000:9a:00.0 (renderD129) Intel GPU 1.
    assert_eq!(mapping(&m.dir), map_of(&[("0", &["44"]), ("1", &["44"])]));
    for minor in ["0", "7"] {
        assert!(
            err.contains(&format!("DRM minor {minor} under")),
            "minor {minor} not logged: {err}"
        );
    }
    let (code, err) = m.oar_drm("oar/epilogue", &["44"], &drm, &res);
    assert_eq!(code, 0, "{err}");
    assert_eq!(mapping(&m.dir), map_of(&[]));

    // An AMD GPU on the same node: index 0 would name it first, so Intel minors are not mapped.
    let amd = drm.join("card5/device");
    std::fs::create_dir_all(&amd).unwrap();
    std::fs::write(amd.join("vendor"), "0x1002\n").unwrap();
    let (code, err) = prologue(&m);
    assert_eq!(code, 0, "{err}");
    assert_eq!(mapping(&m.dir), map_of(&[]));
    assert!(err.contains("also has NVIDIA or AMD GPUs"), "{err}");
}

/// Intel GPUs under the DRM class folder `drm`: (DRM device, PCI address, hwmon driver) for the
/// xe card 0000:9a:00.0 and its render node, the i915 card 0000:3a:00.0, and the integrated GPU
/// 0000:00:02.0 (no hwmon); and a connector, which repeats its card's name.
fn intel_drm(drm: &Path) {
    let devices = [
        ("card0", "0000:00:02.0", None),
        ("card1", "0000:9a:00.0", Some("xe")),
        ("renderD129", "0000:9a:00.0", Some("xe")),
        ("card2", "0000:3a:00.0", Some("i915")),
    ];
    for (name, pci, hwmon) in devices {
        let d = drm.join(name).join("device");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("vendor"), "0x8086\n").unwrap();
        std::fs::write(
            d.join("uevent"),
            format!("DRIVER=xe\nPCI_CLASS=38000\nPCI_SLOT_NAME={pci}\n"),
        )
        .unwrap();
        if let Some(driver) = hwmon {
            let h = d.join("hwmon/hwmon4");
            std::fs::create_dir_all(&h).unwrap();
            std::fs::write(h.join("name"), format!("{driver}\n")).unwrap();
            std::fs::write(h.join("energy1_input"), "123456\n").unwrap();
        }
    }
    std::fs::create_dir_all(drm.join("card1-DP-1/device")).unwrap();
}

/// The built exporter numbers Intel GPUs as the OAR prologue does: the prologue maps the render
/// node 129 (the xe card 0000:9a:00.0) to index 1, and the exporter's intel_gpu source charges
/// job 801 that GPU, by PCI address.
#[test]
fn the_exporter_reads_the_intel_mapping_the_oar_prologue_wrote() {
    let root = copy_fixture("no-powercap");
    copy_tree(&fixture("cgroup/idle-gpu"), root.path());
    let r = root.path();
    intel_drm(&r.join("sys/class/drm"));
    let m = MapDir {
        _tmp: tempfile::tempdir().unwrap(),
        dir: r.join("run/joulebook/gpu-map"),
        records: r.join("run/joulebook/jobs"),
    };
    let res = r.join("801_resources");
    write_oar_resources(&res, &[("129", &host())]);
    let drm = r.join("sys/class/drm");
    let (code, err) = m.oar_drm("oar/prologue", &["801", "alice", "/tmp/nodes"], &drm, &res);
    assert_eq!(code, 0, "{err}");
    assert_eq!(mapping(&m.dir), map_of(&[("1", &["801"])]));
    let e = Exporter::start(&[
        &format!("--path.sysfs={}", r.join("sys").display()),
        &format!("--path.procfs={}", r.join("proc").display()),
        &format!("--path.cgroupfs={}", r.join("sys/fs/cgroup").display()),
        &format!("--path.rootfs={}", r.display()),
        "--jobs.enabled=on",
        "--source.nvml=off",
        "--source.intel-gpu=on",
        &format!("--jobs.gpu-mapping-dir={}", m.dir.display()),
        &format!("--jobs.record-dir={}", m.records.display()),
        "--sample.interval=100ms",
    ]);
    e.wait_samples("jobs", 2.0);
    let s = e.samples();
    let held = s.family("joulebook_job_gpu_info");
    assert_eq!(
        held.iter()
            .map(|(l, _)| *l)
            .filter(|l| l.contains("job_id=\"801\""))
            .count(),
        1,
        "{held:#?}\n{}",
        e.log_text()
    );
    assert_eq!(
        s.get("joulebook_job_gpu_info{job_id=\"801\",gpu_uuid=\"0000:9a:00.0\"}"),
        Some(1.0),
        "{held:#?}\n{}",
        e.log_text()
    );
}
