//! Wiring: builds the sources from the configuration, runs the sampler on its own thread and the
//! HTTP server on a small tokio runtime, and shuts both down cleanly on SIGTERM or SIGINT.

use crate::config::{Config, LogFormat, Switch};
use crate::node::NodeInfo;
use crate::sampler::{Sampler, Shared, Snapshot};
use crate::server;
use crate::sources::bmc::{self, ipmi, redfish, BmcOptions, Protocol, ProtocolOptions};
use crate::sources::estimate::{self, EstimateOptions, EstimateSource};
use crate::sources::nvml::{self, NvmlOptions, NvmlSource};
use crate::sources::rapl::{self, RaplOptions, RaplSource};
use crate::sources::{Domain, Source, SourceError, SourceKind, SourceSample};
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Sets up logging: readable on a terminal, JSON on request.
pub fn init_logging(cfg: &Config) {
    let mut filter = tracing_subscriber::EnvFilter::try_new(&cfg.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // The HTTP client's trace output dumps raw requests, which carry the BMC credentials: never
    // let a global `debug` or `trace` switch it on.
    for quiet in ["ureq=info", "ureq_proto=info", "rustls=info"] {
        if let Ok(d) = quiet.parse() {
            filter = filter.add_directive(d);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match cfg.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

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
}

/// The sources to run and those switched off, from the configuration.
pub fn build_sources(cfg: &Config, node: &NodeInfo) -> (Vec<Box<dyn Source>>, Vec<SourceKind>) {
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    let mut disabled = Vec::new();

    let rapl_opts = RaplOptions {
        sysfs: cfg.paths.sysfs.clone(),
        max_zone_watts: cfg.sources.rapl.max_zone_watts,
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
            match rapl::discover(&powercap) {
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
    add_bmc(cfg, &mut sources, &mut disabled);

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
pub fn run(cfg: Config) -> Result<(), String> {
    let addr = crate::config::parse_listen_address(&cfg.web.listen_address)
        .map_err(|e| format!("--web.listen-address: {e}"))?;
    let node = NodeInfo::read(&cfg.paths.procfs);
    let (tdp, origin) = estimate::node_tdp(&node, cfg.sources.estimate.cpu_tdp_watts);
    let (sources, disabled) = build_sources(&cfg, &node);
    let interval = cfg.sample_interval.0;
    let mut sampler = Sampler::new(
        sources,
        disabled,
        node,
        Some((tdp, origin.as_str())),
        interval,
    );

    let shared: Shared = Arc::new(RwLock::new(Arc::new(Snapshot::default())));
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let sampler_shared = shared.clone();
    let sampler_thread = std::thread::Builder::new()
        .name("sampler".into())
        .spawn(move || sample_loop(&mut sampler, &sampler_shared, interval, &stop_rx))
        .map_err(|e| format!("cannot start the sampler thread: {e}"))?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let served = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr} (--web.listen-address): {e}"))?;
        tracing::info!(address = %addr, interval_s = interval, version = crate::metrics::VERSION, "joulebook exporter listening");
        let (shut_tx, shut_rx) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(server::serve(listener, shared.clone(), shut_rx));
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = shut_tx.send(true);
        let _ = server.await;
        Ok::<(), String>(())
    });
    let _ = stop_tx.send(());
    let _ = sampler_thread.join();
    served
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

/// Samples on a fixed schedule (missed ticks are skipped, not bunched) until told to stop.
fn sample_loop(sampler: &mut Sampler, shared: &Shared, interval_s: f64, stop: &mpsc::Receiver<()>) {
    let start = Instant::now();
    let interval = Duration::from_secs_f64(interval_s);
    let mut tick: u32 = 0;
    loop {
        sampler.cycle(start.elapsed().as_secs_f64());
        let snap = Arc::new(sampler.snapshot(server::now_unix()));
        match shared.write() {
            Ok(mut g) => *g = snap,
            Err(p) => *p.into_inner() = snap,
        }
        let elapsed = start.elapsed();
        tick = tick.saturating_add(1);
        while interval * tick <= elapsed {
            tick = tick.saturating_add(1);
        }
        let wait = (interval * tick).saturating_sub(elapsed);
        match stop.recv_timeout(wait) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => break,
        }
    }
}
