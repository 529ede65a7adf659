//! Sensors an administrator names in the configuration (`sources.hwmon.sensors`): any hwmon
//! `energyN_input` (µJ, a counter that only resets) or `powerN_average` / `powerN_input` (µW,
//! integrated by the sampler), found by its chip's `name` file and, optionally, its label
//! (`<file prefix>_label` or an ACPI meter's `_oem_info`). Each has a role:
//! - `cpu`, `dram`, `gpu`: adds to that node component. A component another source already
//!   measures (RAPL, NVML, Grace...) is never added twice: `app::build_sources` turns such a
//!   sensor into `none` with a warning. Out-of-tree `amd_energy` reports RAPL's own counters.
//! - `node`: a whole-node meter (an ACPI power meter, a PDU driver) on a node without a BMC
//!   source: like the BMC's, it overlaps every component and adds to none, and the sampler
//!   derives `other` from it (node minus cpu, dram and gpu over the span its readings cover).
//! - `none`: published only.
//!
//! Chips are looked up by name, not by `hwmonN` number, which changes between boots.

use super::hwmon;
use super::{
    ChannelId, DeviceInfo, Domain, EnergyReading, RawEnergy, Source, SourceError, SourceKind,
    SourceSample,
};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// What a configured sensor measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Node,
    Cpu,
    Dram,
    Gpu,
    None,
}

impl Role {
    pub fn domain(self) -> Domain {
        match self {
            Role::Node => Domain::HwmonNode,
            Role::Cpu => Domain::HwmonCpu,
            Role::Dram => Domain::HwmonDram,
            Role::Gpu => Domain::HwmonGpu,
            Role::None => Domain::HwmonOther,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Cpu => "cpu",
            Role::Dram => "dram",
            Role::Gpu => "gpu",
            Role::None => "none",
        }
    }

    /// The role a channel's domain stands for (for the `role` label).
    pub fn of(domain: Domain) -> Option<Role> {
        [Role::Node, Role::Cpu, Role::Dram, Role::Gpu, Role::None]
            .into_iter()
            .find(|r| r.domain() == domain)
    }
}

/// One configured sensor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorConfig {
    /// The `sensor` label: letters, digits, `_` and `-`.
    pub id: String,
    /// The chip's hwmon `name` (`power_meter`, `amd_energy`, ...).
    pub chip: String,
    /// `energyN_input`, `powerN_average` or `powerN_input`.
    pub file: String,
    /// Matches the file's `<prefix>_label` or `<prefix>_oem_info`, when several chips share a name.
    #[serde(default)]
    pub label: Option<String>,
    pub role: Role,
    /// Plausibility bound for an energy counter, watts.
    #[serde(default = "default_max_watts")]
    pub max_watts: f64,
}

fn default_max_watts() -> f64 {
    20_000.0
}

/// Checks a sensor's settings; the error names what is wrong (the caller names the key).
pub fn check(s: &SensorConfig) -> Result<(), (&'static str, String)> {
    let id_ok = !s.id.is_empty()
        && s.id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !id_ok {
        return Err(("id", format!("{:?}: use letters, digits, _ and -", s.id)));
    }
    if s.chip.is_empty() || s.chip.contains('/') {
        return Err(("chip", format!("{:?} is not a hwmon chip name", s.chip)));
    }
    if file_kind(&s.file).is_none() {
        return Err((
            "file",
            format!(
                "{:?}: expected energyN_input, powerN_average or powerN_input",
                s.file
            ),
        ));
    }
    if !(s.max_watts.is_finite() && s.max_watts > 0.0) {
        return Err(("max_watts", format!("{} must be positive", s.max_watts)));
    }
    Ok(())
}

/// `Some(true)` for an energy file, `Some(false)` for a power file.
fn file_kind(file: &str) -> Option<bool> {
    let (prefix, suffix) = file.split_once('_')?;
    let (energy, n) = match prefix.strip_prefix("energy") {
        Some(n) => (true, n),
        None => (false, prefix.strip_prefix("power")?),
    };
    n.parse::<u32>().ok()?;
    match (energy, suffix) {
        (true, "input") | (false, "input" | "average") => Some(energy),
        _ => None,
    }
}

/// The file a sensor reads, or `None` when no chip matches.
pub fn locate(sysfs: &Path, s: &SensorConfig) -> Option<PathBuf> {
    let prefix = s.file.split_once('_').map_or("", |p| p.0);
    for h in hwmon::hwmon_dirs(&sysfs.join("class/hwmon")) {
        let name = fs::read_to_string(h.join("name")).unwrap_or_default();
        if name.trim() != s.chip {
            continue;
        }
        for dir in [h.clone(), h.join("device")] {
            if !dir.join(&s.file).exists() {
                continue;
            }
            let matches = match &s.label {
                None => true,
                Some(want) => ["label", "oem_info"].iter().any(|k| {
                    fs::read_to_string(dir.join(format!("{prefix}_{k}")))
                        .is_ok_and(|t| t.trim() == want)
                }),
            };
            if matches {
                return Some(dir.join(&s.file));
            }
        }
    }
    None
}

pub struct HwmonSource {
    sysfs: PathBuf,
    sensors: Vec<SensorConfig>,
    paths: Vec<Option<PathBuf>>,
}

impl HwmonSource {
    pub fn new(sysfs: PathBuf, sensors: Vec<SensorConfig>) -> Self {
        let paths = vec![None; sensors.len()];
        HwmonSource {
            sysfs,
            sensors,
            paths,
        }
    }
}

impl Source for HwmonSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Hwmon
    }

    fn sample(&mut self) -> Result<SourceSample, SourceError> {
        let mut sample = SourceSample::default();
        for (s, path) in self.sensors.iter().zip(&mut self.paths) {
            if path.is_none() {
                *path = locate(&self.sysfs, s);
            }
            let channel = ChannelId::of(s.role.domain(), super::DeviceKey::sensor(s.id.as_str()));
            let energy = file_kind(&s.file) == Some(true);
            let Some(p) = path.as_ref() else {
                sample.problems.push(
                    SourceError::new(format!(
                        "sensor {}: no hwmon chip named {:?} with {}{} under {}",
                        s.id,
                        s.chip,
                        s.file,
                        s.label
                            .as_ref()
                            .map(|l| format!(" labelled {l:?}"))
                            .unwrap_or_default(),
                        self.sysfs.join("class/hwmon").display()
                    ))
                    .with_fix("load the sensor's driver, or correct sources.hwmon.sensors"),
                );
                continue;
            };
            match hwmon::read_u64(p) {
                Ok(v) => sample.energy.push(EnergyReading {
                    channel: channel.clone(),
                    raw: if energy {
                        RawEnergy::Resetting {
                            uj: v,
                            max_watts: s.max_watts,
                        }
                    } else {
                        RawEnergy::Power {
                            watts: v as f64 / 1e6,
                        }
                    },
                }),
                Err(e) => {
                    sample.problems.push(e);
                    // Look for the chip again next time (a driver reload renumbers hwmonN).
                    *path = None;
                }
            }
            sample.devices.push(DeviceInfo {
                channel,
                name: format!("{} {}", s.chip, s.file),
                model: s.label.clone().unwrap_or_default(),
                method: if energy {
                    "counter"
                } else {
                    "power_integration"
                },
            });
        }
        Ok(sample)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chip(root: &Path, n: u32, name: &str, files: &[(&str, &str)]) {
        let h = root.join(format!("class/hwmon/hwmon{n}"));
        fs::create_dir_all(h.join("device")).unwrap();
        fs::write(h.join("name"), format!("{name}\n")).unwrap();
        for (f, v) in files {
            fs::write(h.join(f), format!("{v}\n")).unwrap();
        }
    }

    fn sensor(id: &str, chip: &str, file: &str, label: Option<&str>, role: Role) -> SensorConfig {
        SensorConfig {
            id: id.into(),
            chip: chip.into(),
            file: file.into(),
            label: label.map(Into::into),
            role,
            max_watts: 5000.0,
        }
    }

    #[test]
    fn sensors_are_found_by_chip_and_label_and_read() {
        let t = tempfile::tempdir().unwrap();
        chip(t.path(), 0, "nvme", &[("temp1_input", "40000")]);
        chip(
            t.path(),
            1,
            "power_meter",
            &[
                ("device/power1_average", "300000000"),
                ("device/power1_oem_info", "PSU 1"),
            ],
        );
        chip(
            t.path(),
            2,
            "power_meter",
            &[
                ("device/power1_average", "450000000"),
                ("device/power1_oem_info", "Node Power"),
            ],
        );
        chip(
            t.path(),
            3,
            "pdu",
            &[("energy1_input", "123456"), ("energy1_label", "outlet 7")],
        );
        let mut s = HwmonSource::new(
            t.path().into(),
            vec![
                sensor(
                    "node",
                    "power_meter",
                    "power1_average",
                    Some("Node Power"),
                    Role::Node,
                ),
                sensor("outlet", "pdu", "energy1_input", None, Role::Gpu),
            ],
        );
        let out = s.sample().unwrap();
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        assert_eq!(
            out.energy,
            [
                EnergyReading {
                    channel: ChannelId::new(Domain::HwmonNode, "node"),
                    raw: RawEnergy::Power { watts: 450.0 }
                },
                EnergyReading {
                    channel: ChannelId::new(Domain::HwmonGpu, "outlet"),
                    raw: RawEnergy::Resetting {
                        uj: 123456,
                        max_watts: 5000.0
                    }
                }
            ]
        );
        assert_eq!(Domain::HwmonNode.component(), None);
        assert_eq!(
            Domain::HwmonGpu.component(),
            Some(joulebook_common::Component::Gpu)
        );
    }

    #[test]
    fn a_missing_chip_is_a_problem_naming_it() {
        let t = tempfile::tempdir().unwrap();
        let mut s = HwmonSource::new(
            t.path().into(),
            vec![sensor(
                "x",
                "acpi_meter",
                "power1_average",
                Some("PSU"),
                Role::Node,
            )],
        );
        let out = s.sample().unwrap();
        assert!(out.energy.is_empty());
        let m = &out.problems[0].message;
        assert!(
            m.contains("acpi_meter") && m.contains("power1_average") && m.contains("PSU"),
            "{m}"
        );
    }

    #[test]
    fn settings_are_checked() {
        let ok = sensor("a-1", "pdu", "energy2_input", None, Role::None);
        assert_eq!(check(&ok), Ok(()));
        let bad_file = sensor("a", "pdu", "energy2_average", None, Role::None);
        assert_eq!(check(&bad_file).unwrap_err().0, "file");
        let bad_id = sensor("a b", "pdu", "power1_input", None, Role::None);
        assert_eq!(check(&bad_id).unwrap_err().0, "id");
        let bad_chip = sensor("a", "../x", "power1_input", None, Role::None);
        assert_eq!(check(&bad_chip).unwrap_err().0, "chip");
    }
}
