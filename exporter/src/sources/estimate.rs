//! An ESTIMATE of CPU and memory power for machines without a hardware counter (virtual
//! machines, containers, laptops without powercap). Published under its own metric names
//! (`joulebook_estimated_*`) and marked `method="estimated"` in `joulebook_node_component_info`,
//! so nobody can mistake it for a measurement.
//!
//! Model:
//! - CPU: `P = TDP × (idle_fraction + (1 − idle_fraction) × u)`, with `u` the busy share of all
//!   CPUs between two reads of `/proc/stat` (everything but idle and iowait). The default
//!   idle_fraction of 0.3 sits in the 20–60 % range of active-idle to full-load power measured in
//!   SPECpower_ssj2008 results; Green Algorithms would use 0 (power proportional to use) and
//!   CodeCarbon a flat 50 % of TDP without RAPL.
//! - TDP: configured, else the built-in table below by CPU model × sockets, else 12 W per
//!   physical core (Green Algorithms' generic per-core figure; Lannelongue et al. 2021,
//!   doi 10.1002/advs.202100707).
//! - Memory: installed memory × 0.375 W/GB (CodeCarbon v2: 3 W per 8 GB; Schmidt et al.,
//!   doi 10.5281/zenodo.4658424), independent of use.

use super::{
    ChannelId, Domain, EnergyReading, RawEnergy, Source, SourceError, SourceKind, SourceSample,
};
use crate::node::NodeInfo;
use std::fs;
use std::path::PathBuf;

/// Generic CPU power per physical core, watts (Green Algorithms).
pub const GENERIC_WATTS_PER_CORE: f64 = 12.0;
/// Memory power per GB (10^9 bytes) of installed memory, watts (CodeCarbon v2).
pub const DEFAULT_MEMORY_WATTS_PER_GB: f64 = 0.375;
/// Share of TDP drawn by an idle CPU in the model (SPECpower active idle: 20–60 %).
pub const DEFAULT_IDLE_FRACTION: f64 = 0.3;

/// TDP per socket, watts, of common server CPUs, matched as a substring of `model name`.
/// Sources: the vendors' product pages (ark.intel.com, amd.com/en/products/processors/server).
pub const TDP_TABLE: &[(&str, f64)] = &[
    ("EPYC 9965", 500.0),
    ("EPYC 9654", 360.0),
    ("EPYC 9554", 360.0),
    ("EPYC 9454", 290.0),
    ("EPYC 7763", 280.0),
    ("EPYC 7713", 225.0),
    ("EPYC 7543", 225.0),
    ("EPYC 7452", 155.0),
    ("EPYC 7302", 155.0),
    ("Xeon(R) Platinum 8480", 350.0),
    ("Xeon(R) Platinum 8380", 270.0),
    ("Xeon(R) Platinum 8358", 250.0),
    ("Xeon(R) Gold 6348", 235.0),
    ("Xeon(R) Gold 6330", 205.0),
    ("Xeon(R) Gold 6248", 150.0),
    ("Xeon(R) Gold 6230", 125.0),
    ("Xeon(R) Gold 6130", 125.0),
    ("Xeon(R) Gold 5220", 125.0),
    ("Xeon(R) Silver 4214", 85.0),
    ("Xeon(R) CPU E5-2630 v4", 85.0),
    ("Xeon(R) CPU E5-2650 v4", 105.0),
    ("Xeon(R) CPU E5-2680 v4", 120.0),
];

/// Where the TDP used by the estimate came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TdpOrigin {
    Configured,
    Table,
    GenericPerCore,
}

impl TdpOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            TdpOrigin::Configured => "configured",
            TdpOrigin::Table => "table",
            TdpOrigin::GenericPerCore => "generic_per_core",
        }
    }
}

/// The node's CPU TDP (all sockets) and where it came from.
pub fn node_tdp(node: &NodeInfo, configured: Option<f64>) -> (f64, TdpOrigin) {
    if let Some(w) = configured {
        return (w, TdpOrigin::Configured);
    }
    if let Some((_, w)) = TDP_TABLE.iter().find(|(m, _)| node.cpu_model.contains(m)) {
        return (w * node.sockets() as f64, TdpOrigin::Table);
    }
    let cores = node.physical_cores.max(node.logical_cpus).max(1);
    (
        GENERIC_WATTS_PER_CORE * cores as f64,
        TdpOrigin::GenericPerCore,
    )
}

#[derive(Clone, Debug)]
pub struct EstimateOptions {
    pub procfs: PathBuf,
    /// Model the CPU (reads /proc/stat each cycle) and memory. In `auto` mode only the components
    /// that no hardware counter measures are modelled.
    pub cpu: bool,
    pub dram: bool,
    pub cpu_tdp_watts: Option<f64>,
    pub idle_fraction: f64,
    pub memory_watts_per_gb: f64,
}

impl Default for EstimateOptions {
    fn default() -> Self {
        EstimateOptions {
            procfs: PathBuf::from("/proc"),
            cpu: true,
            dram: true,
            cpu_tdp_watts: None,
            idle_fraction: DEFAULT_IDLE_FRACTION,
            memory_watts_per_gb: DEFAULT_MEMORY_WATTS_PER_GB,
        }
    }
}

pub struct EstimateSource {
    opts: EstimateOptions,
    tdp_watts: f64,
    memory_watts: f64,
    /// (busy, total) jiffies at the last read.
    last: Option<(u64, u64)>,
}

impl EstimateSource {
    pub fn new(opts: EstimateOptions, node: &NodeInfo) -> Self {
        let (tdp_watts, origin) = node_tdp(node, opts.cpu_tdp_watts);
        let memory_watts = node.memory_bytes as f64 / 1e9 * opts.memory_watts_per_gb;
        let what = match (opts.cpu, opts.dram) {
            (true, true) => "CPU and memory power are",
            (true, false) => "CPU power is",
            _ => "memory power is",
        };
        tracing::info!(
            tdp_watts,
            tdp_origin = origin.as_str(),
            memory_watts,
            "{what} ESTIMATED (no hardware counter for it): see the README, section Estimate"
        );
        EstimateSource {
            opts,
            tdp_watts,
            memory_watts,
            last: None,
        }
    }

    pub fn tdp_watts(&self) -> f64 {
        self.tdp_watts
    }
}

/// Parses the aggregate `cpu` line of /proc/stat into (busy, total) jiffies.
pub fn parse_proc_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse::<u64>())
        .collect::<Result<_, _>>()
        .ok()?;
    if fields.len() < 4 {
        return None;
    }
    // user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is already
    // counted in user and nice, so it is left out of the total.
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

impl Source for EstimateSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Estimate
    }

    fn sample(&mut self) -> Result<SourceSample, SourceError> {
        let mut energy = Vec::with_capacity(2);
        if self.opts.cpu {
            let watts = self.cpu_watts()?;
            energy.push(EnergyReading {
                channel: ChannelId::of(Domain::EstimatedCpu, super::DeviceKey::Node),
                raw: RawEnergy::Power { watts },
            });
        }
        if self.opts.dram {
            energy.push(EnergyReading {
                channel: ChannelId::of(Domain::EstimatedDram, super::DeviceKey::Node),
                raw: RawEnergy::Power {
                    watts: self.memory_watts,
                },
            });
        }
        Ok(SourceSample {
            energy,
            estimate_tdp_watts: self.opts.cpu.then_some(self.tdp_watts),
            ..Default::default()
        })
    }
}

impl EstimateSource {
    fn cpu_watts(&mut self) -> Result<f64, SourceError> {
        let path = self.opts.procfs.join("stat");
        let text = fs::read_to_string(&path)
            .map_err(|e| SourceError::new(format!("cannot read {}: {e}", path.display())))?;
        let (busy, total) = parse_proc_stat(&text).ok_or_else(|| {
            SourceError::new(format!(
                "{} has no parsable aggregate cpu line",
                path.display()
            ))
        })?;
        let util = match self.last.replace((busy, total)) {
            Some((b0, t0)) if total > t0 && busy >= b0 => {
                ((busy - b0) as f64 / (total - t0) as f64).clamp(0.0, 1.0)
            }
            // First read, or no tick elapsed: no utilisation known yet, model the CPU as idle.
            _ => 0.0,
        };
        let idle = self.opts.idle_fraction.clamp(0.0, 1.0);
        Ok(self.tdp_watts * (idle + (1.0 - idle) * util))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_busy_share() {
        let a = parse_proc_stat("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n").unwrap();
        assert_eq!(a, (200, 1000));
        assert_eq!(parse_proc_stat("cpu  x y\n"), None);
        assert_eq!(parse_proc_stat(""), None);
    }

    #[test]
    fn tdp_from_table_config_or_generic() {
        let mut n = NodeInfo {
            cpu_model: "AMD EPYC 7763 64-Core Processor".into(),
            physical_cores: 128,
            ..Default::default()
        };
        n.cpus_by_socket.insert(0, vec![0]);
        n.cpus_by_socket.insert(1, vec![1]);
        assert_eq!(node_tdp(&n, None), (560.0, TdpOrigin::Table));
        assert_eq!(node_tdp(&n, Some(100.0)), (100.0, TdpOrigin::Configured));
        n.cpu_model = "AMD EPYC".into();
        assert_eq!(node_tdp(&n, None), (1536.0, TdpOrigin::GenericPerCore));
    }

    #[test]
    fn power_follows_utilisation() {
        let t = tempfile::tempdir().unwrap();
        let node = NodeInfo {
            physical_cores: 2,
            logical_cpus: 2,
            memory_bytes: 8_000_000_000,
            ..Default::default()
        };
        let mut s = EstimateSource::new(
            EstimateOptions {
                procfs: t.path().into(),
                ..Default::default()
            },
            &node,
        );
        fs::write(t.path().join("stat"), "cpu  0 0 0 100 0 0 0 0\n").unwrap();
        s.sample().unwrap();
        // Half busy: 24 W × (0.3 + 0.7 × 0.5) = 15.6 W; memory 8 GB × 0.375 = 3 W.
        fs::write(t.path().join("stat"), "cpu  50 0 0 150 0 0 0 0\n").unwrap();
        let sample = s.sample().unwrap();
        let RawEnergy::Power { watts } = sample.energy[0].raw else {
            panic!()
        };
        assert!((watts - 15.6).abs() < 1e-9, "{watts}");
        assert_eq!(sample.energy[1].raw, RawEnergy::Power { watts: 3.0 });
        fs::write(t.path().join("stat"), "garbage").unwrap();
        assert!(s.sample().unwrap_err().message.contains("/stat"));
    }
}
