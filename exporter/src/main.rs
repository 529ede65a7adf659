//! `joulebook-exporter`: see `--help`, the README and ARCHITECTURE.md.

use clap::{Parser, Subcommand, ValueEnum};
use joulebook_exporter::config::{parse_duration, Config, LogFormat, Switch};
use joulebook_exporter::simulate::{self, output::OutFormat, SimError};
use joulebook_exporter::webconfig::WebSecurity;
use std::path::PathBuf;
use std::process::ExitCode;

/// Per-node energy exporter: RAPL, NVIDIA GPUs and an estimate where no counter exists,
/// published as monotonic joule counters for Prometheus.
#[derive(Parser, Debug)]
#[command(name = "joulebook-exporter", version, about, long_about = None)]
// Flags belong to the exporter; `simulate` has its own, and mixing them is an error rather than
// flags silently ignored.
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// YAML configuration file; flags override it.
    #[arg(long = "config.file", value_name = "FILE")]
    config_file: Option<PathBuf>,
    /// Address to serve /metrics on: HOST:PORT, or :PORT for all interfaces [default: :9977].
    #[arg(long = "web.listen-address", value_name = "ADDR")]
    listen_address: Option<String>,
    /// Web configuration file (Prometheus exporter-toolkit format): TLS, client certificates,
    /// basic authentication, response headers, rate limit [default: none, plain HTTP].
    #[arg(long = "web.config.file", value_name = "FILE")]
    web_config_file: Option<PathBuf>,
    /// sysfs mount point (RAPL is read under <sysfs>/class/powercap) [default: /sys].
    #[arg(long = "path.sysfs", value_name = "DIR")]
    sysfs: Option<PathBuf>,
    /// procfs mount point [default: /proc].
    #[arg(long = "path.procfs", value_name = "DIR")]
    procfs: Option<PathBuf>,
    /// cgroup mount point, for job discovery [default: /sys/fs/cgroup].
    #[arg(long = "path.cgroupfs", value_name = "DIR")]
    cgroupfs: Option<PathBuf>,
    /// Root under which etc/passwd names users [default: /].
    #[arg(long = "path.rootfs", value_name = "DIR")]
    rootfs: Option<PathBuf>,
    /// Per-job accounting from cgroups: auto (if cgroups are readable), on, off.
    #[arg(long = "jobs.enabled", value_name = "SWITCH")]
    jobs: Option<Switch>,
    /// GPU → job mapping directory (dcgm-exporter's --hpc-job-mapping-dir format).
    #[arg(long = "jobs.gpu-mapping-dir", value_name = "DIR")]
    gpu_mapping_dir: Option<PathBuf>,
    /// Job records written by the scheduler's prolog [default: /run/joulebook/jobs].
    #[arg(long = "jobs.record-dir", value_name = "DIR")]
    record_dir: Option<PathBuf>,
    /// How long a finished job's counters stay published [default: 180s].
    #[arg(long = "jobs.grace-period", value_name = "DURATION", value_parser = parse_duration)]
    grace: Option<f64>,
    /// Interval between samples: seconds or with a unit (500ms, 2s) [default: 1s].
    #[arg(long = "sample.interval", value_name = "DURATION", value_parser = parse_duration)]
    interval: Option<f64>,
    /// RAPL source: auto (if present), on (insist), off.
    #[arg(long = "source.rapl", value_name = "SWITCH")]
    rapl: Option<Switch>,
    /// NVIDIA GPU source through NVML: auto, on, off.
    #[arg(long = "source.nvml", value_name = "SWITCH")]
    nvml: Option<Switch>,
    /// CPU and memory estimate for components no counter measures: auto, on, off.
    #[arg(long = "source.estimate", value_name = "SWITCH")]
    estimate: Option<Switch>,
    /// Whole-node power from the BMC (Redfish or IPMI, configured in the file): auto, on, off
    /// [default: off].
    #[arg(long = "source.bmc", value_name = "SWITCH")]
    bmc: Option<Switch>,
    /// AMD GPU source through the amdgpu driver's sysfs files: auto, on, off.
    #[arg(long = "source.amdgpu", value_name = "SWITCH")]
    amdgpu: Option<Switch>,
    /// Intel GPU source through the xe and i915 drivers' hwmon files: auto, on, off.
    #[arg(long = "source.intel-gpu", value_name = "SWITCH")]
    intel_gpu: Option<Switch>,
    /// NVIDIA Grace power meters (ACPI, hwmon): auto, on, off.
    #[arg(long = "source.grace", value_name = "SWITCH")]
    grace_meters: Option<Switch>,
    /// hwmon sensors named in the configuration file: auto (if any), on, off.
    #[arg(long = "source.hwmon", value_name = "SWITCH")]
    hwmon: Option<Switch>,
    /// Path of libnvidia-ml.so [default: the system's libnvidia-ml.so.1].
    #[arg(long = "nvml.library", value_name = "FILE")]
    nvml_library: Option<PathBuf>,
    /// State file keeping totals across restarts [default: none].
    #[arg(long = "state.file", value_name = "FILE")]
    state_file: Option<PathBuf>,
    /// Interval between state saves; with a state file, counters on /metrics advance at each
    /// save [default: 5s].
    #[arg(long = "state.save-interval", value_name = "DURATION", value_parser = parse_duration)]
    save_interval: Option<f64>,
    /// Log format: text or json.
    #[arg(long = "log.format", value_name = "FORMAT")]
    log_format: Option<LogFormat>,
    /// Log filter, e.g. info, debug, joulebook_exporter=debug.
    #[arg(long = "log.level", value_name = "FILTER")]
    log_level: Option<String>,
    /// Print the effective configuration (file + flags) as YAML and exit: 0 if valid, 2 if not.
    #[arg(long = "check-config")]
    check_config: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Simulate a cluster from a scenario file through the exporter's own sampler and
    /// attribution, writing timestamped metrics to backfill into Prometheus (see
    /// docs/simulate.md).
    Simulate(SimulateArgs),
    /// Read a password on standard input (one line) and print its bcrypt hash (cost 10), for
    /// `basic_auth_users` in the web configuration file.
    HashPassword,
}

#[derive(clap::Args, Debug)]
struct SimulateArgs {
    /// Scenario file (YAML).
    #[arg(long, value_name = "FILE")]
    scenario: PathBuf,
    /// Output file: every node's metrics at every scrape, with timestamps.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Also write the ground truth as JSON (per job, node, account, user and day).
    #[arg(long, value_name = "FILE")]
    truth: Option<PathBuf>,
    /// Random seed [default: the scenario's `seed`, else 0].
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// openmetrics: for `promtool tsdb create-blocks-from openmetrics` (timestamps in s, # EOF);
    /// prometheus: classic text, timestamps in ms (VictoriaMetrics' /api/v1/import/prometheus).
    #[arg(long, value_name = "FORMAT", default_value = "openmetrics")]
    format: FormatArg,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatArg {
    Openmetrics,
    Prometheus,
}

fn simulate(args: SimulateArgs) -> ExitCode {
    let opts = simulate::Options {
        scenario: args.scenario,
        out: args.out,
        truth: args.truth,
        seed: args.seed,
        format: match args.format {
            FormatArg::Openmetrics => OutFormat::OpenMetrics,
            FormatArg::Prometheus => OutFormat::PrometheusText,
        },
    };
    let started = std::time::Instant::now();
    match simulate::run(&opts) {
        Ok(s) => {
            eprintln!(
                "joulebook-exporter simulate: {} nodes, {} jobs submitted ({} started), {} scrapes, {} samples, {} bytes in {:.1} s (seed {})",
                s.nodes,
                s.jobs_submitted,
                s.jobs_started,
                s.scrapes,
                s.samples,
                s.bytes,
                started.elapsed().as_secs_f64(),
                s.seed
            );
            ExitCode::SUCCESS
        }
        Err(e @ SimError::Scenario(_)) => {
            eprintln!("joulebook-exporter simulate: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("joulebook-exporter simulate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `hash-password`: what the package's install script writes into the generated web config.
fn hash_password() -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("joulebook-exporter hash-password: cannot read standard input: {e}");
        return ExitCode::FAILURE;
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("joulebook-exporter hash-password: no password on standard input");
        return ExitCode::from(2);
    }
    match bcrypt::hash(password, 10) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("joulebook-exporter hash-password: {e}");
            ExitCode::FAILURE
        }
    }
}

impl Cli {
    /// Flags override the file, which overrides the defaults.
    fn apply(self, cfg: &mut Config) {
        macro_rules! set {
            ($flag:expr, $field:expr) => {
                if let Some(v) = $flag {
                    $field = v;
                }
            };
        }
        set!(self.listen_address, cfg.web.listen_address);
        set!(self.web_config_file.map(Some), cfg.web.config_file);
        set!(self.sysfs, cfg.paths.sysfs);
        set!(self.procfs, cfg.paths.procfs);
        set!(self.cgroupfs, cfg.paths.cgroupfs);
        set!(self.rootfs, cfg.paths.rootfs);
        set!(self.jobs, cfg.jobs.enabled);
        set!(self.gpu_mapping_dir.map(Some), cfg.jobs.gpu_mapping_dir);
        set!(self.record_dir.map(Some), cfg.jobs.record_dir);
        set!(
            self.grace.map(joulebook_exporter::config::Seconds),
            cfg.jobs.grace_period
        );
        set!(
            self.interval.map(joulebook_exporter::config::Seconds),
            cfg.sample_interval
        );
        set!(self.rapl, cfg.sources.rapl.enabled);
        set!(self.nvml, cfg.sources.nvml.enabled);
        set!(self.estimate, cfg.sources.estimate.enabled);
        set!(self.bmc, cfg.sources.bmc.enabled);
        set!(self.amdgpu, cfg.sources.amdgpu.enabled);
        set!(self.intel_gpu, cfg.sources.intel_gpu.enabled);
        set!(self.grace_meters, cfg.sources.grace.enabled);
        set!(self.hwmon, cfg.sources.hwmon.enabled);
        set!(self.nvml_library.map(Some), cfg.sources.nvml.library);
        set!(self.state_file.map(Some), cfg.state.file);
        set!(
            self.save_interval.map(joulebook_exporter::config::Seconds),
            cfg.state.save_interval
        );
        set!(self.log_format, cfg.log.format);
        set!(self.log_level, cfg.log.level);
    }
}

fn main() -> ExitCode {
    // `joulebook-exporter generate-docs DIR` (hidden, for scripts/package): man pages, completions.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(dir) = joulebook_common::clidocs::requested(&args) {
        let cmd = <Cli as clap::CommandFactory>::command();
        return ExitCode::from(joulebook_common::clidocs::run(cmd, &dir) as u8);
    }
    let mut cli = Cli::parse();
    match cli.command.take() {
        Some(Command::Simulate(args)) => return simulate(args),
        Some(Command::HashPassword) => return hash_password(),
        None => {}
    }
    let check = cli.check_config;
    let mut cfg = match &cli.config_file {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("joulebook-exporter: {e}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    cli.apply(&mut cfg);
    if let Err((key, msg)) = cfg.validate() {
        eprintln!("joulebook-exporter: invalid configuration: {key}: {msg}");
        return ExitCode::from(2);
    }
    let security = match &cfg.web.config_file {
        Some(path) => match WebSecurity::load(path) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("joulebook-exporter: {e}");
                return ExitCode::from(2);
            }
        },
        None => WebSecurity::default(),
    };
    if check {
        print!("{}", cfg.to_yaml());
        for w in &security.warnings {
            eprintln!("joulebook-exporter: warning: web config: {w}");
        }
        return ExitCode::SUCCESS;
    }
    joulebook_exporter::logging::init(&cfg);
    match joulebook_exporter::app::run(cfg, security) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("joulebook-exporter: {e}");
            ExitCode::FAILURE
        }
    }
}
