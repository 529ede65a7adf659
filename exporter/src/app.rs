//! Wiring: builds the sources from the configuration, runs the sampler on its own thread and the
//! HTTP server on a small tokio runtime, and shuts both down cleanly on SIGTERM or SIGINT.

use crate::accounting::AccountingOptions;
use crate::attribution::CpuPolicy;
use crate::config::{Config, CpuPolicyConfig, Switch};
use crate::engine::{Engine, Saving};
use crate::jobs::{JobDiscovery, JobsOptions};
use crate::node::NodeInfo;
use crate::sampler::Sampler;
use crate::server;
use crate::snapshot::{publish, Shared, Snapshot};
use crate::sources::amdgpu::{self, AmdGpuOptions, AmdGpuSource};
use crate::sources::bmc::{self, ipmi, redfish, BmcOptions, Protocol, ProtocolOptions};
use crate::sources::estimate::{self, EstimateOptions, EstimateSource};
use crate::sources::grace::{self, GraceOptions, GraceSource};
use crate::sources::intel_gpu::{self, IntelGpuOptions, IntelGpuSource};
use crate::sources::nvml::{self, NvmlOptions, NvmlSource};
use crate::sources::rapl::{self, RaplOptions, RaplSource};
use crate::sources::{Domain, Source, SourceError, SourceKind, SourceSample};
use crate::state::{self, LoadOutcome};
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// A source that could not be opened at start: it retries opening every `retry` and reports the
/// last error meanwhile, so the source shows as down with its reason instead of vanishing.
pub struct Retrying<S: Source, F: FnMut() -> Result<S, SourceError> + Send> {
    kind: SourceKind,
    open: F,
    inner: Option<S>,
    last_try: Option<Instant>,
    last_error: SourceError,
    retry: Duration,
}

impl<S: Source, F: FnMut() -> Result<S, SourceError> + Send> Retrying<S, F> {
    /// `first_error` is what the failed attempt at start said; the next try is `retry` later.
    pub fn new(kind: SourceKind, first_error: SourceError, open: F, retry: Duration) -> Self {
        Retrying {
            kind,
            open,
            inner: None,
            last_try: Some(Instant::now()),
            last_error: first_error,
            retry,
        }
    }
}

impl<S: Source, F: FnMut() -> Result<S, SourceError> + Send> Source for Retrying<S, F> {
    fn kind(&self) -> SourceKind {
        self.kind
    }

    fn sample(&mut self) -> Result<SourceSample, SourceError> {
        if self.inner.is_none() && self.last_try.is_none_or(|t| t.elapsed() >= self.retry) {
            self.last_try = Some(Instant::now());
            match (self.open)() {
                Ok(s) => self.inner = Some(s),
                Err(e) => self.last_error = e,
            }
        }
        match &mut self.inner {
            Some(s) => s.sample(),
            None => Err(self.last_error.clone()),
        }
    }

    fn gpu_processes(&self) -> Vec<(String, u32)> {
        self.inner
            .as_ref()
            .map(Source::gpu_processes)
            .unwrap_or_default()
    }

    fn gpu_minors(&self) -> Vec<(String, u32)> {
        self.inner
            .as_ref()
            .map(Source::gpu_minors)
            .unwrap_or_default()
    }
}

/// The sources to run and those switched off, from the configuration.
pub fn build_sources(cfg: &Config, node: &NodeInfo) -> (Vec<Box<dyn Source>>, Vec<SourceKind>) {
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    let mut disabled = Vec::new();

    let rapl_opts = RaplOptions {
        sysfs: cfg.paths.sysfs.clone(),
        max_zone_watts: cfg.sources.rapl.max_zone_watts,
        package_scope: rapl::msrs_are_package_scope(&node.cpu_vendor),
    };
    let powercap = rapl_opts.sysfs.join("class/powercap");
    // Which components RAPL measures, as found at start: the estimate fills in the others.
    let mut measured_cpu = false;
    let mut measured_dram = false;
    match cfg.sources.rapl.enabled {
        Switch::Off => disabled.push(SourceKind::Rapl),
        Switch::Auto if !powercap.exists() => {
            tracing::info!(
                path = %powercap.display(),
                "no RAPL on this machine (no powercap directory): rapl source disabled; set sources.rapl.enabled: on to insist"
            );
            disabled.push(SourceKind::Rapl);
        }
        _ => {
            match rapl::discover(&powercap, rapl_opts.package_scope) {
                Ok(zones) => {
                    measured_cpu = zones
                        .iter()
                        .any(|z| z.channel.domain == Domain::RaplPackage);
                    measured_dram = zones.iter().any(|z| z.channel.domain == Domain::RaplDram);
                }
                // Reported by the sampler's first cycle (one log line with the fix).
                Err(e) => tracing::debug!(error = %e, "RAPL discovery failed at start"),
            }
            sources.push(Box::new(RaplSource::new(rapl_opts)));
        }
    }

    add_nvml(cfg, &mut sources, &mut disabled);
    add_amdgpu(cfg, &mut sources, &mut disabled);
    add_intel_gpu(cfg, &mut sources, &mut disabled);
    if add_grace(cfg, &mut sources, &mut disabled) {
        // The Grace socket meter measures the CPU and its memory.
        measured_cpu = true;
        measured_dram = true;
    }
    add_bmc(cfg, &mut sources, &mut disabled);
    let gpu_sources = [SourceKind::Nvml, SourceKind::AmdGpu, SourceKind::IntelGpu];
    let measured_gpu = sources.iter().any(|s| gpu_sources.contains(&s.kind()));
    let (hw_cpu, hw_dram) = add_hwmon(
        cfg,
        [measured_cpu, measured_dram, measured_gpu],
        &mut sources,
        &mut disabled,
    );
    measured_cpu |= hw_cpu;
    measured_dram |= hw_dram;

    let e = &cfg.sources.estimate;
    let (cpu, dram) = match e.enabled {
        Switch::Off => (false, false),
        Switch::Auto => (!measured_cpu, !measured_dram),
        Switch::On => (true, true),
    };
    if cpu || dram {
        sources.push(Box::new(EstimateSource::new(
            EstimateOptions {
                procfs: cfg.paths.procfs.clone(),
                cpu,
                dram,
                cpu_tdp_watts: e.cpu_tdp_watts,
                idle_fraction: e.idle_fraction,
                memory_watts_per_gb: e.memory_watts_per_gb,
            },
            node,
        )));
    } else {
        if e.enabled == Switch::Auto {
            tracing::info!("RAPL measures CPU and memory: estimate source not needed (set sources.estimate.enabled: on to publish it anyway)");
        }
        disabled.push(SourceKind::Estimate);
    }
    (sources, disabled)
}

/// The AMD GPU source: `auto` runs it when a GPU with a `gpu_metrics` table is present; `on`
/// runs it anyway, so its absence is reported (down, with the fix).
fn add_amdgpu(cfg: &Config, sources: &mut Vec<Box<dyn Source>>, disabled: &mut Vec<SourceKind>) {
    let c = &cfg.sources.amdgpu;
    let present = || amdgpu::discover_cards(&cfg.paths.sysfs).is_ok_and(|c| !c.is_empty());
    match c.enabled {
        Switch::Off => disabled.push(SourceKind::AmdGpu),
        Switch::Auto if !present() => disabled.push(SourceKind::AmdGpu),
        _ => sources.push(Box::new(AmdGpuSource::new(AmdGpuOptions {
            sysfs: cfg.paths.sysfs.clone(),
            max_gpu_watts: c.max_gpu_watts,
        }))),
    }
}

/// The Intel GPU source, switched like [`add_amdgpu`].
fn add_intel_gpu(cfg: &Config, sources: &mut Vec<Box<dyn Source>>, disabled: &mut Vec<SourceKind>) {
    let c = &cfg.sources.intel_gpu;
    let present = || intel_gpu::discover(&cfg.paths.sysfs).is_ok_and(|g| !g.is_empty());
    match c.enabled {
        Switch::Off => disabled.push(SourceKind::IntelGpu),
        Switch::Auto if !present() => disabled.push(SourceKind::IntelGpu),
        _ => sources.push(Box::new(IntelGpuSource::new(IntelGpuOptions {
            sysfs: cfg.paths.sysfs.clone(),
            max_gpu_watts: c.max_gpu_watts,
        }))),
    }
}

/// The Grace source, switched like [`add_amdgpu`]. True when it found a socket meter, which
/// measures both the CPU and its LPDDR5X memory.
fn add_grace(
    cfg: &Config,
    sources: &mut Vec<Box<dyn Source>>,
    disabled: &mut Vec<SourceKind>,
) -> bool {
    let meters = grace::discover(&cfg.paths.sysfs);
    match cfg.sources.grace.enabled {
        Switch::Off => disabled.push(SourceKind::Grace),
        Switch::Auto if meters.is_empty() => disabled.push(SourceKind::Grace),
        _ => sources.push(Box::new(GraceSource::new(GraceOptions {
            sysfs: cfg.paths.sysfs.clone(),
        }))),
    }
    cfg.sources.grace.enabled != Switch::Off
        && meters.iter().any(|m| m.domain == Domain::GraceSocket)
}

/// The configured hwmon sensors. `measured` says whether cpu, dram and gpu are already measured
/// by another source: a sensor with that role would count them twice (out-of-tree `amd_energy`
/// reports RAPL's own counters), so it is published with role `none` and a warning instead.
/// Returns whether a sensor now measures cpu, and dram.
fn add_hwmon(
    cfg: &Config,
    measured: [bool; 3],
    sources: &mut Vec<Box<dyn Source>>,
    disabled: &mut Vec<SourceKind>,
) -> (bool, bool) {
    use crate::sources::hwmon_sensors::{HwmonSource, Role};
    let c = &cfg.sources.hwmon;
    if c.enabled == Switch::Off || (c.enabled == Switch::Auto && c.sensors.is_empty()) {
        disabled.push(SourceKind::Hwmon);
        return (false, false);
    }
    let mut sensors = c.sensors.clone();
    for s in &mut sensors {
        let taken = match s.role {
            Role::Cpu => measured[0],
            Role::Dram => measured[1],
            Role::Gpu => measured[2],
            Role::Node | Role::None => false,
        };
        if taken {
            tracing::warn!(
                sensor = %s.id,
                chip = %s.chip,
                role = s.role.as_str(),
                "another source already measures this component: the sensor is published with role none and not added (amd_energy duplicates RAPL)"
            );
            s.role = Role::None;
        }
    }
    let cpu = sensors.iter().any(|s| s.role == Role::Cpu);
    let dram = sensors.iter().any(|s| s.role == Role::Dram);
    sources.push(Box::new(HwmonSource::new(cfg.paths.sysfs.clone(), sensors)));
    (cpu, dram)
}

fn add_nvml(cfg: &Config, sources: &mut Vec<Box<dyn Source>>, disabled: &mut Vec<SourceKind>) {
    let c = &cfg.sources.nvml;
    let opts = NvmlOptions {
        library: c.library.clone(),
        max_gpu_watts: c.max_gpu_watts,
    };
    if c.enabled == Switch::Off {
        disabled.push(SourceKind::Nvml);
        return;
    }
    match NvmlSource::open(&opts) {
        Ok(s) => sources.push(Box::new(s)),
        // No driver on a CPU node is normal unless the admin asked for GPUs.
        Err(e) if c.enabled == Switch::Auto && c.library.is_none() => {
            tracing::info!(
                reason = %e.message,
                "no NVIDIA driver found: nvml source disabled; set sources.nvml.enabled: on to insist"
            );
            disabled.push(SourceKind::Nvml);
        }
        Err(e) => sources.push(Box::new(Retrying::new(
            SourceKind::Nvml,
            e,
            move || NvmlSource::open(&opts),
            nvml::REINIT_INTERVAL,
        ))),
    }
}

/// The job discovery and accounting options, or `None` when jobs are off.
pub fn jobs_options(cfg: &Config) -> (Option<JobsOptions>, Option<AccountingOptions>) {
    let j = &cfg.jobs;
    let opts = JobsOptions {
        cgroupfs: cfg.paths.cgroupfs.clone(),
        procfs: cfg.paths.procfs.clone(),
        rootfs: cfg.paths.rootfs.clone(),
        mapping_dir: j.gpu_mapping_dir.clone(),
        oar_resources_dir: j.oar_resources_dir.clone(),
        record_dir: j.record_dir.clone(),
        user_slices: j.user_slices,
        // The usage policy splits each cycle's energy by that cycle's CPU time: read it on
        // every scan. The allocation policy only feeds it to the CPU-seconds counter.
        cpu_time_every: match j.cpu_policy {
            CpuPolicyConfig::UsageAboveBaseline => 1,
            CpuPolicyConfig::Allocation => 0,
        },
    };
    match j.enabled {
        Switch::Off => return (None, None),
        Switch::Auto => {
            if let Err(e) = JobDiscovery::new(opts.clone()).detect_mode() {
                tracing::info!(reason = %e, "no cgroups to read: per-job accounting disabled; set jobs.enabled: on to insist");
                return (None, None);
            }
        }
        Switch::On => {}
    }
    let acc = AccountingOptions {
        policy: match j.cpu_policy {
            CpuPolicyConfig::Allocation => CpuPolicy::Allocation,
            CpuPolicyConfig::UsageAboveBaseline => CpuPolicy::UsageAboveBaseline,
        },
        grace_s: j.grace_period.0,
        anonymize: j.anonymize,
        salt: j.anonymize_salt.clone(),
        idle_watts_by_socket: j.idle_watts_per_socket.iter().map(|w| Some(*w)).collect(),
    };
    (Some(opts), Some(acc))
}

fn boot_id(procfs: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(procfs.join("sys/kernel/random/boot_id"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Loads the state file into the engine; a bad file is set aside and reported, never fatal.
fn load_state(engine: &mut Engine, path: &std::path::Path, hostname: &str, boot: Option<&str>) {
    match state::load(path, hostname) {
        LoadOutcome::Missing => {
            tracing::info!(file = %path.display(), "no state file yet: counters start at 0")
        }
        LoadOutcome::Loaded(st) => {
            engine.resume(&st, server::now_unix(), 0.0, boot);
            tracing::info!(file = %path.display(), jobs = st.jobs.len(), "counters resumed from the state file");
        }
        LoadOutcome::Recovered { state: st, note } => {
            engine.resume(&st, server::now_unix(), 0.0, boot);
            tracing::warn!(file = %path.display(), jobs = st.jobs.len(), %note, "state file had a bad slot (a save interrupted by a crash?): counters resumed from the other");
        }
        LoadOutcome::SetAside { reason, moved_to } => tracing::warn!(
            file = %path.display(),
            moved_to = %moved_to.display(),
            %reason,
            "state file unusable: set aside, counters start at 0"
        ),
        LoadOutcome::Unusable { reason } => tracing::warn!(
            file = %path.display(),
            %reason,
            "state file unusable and could not be set aside: counters start at 0"
        ),
    }
}

/// Saves states handed over by the sampler on its own thread, so a slow disk never delays a
/// sample, and publishes each snapshot only once the state holding its counters is written: what
/// a scrape sees is never more than what a restart resumes, so counters never go back, even after
/// a SIGKILL. A failure is logged once per distinct error, and the snapshot is published anyway
/// (serving stale numbers would be worse).
fn spawn_state_writer(
    path: std::path::PathBuf,
    rx: mpsc::Receiver<Saving>,
    spare: mpsc::SyncSender<Snapshot>,
    shared: Shared,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("state-writer".into())
        .spawn(move || {
            let mut last_error: Option<String> = None;
            let mut saver = state::Saver::new(path.clone());
            while let Ok(saving) = rx.recv() {
                let saved = saving.save(&mut saver);
                // The snapshot replaced, when no scrape holds it any more, lends its job list
                // to the sampler's next one (a full channel: one is lent already).
                if let Ok(old) = Arc::try_unwrap(publish(&shared, saving.snapshot)) {
                    let _ = spare.try_send(old);
                }
                match saved {
                    Ok(()) => {
                        if last_error.take().is_some() {
                            tracing::info!(file = %path.display(), "state file saved again");
                        }
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        if last_error.as_deref() != Some(&msg) {
                            tracing::warn!(error = %msg, "cannot save the state file; counters are kept in memory and saving is retried");
                        }
                        last_error = Some(msg);
                    }
                }
            }
        })
}

/// The BMC source's options from the configuration.
pub fn bmc_options(cfg: &Config) -> BmcOptions {
    let c = &cfg.sources.bmc;
    let timeout = Duration::from_secs_f64(c.timeout.0);
    let protocol = match c.protocol() {
        Protocol::Redfish => ProtocolOptions::Redfish(redfish::RedfishOptions {
            url: c.url.clone().unwrap_or_default(),
            username: c.username.clone().unwrap_or_default(),
            password: match (&c.password_file, &c.password_env) {
                (Some(f), _) => redfish::PasswordSource::File(f.clone()),
                (None, Some(v)) => redfish::PasswordSource::Env(v.clone()),
                // Refused by validation; reading it reports the missing password as a problem.
                (None, None) => redfish::PasswordSource::Value(redfish::Secret::new("")),
            },
            ca_file: c.ca_file.clone(),
            insecure_skip_verify: c.insecure_skip_verify,
            auth: c.auth,
            chassis_id: c.chassis_id.clone(),
            timeout,
        }),
        Protocol::Ipmi => ProtocolOptions::Ipmi(ipmi::IpmiOptions {
            command: c.ipmi_command.clone(),
            timeout,
            search_path: None,
        }),
    };
    BmcOptions {
        protocol,
        poll_interval_s: c.poll_interval.0,
        max_gap_s: c.max_gap_s(),
        max_watts: c.max_watts,
        energy_method: c.energy_method,
    }
}

fn add_bmc(cfg: &Config, sources: &mut Vec<Box<dyn Source>>, disabled: &mut Vec<SourceKind>) {
    let c = &cfg.sources.bmc;
    if c.enabled == Switch::Off {
        disabled.push(SourceKind::Bmc);
        return;
    }
    if c.enabled == Switch::Auto {
        let absent = match c.protocol() {
            Protocol::Redfish => c.url.is_none().then_some("no sources.bmc.url"),
            Protocol::Ipmi => (!ipmi::has_ipmi_device(std::path::Path::new("/dev")))
                .then_some("no in-band IPMI device (/dev/ipmi0)"),
        };
        if let Some(why) = absent {
            tracing::info!(
                reason = why,
                "bmc source disabled; set sources.bmc.enabled: on to insist"
            );
            disabled.push(SourceKind::Bmc);
            return;
        }
    }
    let opts = bmc_options(cfg);
    match bmc::open(&opts) {
        Ok(s) => sources.push(Box::new(s)),
        // An unreadable password or CA file: down with the reason, tried again every minute so a
        // secret mounted after start is picked up.
        Err(e) => sources.push(Box::new(Retrying::new(
            SourceKind::Bmc,
            e,
            move || bmc::open(&opts),
            bmc::REOPEN_INTERVAL,
        ))),
    }
}

/// Runs the exporter until SIGTERM or SIGINT.
pub fn run(cfg: Config, security: crate::webconfig::WebSecurity) -> Result<(), String> {
    let addr = crate::config::parse_listen_address(&cfg.web.listen_address)
        .map_err(|e| format!("--web.listen-address: {e}"))?;
    let node = NodeInfo::read(&cfg.paths.procfs);
    let hostname = node.hostname.clone();
    let (tdp, origin) = estimate::node_tdp(&node, cfg.sources.estimate.cpu_tdp_watts);
    let (sources, disabled) = build_sources(&cfg, &node);
    let interval = cfg.sample_interval.0;
    let sampler = Sampler::new(
        sources,
        disabled,
        node,
        Some((tdp, origin.as_str())),
        interval,
    );
    let (jobs, accounting) = jobs_options(&cfg);
    let mut engine = Engine::new(sampler, jobs, accounting);

    let shared: Shared = Arc::new(RwLock::new(Arc::new(Snapshot::default())));
    let boot = boot_id(&cfg.paths.procfs);
    let (mut saver, mut persist) = (None, None);
    if let Some(path) = &cfg.state.file {
        load_state(&mut engine, path, &hostname, boot.as_deref());
        let (tx, rx) = mpsc::sync_channel(1);
        let (spare_tx, spare) = mpsc::sync_channel(1);
        let handle = spawn_state_writer(path.clone(), rx, spare_tx, shared.clone())
            .map_err(|e| format!("cannot start the state writer thread: {e}"))?;
        persist = Some(Persist {
            tx: tx.clone(),
            spare,
            hostname: hostname.clone(),
            boot_id: boot,
            every_s: cfg.state.save_interval.0,
        });
        saver = Some((tx, handle));
    }

    let (stop_rx, stop_tx) = crate::tick::Stop::new()
        .map_err(|e| format!("cannot make the sampler's stop channel: {e}"))?;
    let sampler_shared = shared.clone();
    let pace = crate::tick::Pace {
        interval_s: interval,
        idle_interval_s: cfg.sample_idle_interval.map_or(interval, |s| s.0),
        sources_limit_s: interval,
        busy: true,
    };
    let sampler_thread = std::thread::Builder::new()
        .name("sampler".into())
        .spawn(move || sample_loop(&mut engine, &sampler_shared, pace, &stop_rx, persist))
        .map_err(|e| format!("cannot start the sampler thread: {e}"))?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let served = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr} (--web.listen-address): {e}"))?;
        tracing::info!(address = %addr, interval_s = interval, version = crate::build_info::VERSION, web = %security.summary(), "joulebook exporter listening");
        for w in &security.warnings {
            tracing::warn!("web config: {w}");
        }
        let (shut_tx, shut_rx) = tokio::sync::watch::channel(false);
        let web = crate::webconfig::LiveWebConfig::new(
            security,
            cfg.web.config_file.clone(),
            Duration::from_secs_f64(cfg.web.basic_auth_cache_ttl.0),
        );
        let server = tokio::spawn(server::serve(listener, shared.clone(), web, shut_rx));
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = shut_tx.send(true);
        let _ = server.await;
        Ok::<(), String>(())
    });
    stop_tx.stop();
    let _ = sampler_thread.join();
    if let Some((tx, handle)) = saver {
        drop(tx);
        let _ = handle.join();
    }
    served
}

/// Where and how often the sampler hands states to the writer.
struct Persist {
    tx: mpsc::SyncSender<Saving>,
    /// Snapshots the writer replaced that no scrape held, for the next one's job list.
    spare: mpsc::Receiver<Snapshot>,
    hostname: String,
    boot_id: Option<String>,
    every_s: f64,
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers, only a kill ends the process: better than not serving.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

/// Samples until told to stop: every `sample_interval` while jobs run (or could start unseen),
/// otherwise after the idle interval that the sources allow (`tick::next_wait`), and at once
/// when a job folder is created or removed. On such an event with no job at the last scan, a
/// cycle without a scan first closes the interval with the energy unallocated, so the new job
/// is charged from its start only; with jobs running, the event's cycle shortens the interval
/// that a starting or ending job is charged for. Saves the state every `persist.every_s` at
/// most (at the next cycle after it), and once more at the end.
fn sample_loop(
    engine: &mut Engine,
    shared: &Shared,
    mut pace: crate::tick::Pace,
    stop: &crate::tick::Stop,
    persist: Option<Persist>,
) {
    use crate::tick::Woken;
    let start = Instant::now();
    let mut last_save = f64::NEG_INFINITY;
    let mut woken = Woken::Timeout;
    let mut spare = None;
    loop {
        let t = start.elapsed().as_secs_f64();
        let unix = server::now_unix();
        if woken == Woken::Event {
            engine.cycle_before_jobs(t, unix);
        }
        // Charged at each snapshot published (`snapshot_reusing`), not every cycle (see
        // `accounting::pending`).
        engine.cycle_deferred(t, unix);
        pace.busy = engine.jobs_busy();
        pace.sources_limit_s = engine.sampler.sources_limit_s();
        let due_s = crate::tick::next_due_s(t, pace);
        let wait = Duration::from_secs_f64((due_s - t).max(0.0));
        // What the health check allows beyond the sampling interval: the wait after this cycle
        // (longer than it while idle) and, with a state file, the save interval.
        let beyond_s = (wait.as_secs_f64() - pace.interval_s).max(0.0);
        match &persist {
            None => {
                let mut snap = engine.snapshot_reusing(unix, spare.take());
                snap.publish_every_s = beyond_s;
                // The snapshot replaced, when no scrape holds it any more, lends its job list
                // to the next one.
                spare = Arc::try_unwrap(publish(shared, Arc::new(snap))).ok();
            }
            Some(p) => {
                if t - last_save >= p.every_s {
                    let mut snap = engine.snapshot_reusing(unix, p.spare.try_recv().ok());
                    snap.publish_every_s = p.every_s + beyond_s;
                    let saving =
                        engine.saving(&p.hostname, p.boot_id.clone(), unix, Arc::new(snap));
                    // A full channel means the writer is still busy: skip, the next save comes
                    // soon; meanwhile the published snapshot is the last one saved.
                    if p.tx.try_send(saving).is_ok() {
                        last_save = t;
                    }
                }
            }
        }
        let due = start + Duration::from_secs_f64(due_s);
        woken = crate::tick::wait_woken(
            due.saturating_duration_since(Instant::now()),
            stop,
            engine.job_events(),
        );
        if woken == Woken::Stop {
            break;
        }
    }
    if let Some(p) = &persist {
        let unix = server::now_unix();
        let snap = Arc::new(engine.snapshot_reusing(unix, None));
        let _ =
            p.tx.send(engine.saving(&p.hostname, p.boot_id.clone(), unix, snap));
    }
}
