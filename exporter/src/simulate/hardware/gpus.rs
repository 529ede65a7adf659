//! The GPU sources of the simulated node, one per maker, each publishing what its live source
//! publishes (see `crate::sources`): NVML's UUIDs, power and MIG partitions; amdgpu's
//! `unique_id`s and device list; the xe driver's PCI addresses and device list. All read the
//! same mJ counters of the [`NodeModel`](super::NodeModel), so the three paths differ only in
//! what the exporter's own code does with them. Ids and DRM minors (`cardN`, `renderD128+N`)
//! are what jobs hold and what the OAR prologue and `jobs::gpu` map runtime variables to.

use super::{lock, GpuModel, Shared, SMS_PER_SLICE};
use crate::config::IntelGpuConfig;
use crate::simulate::scenario::MIG_SLICES;
use crate::sources::nvml::POWER_LIMIT_HEADROOM;
use crate::sources::{
    ChannelId, DeviceInfo, Domain, DrmGpu, EnergyReading, GpuInfo, GpuPart, GpuPartitions,
    RawEnergy, Source, SourceError, SourceKind, SourceSample,
};

/// NVML-like source: each GPU's total-energy counter (mJ, reported in µJ), power and limit.
pub struct NvmlSim {
    pub model: Shared,
}

impl Source for NvmlSim {
    fn kind(&self) -> SourceKind {
        SourceKind::Nvml
    }

    fn sample(&mut self) -> Result<SourceSample, SourceError> {
        let m = lock(&self.model);
        m.failing(SourceKind::Nvml)?;
        let mut out = SourceSample::default();
        for g in &m.gpus {
            out.energy.push(EnergyReading {
                channel: ChannelId::new(Domain::Gpu, g.uuid.clone()),
                raw: RawEnergy::Resetting {
                    uj: (g.offset_mj + g.energy_mj.total + m.gpu_jump_mj).saturating_mul(1000),
                    // As the live NVML source: the enforced limit with headroom.
                    max_watts: POWER_LIMIT_HEADROOM * g.limit_w,
                },
            });
            out.gpus.push(GpuInfo {
                uuid: g.uuid.clone(),
                index: g.index,
                model: g.model.clone(),
                pci_bus_id: g.pci_bus_id.clone(),
                power_watts: Some(g.power_w),
                power_limit_watts: Some(g.limit_w),
                energy_counter: true,
            });
        }
        Ok(out)
    }

    fn gpu_minors(&self) -> Vec<(String, u32)> {
        lock(&self.model)
            .gpus
            .iter()
            .map(|g| (g.uuid.clone(), g.index))
            .collect()
    }

    /// The MIG GPUs, split between their instances by SMs, as the live source reports them.
    fn gpu_partitions(&self) -> Vec<GpuPartitions> {
        lock(&self.model)
            .gpus
            .iter()
            .filter(|g| !g.mig.is_empty())
            .map(|g| GpuPartitions {
                device: g.uuid.clone(),
                total_weight: u64::from(MIG_SLICES) * SMS_PER_SLICE,
                parts: g
                    .mig
                    .iter()
                    .map(|m| GpuPart {
                        id: m.uuid.clone(),
                        weight: u64::from(m.slices) * SMS_PER_SLICE,
                        activity: None,
                        instance: Some(m.gi),
                    })
                    .collect(),
            })
            .collect()
    }
}

/// amdgpu-like source: each GPU's `gpu_metrics` energy accumulator (2^-16 J counts, reported in
/// µJ, a counter that resets on a driver reload, like NVML's) and the device list.
pub struct AmdGpuSim {
    pub model: Shared,
}

impl Source for AmdGpuSim {
    fn kind(&self) -> SourceKind {
        SourceKind::AmdGpu
    }

    fn sample(&mut self) -> Result<SourceSample, SourceError> {
        drm_sample(&self.model, SourceKind::AmdGpu, Domain::AmdGpu, |g| {
            (POWER_LIMIT_HEADROOM * g.limit_w, format!("card{}", g.index))
        })
    }

    fn drm_gpus(&self) -> Vec<DrmGpu> {
        drm_gpus(&self.model, "amd", |g| Some(format!("GPU-{}", g.uuid)))
    }
}

/// xe-like source: each GPU's hwmon `card` energy counter (µJ; the driver's 64-bit software sum,
/// which restarts at 0 on a driver reload, like NVML's), bounded as the live source bounds it
/// (`sources.intel_gpu.max_gpu_watts`), named by PCI address, and the device list.
pub struct IntelGpuSim {
    pub model: Shared,
}

impl Source for IntelGpuSim {
    fn kind(&self) -> SourceKind {
        SourceKind::IntelGpu
    }

    fn sample(&mut self) -> Result<SourceSample, SourceError> {
        let max_watts = IntelGpuConfig::default().max_gpu_watts;
        // As the live source names a device: the card and the counter read.
        drm_sample(&self.model, SourceKind::IntelGpu, Domain::IntelGpu, |g| {
            (max_watts, format!("card{} (xe card)", g.index))
        })
    }

    fn drm_gpus(&self) -> Vec<DrmGpu> {
        drm_gpus(&self.model, "intel", |_| None)
    }
}

/// A DRM GPU source's sample: each GPU's counter (µJ, resetting on a driver reload) bounded by
/// the watts `bound` gives, and its device entry under the name `bound` gives.
fn drm_sample(
    model: &Shared,
    kind: SourceKind,
    domain: Domain,
    bound: impl Fn(&GpuModel) -> (f64, String),
) -> Result<SourceSample, SourceError> {
    let m = lock(model);
    m.failing(kind)?;
    let mut out = SourceSample::default();
    for g in &m.gpus {
        let (max_watts, name) = bound(g);
        let channel = ChannelId::new(domain, g.uuid.clone());
        out.energy.push(EnergyReading {
            channel: channel.clone(),
            raw: RawEnergy::Resetting {
                uj: (g.offset_mj + g.energy_mj.total + m.gpu_jump_mj).saturating_mul(1000),
                max_watts,
            },
        });
        out.devices.push(DeviceInfo {
            channel,
            name,
            model: g.model.clone(),
            method: "counter",
        });
    }
    Ok(out)
}

/// A DRM GPU source's GPUs as jobs hold them: id, index, `cardN` and `renderD128+N`.
fn drm_gpus(
    model: &Shared,
    vendor: &'static str,
    alias: impl Fn(&GpuModel) -> Option<String>,
) -> Vec<DrmGpu> {
    lock(model)
        .gpus
        .iter()
        .map(|g| DrmGpu {
            id: g.uuid.clone(),
            vendor,
            index: g.index,
            drm_minors: vec![g.index, 128 + g.index],
            alias: alias(g),
        })
        .collect()
}
