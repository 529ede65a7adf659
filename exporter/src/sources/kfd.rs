//! The AMD GPUs of the KFD topology (`<sysfs>/class/kfd/kfd/topology/nodes/N/properties`), the
//! agents ROCm enumerates, in node order. An MI300 in a compute partition mode (DPX, QPX, CPX)
//! is one KFD node per partition, each with its own DRM render node and its share of the
//! compute units, all with the physical GPU's `unique_id`. This module reads them and groups
//! them with their GPU ([`partitions`]); the amdgpu source measures the GPU.
//!
//! Format (`kfd_topology.c`, `node_show`): one `name value` line each, integers in decimal;
//! `unique_id` is the same 64-bit id that amdgpu's sysfs `unique_id` prints in hex;
//! `location_id` is `pci_dev_id()` (bus << 8 | device << 3 | function), ORed with the
//! partition's node id on multi-partition GPUs; `domain` the PCI domain. CPU nodes have
//! `simd_count 0` and no render node.

use std::path::Path;

/// One GPU agent (a whole GPU, or one compute partition of one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KfdNode {
    /// The topology's node number (ROCm's enumeration order).
    pub node: u32,
    /// `unique_id` as amdgpu's sysfs file writes it (16 hex digits), when the GPU has one.
    pub unique_id: Option<String>,
    /// The physical GPU's PCI address (function 0), `dddd:bb:dd.0`.
    pub pci: String,
    /// Minor of its DRM render node (`/dev/dri/renderD<minor>`).
    pub render_minor: u32,
    /// Its compute units: `simd_count / simd_per_cu`.
    pub compute_units: u64,
}

/// A compute partition of a GPU beyond its first, which jobs hold apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// `<GPU id>-p<k>`, k its position among the GPU's nodes.
    pub id: String,
    /// Its place in ROCm's order: the GPU's PCI address, then `/k`.
    pub key: String,
    /// Its DRM minors (card and render node of its `amdgpu_xcp` device).
    pub drm_minors: Vec<u32>,
    pub compute_units: u64,
}

/// What identifies a GPU of the amdgpu source among the KFD nodes.
pub struct GpuKey<'a> {
    pub id: &'a str,
    /// amdgpu's `unique_id` (hex), if any.
    pub unique_id: Option<&'a str>,
    pub pci: &'a str,
    /// The PCI device's DRM minors: its own partition's render node is among them.
    pub drm_minors: &'a [u32],
}

/// The compute partitions of `gpu`: the nodes that share its `unique_id` (else its PCI
/// address), in node order. Returns its own partition's compute units and the others; `(0,
/// [])` for an unpartitioned GPU (one node, or none).
pub fn partitions(nodes: &[KfdNode], gpu: &GpuKey<'_>, sysfs: &Path) -> (u64, Vec<Partition>) {
    let mine: Vec<&KfdNode> = nodes
        .iter()
        .filter(|n| match (gpu.unique_id, &n.unique_id) {
            (Some(u), Some(k)) => u == k,
            _ => n.pci == gpu.pci,
        })
        .collect();
    if mine.len() < 2 {
        return (0, Vec::new());
    }
    // The GPU's own partition: the node whose render node is the PCI device's, else the first.
    let own = mine
        .iter()
        .position(|n| gpu.drm_minors.contains(&n.render_minor))
        .unwrap_or(0);
    let parts = mine
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != own)
        .map(|(k, n)| {
            let dev = sysfs.join(format!("class/drm/renderD{}/device", n.render_minor));
            Partition {
                id: format!("{}-p{k}", gpu.id),
                key: format!("{}/{k}", gpu.pci),
                drm_minors: super::drm_minors(&dev, n.render_minor.saturating_sub(128)),
                compute_units: n.compute_units,
            }
        })
        .collect();
    tracing::debug!(gpu = %gpu.id, partitions = mine.len(), "AMD GPU compute partitions");
    (mine[own].compute_units, parts)
}

/// The GPU nodes of the topology, by node number. A missing topology (no `amdkfd`, a
/// container without it) is no node; a node file that cannot be read or parsed is skipped.
pub fn gpu_nodes(sysfs: &Path) -> Vec<KfdNode> {
    let nodes = sysfs.join("class/kfd/kfd/topology/nodes");
    let mut out: Vec<KfdNode> = std::fs::read_dir(&nodes)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let node = e.file_name().to_str()?.parse().ok()?;
            let text = std::fs::read_to_string(e.path().join("properties")).ok()?;
            parse(node, &text)
        })
        .collect();
    out.sort_by_key(|n| n.node);
    out
}

/// One node's `properties`; `None` for a CPU node or one without a render node.
fn parse(node: u32, text: &str) -> Option<KfdNode> {
    let get = |key: &str| -> Option<u64> {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok())?
        })
    };
    let simds = get("simd_count")?;
    let render_minor = u32::try_from(get("drm_render_minor")?).ok()?;
    if simds == 0 || render_minor == 0 {
        return None;
    }
    let per_cu = get("simd_per_cu").filter(|&n| n > 0).unwrap_or(1);
    let location = get("location_id")? & 0xffff;
    let domain = get("domain").unwrap_or(0);
    Some(KfdNode {
        node,
        unique_id: get("unique_id")
            .filter(|&u| u != 0)
            .map(|u| format!("{u:016x}")),
        pci: format!(
            "{domain:04x}:{:02x}:{:02x}.0",
            location >> 8,
            (location >> 3) & 0x1f
        ),
        render_minor,
        compute_units: simds / per_cu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Node 3 of an MI300X in CPX mode (ROCm/k8s-device-plugin, testdata/topo-mi300-cpx, captured
    /// on a real 8-GPU node): the second partition of the GPU at 0000:05:00.0.
    const CPX_NODE: &str = "cpu_cores_count 0\nsimd_count 152\nmem_banks_count 1\n\
        simd_per_cu 4\ngfx_target_version 90402\nvendor_id 4098\ndevice_id 29857\n\
        location_id 1281\ndomain 0\ndrm_render_minor 129\n\
        unique_id 16404946649897475633\nnum_xcc 1\n";

    #[test]
    fn a_cpx_partition_names_its_gpu_render_node_and_compute_units() {
        assert_eq!(
            parse(3, CPX_NODE),
            Some(KfdNode {
                node: 3,
                unique_id: Some("e3aa140f9a5f9e31".into()),
                pci: "0000:05:00.0".into(),
                render_minor: 129,
                compute_units: 38,
            })
        );
        // A CPU node (simd_count 0, no render node) is none.
        assert_eq!(
            parse(0, "cpu_cores_count 96\nsimd_count 0\ndrm_render_minor 0\n"),
            None
        );
        // Truncated: no render minor.
        assert_eq!(parse(4, "simd_count 152\n"), None);
    }

    #[test]
    fn nodes_come_in_node_order_and_a_missing_topology_is_none() {
        let t = tempfile::tempdir().unwrap();
        assert!(gpu_nodes(t.path()).is_empty());
        let nodes = t.path().join("class/kfd/kfd/topology/nodes");
        for (n, text) in [
            (10, CPX_NODE.replace("129", "130").replace("1281", "1282")),
            (3, CPX_NODE.to_string()),
            (0, "simd_count 0\n".to_string()),
        ] {
            std::fs::create_dir_all(nodes.join(n.to_string())).unwrap();
            std::fs::write(nodes.join(n.to_string()).join("properties"), text).unwrap();
        }
        let got: Vec<(u32, u32)> = gpu_nodes(t.path())
            .iter()
            .map(|n| (n.node, n.render_minor))
            .collect();
        assert_eq!(got, [(3, 129), (10, 130)]);
    }
}
