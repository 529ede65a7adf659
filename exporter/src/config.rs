//! Configuration: a YAML file (`--config.file`) for everything that is not a one-off flag, with
//! flags overriding it. Unknown keys, wrong types and bad values are errors that name the file,
//! the line and the key; the process exits with status 2 (see `main`).
//!
//! YAML is parsed with serde-saphyr: serde_yaml is deprecated and unmaintained (archived in
//! 2024), and serde-saphyr is maintained, pure Rust, and reports line and column with a snippet
//! for every error, including unknown keys.

use crate::sources::bmc::{self, redfish, MethodChoice, Protocol};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The default sampling interval, seconds. One second resolves job starts and ends to within a
/// second (short jobs matter for per-job totals), stays far below the fastest RAPL wrap period
/// (about 4 minutes for a 280 W AMD socket), and costs a negligible share of one core (the
/// README's benchmark section gives the measured cost per cycle).
pub const DEFAULT_INTERVAL_S: f64 = 1.0;

pub use crate::duration::{parse_duration, Seconds};

/// Whether a source runs: `auto` runs it where the hardware exists and leaves it disabled
/// (quietly, with one info line) where it does not; `on` insists, so a missing device or driver
/// marks the source down; `off` never runs it. YAML `true`/`false` mean `on`/`off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Switch {
    Auto,
    On,
    Off,
}

impl<'de> Deserialize<'de> for Switch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Switch;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("auto, on, off, true or false")
            }
            fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Switch, E> {
                Ok(if b { Switch::On } else { Switch::Off })
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Switch, E> {
                match s {
                    "auto" => Ok(Switch::Auto),
                    "on" | "true" | "yes" => Ok(Switch::On),
                    "off" | "false" | "no" => Ok(Switch::Off),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(s), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub web: WebConfig,
    pub sample_interval: Seconds,
    /// The longest wait between samples while no job runs and every job folder is watched (or
    /// jobs are off); `sample_interval` applies while jobs run, and is the floor. A job folder
    /// created or removed wakes the sampler at once. Unset (the default) or at most
    /// `sample_interval`: every `sample_interval`, as before the key existed. The shipped
    /// configuration sets 30s.
    pub sample_idle_interval: Option<Seconds>,
    pub paths: PathsConfig,
    pub sources: SourcesConfig,
    pub jobs: JobsConfig,
    pub state: StateConfig,
    pub log: LogConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    pub listen_address: String,
    /// The exporter-toolkit web configuration file: TLS, basic auth (`webconfig`).
    pub config_file: Option<PathBuf>,
    /// How long a successful basic-auth check is remembered after its last use.
    pub basic_auth_cache_ttl: Seconds,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathsConfig {
    pub sysfs: PathBuf,
    pub procfs: PathBuf,
    /// Where cgroups are mounted (job discovery).
    pub cgroupfs: PathBuf,
    /// The root under which `etc/passwd` is read to name users.
    pub rootfs: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourcesConfig {
    pub rapl: RaplConfig,
    pub nvml: NvmlConfig,
    pub estimate: EstimateConfig,
    pub bmc: BmcConfig,
    pub amdgpu: AmdGpuConfig,
    pub intel_gpu: IntelGpuConfig,
    pub grace: GraceConfig,
    pub hwmon: HwmonConfig,
}

/// hwmon sensors named by the administrator (`sources::hwmon_sensors`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HwmonConfig {
    /// `auto`: when sensors are listed.
    pub enabled: Switch,
    pub sensors: Vec<crate::sources::hwmon_sensors::SensorConfig>,
}

impl Default for HwmonConfig {
    fn default() -> Self {
        HwmonConfig {
            enabled: Switch::Auto,
            sensors: Vec::new(),
        }
    }
}

/// NVIDIA Grace power meters (`sources::grace`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraceConfig {
    /// `auto`: when a meter naming a Grace socket is present.
    pub enabled: Switch,
}

impl Default for GraceConfig {
    fn default() -> Self {
        GraceConfig {
            enabled: Switch::Auto,
        }
    }
}

/// Intel discrete GPUs through the xe and i915 drivers' hwmon files (`sources::intel_gpu`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntelGpuConfig {
    /// `auto`: when an Intel GPU with an energy counter is present.
    pub enabled: Switch,
    /// Plausibility bound per GPU, watts.
    pub max_gpu_watts: f64,
}

impl Default for IntelGpuConfig {
    fn default() -> Self {
        IntelGpuConfig {
            enabled: Switch::Auto,
            // Data Center GPU Max 1550: 600 W.
            max_gpu_watts: 1200.0,
        }
    }
}

/// AMD GPUs through the amdgpu driver's sysfs files (`sources::amdgpu`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AmdGpuConfig {
    /// `auto`: when an amdgpu GPU is present.
    pub enabled: Switch,
    /// Plausibility bound per GPU (an MI250X package counts as one), watts.
    pub max_gpu_watts: f64,
}

impl Default for AmdGpuConfig {
    fn default() -> Self {
        AmdGpuConfig {
            enabled: Switch::Auto,
            // MI355X: 1400 W; the bound leaves room above the largest part sold in 2025.
            max_gpu_watts: 2000.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaplConfig {
    pub enabled: Switch,
    /// Plausibility bound per zone, watts (see `RaplOptions::max_zone_watts`).
    pub max_zone_watts: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NvmlConfig {
    pub enabled: Switch,
    /// Path of libnvidia-ml.so; default: the system's (`libnvidia-ml.so.1` through the loader).
    pub library: Option<PathBuf>,
    /// Plausibility bound per GPU when its power limit is unknown, watts.
    pub max_gpu_watts: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EstimateConfig {
    /// `auto` and `on` both run it; it never replaces a measured component.
    pub enabled: Switch,
    /// TDP of all CPU packages together, watts; default from the built-in table or 12 W/core.
    pub cpu_tdp_watts: Option<f64>,
    /// Share of TDP an idle CPU draws in the model, 0–1.
    pub idle_fraction: f64,
    pub memory_watts_per_gb: f64,
}

/// How CPU package energy is split between jobs (see the attribution module).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CpuPolicyConfig {
    /// By allocated CPUs (default).
    Allocation,
    /// The socket's idle baseline by allocated CPUs, the rest by CPU time used.
    UsageAboveBaseline,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// `auto`: attribute to jobs when the cgroup mount is readable.
    pub enabled: Switch,
    /// dcgm-exporter's `--hpc-job-mapping-dir` format, written by the prolog/epilog.
    pub gpu_mapping_dir: Option<PathBuf>,
    /// OAR job resources: `<dir>/<jobid>` listing GPU indices or UUIDs, one per line.
    pub oar_resources_dir: Option<PathBuf>,
    /// Job records written by the scheduler's prolog (docs/job-identity.md).
    pub record_dir: Option<PathBuf>,
    /// Treat each user's systemd slice as that user's job (lab machines without a scheduler).
    pub user_slices: bool,
    /// How long a finished job's counters stay published.
    pub grace_period: Seconds,
    pub cpu_policy: CpuPolicyConfig,
    /// Idle package power per socket, watts, for usage_above_baseline; empty: learned.
    pub idle_watts_per_socket: Vec<f64>,
    /// User and job names: none (as they are), hash (salted SHA-256 prefix) or drop.
    pub anonymize: crate::accounting::Anonymize,
    pub anonymize_salt: String,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            enabled: Switch::Auto,
            gpu_mapping_dir: None,
            oar_resources_dir: None,
            record_dir: Some(PathBuf::from(crate::jobs::DEFAULT_RECORD_DIR)),
            user_slices: false,
            grace_period: Seconds(crate::accounting::DEFAULT_GRACE_S),
            cpu_policy: CpuPolicyConfig::Allocation,
            idle_watts_per_socket: Vec::new(),
            anonymize: crate::accounting::Anonymize::None,
            anonymize_salt: String::new(),
        }
    }
}

/// Default interval between state saves, seconds. With a state file, counters on /metrics
/// advance at each save (see `app::spawn_state_writer`), so this is also their refresh period:
/// 5 s is below any usual scrape interval, and one small atomic write every 5 s costs nothing.
pub const DEFAULT_SAVE_INTERVAL_S: f64 = 5.0;

/// The BMC: whole-node power over Redfish or IPMI DCMI (see `sources::bmc`). Secrets are never
/// written here: only the file or the environment variable that holds the password.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BmcConfig {
    /// Default `off`: a BMC must be configured. `auto` runs Redfish when `url` is set and IPMI
    /// when the node has an in-band IPMI device (`/dev/ipmi0`), and stays quiet otherwise.
    pub enabled: Switch,
    /// `redfish` or `ipmi`; default: `redfish` when `url` is set, `ipmi` otherwise.
    pub kind: Option<Protocol>,
    /// Redfish: the BMC's address, `https://HOST[:PORT]`.
    pub url: Option<String>,
    /// Redfish: the BMC account (the ReadOnly role is enough).
    pub username: Option<String>,
    /// Redfish: file holding the password (one trailing newline ignored).
    pub password_file: Option<PathBuf>,
    /// Redfish: name of the environment variable holding the password.
    pub password_env: Option<String>,
    /// Redfish: PEM file of the CA that signed the BMC's certificate.
    pub ca_file: Option<PathBuf>,
    /// Redfish: accept any certificate (explicit opt-in; an isolated management network only).
    pub insecure_skip_verify: bool,
    /// Redfish: `session` (default, falls back to basic when the BMC has no sessions) or `basic`.
    pub auth: redfish::Auth,
    /// Redfish: the chassis to read (its Id), instead of the first whole-node chassis with power.
    pub chassis_id: Option<String>,
    /// Interval between two polls of the BMC, on its own thread (default 5s).
    pub poll_interval: Seconds,
    /// Limit on one request (HTTP request or IPMI tool run), default 5s.
    pub timeout: Seconds,
    /// Readings further apart than this are not integrated (default: 3 x poll_interval).
    pub max_gap: Option<Seconds>,
    /// `auto` (the BMC's energy counter when it has one, else power integration), `counter`, or
    /// `power_integration`.
    pub energy_method: MethodChoice,
    /// Largest plausible node power, watts; readings above are discarded.
    pub max_watts: f64,
    /// IPMI: the command and its arguments; default `ipmitool dcmi power reading`, else
    /// `ipmi-dcmi --get-system-power-statistics`.
    pub ipmi_command: Option<Vec<String>>,
}

impl BmcConfig {
    /// The protocol in use: `kind`, or Redfish when a URL is given.
    pub fn protocol(&self) -> Protocol {
        self.kind.unwrap_or(if self.url.is_some() {
            Protocol::Redfish
        } else {
            Protocol::Ipmi
        })
    }

    /// `max_gap` in seconds, defaulting to 3 poll intervals.
    pub fn max_gap_s(&self) -> f64 {
        self.max_gap
            .map_or(bmc::DEFAULT_MAX_GAP_POLLS * self.poll_interval.0, |g| g.0)
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, m: String| Err((format!("sources.bmc.{k}"), m));
        let p = self.poll_interval.0;
        if !(1.0..=3600.0).contains(&p) {
            return bad(
                "poll_interval",
                format!("{p} s is outside 1s..1h (default 5s: BMCs refresh every few seconds)"),
            );
        }
        let t = self.timeout.0;
        if !(0.1..=120.0).contains(&t) {
            return bad(
                "timeout",
                format!("{t} s is outside 100ms..120s (default 5s)"),
            );
        }
        let g = self.max_gap_s();
        if g < p {
            return bad(
                "max_gap",
                format!("{g} s is below poll_interval ({p} s): every interval would be a gap"),
            );
        }
        if !(self.max_watts.is_finite() && self.max_watts > 0.0) {
            return bad(
                "max_watts",
                format!("{} must be a positive number of watts", self.max_watts),
            );
        }
        if self.enabled == Switch::Off {
            return Ok(());
        }
        match self.protocol() {
            Protocol::Redfish => {
                let Some(url) = &self.url else {
                    return bad(
                        "url",
                        "is required for kind: redfish (https://BMC-ADDRESS)".into(),
                    );
                };
                if let Err(e) = redfish::base_url(url) {
                    return bad("url", e);
                }
                if self.username.as_deref().is_none_or(str::is_empty) {
                    return bad("username", "is required for kind: redfish".into());
                }
                match (&self.password_file, &self.password_env) {
                    (None, None) => {
                        return bad(
                            "password_file",
                            "a password is required for kind: redfish: set password_file (or                              password_env)"
                                .into(),
                        )
                    }
                    (Some(_), Some(_)) => {
                        return bad(
                            "password_env",
                            "set password_file or password_env, not both".into(),
                        )
                    }
                    (None, Some(v)) if v.is_empty() => {
                        return bad("password_env", "names no variable".into())
                    }
                    _ => {}
                }
                if self.insecure_skip_verify && self.ca_file.is_some() {
                    return bad(
                        "insecure_skip_verify",
                        "contradicts ca_file: keep ca_file to verify the BMC's certificate".into(),
                    );
                }
            }
            Protocol::Ipmi => {
                if self.energy_method == MethodChoice::Counter {
                    return bad(
                        "energy_method",
                        "IPMI DCMI has no energy counter: use auto or power_integration".into(),
                    );
                }
                if let Some(cmd) = &self.ipmi_command {
                    if cmd.first().is_none_or(|c| c.trim().is_empty()) {
                        return bad(
                            "ipmi_command",
                            "is empty: give the command and its arguments as a list".into(),
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// Where totals are kept across restarts; none disables persistence.
    pub file: Option<PathBuf>,
    pub save_interval: Seconds,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter: `info`, `debug`, `joulebook_exporter=debug,warn`...
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            web: WebConfig::default(),
            sample_interval: Seconds(DEFAULT_INTERVAL_S),
            sample_idle_interval: None,
            paths: PathsConfig::default(),
            sources: SourcesConfig::default(),
            jobs: JobsConfig::default(),
            state: StateConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen_address: format!(":{}", joulebook_common::DEFAULT_PORT),
            config_file: None,
            basic_auth_cache_ttl: Seconds(crate::webconfig::AUTH_CACHE_TTL.as_secs_f64()),
        }
    }
}

impl Default for PathsConfig {
    fn default() -> Self {
        PathsConfig {
            sysfs: "/sys".into(),
            procfs: "/proc".into(),
            cgroupfs: "/sys/fs/cgroup".into(),
            rootfs: "/".into(),
        }
    }
}

impl Default for SourcesConfig {
    fn default() -> Self {
        SourcesConfig {
            rapl: RaplConfig {
                enabled: Switch::Auto,
                max_zone_watts: crate::sources::rapl::RaplOptions::default().max_zone_watts,
            },
            nvml: NvmlConfig::default(),
            estimate: EstimateConfig::default(),
            bmc: BmcConfig::default(),
            amdgpu: AmdGpuConfig::default(),
            intel_gpu: IntelGpuConfig::default(),
            grace: GraceConfig::default(),
            hwmon: HwmonConfig::default(),
        }
    }
}

impl Default for BmcConfig {
    fn default() -> Self {
        BmcConfig {
            enabled: Switch::Off,
            kind: None,
            url: None,
            username: None,
            password_file: None,
            password_env: None,
            ca_file: None,
            insecure_skip_verify: false,
            auth: redfish::Auth::default(),
            chassis_id: None,
            poll_interval: Seconds(bmc::DEFAULT_POLL_INTERVAL_S),
            timeout: Seconds(bmc::DEFAULT_TIMEOUT_S),
            max_gap: None,
            energy_method: MethodChoice::default(),
            max_watts: bmc::DEFAULT_MAX_WATTS,
            ipmi_command: None,
        }
    }
}

impl Default for RaplConfig {
    fn default() -> Self {
        SourcesConfig::default().rapl
    }
}

impl Default for NvmlConfig {
    fn default() -> Self {
        NvmlConfig {
            enabled: Switch::Auto,
            library: None,
            max_gpu_watts: 1500.0,
        }
    }
}

impl Default for EstimateConfig {
    fn default() -> Self {
        use crate::sources::estimate as e;
        EstimateConfig {
            enabled: Switch::Auto,
            cpu_tdp_watts: None,
            idle_fraction: e::DEFAULT_IDLE_FRACTION,
            memory_watts_per_gb: e::DEFAULT_MEMORY_WATTS_PER_GB,
        }
    }
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            file: None,
            save_interval: Seconds(DEFAULT_SAVE_INTERVAL_S),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// A configuration error: what is wrong, and where (file, line, key or flag).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// A validation failure: the dotted key and what is wrong.
fn bad(key: &str, why: String) -> Result<(), (String, String)> {
    Err((key.to_string(), why))
}

impl Config {
    /// Reads and validates a YAML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
        let cfg = Config::parse(&text)
            .map_err(|e| ConfigError(format!("config file {}: {}", path.display(), e.0)))?;
        cfg.validate().map_err(|(key, msg)| {
            ConfigError(crate::yaml_key::key_error(
                "config", path, &text, &key, &msg,
            ))
        })?;
        Ok(cfg)
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_saphyr::from_str(text).map_err(|e| ConfigError(e.to_string()))
    }

    /// Checks values; returns the dotted key and what is wrong (the first problem, in the order
    /// of the sections).
    pub fn validate(&self) -> Result<(), (String, String)> {
        self.validate_sampling_and_web()?;
        self.validate_sources()?;
        self.validate_state_and_jobs()?;
        self.sources.bmc.validate()?;
        if let Err(e) = self.log.level.parse::<tracing_subscriber::EnvFilter>() {
            return bad("log.level", format!("{:?}: {e}", self.log.level));
        }
        Ok(())
    }

    /// The sampling intervals and the web server's address and cache.
    fn validate_sampling_and_web(&self) -> Result<(), (String, String)> {
        let i = self.sample_interval.0;
        if !(0.05..=60.0).contains(&i) {
            return bad(
                "sample_interval",
                format!("{i} s is outside 50ms..60s (default 1s)"),
            );
        }
        if let Some(Seconds(idle)) = self.sample_idle_interval {
            // At most 2 min: with a scrape and a rule evaluation (60 s each) it stays below the
            // sampler-stale alert's 300 s (deploy/prometheus/rules/joulebook-alerts.yml).
            if !(0.05..=120.0).contains(&idle) {
                return bad(
                    "sample_idle_interval",
                    format!("{idle} s is outside 50ms..2m (30s in the shipped configuration)"),
                );
            }
        }
        if parse_listen_address(&self.web.listen_address).is_err() {
            return bad(
                "web.listen_address",
                format!("{:?} is not HOST:PORT or :PORT", self.web.listen_address),
            );
        }
        let ttl = self.web.basic_auth_cache_ttl.0;
        if !(1.0..=86400.0).contains(&ttl) {
            return bad(
                "web.basic_auth_cache_ttl",
                format!("{ttl} s is outside 1s..24h (default 5m)"),
            );
        }
        Ok(())
    }

    /// The sources' bounds, the hwmon sensors and the estimate.
    fn validate_sources(&self) -> Result<(), (String, String)> {
        let positive = [
            (
                "sources.rapl.max_zone_watts",
                self.sources.rapl.max_zone_watts,
            ),
            (
                "sources.nvml.max_gpu_watts",
                self.sources.nvml.max_gpu_watts,
            ),
            (
                "sources.amdgpu.max_gpu_watts",
                self.sources.amdgpu.max_gpu_watts,
            ),
            (
                "sources.intel_gpu.max_gpu_watts",
                self.sources.intel_gpu.max_gpu_watts,
            ),
            (
                "sources.estimate.memory_watts_per_gb",
                self.sources.estimate.memory_watts_per_gb,
            ),
        ];
        for (k, v) in positive {
            if !(v.is_finite() && v >= 0.0) {
                return bad(k, format!("{v} must be a non-negative number"));
            }
        }
        self.validate_hwmon_sensors()?;
        if let Some(t) = self.sources.estimate.cpu_tdp_watts {
            if !(t.is_finite() && t > 0.0) {
                return bad(
                    "sources.estimate.cpu_tdp_watts",
                    format!("{t} must be a positive number of watts"),
                );
            }
        }
        let f = self.sources.estimate.idle_fraction;
        if !(0.0..=1.0).contains(&f) {
            return bad(
                "sources.estimate.idle_fraction",
                format!("{f} must be between 0 and 1"),
            );
        }
        Ok(())
    }

    /// Each hwmon sensor valid and named once; one whole-node meter at most (a sensor of role
    /// node, or the BMC).
    fn validate_hwmon_sensors(&self) -> Result<(), (String, String)> {
        let sensors = &self.sources.hwmon.sensors;
        for (i, s) in sensors.iter().enumerate() {
            if let Err((key, why)) = crate::sources::hwmon_sensors::check(s) {
                return bad(&format!("sources.hwmon.sensors[{i}].{key}"), why);
            }
            if sensors[..i].iter().any(|o| o.id == s.id) {
                return bad(
                    &format!("sources.hwmon.sensors[{i}].id"),
                    format!("{:?} is used by an earlier sensor", s.id),
                );
            }
        }
        if sensors
            .iter()
            .filter(|s| s.role == crate::sources::hwmon_sensors::Role::Node)
            .count()
            > 1
        {
            return bad(
                "sources.hwmon.sensors",
                "more than one sensor has role node: one whole-node meter only".into(),
            );
        }
        if self.sources.bmc.enabled != Switch::Off {
            if let Some(i) = sensors
                .iter()
                .position(|s| s.role == crate::sources::hwmon_sensors::Role::Node)
            {
                return bad(
                    &format!("sources.hwmon.sensors[{i}].role"),
                    "node: the BMC is already this node's whole-node meter (one meter gives `other`)"
                        .into(),
                );
            }
        }
        Ok(())
    }

    /// State saving and per-job accounting.
    fn validate_state_and_jobs(&self) -> Result<(), (String, String)> {
        let si = self.state.save_interval.0;
        if !(0.05..=3600.0).contains(&si) {
            return bad(
                "state.save_interval",
                format!("{si} s is outside 50ms..1h (default 5s)"),
            );
        }
        if self.jobs.grace_period.0 < 0.0 {
            return bad("jobs.grace_period", "must not be negative".into());
        }
        if let Some(w) = self
            .jobs
            .idle_watts_per_socket
            .iter()
            .find(|w| !(w.is_finite() && **w >= 0.0))
        {
            return bad(
                "jobs.idle_watts_per_socket",
                format!("{w} must be a non-negative number of watts"),
            );
        }
        if self.jobs.anonymize == crate::accounting::Anonymize::Hash
            && self.jobs.anonymize_salt.len() < 8
        {
            return bad(
                "jobs.anonymize_salt",
                "anonymize: hash needs a secret salt of at least 8 characters, or names can be \
                 recovered by hashing candidate names"
                    .into(),
            );
        }
        Ok(())
    }

    /// The effective configuration as YAML (`--check-config`).
    /// Secrets are shown as `<redacted>`.
    pub fn to_yaml(&self) -> String {
        let mut shown = self.clone();
        if !shown.jobs.anonymize_salt.is_empty() {
            shown.jobs.anonymize_salt = "<redacted>".into();
        }
        if let Some(cmd) = &mut shown.sources.bmc.ipmi_command {
            let secrets = bmc::ipmi::secrets(cmd);
            for a in cmd.iter_mut() {
                *a = bmc::ipmi::scrub(a, &secrets);
            }
        }
        serde_saphyr::to_string(&shown).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }
}

/// `:9977` (all interfaces), `127.0.0.1:9977`, `[::1]:9977`.
pub fn parse_listen_address(s: &str) -> Result<SocketAddr, String> {
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_string()
    };
    full.parse::<SocketAddr>()
        .map_err(|e| format!("{s:?} is not HOST:PORT or :PORT ({e})"))
}

#[cfg(test)]
mod tests;
