//! NVIDIA Grace and Grace Hopper: the firmware's ACPI power meters (`ACPI000D`, Linux driver
//! `acpi_power_meter`), one hwmon device each, under `<sysfs>/class/hwmon/hwmonN`. The driver
//! puts the meter's files on the ACPI device (`hwmonN/device/power1_average`), or on the hwmon
//! device itself in newer kernels; both are looked at. `power1_oem_info` names the meter:
//!
//! | `power1_oem_info` | measures | joulebook |
//! |---|---|---|
//! | `Grace Power Socket N` | the Grace socket: CPU and SysIO rails, its LPDDR5X memory, regulator losses | component `cpu` |
//! | `CPU Power Socket N` | the CPU cores' rail (inside the Grace socket) | published, added to nothing |
//! | `SysIO Power Socket N` | the SoC/IO rail (inside the Grace socket) | published, added to nothing |
//! | `Module Power Socket N` | a Grace Hopper module: Grace socket + Hopper GPU + HBM | published, added to nothing |
//!
//! `power1_average` is in µW, averaged by the firmware over `power1_average_interval` (ms); the
//! sampler integrates it. The module meter contains the Hopper GPU, which NVML already measures
//! (component `gpu`), and the Grace socket (component `cpu`): adding it too would count both
//! twice, so it is published beside them like RAPL's psys, never added. Its energy beyond the
//! two (C2C link, module regulators) reaches the node only through the BMC's `other`.
//! The memory is inside the Grace socket, so on Grace the DRAM estimate is not added either
//! (`app::build_sources`).

use super::hwmon;
use super::{
    ChannelId, DeviceInfo, Domain, EnergyReading, RawEnergy, Source, SourceError, SourceKind,
    SourceSample,
};
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct GraceOptions {
    pub sysfs: PathBuf,
}

/// One power meter.
#[derive(Clone, Debug, PartialEq)]
pub struct Meter {
    pub domain: Domain,
    pub socket: u32,
    pub oem_info: String,
    pub power: PathBuf,
}

/// The domain and socket a `power1_oem_info` names.
fn parse_oem(info: &str) -> Option<(Domain, u32)> {
    let (kind, socket) = info.trim().split_once(" Power Socket ")?;
    let domain = match kind {
        "Grace" => Domain::GraceSocket,
        "CPU" => Domain::GraceCpuRail,
        "SysIO" => Domain::GraceSysioRail,
        "Module" => Domain::GraceModule,
        _ => return None,
    };
    Some((domain, socket.trim().parse().ok()?))
}

/// The Grace power meters under `<sysfs>/class/hwmon`, sorted by domain and socket.
pub fn discover(sysfs: &Path) -> Vec<Meter> {
    let mut meters: Vec<Meter> = Vec::new();
    for h in hwmon::hwmon_dirs(&sysfs.join("class/hwmon")) {
        for dir in [h.join("device"), h.clone()] {
            let Ok(info) = fs::read_to_string(dir.join("power1_oem_info")) else {
                continue;
            };
            let Some((domain, socket)) = parse_oem(&info) else {
                continue;
            };
            if !meters
                .iter()
                .any(|m| m.domain == domain && m.socket == socket)
            {
                meters.push(Meter {
                    domain,
                    socket,
                    oem_info: info.trim().to_string(),
                    power: dir.join("power1_average"),
                });
            }
            break;
        }
    }
    meters.sort_by_key(|m| (m.domain, m.socket));
    meters
}

pub struct GraceSource {
    opts: GraceOptions,
    meters: Vec<Meter>,
    samples: u64,
}

impl GraceSource {
    pub fn new(opts: GraceOptions) -> Self {
        GraceSource {
            opts,
            meters: Vec::new(),
            samples: 0,
        }
    }
}

impl Source for GraceSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Grace
    }

    fn sample(&mut self) -> Result<SourceSample, SourceError> {
        self.samples += 1;
        if self.meters.is_empty() || self.samples % super::amdgpu::REDISCOVER_EVERY == 0 {
            self.meters = discover(&self.opts.sysfs);
            if self.meters.is_empty() {
                return Err(SourceError::new(format!(
                    "no ACPI power meter naming a Grace socket (power1_oem_info) under {}",
                    self.opts.sysfs.join("class/hwmon").display()
                ))
                .with_fix(
                    "load the acpi_power_meter module (modprobe acpi_power_meter); the meters \
                     come from the system firmware, which may need an update",
                ));
            }
        }
        let mut sample = SourceSample::default();
        for m in &self.meters {
            let channel = ChannelId::of(m.domain, super::DeviceKey::Socket(m.socket));
            match hwmon::read_u64(&m.power) {
                Ok(uw) => sample.energy.push(EnergyReading {
                    channel: channel.clone(),
                    raw: RawEnergy::Power {
                        watts: uw as f64 / 1e6,
                    },
                }),
                Err(e) => sample.problems.push(e),
            }
            sample.devices.push(DeviceInfo {
                channel,
                name: m.oem_info.clone(),
                model: "ACPI power meter".into(),
                method: "power_integration",
            });
        }
        if !sample.problems.is_empty() {
            self.meters.clear();
        }
        Ok(sample)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ACPI power meter as the driver lays it out: hwmonN/name and the meter's files on the
    /// ACPI device (hwmonN/device).
    pub fn meter(root: &Path, n: u32, oem: &str, uw: u64) {
        let h = root.join(format!("class/hwmon/hwmon{n}"));
        let d = h.join("device");
        fs::create_dir_all(&d).unwrap();
        fs::write(h.join("name"), "power_meter\n").unwrap();
        fs::write(d.join("power1_oem_info"), format!("{oem}\n")).unwrap();
        fs::write(d.join("power1_average"), format!("{uw}\n")).unwrap();
        fs::write(d.join("power1_average_interval"), "50\n").unwrap();
    }

    #[test]
    fn oem_info_names_the_domain_and_socket() {
        assert_eq!(
            parse_oem("Grace Power Socket 1\n"),
            Some((Domain::GraceSocket, 1))
        );
        assert_eq!(
            parse_oem("Module Power Socket 3"),
            Some((Domain::GraceModule, 3))
        );
        assert_eq!(
            parse_oem("SysIO Power Socket 0"),
            Some((Domain::GraceSysioRail, 0))
        );
        assert_eq!(
            parse_oem("CPU Power Socket 0"),
            Some((Domain::GraceCpuRail, 0))
        );
        assert_eq!(parse_oem("PSU Power Socket 0"), None);
        assert_eq!(parse_oem("Grace Power Socket x"), None);
    }

    #[test]
    fn meters_are_read_in_watts_and_only_the_socket_adds_to_a_component() {
        let t = tempfile::tempdir().unwrap();
        meter(t.path(), 1, "Module Power Socket 0", 450_000_000);
        meter(t.path(), 2, "Grace Power Socket 0", 120_000_000);
        meter(t.path(), 3, "CPU Power Socket 0", 80_000_000);
        meter(t.path(), 4, "SysIO Power Socket 0", 25_000_000);
        // Another hwmon (a NIC's temperature) is ignored.
        fs::create_dir_all(t.path().join("class/hwmon/hwmon0")).unwrap();
        let mut s = GraceSource::new(GraceOptions {
            sysfs: t.path().into(),
        });
        let out = s.sample().unwrap();
        let got: Vec<(Domain, f64)> = out
            .energy
            .iter()
            .map(|r| match r.raw {
                RawEnergy::Power { watts } => (r.channel.domain, watts),
                ref other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            [
                (Domain::GraceSocket, 120.0),
                (Domain::GraceCpuRail, 80.0),
                (Domain::GraceSysioRail, 25.0),
                (Domain::GraceModule, 450.0)
            ]
        );
        let components: Vec<_> = got.iter().filter_map(|(d, _)| d.component()).collect();
        assert_eq!(components, [joulebook_common::Component::Cpu]);
    }

    #[test]
    fn no_meter_says_how_to_fix() {
        let t = tempfile::tempdir().unwrap();
        let e = GraceSource::new(GraceOptions {
            sysfs: t.path().into(),
        })
        .sample()
        .unwrap_err();
        assert!(e.message.contains("power1_oem_info"), "{e}");
        assert!(e.fix.unwrap().contains("acpi_power_meter"));
    }
}
