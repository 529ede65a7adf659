//! AMD GPUs through the amdgpu driver's sysfs files; no ROCm or libdrm needed.
//!
//! - A GPU is a `<sysfs>/class/drm/cardN` whose `device/vendor` is 0x1002 and whose device has a
//!   `gpu_metrics` table. It is identified by `device/unique_id` (the chip's serial, stable across
//!   reboots and PCI renumbering), else its PCI address. Cards sharing a `unique_id` are one GPU,
//!   counted once. MI300 compute partitions (CPX, DPX...) appear as extra DRM devices on
//!   `amdgpu_xcp` platform devices with no `gpu_metrics` of their own: the physical GPU's PCI
//!   device carries the one energy counter, so a partition is never counted apart from it.
//!   The KFD topology ([`kfd`]) lists each partition with the GPU's `unique_id` (else PCI
//!   address), its render node and compute units: the first (the PCI device's own) is the GPU's
//!   id, each other one a part `<id>-p<k>` that jobs hold by its DRM minors or ROCm index, and
//!   the GPU's energy is split between them by compute units ([`crate::partition`]).
//! - Energy: the table's energy accumulator ([`gpu_metrics`], 2^-16 J a count), returned as a
//!   resetting counter in µJ (it restarts when the driver reloads). Used on the revisions whose
//!   unit the kernel states (v1_4 and later: MI300 series, `smu_v13_0_6_ppt.c`) and on MI200
//!   (Aldebaran, v1_3). Elsewhere (consumer GPUs, whose v1_1–v1_3 counter has no documented
//!   unit), and when the counter is all ones (not filled) or stuck while the GPU draws power,
//!   the GPU's hwmon `power1_average` (else `power1_input`), in µW, is integrated instead; the
//!   change is logged once and published as the method. A GPU stays on power integration until
//!   the exporter restarts, so a counter that comes back is never mistaken for a jump.
//! - MI300A is an APU: its socket counter covers its Zen 4 cores (which RAPL measures as the CPU
//!   package) as well as the GPU and HBM. It is published as `amd_apu`, added to no component,
//!   so the cores are never counted twice; the node's `gpu` has no MI300A share (with a BMC,
//!   the socket minus RAPL's package lands in `other`).
//! - MI250X: each package has two dies (GCDs), each its own PCI device. Only the primary die
//!   reports power and energy, for the whole package; the secondary die's table holds zeros
//!   (`aldebaran_ppt.c`). The package is counted once, on the primary die; the secondary die
//!   is published with method `primary_die` and no energy of its own.

use super::gpu_metrics::{self, Energy};
use super::hwmon;
use super::kfd;
use super::{
    ChannelId, DeviceInfo, Domain, DrmGpu, EnergyReading, GpuPart, GpuPartitions, RawEnergy,
    Source, SourceError, SourceKind, SourceSample,
};
use std::fs;
use std::path::{Path, PathBuf};

/// PCI device ids of MI200 (Aldebaran) dies, from `amdgpu_drv.c`'s `pciidlist`.
const ALDEBARAN: [u16; 4] = [0x7408, 0x740C, 0x740F, 0x7410];

/// MI300A, an APU (PCI ID database: "Aqua Vanjaram [Instinct MI300A]"): its socket counter
/// covers the CPU cores too.
const MI300A: u16 = 0x74a0;

/// Samples with an unchanged counter while the GPU draws power before the counter is taken to
/// be stuck (the SMU updates it every millisecond or so; 10 s at the default interval).
pub const STUCK_SAMPLES: u32 = 10;

/// Samples between two discoveries when nothing goes wrong.
pub const REDISCOVER_EVERY: u64 = 60;

#[derive(Clone, Debug)]
pub struct AmdGpuOptions {
    pub sysfs: PathBuf,
    /// Plausibility bound per GPU (or MI250X package), watts.
    pub max_gpu_watts: f64,
}

/// How a GPU's energy is obtained.
#[derive(Clone, Debug, PartialEq)]
enum Mode {
    Counter,
    /// Integrating hwmon power, and why.
    Power(String),
    /// An MI250X secondary die: counted on its package's primary die.
    SecondaryDie,
}

impl Mode {
    fn method(&self) -> &'static str {
        match self {
            Mode::Counter => "counter",
            Mode::Power(_) => "power_integration",
            Mode::SecondaryDie => "primary_die",
        }
    }
}

#[derive(Clone, Debug)]
struct Gpu {
    id: String,
    card: String,
    model: String,
    device_id: u16,
    /// PCI address, the job mapping's index order.
    pci: String,
    drm_minors: Vec<u32>,
    /// ROCm's name for it, `GPU-<unique_id>`, when it has a `unique_id`.
    rocm_uuid: Option<String>,
    metrics: PathBuf,
    power: Option<PathBuf>,
    mode: Option<Mode>,
    last_counter: Option<u64>,
    unchanged: u32,
    /// Compute partitions beyond the first (the GPU's own), from the KFD topology; empty when
    /// the GPU is not partitioned.
    partitions: Vec<kfd::Partition>,
    /// The first partition's compute units (the GPU's own share) when partitioned.
    own_cus: u64,
}

pub struct AmdGpuSource {
    opts: AmdGpuOptions,
    gpus: Option<Vec<Gpu>>,
    samples: u64,
}

fn pci_address(device: &Path) -> Option<String> {
    let uevent = fs::read_to_string(device.join("uevent")).ok()?;
    uevent
        .lines()
        .find_map(|l| l.strip_prefix("PCI_SLOT_NAME="))
        .map(|s| s.trim().to_string())
}

fn hex_u16(path: &Path) -> Option<u16> {
    let t = fs::read_to_string(path).ok()?;
    u16::from_str_radix(t.trim().trim_start_matches("0x"), 16).ok()
}

/// Finds the amdgpu GPUs under `<sysfs>/class/drm`, one per physical GPU, by card number.
pub fn discover_cards(sysfs: &Path) -> Result<Vec<(String, String, PathBuf)>, SourceError> {
    let drm = sysfs.join("class/drm");
    let entries = fs::read_dir(&drm).map_err(|e| hwmon::read_error(&drm, e))?;
    let mut cards: Vec<(u32, String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name.strip_prefix("card")?.parse::<u32>().ok()?;
            Some((n, name, e.path().join("device")))
        })
        .filter(|(_, _, dev)| hex_u16(&dev.join("vendor")) == Some(0x1002))
        .filter(|(_, _, dev)| dev.join("gpu_metrics").exists())
        .collect();
    cards.sort();
    let mut out: Vec<(String, String, PathBuf)> = Vec::new();
    for (_, card, dev) in cards {
        let unique = fs::read_to_string(dev.join("unique_id"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let Some(id) = unique.or_else(|| pci_address(&dev)) else {
            tracing::debug!(card = %card, "amdgpu card without unique_id or PCI address: skipped");
            continue;
        };
        if !out.iter().any(|(seen, _, _)| *seen == id) {
            out.push((id, card, dev));
        }
    }
    Ok(out)
}

impl AmdGpuSource {
    pub fn new(opts: AmdGpuOptions) -> Self {
        AmdGpuSource {
            opts,
            gpus: None,
            samples: 0,
        }
    }

    fn discover(&mut self) -> Result<(), SourceError> {
        let cards = discover_cards(&self.opts.sysfs)?;
        if cards.is_empty() {
            return Err(SourceError::new(format!(
                "no amdgpu GPU with a gpu_metrics table under {}",
                self.opts.sysfs.join("class/drm").display()
            ))
            .with_fix("load the amdgpu driver (modprobe amdgpu), or switch sources.amdgpu off"));
        }
        let old = self.gpus.take().unwrap_or_default();
        let mut gpus: Vec<Gpu> = cards
            .into_iter()
            .map(|(id, card, dev)| {
                // A GPU seen before keeps its mode and counter history.
                if let Some(g) = old.iter().find(|g| g.id == id) {
                    return g.clone();
                }
                let device_id = hex_u16(&dev.join("device")).unwrap_or(0);
                let model = fs::read_to_string(dev.join("product_name"))
                    .ok()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| format!("AMD GPU 0x{device_id:04x}"));
                let power = hwmon::hwmon_dirs(&dev.join("hwmon"))
                    .iter()
                    .find_map(|h| hwmon::power_file(h));
                let n = card
                    .strip_prefix("card")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let unique = fs::read_to_string(dev.join("unique_id")).unwrap_or_default();
                let unique = unique.trim();
                Gpu {
                    pci: pci_address(&dev).unwrap_or_else(|| id.clone()),
                    drm_minors: super::drm_minors(&dev, n),
                    rocm_uuid: (!unique.is_empty()).then(|| format!("GPU-{unique}")),
                    id,
                    card,
                    model,
                    device_id,
                    metrics: dev.join("gpu_metrics"),
                    power,
                    mode: None,
                    last_counter: None,
                    unchanged: 0,
                    partitions: Vec::new(),
                    own_cus: 0,
                }
            })
            .collect();
        // Partitions may change between discoveries (the mode is switched at run time).
        let nodes = kfd::gpu_nodes(&self.opts.sysfs);
        for g in &mut gpus {
            let unique = g.rocm_uuid.as_deref().and_then(|u| u.strip_prefix("GPU-"));
            let gpu = kfd::GpuKey {
                id: &g.id,
                unique_id: unique,
                pci: &g.pci,
                drm_minors: &g.drm_minors,
            };
            (g.own_cus, g.partitions) = kfd::partitions(&nodes, &gpu, &self.opts.sysfs);
        }
        self.gpus = Some(gpus);
        Ok(())
    }
}

/// One GPU's reading: its energy (if it has its own) and a problem, if any.
fn sample_gpu(gpu: &mut Gpu, max_watts: f64) -> (Option<RawEnergy>, Option<SourceError>) {
    let bytes = match fs::read(&gpu.metrics) {
        Ok(b) => b,
        Err(e) => return (None, Some(hwmon::read_error(&gpu.metrics, e))),
    };
    let m = match gpu_metrics::parse(&bytes) {
        Ok(m) => m,
        Err(why) => {
            return (
                None,
                Some(
                    SourceError::new(format!("{}: {why}", gpu.metrics.display())).with_fix(
                        "a driver this exporter does not know: report the kernel version and \
                         the file (xxd gpu_metrics) to the joulebook maintainers",
                    ),
                ),
            )
        }
    };
    let power_w = match &gpu.power {
        Some(p) => match hwmon::read_u64(p) {
            Ok(uw) => Some(uw as f64 / 1e6),
            Err(e) => return (None, Some(e)),
        },
        None => None,
    };
    let aldebaran = ALDEBARAN.contains(&gpu.device_id);
    let unit_known = (m.format, m.content) >= (1, 4) || aldebaran;
    if gpu.mode.is_none() {
        gpu.mode = Some(match m.energy {
            Energy::Counter(0) if aldebaran && m.socket_power_w == Some(0) => Mode::SecondaryDie,
            Energy::Counter(_) if unit_known => Mode::Counter,
            Energy::Counter(_) => Mode::Power(format!(
                "gpu_metrics v{}_{} energy counter has no documented unit on this GPU",
                m.format, m.content
            )),
            Energy::NotFilled => Mode::Power("the energy counter is all ones (not filled)".into()),
            Energy::Absent => Mode::Power(format!(
                "gpu_metrics v{}_{} has no energy counter",
                m.format, m.content
            )),
        });
        if let Some(Mode::Power(why)) = &gpu.mode {
            tracing::info!(gpu = %gpu.id, card = %gpu.card, reason = %why, "AMD GPU energy from integrated hwmon power");
        }
    }
    if let (Some(Mode::Counter), Energy::Counter(c)) = (&gpu.mode, m.energy) {
        let drawing = power_w.or(m.socket_power_w.map(f64::from)).unwrap_or(0.0) > 1.0;
        if gpu.last_counter == Some(c) && drawing {
            gpu.unchanged += 1;
        } else {
            gpu.unchanged = 0;
        }
        gpu.last_counter = Some(c);
        if gpu.unchanged < STUCK_SAMPLES {
            return (
                Some(RawEnergy::Resetting {
                    uj: gpu_metrics::counts_to_uj(c),
                    max_watts,
                }),
                None,
            );
        }
        let why = format!(
            "the energy counter stayed at {c} for {STUCK_SAMPLES} samples while the GPU drew power"
        );
        tracing::warn!(gpu = %gpu.id, card = %gpu.card, reason = %why, "AMD GPU energy counter stuck: integrating hwmon power from now on");
        gpu.mode = Some(Mode::Power(why));
    } else if let (Some(Mode::Counter), _) = (&gpu.mode, m.energy) {
        gpu.mode = Some(Mode::Power(
            "the energy counter stopped being filled".into(),
        ));
    }
    match (&gpu.mode, power_w) {
        (Some(Mode::SecondaryDie), _) => (None, None),
        (_, Some(watts)) => (Some(RawEnergy::Power { watts }), None),
        (_, None) => (
            None,
            Some(
                SourceError::new(format!(
                    "{} ({}): no usable energy counter and no hwmon power1_average or power1_input",
                    gpu.card, gpu.id
                ))
                .with_fix("update the GPU firmware and the amdgpu driver"),
            ),
        ),
    }
}

impl Source for AmdGpuSource {
    fn kind(&self) -> SourceKind {
        SourceKind::AmdGpu
    }

    fn sample(&mut self) -> Result<SourceSample, SourceError> {
        self.samples += 1;
        if self.gpus.is_none() || self.samples % REDISCOVER_EVERY == 0 {
            self.discover()?;
        }
        let max_watts = self.opts.max_gpu_watts;
        let mut sample = SourceSample::default();
        let gpus = self.gpus.get_or_insert_with(Vec::new);
        for gpu in gpus.iter_mut() {
            let (raw, problem) = sample_gpu(gpu, max_watts);
            // An APU's counter is its whole socket, CPU cores included: never added to gpu.
            let domain = if gpu.device_id == MI300A {
                Domain::AmdApu
            } else {
                Domain::AmdGpu
            };
            let channel = ChannelId::of(domain, super::DeviceKey::gpu(gpu.id.as_str()));
            if let Some(raw) = raw {
                sample.energy.push(EnergyReading {
                    channel: channel.clone(),
                    raw,
                });
            }
            if let Some(p) = problem {
                sample.problems.push(p);
            }
            if let Some(mode) = &gpu.mode {
                sample.devices.push(DeviceInfo {
                    channel,
                    name: gpu.card.clone(),
                    model: gpu.model.clone(),
                    method: mode.method(),
                });
            }
        }
        if !sample.problems.is_empty() {
            // Look again next time: a GPU may have been reset or removed.
            self.gpus = self.gpus.take().map(|g| {
                g.into_iter()
                    .filter(|g| g.metrics.exists())
                    .collect::<Vec<_>>()
            });
        }
        Ok(sample)
    }

    /// MI250X packages: the primary die's energy is the package's, shared with the secondary die
    /// (one half each: the two dies are alike). A secondary die's primary is the die before it
    /// in PCI address order, as the two dies of a package sit on consecutive buses behind one
    /// switch (LUMI's and Frontier's nodes: c1/c6, c9/ce, d1/d6, d9/de).
    fn gpu_partitions(&self) -> Vec<GpuPartitions> {
        let mut dies: Vec<&Gpu> = self.gpus.iter().flatten().collect();
        dies.sort_by(|a, b| a.pci.cmp(&b.pci));
        // MI300 compute partitions: by compute units; the GPU's own partition keeps its share.
        let partitioned = dies
            .iter()
            .filter(|g| !g.partitions.is_empty())
            .map(|g| GpuPartitions {
                device: g.id.clone(),
                total_weight: g.own_cus + g.partitions.iter().map(|p| p.compute_units).sum::<u64>(),
                parts: g
                    .partitions
                    .iter()
                    .map(|p| GpuPart {
                        id: p.id.clone(),
                        weight: p.compute_units,
                        activity: None,
                        instance: None,
                    })
                    .collect(),
            });
        let packages = dies
            .windows(2)
            .filter(|w| {
                w[1].mode == Some(Mode::SecondaryDie)
                    && ALDEBARAN.contains(&w[0].device_id)
                    && !matches!(w[0].mode, Some(Mode::SecondaryDie) | None)
            })
            .map(|w| GpuPartitions {
                device: w[0].id.clone(),
                total_weight: 2,
                parts: vec![GpuPart {
                    id: w[1].id.clone(),
                    weight: 1,
                    activity: None,
                    instance: None,
                }],
            });
        partitioned.chain(packages).collect()
    }

    /// Every die and GPU found (an MI250X's secondary die too: jobs name it), APUs included,
    /// and each compute partition after its GPU, as ROCm numbers them.
    fn drm_gpus(&self) -> Vec<DrmGpu> {
        let parts = self.gpus.iter().flatten().flat_map(|g| {
            g.partitions.iter().map(|p| {
                let d = DrmGpu {
                    id: p.id.clone(),
                    vendor: "amd",
                    index: 0,
                    drm_minors: p.drm_minors.clone(),
                    alias: None,
                };
                (p.key.clone(), d)
            })
        });
        super::indexed_by_pci(
            self.gpus
                .iter()
                .flatten()
                .map(|g| {
                    let d = DrmGpu {
                        id: g.id.clone(),
                        vendor: "amd",
                        index: 0,
                        drm_minors: g.drm_minors.clone(),
                        alias: g.rocm_uuid.clone(),
                    };
                    (g.pci.clone(), d)
                })
                .chain(parts)
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::gpu_metrics::build;

    /// One card as the kernel lays it out: the card folder, its PCI device with `vendor`,
    /// `device`, `unique_id`, `uevent`, `gpu_metrics` and a hwmon folder.
    pub fn card(root: &Path, n: u32, dev_id: u16, unique: Option<&str>, table: &[u8], uw: u64) {
        let dev = root.join(format!("class/drm/card{n}/device"));
        fs::create_dir_all(dev.join("hwmon/hwmon2")).unwrap();
        fs::write(dev.join("vendor"), "0x1002\n").unwrap();
        fs::write(dev.join("device"), format!("0x{dev_id:04x}\n")).unwrap();
        if let Some(u) = unique {
            fs::write(dev.join("unique_id"), format!("{u}\n")).unwrap();
        }
        fs::write(
            dev.join("uevent"),
            format!("DRIVER=amdgpu\nPCI_SLOT_NAME=0000:{:02x}:00.0\n", 0x10 + n),
        )
        .unwrap();
        fs::write(dev.join("gpu_metrics"), table).unwrap();
        fs::write(dev.join("hwmon/hwmon2/power1_average"), format!("{uw}\n")).unwrap();
    }

    fn src(root: &Path) -> AmdGpuSource {
        AmdGpuSource::new(AmdGpuOptions {
            sysfs: root.into(),
            max_gpu_watts: 1000.0,
        })
    }

    fn methods(s: &SourceSample) -> Vec<(String, &'static str)> {
        s.devices
            .iter()
            .map(|d| (d.channel.device.to_string(), d.method))
            .collect()
    }

    #[test]
    fn mi300_counter_in_microjoules_and_partitions_once() {
        let t = tempfile::tempdir().unwrap();
        card(
            t.path(),
            0,
            0x74a1,
            Some("4b7d2c5a1e3f6a08"),
            &build(1, 5, 360, 65536 * 10, 700),
            700_000_000,
        );
        // A second DRM device of the same physical GPU (same unique_id) adds nothing.
        card(
            t.path(),
            1,
            0x74a1,
            Some("4b7d2c5a1e3f6a08"),
            &build(1, 5, 360, 65536 * 10, 700),
            700_000_000,
        );
        let s = src(t.path()).sample().unwrap();
        assert_eq!(
            s.energy,
            [EnergyReading {
                channel: ChannelId::new(Domain::AmdGpu, "4b7d2c5a1e3f6a08"),
                raw: RawEnergy::Resetting {
                    uj: 10_000_000,
                    max_watts: 1000.0
                }
            }]
        );
        assert_eq!(methods(&s), [("4b7d2c5a1e3f6a08".to_string(), "counter")]);
    }

    /// A KFD topology node of a GPU partition, as `kfd_topology.c` writes it (values as on a
    /// real MI300X in CPX mode, ROCm/k8s-device-plugin testdata/topo-mi300-cpx; `simd_count` is
    /// 152 per XCD there, so 608 for a DPX partition of 4 XCDs).
    pub fn kfd_node(root: &Path, node: u32, unique: u64, location: u32, render: u32, simds: u32) {
        let dir = root.join(format!("class/kfd/kfd/topology/nodes/{node}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("properties"),
            format!(
                "cpu_cores_count 0\nsimd_count {simds}\nsimd_per_cu 4\ndevice_id 29857\n\
                 location_id {location}\ndomain 0\ndrm_render_minor {render}\n\
                 unique_id {unique}\n"
            ),
        )
        .unwrap();
    }

    #[test]
    fn mi300_dpx_partitions_share_the_gpu_by_compute_units() {
        let t = tempfile::tempdir().unwrap();
        card(
            t.path(),
            0,
            0x74a1,
            Some("4b7d2c5a1e3f6a08"),
            &build(1, 5, 360, 65536 * 10, 700),
            700_000_000,
        );
        card(
            t.path(),
            1,
            0x74a1,
            Some("4b7d2c5a1e3f6a09"),
            &build(1, 5, 360, 65536 * 20, 700),
            700_000_000,
        );
        // DPX: card0's two partitions are KFD nodes 1 and 2 (function 0 and 1 of 0000:10:00),
        // the second with render node 136 on an amdgpu_xcp device (card8); card1 is one node.
        let u = u64::from_str_radix("4b7d2c5a1e3f6a08", 16).unwrap();
        kfd_node(t.path(), 1, u, 0x1000, 128, 608);
        kfd_node(t.path(), 2, u, 0x1001, 136, 608);
        kfd_node(t.path(), 3, u + 1, 0x1100, 129, 1216);
        let xcp = t.path().join("class/drm/renderD136/device/drm");
        for (name, dev) in [("card8", "226:8"), ("renderD136", "226:136")] {
            fs::create_dir_all(xcp.join(name)).unwrap();
            fs::write(xcp.join(name).join("dev"), format!("{dev}\n")).unwrap();
        }
        let mut s = src(t.path());
        let out = s.sample().unwrap();
        // The energy is counted once, on the GPU.
        assert_eq!(out.energy.len(), 2);
        assert_eq!(out.energy[0].channel.device, "4b7d2c5a1e3f6a08");
        assert_eq!(
            s.gpu_partitions(),
            [GpuPartitions {
                device: "4b7d2c5a1e3f6a08".into(),
                total_weight: 304,
                parts: vec![GpuPart {
                    id: "4b7d2c5a1e3f6a08-p1".into(),
                    weight: 152,
                    activity: None,
                    instance: None,
                }],
            }]
        );
        // ROCm's order: the partition comes right after its GPU; jobs hold it by its minors.
        let drm: Vec<(String, u32, Vec<u32>)> = s
            .drm_gpus()
            .into_iter()
            .map(|g| (g.id, g.index, g.drm_minors))
            .collect();
        assert_eq!(
            drm,
            [
                ("4b7d2c5a1e3f6a08".to_string(), 0, vec![0, 128]),
                ("4b7d2c5a1e3f6a08-p1".to_string(), 1, vec![8, 136]),
                ("4b7d2c5a1e3f6a09".to_string(), 2, vec![1, 129]),
            ]
        );
        // Back to SPX (one node): no partition is left.
        fs::remove_dir_all(t.path().join("class/kfd/kfd/topology/nodes/2")).unwrap();
        s.discover().unwrap();
        assert!(s.gpu_partitions().is_empty());
        assert_eq!(s.drm_gpus().len(), 2);
    }

    #[test]
    fn mi300a_socket_is_never_a_gpu_component() {
        let t = tempfile::tempdir().unwrap();
        card(
            t.path(),
            0,
            0x74a0,
            Some("ee"),
            &build(1, 6, 1664, 65536, 550),
            550_000_000,
        );
        let s = src(t.path()).sample().unwrap();
        assert_eq!(s.energy[0].channel, ChannelId::new(Domain::AmdApu, "ee"));
        assert_eq!(Domain::AmdApu.component(), None);
    }

    #[test]
    fn mi250x_secondary_die_has_no_energy_of_its_own() {
        let t = tempfile::tempdir().unwrap();
        card(
            t.path(),
            0,
            0x740c,
            Some("aa01"),
            &build(1, 3, 120, 5 * 65536, 420),
            420_000_000,
        );
        card(
            t.path(),
            1,
            0x740c,
            Some("aa02"),
            &build(1, 3, 120, 0, 0),
            0,
        );
        let s = src(t.path()).sample().unwrap();
        assert_eq!(s.energy.len(), 1);
        assert_eq!(s.energy[0].channel.device, "aa01");
        assert_eq!(
            methods(&s),
            [
                ("aa01".to_string(), "counter"),
                ("aa02".to_string(), "primary_die")
            ]
        );
        assert!(s.problems.is_empty());
    }

    #[test]
    fn all_ones_counter_and_unknown_unit_integrate_power() {
        let t = tempfile::tempdir().unwrap();
        card(
            t.path(),
            0,
            0x74a1,
            None,
            &build(1, 4, 288, u64::MAX, 300),
            250_000_000,
        );
        // A consumer GPU (Navi 31) with a v1_3 table: the counter's unit is not documented.
        card(
            t.path(),
            1,
            0x744c,
            None,
            &build(1, 3, 120, 777, 80),
            80_000_000,
        );
        let s = src(t.path()).sample().unwrap();
        // No unique_id: the PCI address identifies the GPU.
        assert_eq!(
            s.energy,
            [
                EnergyReading {
                    channel: ChannelId::new(Domain::AmdGpu, "0000:10:00.0"),
                    raw: RawEnergy::Power { watts: 250.0 }
                },
                EnergyReading {
                    channel: ChannelId::new(Domain::AmdGpu, "0000:11:00.0"),
                    raw: RawEnergy::Power { watts: 80.0 }
                }
            ]
        );
        assert!(s.devices.iter().all(|d| d.method == "power_integration"));
    }

    #[test]
    fn stuck_counter_falls_back_to_power_and_stays_there() {
        let t = tempfile::tempdir().unwrap();
        card(
            t.path(),
            0,
            0x74a1,
            Some("bb"),
            &build(1, 4, 288, 1000, 500),
            500_000_000,
        );
        let mut s = src(t.path());
        for _ in 0..STUCK_SAMPLES {
            let out = s.sample().unwrap();
            assert!(matches!(out.energy[0].raw, RawEnergy::Resetting { .. }));
        }
        let out = s.sample().unwrap();
        assert_eq!(out.energy[0].raw, RawEnergy::Power { watts: 500.0 });
        assert_eq!(out.devices[0].method, "power_integration");
        // The counter moving again does not bring it back (it would look like a jump).
        let dev = t.path().join("class/drm/card0/device");
        fs::write(dev.join("gpu_metrics"), build(1, 4, 288, 90_000, 500)).unwrap();
        assert_eq!(
            s.sample().unwrap().energy[0].raw,
            RawEnergy::Power { watts: 500.0 }
        );
    }

    #[test]
    fn an_idle_gpu_with_an_unchanged_counter_is_not_stuck() {
        let t = tempfile::tempdir().unwrap();
        card(
            t.path(),
            0,
            0x74a1,
            Some("cc"),
            &build(1, 4, 288, 1000, 0),
            0,
        );
        let mut s = src(t.path());
        for _ in 0..STUCK_SAMPLES + 3 {
            assert_eq!(s.sample().unwrap().devices[0].method, "counter");
        }
    }

    #[test]
    fn bad_tables_and_no_gpu_say_what_to_do() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("class/drm")).unwrap();
        let e = src(t.path()).sample().unwrap_err();
        assert!(
            e.message.contains("no amdgpu GPU") && e.fix.is_some(),
            "{e}"
        );
        card(t.path(), 0, 0x74a1, Some("dd"), &[0x10, 0x00], 0);
        let out = src(t.path()).sample().unwrap();
        assert!(out.energy.is_empty());
        assert!(
            out.problems[0].message.contains("card0/device/gpu_metrics"),
            "{:?}",
            out.problems
        );
    }
}
