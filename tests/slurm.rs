//! A real one-node Slurm cluster on 127.0.0.1 for end-to-end tests.
//!
//! [`SlurmCluster::start`] runs `tests/slurm/slurm-up` on a fresh temporary folder and
//! dropping the cluster runs `tests/slurm/slurm-down` on it. What the cluster creates (cgroup
//! paths, job environment, timings) is written down in `tests/slurm/README.md`.
//!
//! Needs root, cgroup v1 controllers under `/sys/fs/cgroup` and the packages that
//! `scripts/install-test-deps` installs. Without them `start` panics: a missing real component
//! fails the test, it never skips it.
//!
//! Only one cluster runs on a machine at a time: the job cgroups of a node live at fixed paths
//! (`/sys/fs/cgroup/<controller>/slurm_<node>`). `start` takes an exclusive `flock` on
//! [`LOCK_PATH`] and holds it until the cluster is dropped, so tests in one binary, in several
//! binaries or in several checkouts wait for each other.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Where cgroup v1 controllers are mounted on the test machines.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The v1 controllers in which slurmd creates job cgroups with this cluster's `cgroup.conf`.
pub const JOB_CONTROLLERS: [&str; 5] = ["cpuset", "cpuacct", "memory", "devices", "freezer"];

/// Held (flock) for the lifetime of a cluster; holds the folder of the cluster that took it
/// last, so that a cluster whose test process was killed is stopped by the next `start`.
pub const LOCK_PATH: &str = "/tmp/joulebook-slurm-cluster.lock";

/// How long `start` waits for another test's cluster to be dropped.
const LOCK_WAIT: Duration = Duration::from_secs(600);

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("slurm")
        .join(name)
}

/// A running one-node Slurm cluster. Stopped (jobs cancelled, daemons and their processes
/// killed, job cgroups removed) on drop.
pub struct SlurmCluster {
    dir: TempDir,
    node: String,
    _lock: File,
}

impl SlurmCluster {
    /// Starts a cluster and waits until its node is idle. Panics with the daemons' logs if it
    /// cannot start.
    pub fn start() -> SlurmCluster {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "the Slurm tests need root (slurmd creates job cgroups); run them as root"
        );
        let lock = take_lock();
        stop_stale_cluster(&lock);
        let dir = tempfile::Builder::new()
            .prefix("joulebook-slurm-")
            .tempdir_in("/tmp")
            .expect("create a temporary folder for the Slurm cluster");
        record_cluster(&lock, dir.path());
        let node = hostname_short();
        let out = run(Command::new(script("slurm-up")).arg(dir.path()));
        if !out.status.success() {
            // slurm-up stops what it started when it fails; the logs are in its stderr.
            panic!(
                "slurm-up failed ({}); is scripts/install-test-deps run?\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        SlurmCluster {
            dir,
            node,
            _lock: lock,
        }
    }

    /// The folder that holds the cluster's config, state, spool, logs and pid files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `slurm.conf` that clients need in `SLURM_CONF`.
    pub fn conf(&self) -> PathBuf {
        self.dir().join("slurm.conf")
    }

    /// A folder every user may write to; Slurm commands run from it, so job output
    /// (`slurm-<id>.out`) lands there.
    pub fn jobs_dir(&self) -> PathBuf {
        self.dir().join("jobs")
    }

    /// Where the cluster's Prolog (deploy/slurm/prolog.sh) writes the job records.
    pub fn records_dir(&self) -> PathBuf {
        self.dir().join("records")
    }

    /// The node's name, `hostname -s`, as in `slurm_<node>` of the cgroup paths.
    pub fn node_name(&self) -> String {
        self.node.clone()
    }

    /// A Slurm client command (`sbatch`, `squeue`, `scontrol`...) pointed at this cluster.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", self.conf())
            .current_dir(self.jobs_dir());
        c
    }

    /// Runs `sbatch --parsable ARGS` and returns the job id. Panics if sbatch fails.
    pub fn sbatch(&self, args: &[&str]) -> String {
        let out = self.checked(self.command("sbatch").arg("--parsable").args(args));
        // --parsable prints "ID" or "ID;CLUSTER".
        let id = out.split(';').next().unwrap_or_default().trim().to_string();
        assert!(
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
            "sbatch {args:?} printed no job id: {out:?}"
        );
        id
    }

    /// Cancels a job. Panics if scancel fails.
    pub fn scancel(&self, id: &str) {
        self.checked(self.command("scancel").arg(id));
    }

    /// The ids of the jobs squeue lists (pending, running or completing).
    pub fn squeue_ids(&self) -> Vec<String> {
        let out = self.checked(self.command("squeue").args(["-h", "-o", "%i"]));
        out.split_whitespace().map(str::to_string).collect()
    }

    /// The job's state as squeue shows it (`PENDING`, `RUNNING`, `COMPLETING`...), or `None`
    /// once squeue no longer lists it.
    pub fn job_state(&self, id: &str) -> Option<String> {
        let out = self.checked(self.command("squeue").args(["-h", "-o", "%i %T"]));
        out.lines().find_map(|l| {
            let (i, state) = l.split_once(' ')?;
            (i == id).then(|| state.trim().to_string())
        })
    }

    /// `<root>/<controller>/slurm_<node>`: the cgroup under which slurmd puts `uid_<uid>/job_<id>`.
    pub fn slurm_cgroup(&self, controller: &str) -> PathBuf {
        Path::new(CGROUP_ROOT)
            .join(controller)
            .join(format!("slurm_{}", self.node))
    }

    /// `<root>/<controller>/slurm_<node>/uid_<uid>/job_<id>` if it exists now, for any uid.
    pub fn job_cgroup(&self, controller: &str, id: &str) -> Option<PathBuf> {
        let job = format!("job_{id}");
        let entries = fs::read_dir(self.slurm_cgroup(controller)).ok()?;
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("uid_"))
            .map(|e| e.path().join(&job))
            .find(|p| p.is_dir())
    }

    /// Waits until the job's batch script runs inside its cgroups (every controller of
    /// [`JOB_CONTROLLERS`] has `job_<id>`, and a process is in its `step_batch`) and returns the
    /// cpuset one: `<root>/cpuset/slurm_<node>/uid_<uid>/job_<id>`. Panics after `timeout`.
    pub fn wait_for_cgroup(&self, id: &str, timeout: Duration) -> PathBuf {
        let deadline = Instant::now() + timeout;
        loop {
            let all = JOB_CONTROLLERS
                .iter()
                .all(|c| self.job_cgroup(c, id).is_some());
            let running = self
                .job_cgroup("freezer", id)
                .map(|p| !read_pids(&p.join("step_batch")).is_empty())
                .unwrap_or(false);
            if all && running {
                if let Some(p) = self.job_cgroup("cpuset", id) {
                    return p;
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "job {id}: no running cgroup under {} after {timeout:?} (state {:?})\n{}",
                    self.slurm_cgroup("cpuset").display(),
                    self.job_state(id),
                    self.logs()
                );
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// Waits until no controller has a cgroup for the job any more. Panics after `timeout`.
    pub fn wait_for_cgroup_gone(&self, id: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left: Vec<PathBuf> = JOB_CONTROLLERS
                .iter()
                .filter_map(|c| self.job_cgroup(c, id))
                .collect();
            if left.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "job {id}: cgroups still there after {timeout:?}: {left:?}\n{}",
                    self.logs()
                );
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// The pids of all the job's processes, from its freezer cgroup tree: every step's
    /// processes and slurmstepd, and the extern step's `sleep 100000000`.
    pub fn job_pids(&self, id: &str) -> Vec<u32> {
        self.step_pids(id, "")
    }

    /// The pids of one step's processes (`step` is `step_batch`, `step_extern`, `step_0`...)
    /// from the freezer cgroup tree.
    pub fn step_pids(&self, id: &str, step: &str) -> Vec<u32> {
        let mut pids = Vec::new();
        if let Some(p) = self.job_cgroup("freezer", id) {
            collect_pids(&p.join(step), &mut pids);
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// The last lines of the daemons' logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for f in ["log/slurmctld.log", "log/slurmd.log", "munge/munged.log"] {
            let text = fs::read_to_string(self.dir().join(f)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            s.push_str(&format!("---- {f} (last 30 lines)\n"));
            for l in &lines[lines.len().saturating_sub(30)..] {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }

    fn checked(&self, cmd: &mut Command) -> String {
        let out = run(cmd);
        assert!(
            out.status.success(),
            "{cmd:?} failed ({}): {}{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for SlurmCluster {
    fn drop(&mut self) {
        let out = run(Command::new(script("slurm-down")).arg(self.dir()));
        if !out.status.success() {
            // No panic here: drop may run while a test is already panicking.
            eprintln!(
                "slurm-down {} failed ({}): {}",
                self.dir().display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (run scripts/install-test-deps)"))
}

fn hostname_short() -> String {
    let out = run(Command::new("hostname").arg("-s"));
    assert!(out.status.success(), "hostname -s failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn read_pids(cgroup: &Path) -> Vec<u32> {
    fs::read_to_string(cgroup.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn collect_pids(cgroup: &Path, pids: &mut Vec<u32>) {
    pids.extend(read_pids(cgroup));
    if let Ok(entries) = fs::read_dir(cgroup) {
        for e in entries.filter_map(Result::ok) {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_pids(&e.path(), pids);
            }
        }
    }
}

fn take_lock() -> File {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(LOCK_PATH)
        .unwrap_or_else(|e| panic!("open {LOCK_PATH}: {e}"));
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        // SAFETY: flock on a descriptor that `file` keeps open; it only reads its arguments.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return file;
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            panic!("flock {LOCK_PATH}: {err}");
        }
        assert!(
            Instant::now() < deadline,
            "another Slurm test cluster held {LOCK_PATH} for {LOCK_WAIT:?}"
        );
        sleep(Duration::from_millis(100));
    }
}

/// A cluster recorded in the lock file whose test was killed before its drop ran: stop it.
fn stop_stale_cluster(lock: &File) {
    let mut previous = String::new();
    let mut f = lock;
    if f.seek(SeekFrom::Start(0)).is_err() || f.read_to_string(&mut previous).is_err() {
        return;
    }
    let previous = Path::new(previous.trim());
    let ours = previous
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("joulebook-slurm-"));
    if !ours || !previous.join("slurm.conf").is_file() {
        return;
    }
    let out = run(Command::new(script("slurm-down")).arg(previous));
    if !out.status.success() {
        eprintln!(
            "slurm-down {} (left by a killed test) failed: {}",
            previous.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = fs::remove_dir_all(previous);
}

fn record_cluster(lock: &File, dir: &Path) {
    let mut f = lock;
    let written = f
        .set_len(0)
        .and_then(|()| f.seek(SeekFrom::Start(0)))
        .and_then(|_| writeln!(f, "{}", dir.display()));
    if let Err(e) = written {
        panic!("write {LOCK_PATH}: {e}");
    }
}
