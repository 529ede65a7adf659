//! MIG instances in cgroup v1 device lists. A job holding a MIG instance is allowed its GPU's
//! `/dev/nvidia<minor>` (as every job on that GPU is) and the instance's capability devices
//! `/dev/nvidia-caps/nvidia-cap<N>`, whose major is `nvidia-caps` in `/proc/devices`
//! (dynamic). `/proc/driver/nvidia-caps/mig-minors` names every capability minor the driver
//! reserves, one `<name> <minor>` line each (NVIDIA MIG User Guide, "Device Nodes and
//! Capabilities"): `config`, `monitor`, `gpu<G>/gi<I>/access` (GPU instance I of the GPU whose
//! device minor is G) and `gpu<G>/gi<I>/ci<C>/access` (its compute instance C). Both kinds of
//! minor name the instance; the table is static while the driver is loaded, so it is read
//! again only when the node's MIG instances change.

use super::GpuRef;
use std::collections::HashMap;
use std::path::Path;

/// The capability table, read for one set of MIG instances.
#[derive(Debug, Default)]
pub struct MigCaps {
    /// The MIG UUIDs of the inventory the table was read for.
    key: Vec<String>,
    table: Option<Table>,
}

#[derive(Debug, PartialEq)]
struct Table {
    major: u32,
    /// Capability minor → (GPU device minor, GPU instance id).
    by_minor: HashMap<u32, (u32, u32)>,
}

/// The major of `nvidia-caps` among `/proc/devices`' character devices.
fn caps_major(devices: &str) -> Option<u32> {
    devices
        .lines()
        .take_while(|l| !l.starts_with("Block devices"))
        .find_map(|l| {
            let (major, name) = l.trim().split_once(' ')?;
            (name.trim() == "nvidia-caps").then(|| major.parse().ok())?
        })
}

/// The instance minors of `mig-minors`; other lines (`config`, `monitor`, names of later
/// drivers) are skipped.
fn instance_minors(text: &str) -> HashMap<u32, (u32, u32)> {
    text.lines()
        .filter_map(|l| {
            let (name, minor) = l.trim().split_once(' ')?;
            let rest = name.strip_prefix("gpu")?;
            let (gpu, rest) = rest.split_once("/gi")?;
            let gi = match rest.split_once("/ci") {
                Some((gi, ci)) => {
                    ci.strip_suffix("/access")?.parse::<u32>().ok()?;
                    gi
                }
                None => rest.strip_suffix("/access")?,
            };
            Some((
                minor.trim().parse().ok()?,
                (gpu.parse().ok()?, gi.parse().ok()?),
            ))
        })
        .collect()
}

impl MigCaps {
    /// `gpus` with each MIG instance's capability devices ([`GpuRef::caps`]) filled in from
    /// `<procfs>/devices` and `<procfs>/driver/nvidia-caps/mig-minors`. Without them (no MIG
    /// support, caps not exposed as /dev files) the inventory is returned as it is.
    pub fn enrich(&mut self, procfs: &Path, gpus: &[GpuRef]) -> Vec<GpuRef> {
        let key: Vec<String> = gpus
            .iter()
            .filter(|g| g.mig.is_some())
            .map(|g| g.uuid.clone())
            .collect();
        if key != self.key {
            self.table = read_table(procfs);
            self.key = key;
        }
        let mut out = gpus.to_vec();
        let Some(t) = &self.table else {
            return out;
        };
        for g in &mut out {
            let Some(gi) = g.mig else { continue };
            // The physical GPU: same index, no instance, and a device minor.
            let Some(gpu_minor) = gpus
                .iter()
                .find(|p| p.mig.is_none() && p.index == g.index && p.minor.is_some())
                .and_then(|p| p.minor)
            else {
                continue;
            };
            let mut caps: Vec<(u32, u32)> = t
                .by_minor
                .iter()
                .filter(|(_, &(g, i))| (g, i) == (gpu_minor, gi))
                .map(|(&m, _)| (t.major, m))
                .collect();
            caps.sort_unstable();
            g.caps = caps;
        }
        out
    }
}

fn read_table(procfs: &Path) -> Option<Table> {
    let devices = std::fs::read_to_string(procfs.join("devices")).ok()?;
    let major = caps_major(&devices)?;
    let path = procfs.join("driver/nvidia-caps/mig-minors");
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(Table {
            major,
            by_minor: instance_minors(&text),
        }),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "nvidia-caps is loaded but its MIG minors cannot be read: jobs holding MIG instances are mapped by other means");
            None
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `mig-minors` as the driver writes it: every capability it reserves, for 32 GPUs of 15
    /// GPU instances of 8 compute instances each (the NVIDIA MIG User Guide's example runs from
    /// `config 1` to `gpu31/gi14/ci7/access 4322`).
    pub(crate) fn driver_mig_minors() -> String {
        let mut s = String::from("config 1\nmonitor 2\n");
        let mut minor = 3;
        for gpu in 0..32 {
            for gi in 0..15 {
                s.push_str(&format!("gpu{gpu}/gi{gi}/access {minor}\n"));
                minor += 1;
                for ci in 0..8 {
                    s.push_str(&format!("gpu{gpu}/gi{gi}/ci{ci}/access {minor}\n"));
                    minor += 1;
                }
            }
        }
        s
    }

    #[test]
    fn the_drivers_table_matches_the_documented_lines() {
        let t = instance_minors(&driver_mig_minors());
        // Lines quoted in the MIG User Guide and from a real node in NVIDIA's DRA driver.
        assert_eq!(t[&3], (0, 0));
        assert_eq!(t[&4], (0, 0));
        assert_eq!(t[&439], (3, 3));
        assert_eq!(t[&920], (6, 11));
        assert_eq!(t[&4322], (31, 14));
        assert_eq!(t.get(&1), None, "config is no instance");
        assert_eq!(t.len(), 32 * 15 * 9);
        assert_eq!(
            instance_minors("gpu0/gi1/ci0/acces 7\ngpux/gi1/access 8\nfabric-imex 9\n"),
            HashMap::new()
        );
    }

    #[test]
    fn the_caps_major_is_a_character_device() {
        let devices = "Character devices:\n  1 mem\n195 nvidia\n236 nvidia-caps\n\
                       510 nvidia-uvm\n\nBlock devices:\n  8 sd\n237 nvidia-caps\n";
        assert_eq!(caps_major(devices), Some(236));
        assert_eq!(caps_major("Character devices:\n195 nvidia\n"), None);
    }

    #[test]
    fn instances_get_their_gi_and_ci_minors() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("driver/nvidia-caps")).unwrap();
        std::fs::write(
            t.path().join("devices"),
            "Character devices:\n195 nvidia\n236 nvidia-caps\n",
        )
        .unwrap();
        std::fs::write(
            t.path().join("driver/nvidia-caps/mig-minors"),
            driver_mig_minors(),
        )
        .unwrap();
        let inv = [
            // GPU index 0 has device minor 1 (minors need not follow indices).
            GpuRef {
                uuid: "GPU-a".into(),
                index: 0,
                minor: Some(1),
                ..Default::default()
            },
            GpuRef {
                uuid: "MIG-1".into(),
                index: 0,
                mig: Some(2),
                ..Default::default()
            },
        ];
        let mut caps = MigCaps::default();
        let out = caps.enrich(t.path(), &inv);
        assert!(out[0].caps.is_empty());
        // gpu1/gi2/access = 3 + 135 + 2 × 9 = 156, then its 8 compute instances.
        let want: Vec<(u32, u32)> = (156..165).map(|m| (236, m)).collect();
        assert_eq!(out[1].caps, want);
        // Without nvidia-caps in /proc/devices: nothing to add.
        std::fs::write(t.path().join("devices"), "Character devices:\n195 nvidia\n").unwrap();
        let out = MigCaps::default().enrich(t.path(), &inv);
        assert!(out[1].caps.is_empty());
    }
}
