//! Intel discrete GPUs (Data Center GPU Max and Flex, Arc) through the hwmon files of the xe and
//! i915 drivers, under `<sysfs>/class/drm/cardN/device/hwmon/hwmonM`.
//!
//! - xe (`Documentation/ABI/testing/sysfs-driver-intel-xe-hwmon`): `energy1_input` is the card's
//!   energy, `energy2_input` the GPU package's, both in µJ, labelled `card` and `pkg`
//!   (`energyN_label`). The card includes the package (memory, voltage regulators and the rest of
//!   the board around it), so exactly one is counted: the card where the driver has it, else the
//!   package. Never both.
//! - i915 (`sysfs-driver-intel-i915-hwmon`): the device-level hwmon (`name` = `i915`) has
//!   `energy1_input` for the whole device, in µJ; per-GT hwmons (`i915_gtN`) measure parts of it
//!   and are never added.
//! - Both drivers keep the energy as a 64-bit software sum of a 32-bit hardware register,
//!   started at 0 when the driver loads: a counter that only resets, absorbed like NVML's.
//! - Both register hwmon only for discrete GPUs; an integrated GPU's energy is inside RAPL's
//!   package, so it is never added here. GPUs are identified by PCI address.

use super::hwmon;
use super::{
    ChannelId, DeviceInfo, Domain, DrmGpu, EnergyReading, RawEnergy, Source, SourceError,
    SourceKind, SourceSample,
};
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct IntelGpuOptions {
    pub sysfs: PathBuf,
    /// Plausibility bound per GPU, watts.
    pub max_gpu_watts: f64,
}

/// One GPU and the counter chosen for it.
#[derive(Clone, Debug, PartialEq)]
pub struct IntelGpu {
    pub pci: String,
    pub card: String,
    /// `xe card`, `xe pkg` or `i915`: which counter is read.
    pub counter: String,
    pub energy: PathBuf,
    pub model: String,
    /// Minors of its DRM devices (major 226), for cgroup device lists.
    pub drm_minors: Vec<u32>,
}

/// The `energyN_input` of an xe hwmon to count: the `card` channel, else `pkg`. Without labels
/// (older kernels), channel 1 is the card and 2 the package, as the ABI document numbers them.
fn xe_counter(h: &Path) -> Option<(String, PathBuf)> {
    let label = |n: u32| {
        fs::read_to_string(h.join(format!("energy{n}_label")))
            .ok()
            .map(|s| s.trim().to_string())
    };
    let chans = hwmon::channels(h, "energy");
    for want in ["card", "pkg"] {
        if let Some(n) = chans.iter().find(|&&n| label(n).as_deref() == Some(want)) {
            return Some((format!("xe {want}"), h.join(format!("energy{n}_input"))));
        }
    }
    let unlabelled = |n: u32| chans.contains(&n) && label(n).is_none();
    [(1, "card"), (2, "pkg")]
        .into_iter()
        .find(|&(n, _)| unlabelled(n))
        .map(|(n, what)| (format!("xe {what}"), h.join(format!("energy{n}_input"))))
}

/// The Intel GPUs with an energy counter, by card number.
pub fn discover(sysfs: &Path) -> Result<Vec<IntelGpu>, SourceError> {
    let drm = sysfs.join("class/drm");
    let entries = fs::read_dir(&drm).map_err(|e| hwmon::read_error(&drm, e))?;
    let mut cards: Vec<(u32, String)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            Some((name.strip_prefix("card")?.parse::<u32>().ok()?, name))
        })
        .collect();
    cards.sort();
    let mut out: Vec<IntelGpu> = Vec::new();
    for (n, card) in cards {
        let dev = drm.join(&card).join("device");
        let vendor = fs::read_to_string(dev.join("vendor")).unwrap_or_default();
        if vendor.trim() != "0x8086" {
            continue;
        }
        let found = hwmon::hwmon_dirs(&dev.join("hwmon"))
            .into_iter()
            .find_map(|h| match fs::read_to_string(h.join("name")).ok()?.trim() {
                "xe" => xe_counter(&h),
                "i915" => {
                    Some(("i915".to_string(), h.join("energy1_input"))).filter(|(_, p)| p.exists())
                }
                _ => None,
            });
        let Some((counter, energy)) = found else {
            continue;
        };
        let uevent = fs::read_to_string(dev.join("uevent")).unwrap_or_default();
        let Some(pci) = uevent
            .lines()
            .find_map(|l| l.strip_prefix("PCI_SLOT_NAME="))
            .map(|s| s.trim().to_string())
        else {
            continue;
        };
        if out.iter().any(|g| g.pci == pci) {
            continue;
        }
        let device = fs::read_to_string(dev.join("device")).unwrap_or_default();
        out.push(IntelGpu {
            model: format!("Intel GPU {}", device.trim()),
            pci,
            card,
            counter,
            energy,
            drm_minors: super::drm_minors(&dev, n),
        });
    }
    Ok(out)
}

pub struct IntelGpuSource {
    opts: IntelGpuOptions,
    gpus: Option<Vec<IntelGpu>>,
    samples: u64,
}

impl IntelGpuSource {
    pub fn new(opts: IntelGpuOptions) -> Self {
        IntelGpuSource {
            opts,
            gpus: None,
            samples: 0,
        }
    }
}

impl Source for IntelGpuSource {
    fn kind(&self) -> SourceKind {
        SourceKind::IntelGpu
    }

    fn sample(&mut self) -> Result<SourceSample, SourceError> {
        self.samples += 1;
        if self.gpus.is_none() || self.samples % super::amdgpu::REDISCOVER_EVERY == 0 {
            let gpus = discover(&self.opts.sysfs)?;
            if gpus.is_empty() {
                return Err(SourceError::new(format!(
                    "no Intel GPU with an energy counter under {}",
                    self.opts.sysfs.join("class/drm").display()
                ))
                .with_fix(
                    "load the xe or i915 driver; integrated GPUs have none (RAPL's package covers \
                     them); or switch sources.intel_gpu off",
                ));
            }
            self.gpus = Some(gpus);
        }
        let mut sample = SourceSample::default();
        for g in self.gpus.as_deref().unwrap_or(&[]) {
            let channel = ChannelId::of(Domain::IntelGpu, super::DeviceKey::gpu(g.pci.as_str()));
            match hwmon::read_u64(&g.energy) {
                Ok(uj) => sample.energy.push(EnergyReading {
                    channel: channel.clone(),
                    raw: RawEnergy::Resetting {
                        uj,
                        max_watts: self.opts.max_gpu_watts,
                    },
                }),
                Err(e) => sample.problems.push(e),
            }
            sample.devices.push(DeviceInfo {
                channel,
                name: format!("{} ({})", g.card, g.counter),
                model: g.model.clone(),
                method: "counter",
            });
        }
        if !sample.problems.is_empty() {
            self.gpus = None;
        }
        Ok(sample)
    }

    fn drm_gpus(&self) -> Vec<DrmGpu> {
        super::indexed_by_pci(
            self.gpus
                .iter()
                .flatten()
                .map(|g| {
                    let d = DrmGpu {
                        id: g.pci.clone(),
                        vendor: "intel",
                        index: 0,
                        drm_minors: g.drm_minors.clone(),
                        alias: None,
                    };
                    (g.pci.clone(), d)
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(root: &Path, card: u32, pci: &str, driver: &str, files: &[(&str, &str)]) {
        let dev = root.join(format!("class/drm/card{card}/device"));
        let h = dev.join(format!("hwmon/hwmon{}", card + 4));
        fs::create_dir_all(&h).unwrap();
        fs::write(dev.join("vendor"), "0x8086\n").unwrap();
        fs::write(dev.join("device"), "0x0bd5\n").unwrap();
        fs::write(
            dev.join("uevent"),
            format!("DRIVER={driver}\nPCI_SLOT_NAME={pci}\n"),
        )
        .unwrap();
        fs::write(h.join("name"), format!("{driver}\n")).unwrap();
        for (f, v) in files {
            fs::write(h.join(f), format!("{v}\n")).unwrap();
        }
    }

    fn read(root: &Path) -> SourceSample {
        IntelGpuSource::new(IntelGpuOptions {
            sysfs: root.into(),
            max_gpu_watts: 1000.0,
        })
        .sample()
        .unwrap()
    }

    #[test]
    fn xe_card_wins_over_pkg_and_never_both() {
        let t = tempfile::tempdir().unwrap();
        let both = [
            ("energy1_input", "5000000"),
            ("energy1_label", "card"),
            ("energy2_input", "3000000"),
            ("energy2_label", "pkg"),
        ];
        gpu(t.path(), 0, "0000:3a:00.0", "xe", &both);
        gpu(
            t.path(),
            1,
            "0000:9a:00.0",
            "xe",
            &[("energy2_input", "700"), ("energy2_label", "pkg")],
        );
        let s = read(t.path());
        let uj: Vec<(String, RawEnergy)> = s
            .energy
            .iter()
            .map(|r| (r.channel.device.to_string(), r.raw))
            .collect();
        assert_eq!(
            uj,
            [
                (
                    "0000:3a:00.0".into(),
                    RawEnergy::Resetting {
                        uj: 5_000_000,
                        max_watts: 1000.0
                    }
                ),
                (
                    "0000:9a:00.0".into(),
                    RawEnergy::Resetting {
                        uj: 700,
                        max_watts: 1000.0
                    }
                ),
            ]
        );
        assert_eq!(s.devices[0].name, "card0 (xe card)");
        assert_eq!(s.devices[1].name, "card1 (xe pkg)");
    }

    #[test]
    fn i915_device_counter_and_no_igpu() {
        let t = tempfile::tempdir().unwrap();
        gpu(
            t.path(),
            1,
            "0000:4d:00.0",
            "i915",
            &[("energy1_input", "42")],
        );
        // The integrated GPU: i915 registers no hwmon for it.
        let igpu = t.path().join("class/drm/card0/device");
        fs::create_dir_all(&igpu).unwrap();
        fs::write(igpu.join("vendor"), "0x8086\n").unwrap();
        let s = read(t.path());
        assert_eq!(s.energy.len(), 1);
        assert_eq!(s.energy[0].channel.device, "0000:4d:00.0");
        assert_eq!(s.devices[0].name, "card1 (i915)");
    }

    #[test]
    fn unlabelled_xe_channels_follow_the_abi_numbering() {
        let t = tempfile::tempdir().unwrap();
        gpu(
            t.path(),
            0,
            "0000:03:00.0",
            "xe",
            &[("energy2_input", "9"), ("energy1_input", "11")],
        );
        assert_eq!(read(t.path()).devices[0].name, "card0 (xe card)");
    }

    #[test]
    fn unreadable_counter_is_a_problem_with_a_fix() {
        let t = tempfile::tempdir().unwrap();
        gpu(
            t.path(),
            0,
            "0000:03:00.0",
            "i915",
            &[("energy1_input", "garbage")],
        );
        let s = read(t.path());
        assert!(s.energy.is_empty());
        assert!(
            s.problems[0].message.contains("energy1_input"),
            "{:?}",
            s.problems
        );
    }
}
