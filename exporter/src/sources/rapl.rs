//! RAPL through Linux powercap (`<sysfs>/class/powercap`).
//!
//! Zones are recognised by their `name` file, not their directory name, because the numbering is
//! not stable: `intel-rapl:1` is `package-1` on a two-socket server but `psys` on a laptop.
//! - `package-N` (top level): socket N's package. Intel and AMD (AMD Zen exposes only these).
//! - `core`, `uncore`, `dram` (subzones `intel-rapl:N:M`): belong to their parent's socket.
//!   Some servers expose `dram` as a top-level zone; it then takes the socket of its index.
//! - `psys`: the platform zone; it overlaps the rest and is never added to the node total.
//! - `package-N-die-M` (top level): die M of socket N. The kernel names zones so when the CPU
//!   reports more than one die per package (`rapl_add_package_cpuslocked` in
//!   `drivers/powercap/intel_rapl_common.c`). Two cases, told apart by the kernel's own rule
//!   (`rapl_msrs_are_pkg_scope()`: the CPU vendor is AMD or Hygon):
//!   - Intel (Cascade Lake-AP): the package energy MSR is per die, so each die is a distinct
//!     counter; every die is counted, under its socket with a `die` label (device `N-die-M`),
//!     and its `dram`/`core` subzones belong to that die.
//!   - AMD and Hygon: the MSR is per package. Kernels with the CPUID 0x80000026 topology
//!     (commit 63edbaa48a57) but without "powercap/intel_rapl: Fix the energy-pkg event for AMD
//!     CPUs" (2024) register one zone per CCD, each reading the same package counter. Only the
//!     lowest die of each package is kept, as the package (device `N`); the others mirror it.
//! - `intel-rapl-mmio:N` repeats a package through MMIO. It is used only when no MSR zone
//!   (`intel-rapl:`) covers the same domain and socket, so the same energy is never counted twice.
//!
//! The source returns raw `energy_uj` values with their `max_energy_range_uj`; the sampler corrects
//! wraps. The zone list is discovered at start, again after any read error, and every
//! [`REDISCOVER_EVERY`] samples, so hot-plugged or vanished zones are noticed.
//!
//! Each zone's `energy_uj` stays open between cycles and is read again with `pread` at offset 0,
//! where sysfs produces the current value anew: one system call per zone and cycle instead of an
//! open (with its path lookup), a read and a close. A read that fails or returns garbage opens the
//! file again once before the error is reported; a removed zone's file fails with ENODEV. Outside
//! sysfs (test fixtures, a copy of `/sys`) a file may be replaced by a rename, which an open
//! descriptor would never see, so there each read also checks with `fstat` that the file still
//! has a name.

use super::{
    ChannelId, Domain, EnergyReading, RawEnergy, Source, SourceError, SourceKind, SourceSample,
};
use crate::fileio::read_again;
use std::fs;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Samples between two discoveries of the zone list when nothing goes wrong (about a minute at the
/// default 1 s interval: cheap, and catches zones that appear late, e.g. after a module load).
pub const REDISCOVER_EVERY: u64 = 60;

/// Options of the RAPL source.
#[derive(Clone, Debug)]
pub struct RaplOptions {
    /// The sysfs root (`--path.sysfs`), normally `/sys`.
    pub sysfs: PathBuf,
    /// Largest power a single zone can plausibly draw, in watts; a larger delta is dropped as a
    /// glitch rather than added. 1000 W is about twice the TDP of the largest server CPUs sold in
    /// 2025 (AMD EPYC 9965 and Intel Xeon 6980P: 500 W), so no real reading is refused.
    pub max_zone_watts: f64,
    /// The package energy counter is per package, not per die (AMD and Hygon CPUs): per-die
    /// zones then mirror one counter. See [`msrs_are_package_scope`].
    pub package_scope: bool,
}

impl Default for RaplOptions {
    fn default() -> Self {
        RaplOptions {
            sysfs: PathBuf::from("/sys"),
            max_zone_watts: 1000.0,
            package_scope: false,
        }
    }
}

/// The kernel's `rapl_msrs_are_pkg_scope()` (`drivers/powercap/intel_rapl_common.c`): AMD and
/// Hygon CPUs have one package energy counter per package, Intel's multi-die parts one per die.
/// `vendor` is `/proc/cpuinfo`'s `vendor_id`.
pub fn msrs_are_package_scope(vendor: &str) -> bool {
    matches!(vendor.trim(), "AuthenticAMD" | "HygonGenuine")
}

/// A package zone's name, `package-N` or `package-N-die-M`: (socket, die).
fn parse_package(name: &str) -> Option<(u32, Option<u32>)> {
    let rest = name.strip_prefix("package-")?;
    match rest.split_once("-die-") {
        Some((s, d)) => Some((s.parse().ok()?, Some(d.parse().ok()?))),
        None => Some((rest.parse().ok()?, None)),
    }
}

/// One discovered zone.
#[derive(Clone, Debug, PartialEq)]
pub struct Zone {
    pub channel: ChannelId,
    /// The zone's directory (e.g. `/sys/class/powercap/intel-rapl:0`).
    pub dir: PathBuf,
    /// `max_energy_range_uj`: the counter wraps to 0 when it reaches this value.
    pub range_uj: u64,
    /// True for `intel-rapl-mmio` zones.
    pub mmio: bool,
    /// The die of a `package-N-die-M` zone (and of its subzones), also where it is dropped
    /// from the device because the dies mirror one package counter.
    pub die: Option<u32>,
}

pub struct RaplSource {
    opts: RaplOptions,
    zones: Option<Vec<Zone>>,
    samples: u64,
    /// One per zone, in the same order.
    counters: Vec<Counter>,
    /// For the reads of the counters (grows once).
    buf: Vec<u8>,
}

/// A zone's `energy_uj`, kept open while it reads well.
#[derive(Debug)]
struct Counter {
    path: PathBuf,
    file: Option<fs::File>,
    /// Not on sysfs: check on each read that the file was not replaced.
    check_replaced: bool,
}

impl Counter {
    fn new(path: PathBuf) -> Counter {
        Counter {
            path,
            file: None,
            check_replaced: true,
        }
    }

    /// The counter's value: from the open file if it reads well, else from the file opened
    /// again. Errors name the file, as [`read_error`] and [`parse_u64`] word them.
    fn read(&mut self, buf: &mut Vec<u8>) -> Result<u64, SourceError> {
        if let Some(f) = &self.file {
            let replaced = self.check_replaced && f.metadata().map_or(true, |m| m.nlink() == 0);
            if !replaced {
                if let Some(uj) = read_again(f, buf)
                    .ok()
                    .and_then(|t| t.trim().parse::<u64>().ok())
                {
                    return Ok(uj);
                }
            }
        }
        // First read, a failed one, garbage, or a file replaced since it was opened.
        self.file = None;
        counted_open();
        let f = fs::File::open(&self.path).map_err(|e| read_error(&self.path, e))?;
        let text = read_again(&f, buf).map_err(|e| read_error(&self.path, e))?;
        let uj = parse_u64(&self.path, text)?;
        self.check_replaced = !on_sysfs(&f);
        self.file = Some(f);
        Ok(uj)
    }
}

/// Whether an open file lives on sysfs, where files are never replaced behind an open descriptor.
fn on_sysfs(f: &fs::File) -> bool {
    use std::os::fd::AsRawFd;
    let mut st = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: fstatfs fills the statfs it is given, for a descriptor that `f` keeps open; the
    // value is read only when the call succeeded.
    unsafe {
        libc::fstatfs(f.as_raw_fd(), st.as_mut_ptr()) == 0
            && st.assume_init().f_type as u64 == libc::SYSFS_MAGIC as u64
    }
}

// Opens of counter files, counted per thread in tests (the steady state opens none).
#[cfg(test)]
thread_local! {
    static OPENS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

#[inline]
fn counted_open() {
    #[cfg(test)]
    OPENS.with(|c| c.set(c.get() + 1));
}

impl RaplSource {
    pub fn new(opts: RaplOptions) -> Self {
        RaplSource {
            opts,
            zones: None,
            samples: 0,
            counters: Vec::new(),
            buf: Vec::new(),
        }
    }

    fn powercap_dir(&self) -> PathBuf {
        self.opts.sysfs.join("class/powercap")
    }

    /// The zones found at the last discovery.
    pub fn zones(&self) -> &[Zone] {
        self.zones.as_deref().unwrap_or(&[])
    }

    fn ensure_zones(&mut self) -> Result<(), SourceError> {
        let due = self.samples % REDISCOVER_EVERY == 0;
        if self.zones.is_none() || due {
            let zones = discover(&self.powercap_dir(), self.opts.package_scope)?;
            if let Some(old) = &self.zones {
                if old
                    .iter()
                    .map(|z| &z.channel)
                    .ne(zones.iter().map(|z| &z.channel))
                {
                    tracing::info!(
                        source = "rapl",
                        zones = %describe(&zones),
                        "RAPL zones changed"
                    );
                }
            }
            // Files already open stay open.
            let mut old = std::mem::take(&mut self.counters);
            self.counters = zones
                .iter()
                .map(|z| {
                    let path = z.dir.join("energy_uj");
                    match old.iter().position(|c| c.path == path) {
                        Some(i) => old.swap_remove(i),
                        None => Counter::new(path),
                    }
                })
                .collect();
            self.zones = Some(zones);
        }
        Ok(())
    }
}

fn describe(zones: &[Zone]) -> String {
    zones
        .iter()
        .map(|z| z.channel.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn read_trimmed(path: &Path, buf: &mut String) -> Result<(), SourceError> {
    buf.clear();
    let res = fs::File::open(path).and_then(|mut f| f.read_to_string(buf));
    res.map(|_| ()).map_err(|e| read_error(path, e))
}

fn read_error(path: &Path, e: std::io::Error) -> SourceError {
    match e {
        e if e.kind() == ErrorKind::PermissionDenied => SourceError::new(format!(
            "cannot read {}: permission denied",
            path.display()
        ))
        .with_fix(
            "energy_uj is readable by root only since Linux 5.10 (CVE-2020-8694); run the exporter \
             with AmbientCapabilities=CAP_DAC_READ_SEARCH as the shipped systemd unit does, or make \
             energy_uj group-readable with the udev rule in the README (section Permissions)",
        ),
        e if e.kind() == ErrorKind::NotFound => SourceError::new(format!(
            "{} vanished (RAPL zone removed or driver unloaded)",
            path.display()
        ))
        .with_fix("check that the intel_rapl_common / intel_rapl_msr modules are loaded"),
        e => SourceError::new(format!("cannot read {}: {e}", path.display())),
    }
}

fn parse_u64(path: &Path, buf: &str) -> Result<u64, SourceError> {
    let t = buf.trim();
    t.parse::<u64>().map_err(|_| {
        let shown: String = t.chars().take(40).collect();
        SourceError::new(format!(
            "{} holds {shown:?}, not a non-negative integer",
            path.display()
        ))
    })
}

/// Finds the RAPL zones under a powercap directory. `package_scope`: per-die zones mirror one
/// package counter (see [`RaplOptions::package_scope`]). Errors name the directory or file.
pub fn discover(powercap: &Path, package_scope: bool) -> Result<Vec<Zone>, SourceError> {
    let entries =
        match fs::read_dir(powercap) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(SourceError::new(format!(
                "no powercap directory at {}: this machine exposes no RAPL counters",
                powercap.display()
            ))
            .with_fix(
                "on bare metal, load intel_rapl_msr (Intel, and AMD Zen with Linux >= 5.11); in a \
                 virtual machine or container RAPL is not available and the estimate source \
                 models CPU and memory instead",
            )),
            Err(e) => {
                return Err(SourceError::new(format!(
                    "cannot list {}: {e}",
                    powercap.display()
                )))
            }
        };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("intel-rapl:") || n.starts_with("intel-rapl-mmio:"))
        .collect();
    names.sort();

    let mut buf = String::new();
    let mut found: Vec<Zone> = Vec::new();
    for dir_name in &names {
        let mmio = dir_name.starts_with("intel-rapl-mmio:");
        let dir = powercap.join(dir_name);
        read_trimmed(&dir.join("name"), &mut buf)?;
        let zone_name = buf.trim().to_string();
        let Some((domain, socket, die)) = classify(powercap, dir_name, &zone_name)? else {
            tracing::debug!(zone = %dir.display(), name = %zone_name, "ignoring unknown RAPL zone");
            continue;
        };
        let range_path = dir.join("max_energy_range_uj");
        read_trimmed(&range_path, &mut buf)?;
        let range_uj = parse_u64(&range_path, &buf)?;
        if range_uj == 0 {
            return Err(SourceError::new(format!(
                "{} is 0: cannot correct wraps of this zone",
                range_path.display()
            )));
        }
        let device = match (socket, die) {
            (None, _) => super::DeviceKey::Node,
            (Some(socket), Some(die)) if !package_scope => super::DeviceKey::Die { socket, die },
            (Some(s), _) => super::DeviceKey::Socket(s),
        };
        let zone = Zone {
            channel: ChannelId::of(domain, device),
            dir,
            range_uj,
            mmio,
            die,
        };
        // One zone per channel: MSR zones win over their MMIO twins, and of dies mirroring one
        // package counter the lowest die is kept (directory numbers do not follow die ids).
        match found.iter().position(|z| z.channel == zone.channel) {
            Some(i) => {
                let old = &found[i];
                if (old.mmio, old.die) > (zone.mmio, zone.die) {
                    found[i] = zone;
                }
            }
            None => found.push(zone),
        }
    }
    if found.is_empty() {
        return Err(
            SourceError::new(format!("no RAPL zone under {}", powercap.display())).with_fix(
                "load intel_rapl_msr; on virtual machines the estimate source is used instead",
            ),
        );
    }
    found.sort_by(|a, b| a.channel.cmp(&b.channel));
    Ok(found)
}

/// A zone's domain, socket (none for psys) and die.
type Classified = (Domain, Option<u32>, Option<u32>);

/// A zone's domain, socket and die from its directory and `name`; `None` for zones not used.
fn classify(
    powercap: &Path,
    dir_name: &str,
    zone_name: &str,
) -> Result<Option<Classified>, SourceError> {
    let indices: Vec<&str> = dir_name
        .split_once(':')
        .map(|(_, rest)| rest.split(':').collect())
        .unwrap_or_default();
    Ok(match (zone_name, indices.len()) {
        ("psys", _) => Some((Domain::RaplPsys, None, None)),
        (n, 1) if n.starts_with("package-") => {
            parse_package(n).map(|(s, d)| (Domain::RaplPackage, Some(s), d))
        }
        ("dram", 1) => indices[0]
            .parse::<u32>()
            .ok()
            .map(|s| (Domain::RaplDram, Some(s), None)),
        (sub @ ("core" | "uncore" | "dram"), 2) => {
            // The parent's name gives the socket and die: intel-rapl:1 may be package-1,
            // package-0-die-1 or psys.
            let parent = powercap.join(dir_name.rsplit_once(':').map(|p| p.0).unwrap_or(""));
            let mut pbuf = String::new();
            read_trimmed(&parent.join("name"), &mut pbuf)?;
            let domain = match sub {
                "core" => Domain::RaplCore,
                "uncore" => Domain::RaplUncore,
                _ => Domain::RaplDram,
            };
            parse_package(pbuf.trim()).map(|(s, d)| (domain, Some(s), d))
        }
        _ => None,
    })
}

impl Source for RaplSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Rapl
    }

    fn sample(&mut self) -> Result<SourceSample, SourceError> {
        self.samples += 1;
        self.ensure_zones()?;
        let zones = self.zones.as_deref().unwrap_or(&[]);
        let mut energy = Vec::with_capacity(zones.len());
        let mut result = Ok(());
        for (zone, counter) in zones.iter().zip(&mut self.counters) {
            match counter.read(&mut self.buf) {
                Ok(uj) => energy.push(EnergyReading {
                    channel: zone.channel.clone(),
                    raw: RawEnergy::Wrapping {
                        uj,
                        range_uj: zone.range_uj,
                        max_watts: self.opts.max_zone_watts,
                    },
                }),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if let Err(e) = result {
            // Look again next time: the zone may have been replaced by another.
            self.zones = None;
            return Err(e);
        }
        Ok(SourceSample {
            energy,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests;
