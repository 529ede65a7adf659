//! Whole-node power from the baseboard management controller (BMC): Redfish over HTTPS
//! ([`redfish`]) or IPMI DCMI through `ipmitool` / FreeIPMI ([`ipmi`]).
//!
//! The BMC measures what RAPL and NVML miss (fans, disks, NICs, PSU losses), so it is the ground
//! truth for the node; the sampler derives the `other` component from it. This module publishes
//! only the BMC's own energy channel ([`Domain::Bmc`]), which adds to no component.
//!
//! ## A slow BMC never stalls the other sources
//! BMCs answer in tens of milliseconds to several seconds and refresh their readings every few
//! seconds, so the BMC is polled on its own thread ("bmc") every `poll_interval` (default 5 s,
//! the period at which Grid'5000's Kwollect samples BMC power), each request bounded by
//! `timeout`. [`BmcSource::sample`], called by the sampler every cycle, never does I/O: it copies
//! the latest state out of a mutex that the BMC thread holds only to store a result. Running
//! `ipmitool` forks a process per poll; that happens on the BMC thread every few seconds, never in
//! the sampler's hot path.
//!
//! ## Energy: one monotonic counter owned by the source
//! The energy of the node is taken, in order of preference (`energy_method: auto`):
//! 1. the BMC's own energy counter (Redfish `EnergykWh`), when it has one: the energy between two
//!    readings is the difference of the counter (a counter that went down was reset, and its new
//!    value is the energy since the reset);
//! 2. otherwise its power readings, integrated with the trapezoidal rule.
//!
//! **Integration rule.** Energy is counted only between two consecutive successful readings of
//! the BMC, over the interval between the two readings' own timestamps (the trapezoid of their
//! two power values, or the difference of their two counter values). When two consecutive
//! successful readings are more than `max_gap` apart (default 3 × `poll_interval`: the BMC was
//! unreachable, failed or answered garbage for at least two polls), nothing is counted for that
//! interval: the energy of the gap is not guessed, even from the BMC's counter, which would put a
//! whole outage's energy into the one sampling cycle in which the BMC came back and so onto the
//! jobs running at that moment. The interval is added to `joulebook_bmc_gap_seconds_total`
//! (which also grows while a gap is in progress), and counting restarts from the next reading.
//!
//! Readings arrive every `poll_interval` while the sampler asks every second, so the source does
//! the integration itself, against the BMC readings' timestamps, and hands the sampler its running
//! total as a [`RawEnergy::Resetting`] counter in microjoules. The sampler's accounting (deltas
//! per cycle, node components, attribution) then works unchanged: a reading adds its energy in
//! the cycle in which it arrives. The sampler's per-cycle plausibility bound cannot judge energy
//! that covers a whole poll interval, so it is disabled for this channel (`max_watts: 0`) and
//! the source applies it instead, against the readings' own timestamps: a power reading that is
//! negative, not a number, or above `max_watts` is discarded (counted in
//! `joulebook_samples_dropped_total{source="bmc"}`), and so is a counter step larger than
//! `max_watts` could have drawn since the counter last changed (plus `max_gap`, for counters
//! that step in whole units).

pub mod ipmi;
pub mod redfish;

pub use super::bmc_status::{BmcStatus, Method, Protocol};
use super::{
    ChannelId, Domain, EnergyReading, RawEnergy, Source, SourceError, SourceKind, SourceSample,
};
use crate::energy::{DropReason, PowerIntegral, Step};
use serde::{Deserialize, Serialize};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Default seconds between two polls of the BMC: BMCs refresh their power readings every few
/// seconds, and Grid'5000's Kwollect samples BMC power every 5 s (Delamare & Nussbaum, CNERT 2021).
pub const DEFAULT_POLL_INTERVAL_S: f64 = 5.0;

/// Default limit on one request to the BMC (one HTTP request, or one run of the IPMI tool),
/// seconds: one poll interval, so a hung BMC costs at most one poll.
pub const DEFAULT_TIMEOUT_S: f64 = 5.0;

/// Default `max_gap` in poll intervals: two missed polls are bridged by the trapezoid, a third
/// is a gap.
pub const DEFAULT_MAX_GAP_POLLS: f64 = 3.0;

/// Default largest plausible node power, watts. An NVIDIA DGX H100 (8 GPUs of 700 W) is rated
/// 10.2 kW maximum (NVIDIA DGX H100 datasheet); twice that refuses no real node while still
/// catching garbage such as a reading in milliwatts taken for watts.
pub const DEFAULT_MAX_WATTS: f64 = 20_000.0;

/// How often a source that could not be opened (unreadable password file, bad CA file) tries
/// again, so a secret mounted after start is picked up.
pub const REOPEN_INTERVAL: Duration = Duration::from_secs(60);

/// How long dropping the source waits for the BMC thread to finish its request and log out.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Joules in one kilowatt-hour.
pub const JOULES_PER_KWH: f64 = 3.6e6;

/// Which method to use (configuration key `energy_method`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MethodChoice {
    /// The energy counter when the BMC has one, power integration otherwise.
    #[default]
    Auto,
    /// Only the counter: a BMC without one is a problem.
    Counter,
    /// Always integrate power, even when a counter exists (for counters too coarse to follow
    /// jobs, e.g. whole kWh).
    PowerIntegration,
}

/// What the BMC said at one poll.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Reading {
    /// Node power, watts.
    pub watts: Option<f64>,
    /// The BMC's cumulative energy counter, microjoules.
    pub energy_uj: Option<u64>,
}

/// Reads one BMC. Blocking: called on the BMC thread only, never by the sampler.
pub trait Meter: Send {
    fn protocol(&self) -> Protocol;

    /// Reads the BMC once. Errors name the URL or the command and say how to fix it.
    fn read(&mut self) -> Result<Reading, SourceError>;

    /// Called once when the source stops (Redfish logs out of its session).
    fn close(&mut self) {}
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Value {
    Power(f64),
    /// Counter value (µJ) and the time at which it was first seen.
    Counter {
        uj: u64,
        since: f64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Last {
    t: f64,
    value: Value,
}

/// Turns BMC readings into a monotonic energy total with the integration rule of the module
/// documentation. Pure: times are passed in (seconds on a monotonic clock).
#[derive(Clone, Debug)]
pub struct Integrator {
    choice: MethodChoice,
    max_gap_s: f64,
    max_watts: f64,
    total_uj: u64,
    /// Power integration and its sub-microjoule remainder.
    integral: PowerIntegral,
    last: Option<Last>,
    method: Option<Method>,
    closed_gaps_s: f64,
    covered_s: f64,
    /// End of the span already covered: the time of the last reading that added energy (or
    /// started the integration).
    covered_until: Option<f64>,
}

impl Integrator {
    /// `max_gap_s`: longest interval between readings that is integrated, seconds;
    /// `max_watts`: largest plausible node power, watts.
    pub fn new(choice: MethodChoice, max_gap_s: f64, max_watts: f64) -> Self {
        Integrator {
            choice,
            max_gap_s,
            max_watts,
            total_uj: 0,
            integral: PowerIntegral::default(),
            last: None,
            method: None,
            closed_gaps_s: 0.0,
            covered_s: 0.0,
            covered_until: None,
        }
    }

    /// Seconds covered by the energy counted so far.
    pub fn covered_seconds(&self) -> f64 {
        self.covered_s
    }

    fn cover(&mut self, t: f64) {
        if let Some(from) = self.covered_until {
            self.covered_s += (t - from).max(0.0);
        }
        self.covered_until = Some(t);
    }

    /// Energy counted so far, microjoules.
    pub fn total_uj(&self) -> u64 {
        self.total_uj
    }

    /// The method of the last accepted reading.
    pub fn method(&self) -> Option<Method> {
        self.method
    }

    /// Seconds not integrated because of gaps, including a gap in progress at `now` (an interval
    /// already longer than `max_gap` will not be integrated whatever comes next).
    pub fn gap_seconds(&self, now: f64) -> f64 {
        let open = match self.last {
            Some(l) if now - l.t > self.max_gap_s => now - l.t,
            _ => 0.0,
        };
        self.closed_gaps_s + open
    }

    /// `watts` if it is a plausible node power.
    pub fn plausible_watts(&self, watts: Option<f64>) -> Option<f64> {
        watts.filter(|w| w.is_finite() && *w >= 0.0 && *w <= self.max_watts)
    }

    fn method_for(&self, r: &Reading) -> Result<Method, SourceError> {
        match (self.choice, r.energy_uj.is_some(), r.watts.is_some()) {
            (MethodChoice::Auto | MethodChoice::Counter, true, _) => Ok(Method::Counter),
            (MethodChoice::Auto | MethodChoice::PowerIntegration, _, true) => {
                Ok(Method::PowerIntegration)
            }
            (MethodChoice::Counter, false, _) => Err(SourceError::new(
                "the BMC reports no energy counter (sources.bmc.energy_method is counter)",
            )
            .with_fix("set sources.bmc.energy_method: auto to integrate its power readings")),
            (MethodChoice::PowerIntegration, _, false) => Err(SourceError::new(
                "the BMC reports no power reading (sources.bmc.energy_method is power_integration)",
            )
            .with_fix("set sources.bmc.energy_method: auto to use its energy counter")),
            (MethodChoice::Auto, false, false) => Err(SourceError::new(
                "the BMC reading holds neither power nor energy",
            )),
        }
    }

    /// Feeds one successful reading taken at `t` (seconds, monotonic). An error means the reading
    /// cannot be used with the configured method (a configuration problem, not a glitch).
    pub fn feed(&mut self, r: &Reading, t: f64) -> Result<Step, SourceError> {
        let method = self.method_for(r)?;
        let value = match (method, r.watts, r.energy_uj) {
            (Method::Counter, _, Some(uj)) => Value::Counter { uj, since: t },
            (Method::PowerIntegration, Some(w), _) => {
                if !w.is_finite() || w < 0.0 {
                    return Ok(Step::Dropped(DropReason::OutOfRange));
                }
                if w > self.max_watts {
                    return Ok(Step::Dropped(DropReason::Implausible));
                }
                Value::Power(w)
            }
            // method_for only picks a method whose value is present.
            _ => return Ok(Step::Dropped(DropReason::OutOfRange)),
        };
        let this = Last { t, value };
        let prev = match self.last {
            Some(prev) if self.method == Some(method) => prev,
            // First reading, or the method changed (a counter appeared or vanished): energy is
            // never computed across two methods.
            _ => {
                self.method = Some(method);
                self.last = Some(this);
                self.covered_until = Some(t);
                return Ok(Step::Baseline);
            }
        };
        let dt = t - prev.t;
        if dt <= 0.0 {
            // Same instant (or a clock that went back): nothing to integrate, keep the older one.
            return Ok(Step::Baseline);
        }
        if dt > self.max_gap_s {
            self.closed_gaps_s += dt;
            self.last = Some(this);
            self.covered_until = Some(t);
            return Ok(Step::Gap { seconds: dt });
        }
        match (prev.value, value) {
            (Value::Power(p), Value::Power(w)) => {
                self.last = Some(this);
                let uj = self.integral.trapezoid_uj(p, w, dt);
                self.total_uj = self.total_uj.saturating_add(uj);
                self.cover(t);
                Ok(Step::Added { uj, wrapped: false })
            }
            (Value::Counter { uj: p, since }, Value::Counter { uj: c, .. }) => {
                if c == p {
                    self.last = Some(Last {
                        t,
                        value: Value::Counter { uj: p, since },
                    });
                    return Ok(Step::Added {
                        uj: 0,
                        wrapped: false,
                    });
                }
                // A counter that went down was reset: its value is the energy since the reset.
                let delta = if c > p { c - p } else { c };
                self.last = Some(this);
                let bound_uj = self.max_watts * (t - since + self.max_gap_s) * 1e6;
                if delta as f64 > bound_uj {
                    return Ok(Step::Dropped(DropReason::Implausible));
                }
                self.total_uj = self.total_uj.saturating_add(delta);
                self.cover(t);
                Ok(Step::Added {
                    uj: delta,
                    wrapped: c < p,
                })
            }
            _ => {
                self.last = Some(this);
                Ok(Step::Baseline)
            }
        }
    }
}

/// State shared between the BMC thread (writer) and [`BmcSource::sample`] (reader).
#[derive(Debug)]
struct State {
    integrator: Integrator,
    /// Why the last poll failed; `None` after a success.
    error: Option<SourceError>,
    /// Power of the last successful reading, watts.
    watts: Option<f64>,
    last_ok_t: Option<f64>,
    /// Readings discarded since the last `sample()`.
    dropped: Vec<DropReason>,
    /// A reading was accepted at least once: the energy channel exists.
    started: bool,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic on the BMC thread cannot leave the state half-written in a way that matters more
    // than losing the BMC: keep serving what is there.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A monotonic clock in seconds, shared by the BMC thread and `sample()`.
pub type Clock = Arc<dyn Fn() -> f64 + Send + Sync>;

/// Seconds since the clock was made.
pub fn monotonic_clock() -> Clock {
    let start = Instant::now();
    Arc::new(move || start.elapsed().as_secs_f64())
}

/// Options of the BMC source.
#[derive(Clone, Debug)]
pub struct BmcOptions {
    pub protocol: ProtocolOptions,
    /// Seconds between two polls.
    pub poll_interval_s: f64,
    /// Longest interval between two successful readings that is integrated, seconds.
    pub max_gap_s: f64,
    /// Largest plausible node power, watts.
    pub max_watts: f64,
    pub energy_method: MethodChoice,
}

#[derive(Clone, Debug)]
pub enum ProtocolOptions {
    Redfish(redfish::RedfishOptions),
    Ipmi(ipmi::IpmiOptions),
}

/// Polls a [`Meter`] and feeds the [`Integrator`]. The BMC thread calls [`Poller::poll_at`] every
/// poll interval; tests call it with chosen timestamps.
pub struct Poller {
    meter: Box<dyn Meter>,
    shared: Arc<Mutex<State>>,
}

impl Poller {
    pub fn new(meter: Box<dyn Meter>, opts: &BmcOptions) -> Self {
        Poller {
            meter,
            shared: Arc::new(Mutex::new(State {
                integrator: Integrator::new(opts.energy_method, opts.max_gap_s, opts.max_watts),
                error: None,
                watts: None,
                last_ok_t: None,
                dropped: Vec::new(),
                started: false,
            })),
        }
    }

    /// Reads the BMC (blocking) and records the result as taken at `t` (seconds).
    pub fn poll_at(&mut self, t: f64) {
        let result = self.meter.read();
        self.record(result, t);
    }

    /// Reads the BMC (blocking) and records the result at the clock's time after the answer.
    pub fn poll(&mut self, clock: &Clock) {
        let result = self.meter.read();
        self.record(result, clock());
    }

    /// Energy counted so far, microjoules.
    pub fn total_uj(&self) -> u64 {
        lock(&self.shared).integrator.total_uj()
    }

    /// Seconds of gaps (see [`Integrator::gap_seconds`]).
    pub fn gap_seconds(&self, now: f64) -> f64 {
        lock(&self.shared).integrator.gap_seconds(now)
    }

    /// The error of the last poll, if it failed.
    pub fn error(&self) -> Option<SourceError> {
        lock(&self.shared).error.clone()
    }

    fn record(&self, result: Result<Reading, SourceError>, t: f64) {
        let mut st = lock(&self.shared);
        let reading = match result {
            Ok(r) => r,
            Err(e) => {
                // The time lost is handled by the gap rule at the next success.
                st.error = Some(e);
                return;
            }
        };
        match st.integrator.feed(&reading, t) {
            Err(e) => st.error = Some(e),
            Ok(step) => {
                st.error = None;
                st.started = true;
                st.last_ok_t = Some(t);
                st.watts = st.integrator.plausible_watts(reading.watts);
                match step {
                    Step::Dropped(reason) => {
                        st.dropped.push(reason);
                        tracing::warn!(
                            source = "bmc",
                            watts = ?reading.watts,
                            energy_uj = ?reading.energy_uj,
                            reason = reason.as_str(),
                            "BMC reading discarded (not added to any total)"
                        );
                    }
                    Step::Gap { seconds } => tracing::warn!(
                        source = "bmc",
                        gap_s = seconds,
                        "BMC readings resumed after a gap longer than sources.bmc.max_gap: the \
                         energy of the gap is not counted (joulebook_bmc_gap_seconds_total)"
                    ),
                    Step::Baseline | Step::Added { .. } => {}
                }
            }
        }
    }
}

/// The BMC source: a thread polls the BMC, `sample()` hands over the latest state.
pub struct BmcSource {
    shared: Arc<Mutex<State>>,
    protocol: Protocol,
    clock: Clock,
    max_gap_s: f64,
    stop: Option<mpsc::Sender<()>>,
    done: mpsc::Receiver<()>,
}

/// Builds the meter the options describe and starts polling it.
pub fn open(opts: &BmcOptions) -> Result<BmcSource, SourceError> {
    let meter: Box<dyn Meter> = match &opts.protocol {
        ProtocolOptions::Redfish(o) => Box::new(redfish::RedfishMeter::new(o.clone())?),
        ProtocolOptions::Ipmi(o) => Box::new(ipmi::IpmiMeter::new(o.clone())),
    };
    BmcSource::start(meter, opts, monotonic_clock())
}

impl BmcSource {
    /// Starts the BMC thread, which polls `meter` every `opts.poll_interval_s` on `clock`.
    pub fn start(
        meter: Box<dyn Meter>,
        opts: &BmcOptions,
        clock: Clock,
    ) -> Result<BmcSource, SourceError> {
        let protocol = meter.protocol();
        let mut poller = Poller::new(meter, opts);
        let shared = poller.shared.clone();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let interval = Duration::from_secs_f64(opts.poll_interval_s.max(0.001));
        let thread_clock = clock.clone();
        std::thread::Builder::new()
            .name("bmc".into())
            .spawn(move || {
                poll_loop(&mut poller, &thread_clock, interval, &stop_rx);
                poller.meter.close();
                let _ = done_tx.send(());
            })
            .map_err(|e| SourceError::new(format!("cannot start the BMC thread: {e}")))?;
        Ok(BmcSource {
            shared,
            protocol,
            clock,
            max_gap_s: opts.max_gap_s,
            stop: Some(stop_tx),
            done: done_rx,
        })
    }
}

/// Polls on a fixed schedule (missed ticks are skipped, not bunched) until told to stop.
fn poll_loop(poller: &mut Poller, clock: &Clock, interval: Duration, stop: &mpsc::Receiver<()>) {
    let start = Instant::now();
    let mut tick: u32 = 0;
    loop {
        poller.poll(clock);
        if !crate::tick::wait_next(start, interval, &mut tick, stop) {
            break;
        }
    }
}

impl Source for BmcSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Bmc
    }

    /// Never blocks on the BMC: copies the latest state.
    fn sample(&mut self) -> Result<SourceSample, SourceError> {
        let now = (self.clock)();
        let mut st = lock(&self.shared);
        let fresh = st.error.is_none() && st.last_ok_t.is_some_and(|t| now - t <= self.max_gap_s);
        let status = BmcStatus {
            protocol: self.protocol,
            method: st.integrator.method(),
            power_watts: if fresh { st.watts } else { None },
            gap_seconds_total: st.integrator.gap_seconds(now),
            covered_seconds_total: st.integrator.covered_seconds(),
        };
        let energy = if st.started {
            vec![EnergyReading {
                channel: ChannelId::of(Domain::Bmc, super::DeviceKey::Node),
                // max_watts 0: the source already bounded each reading against its own
                // timestamps (see the module documentation).
                raw: RawEnergy::Resetting {
                    uj: st.integrator.total_uj(),
                    max_watts: 0.0,
                },
            }]
        } else {
            Vec::new()
        };
        Ok(SourceSample {
            energy,
            bmc: Some(status),
            dropped: std::mem::take(&mut st.dropped),
            problems: st.error.iter().cloned().collect(),
            ..Default::default()
        })
    }
}

impl Drop for BmcSource {
    fn drop(&mut self) {
        // Closing the channel stops the thread at its next wait; give it a moment to finish its
        // request and log out, but never hang the exporter's shutdown on a dead BMC.
        self.stop.take();
        let _ = self.done.recv_timeout(CLOSE_WAIT);
    }
}

#[cfg(test)]
mod tests;
