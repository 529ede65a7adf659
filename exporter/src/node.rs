//! Static facts about the node, read once at start from procfs: CPU model and vendor, sockets,
//! cores, logical CPUs and their sockets, installed memory, hostname. The estimation methods in
//! the reports (cores × hours × TDP per core, memory × W/GB) need these, and attribution needs
//! the CPU → socket map.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeInfo {
    pub hostname: String,
    pub cpu_model: String,
    pub cpu_vendor: String,
    /// Logical CPU ids of each socket, by socket number (from `physical id`; 0 when absent).
    pub cpus_by_socket: BTreeMap<u32, Vec<u32>>,
    pub physical_cores: u32,
    pub logical_cpus: u32,
    /// MemTotal, in bytes.
    pub memory_bytes: u64,
}

impl NodeInfo {
    pub fn sockets(&self) -> u32 {
        self.cpus_by_socket.len().max(1) as u32
    }

    /// Reads the node's facts under a procfs root. Missing or unreadable files leave the
    /// corresponding facts empty, with a warning naming the file: the exporter still runs.
    pub fn read(procfs: &Path) -> NodeInfo {
        let mut info = NodeInfo::default();
        let hostname_path = procfs.join("sys/kernel/hostname");
        match fs::read_to_string(&hostname_path) {
            Ok(h) => info.hostname = h.trim().to_string(),
            Err(e) => {
                tracing::warn!(file = %hostname_path.display(), error = %e, "cannot read hostname")
            }
        }
        let cpuinfo_path = procfs.join("cpuinfo");
        match fs::read_to_string(&cpuinfo_path) {
            Ok(text) => info.apply_cpuinfo(&text),
            Err(e) => {
                tracing::warn!(file = %cpuinfo_path.display(), error = %e, "cannot read CPU facts")
            }
        }
        let meminfo_path = procfs.join("meminfo");
        match fs::read_to_string(&meminfo_path) {
            Ok(text) => {
                info.memory_bytes = parse_memtotal(&text).unwrap_or_else(|| {
                    tracing::warn!(file = %meminfo_path.display(), "no parsable MemTotal line");
                    0
                })
            }
            Err(e) => {
                tracing::warn!(file = %meminfo_path.display(), error = %e, "cannot read memory size")
            }
        }
        info
    }

    fn apply_cpuinfo(&mut self, text: &str) {
        let mut cores: BTreeSet<(u32, u32)> = BTreeSet::new();
        // Each processor block ends with a blank line; fields come in any order within it.
        for block in text.split("\n\n") {
            let mut processor = None;
            let mut socket = 0u32;
            let mut core = None;
            for line in block.lines() {
                let Some((k, v)) = line.split_once(':') else {
                    continue;
                };
                let (k, v) = (k.trim(), v.trim());
                match k {
                    "processor" => processor = v.parse::<u32>().ok(),
                    "physical id" => socket = v.parse().unwrap_or(0),
                    "core id" => core = v.parse::<u32>().ok(),
                    "model name" if self.cpu_model.is_empty() => self.cpu_model = v.to_string(),
                    "vendor_id" if self.cpu_vendor.is_empty() => self.cpu_vendor = v.to_string(),
                    _ => {}
                }
            }
            let Some(cpu) = processor else { continue };
            self.cpus_by_socket.entry(socket).or_default().push(cpu);
            // Without core ids (some VMs, ARM) each logical CPU counts as a core.
            cores.insert((socket, core.unwrap_or(cpu + 1_000_000)));
        }
        self.logical_cpus = self.cpus_by_socket.values().map(|v| v.len() as u32).sum();
        self.physical_cores = cores.len() as u32;
    }
}

fn parse_memtotal(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_sockets_with_hyperthreads() {
        let mut text = String::new();
        for cpu in 0..8u32 {
            let socket = cpu % 2;
            let core = (cpu / 2) % 2;
            text += &format!(
                "processor\t: {cpu}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz\nphysical id\t: {socket}\ncore id\t\t: {core}\n\n"
            );
        }
        let mut n = NodeInfo::default();
        n.apply_cpuinfo(&text);
        assert_eq!(n.logical_cpus, 8);
        assert_eq!(n.physical_cores, 4);
        assert_eq!(n.sockets(), 2);
        assert_eq!(n.cpus_by_socket[&1], vec![1, 3, 5, 7]);
        assert_eq!(n.cpu_vendor, "GenuineIntel");
        assert_eq!(
            parse_memtotal("MemTotal:       16384 kB\n"),
            Some(16384 * 1024)
        );
    }
}
