//! Which GPUs a job holds. Each source turns its own notation (indices, UUIDs, device minors)
//! into GPU ids through the node's inventory ([`GpuRef`]: NVML's GPUs, then the AMD and Intel
//! sources'); an entry that names no GPU of the inventory is reported, never guessed. A
//! runtime's variable (`CUDA_VISIBLE_DEVICES`, `ROCR_VISIBLE_DEVICES`, `HIP_VISIBLE_DEVICES`,
//! `ZE_AFFINITY_MASK`) numbers only its vendor's GPUs; the scheduler's lists number the node's.

use super::{GpuRef, GpuVendor};
use std::collections::HashMap;
use std::io;
use std::path::Path;

/// Major device number of the NVIDIA character devices (`/dev/nvidia<minor>`).
const NVIDIA_MAJOR: u32 = 195;
/// Major device number of the DRM devices (`/dev/dri/card<N>`, `/dev/dri/renderD<M>`) through
/// which AMD and Intel GPUs are opened (`include/uapi/drm/drm.h`... `DRM_MAJOR` in
/// `drivers/gpu/drm/drm_internal.h`).
const DRM_MAJOR: u32 = 226;
/// Minors of `/dev/nvidia-modeset` (254) and `/dev/nvidiactl` (255): every GPU job may open
/// them, they are not GPUs.
const NVIDIA_CONTROL_MINORS: [u32; 2] = [254, 255];

/// One entry of a GPU list, before resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GpuToken<'a> {
    Index(u32),
    Uuid(&'a str),
    /// `N.M`: GPU instance M of GPU N (a MIG instance; the physical GPU N where N has no
    /// instance M).
    Instance(u32, u32),
}

/// Classifies one entry: a decimal index, `N.M` (a MIG instance), or a `GPU-…` / `MIG-…` UUID.
/// Anything else (Slurm's `NoDevFiles`, `-1`, empty) is `None`.
pub(crate) fn token(s: &str) -> Option<GpuToken<'_>> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok().map(GpuToken::Index);
    }
    if let Some((n, m)) = s.split_once('.') {
        if is_digits(n) && is_digits(m) {
            return Some(GpuToken::Instance(n.parse().ok()?, m.parse().ok()?));
        }
    }
    if (s.starts_with("GPU-") || s.starts_with("MIG-")) && s.len() > 4 {
        return Some(GpuToken::Uuid(s));
    }
    None
}

/// Classifies one entry of `ZE_AFFINITY_MASK`: `N` (device N) or `N.M` (tile M of device N,
/// which is measured as its device: energy is counted per card).
pub(crate) fn ze_token(s: &str) -> Option<GpuToken<'_>> {
    let s = s.trim();
    let dev = match s.split_once('.') {
        Some((d, t)) if is_digits(t) => d,
        Some(_) => return None,
        None => s,
    };
    if is_digits(dev) {
        dev.parse().ok().map(GpuToken::Index)
    } else {
        None
    }
}

/// True when every entry of a comma-separated list is a UUID (so no renumbering can affect it).
pub(crate) fn all_uuids(list: &str) -> bool {
    let mut any = false;
    for t in list.split(',').filter(|t| !t.trim().is_empty()) {
        match token(t) {
            Some(GpuToken::Uuid(_)) => any = true,
            _ => return false,
        }
    }
    any
}

/// Resolves tokens to UUIDs in `out`: only GPUs of the node's inventory, so a job counts at
/// most the GPUs the node has, and none on a node without NVML (its own source reports that;
/// nothing is said here). `what` names where the tokens came from: the unknown ones are
/// reported in one problem per list, however many there are.
pub(crate) fn resolve<'a>(
    tokens: impl IntoIterator<Item = GpuToken<'a>>,
    gpus: &[GpuRef],
    what: &dyn Fn() -> String,
    out: &mut Vec<String>,
    problems: &mut Vec<String>,
) {
    resolve_of(tokens, gpus, None, what, out, problems)
}

/// [`resolve`], with indices counted among one vendor's GPUs when `vendor` is given (a
/// runtime's variable); else an index names the first GPU of the inventory with that index
/// (NVML's first: a node with GPUs of several vendors should name them by UUID).
pub(crate) fn resolve_of<'a>(
    tokens: impl IntoIterator<Item = GpuToken<'a>>,
    gpus: &[GpuRef],
    vendor: Option<GpuVendor>,
    what: &dyn Fn() -> String,
    out: &mut Vec<String>,
    problems: &mut Vec<String>,
) {
    if gpus.is_empty() || vendor.is_some_and(|v| gpus.iter().all(|g| g.vendor != v)) {
        return;
    }
    let mut unknown = 0usize;
    let mut first: Option<String> = None;
    for t in tokens {
        let physical = |i: u32, g: &&GpuRef| {
            g.index == i && g.mig.is_none() && vendor.is_none_or(|v| g.vendor == v)
        };
        let g = match t {
            GpuToken::Index(i) => gpus.iter().find(|g| physical(i, g)),
            GpuToken::Uuid(u) => gpus.iter().find(|g| g.is_named(u)),
            GpuToken::Instance(n, m) => gpus
                .iter()
                .find(|g| g.index == n && g.mig == Some(m) && g.vendor == GpuVendor::Nvidia)
                .or_else(|| gpus.iter().find(|g| physical(n, g))),
        };
        match g {
            Some(g) => {
                if !out.contains(&g.uuid) {
                    out.push(g.uuid.clone());
                }
            }
            None => {
                unknown += 1;
                if first.is_none() {
                    first = Some(match t {
                        GpuToken::Index(i) => format!("GPU index {i}"),
                        GpuToken::Instance(n, m) => format!("GPU instance {n}.{m}"),
                        GpuToken::Uuid(u) => format!("GPU {:?}", super::clip_to(u, 80)),
                    });
                }
            }
        }
    }
    if let Some(first) = first {
        let others = match unknown {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        problems.push(format!(
            "{} names {first}{others}, which is not in this node's GPU inventory",
            what()
        ));
    }
    out.sort_unstable();
}

/// Resolves a comma-separated list (an environment variable).
pub(crate) fn resolve_list(
    list: &str,
    gpus: &[GpuRef],
    what: &dyn Fn() -> String,
    problems: &mut Vec<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    resolve(
        list.split(',').filter_map(token),
        gpus,
        what,
        &mut out,
        problems,
    );
    out
}

/// Resolves a runtime's list, its indices counted among `vendor`'s GPUs; `ZE_AFFINITY_MASK`'s
/// `N.M` entries name device N.
pub(crate) fn resolve_vendor_list(
    list: &str,
    vendor: GpuVendor,
    gpus: &[GpuRef],
    what: &dyn Fn() -> String,
    problems: &mut Vec<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    let tokens = list.split(',').filter_map(|t| vendor_token(vendor, t));
    resolve_of(tokens, gpus, Some(vendor), what, &mut out, problems);
    out
}

fn vendor_token(vendor: GpuVendor, t: &str) -> Option<GpuToken<'_>> {
    match vendor {
        GpuVendor::Intel => ze_token(t),
        _ => token(t),
    }
}

/// Reads a whole file as text into `buf`: `read_to_string` without its `statx` and `lseek`.
fn read_text<'b>(path: &Path, buf: &'b mut Vec<u8>) -> io::Result<&'b str> {
    let (_, n) = super::cgroup::read_all(path, buf)?;
    std::str::from_utf8(buf.get(..n).unwrap_or_default()).map_err(|_| {
        // The words of `read_to_string`'s error.
        io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

/// Reads the GPU ↔ job mapping directory in dcgm-exporter's `--hpc-job-mapping-dir` format
/// (also `DCGM_HPC_JOB_MAPPING_DIR`), as a scheduler prolog writes it and its epilog removes it:
///
/// - one regular file per GPU, named by the GPU's index (`0`, `1`, …: decimal digits only);
///   dcgm-exporter ≥ 4 also accepts `<gpu>.<instance>` for a MIG instance (GPU instance id
///   `<instance>` of GPU `<gpu>`), which is that instance where NVML lists it, else the
///   physical GPU `<gpu>`; as a joulebook extension a file may be named by the GPU's UUID
///   (`GPU-…`, `MIG-…`);
/// - the content is the ids of the jobs using that GPU, one per line (several lines when the
///   GPU is shared); surrounding whitespace and empty lines are ignored;
/// - any other name (`README`, `.tmp` files of an atomic write) and subdirectories are ignored,
///   as dcgm-exporter ignores them.
///
/// Returns job id → UUIDs. A missing directory means no mapping (the first prolog may not have
/// created it yet); a file removed between listing and reading is skipped. Read on every scan
/// (a prolog may rewrite a file in place, which a folder's modification time does not show):
/// the folder holds one small file per GPU, read into `buf`, and entry types come from the
/// listing, so a file costs an `open`, a `read` or two and a `close`.
pub(crate) fn read_mapping_dir(
    dir: &Path,
    gpus: &[GpuRef],
    buf: &mut Vec<u8>,
    problems: &mut Vec<String>,
) -> HashMap<String, Vec<String>> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return map,
        Err(e) => {
            problems.push(format!(
                "cannot read GPU mapping directory {}: {e}",
                dir.display()
            ));
            return map;
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // `<gpu>`, `<gpu>.<instance>` (a MIG instance of GPU `<gpu>`), or a UUID.
        let tok = token(name);
        let Some(tok) = tok else { continue };
        let path = entry.path();
        // The listing's entry type; a symbolic link is followed, as `is_dir` would.
        let is_dir = match entry.file_type() {
            Ok(t) if t.is_symlink() => path.is_dir(),
            Ok(t) => t.is_dir(),
            Err(_) => path.is_dir(),
        };
        if is_dir {
            continue;
        }
        let text = match read_text(&path, buf) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                problems.push(format!(
                    "cannot read GPU mapping file {}: {e}",
                    path.display()
                ));
                continue;
            }
        };
        let mut uuid = Vec::with_capacity(1);
        resolve(
            [tok],
            gpus,
            &|| format!("GPU mapping file {}", path.display()),
            &mut uuid,
            problems,
        );
        let Some(uuid) = uuid.pop() else { continue };
        for job in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let list = map.entry(job.to_string()).or_default();
            if !list.contains(&uuid) {
                list.push(uuid.clone());
            }
        }
    }
    for list in map.values_mut() {
        list.sort_unstable();
    }
    map
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Parses joulebook's OAR job resources file (`<oar_resources_dir>/<jobid>`), written by an OAR
/// prolog from the job's `gpu` resources: one GPU per line, as an index (`0`) or a UUID
/// (`GPU-…`); whitespace, empty lines and `#` comments are ignored. Returns the raw entries.
pub(crate) fn parse_oar_resources(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// What a cgroup v1 `devices.list` says about GPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DeviceAccess {
    /// `a *:* rwm` (the default), `c 195:* …` or `c 226:* …`: every device (of a kind) is
    /// allowed, which tells nothing about which GPUs the job was given.
    Unconstrained,
    /// (major, minor) of the GPU devices explicitly allowed, sorted: `/dev/nvidia<N>` (195),
    /// `/dev/dri/card<N>`, `/dev/dri/renderD<N>` (226) and, with its major given,
    /// `/dev/nvidia-caps/nvidia-cap<N>` (MIG instances).
    Minors(Vec<(u32, u32)>),
}

/// Parses `devices.list`: lines `<type> <major>:<minor> <access>`. Unparsable lines are
/// returned as an error with the offending line. `caps_major`: the major of `nvidia-caps`, on
/// a node with MIG instances.
pub(crate) fn parse_devices_list(
    text: &str,
    caps_major: Option<u32>,
) -> Result<DeviceAccess, String> {
    let mut minors = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut parts = line.split_ascii_whitespace();
        let (Some(kind), Some(dev), Some(access), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(line.to_string());
        };
        let Some((major, minor)) = dev.split_once(':') else {
            return Err(line.to_string());
        };
        // `m` alone only allows mknod (systemd's `c *:* m`): it opens nothing.
        if !access.contains(['r', 'w']) {
            continue;
        }
        match kind {
            "a" => return Ok(DeviceAccess::Unconstrained),
            "c" => {}
            _ => continue,
        }
        // A wildcard major is read as NVIDIA's, as before DRM devices were counted.
        let major = match major {
            "*" => NVIDIA_MAJOR,
            m => match m.parse::<u32>() {
                Ok(m @ (NVIDIA_MAJOR | DRM_MAJOR)) => m,
                // Every capability allowed names no instance in particular.
                Ok(m) if Some(m) == caps_major && minor == "*" => continue,
                Ok(m) if Some(m) == caps_major => m,
                Ok(_) => continue,
                Err(_) => return Err(line.to_string()),
            },
        };
        if minor == "*" {
            return Ok(DeviceAccess::Unconstrained);
        }
        let Ok(minor) = minor.parse::<u32>() else {
            return Err(line.to_string());
        };
        if !(major == NVIDIA_MAJOR && NVIDIA_CONTROL_MINORS.contains(&minor)) {
            minors.push((major, minor));
        }
    }
    minors.sort_unstable();
    minors.dedup();
    Ok(DeviceAccess::Minors(minors))
}

/// Resolves (major, minor) pairs to GPU ids: NVIDIA's through [`GpuRef::minor`], DRM's through
/// [`GpuRef::drm_minors`], MIG capabilities through [`GpuRef::caps`]. A DRM minor no GPU has
/// (an integrated GPU, a display) is not one of the inventory's GPUs and is skipped silently;
/// an NVIDIA minor is reported unless the inventory knows no minor at all (NVML absent or
/// unable to tell). A job allowed a MIG instance's capability holds that instance, not its
/// GPU: the GPU's `/dev/nvidia<N>` is allowed to every job on one of its instances.
pub(crate) fn resolve_minors(
    minors: &[(u32, u32)],
    gpus: &[GpuRef],
    what: &dyn Fn() -> String,
    problems: &mut Vec<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut parents = Vec::new();
    for &(major, m) in minors {
        if major != DRM_MAJOR && major != NVIDIA_MAJOR {
            if let Some(g) = gpus.iter().find(|g| g.caps.contains(&(major, m))) {
                out.push(g.uuid.clone());
                parents.push(g.index);
            }
            continue;
        }
        if major == DRM_MAJOR {
            if let Some(g) = gpus.iter().find(|g| g.drm_minors.contains(&m)) {
                out.push(g.uuid.clone());
            }
            continue;
        }
        match gpus.iter().find(|g| g.minor == Some(m)) {
            Some(g) => out.push(g.uuid.clone()),
            None if gpus.iter().all(|g| g.minor.is_none()) => {}
            None => problems.push(format!(
                "{} allows /dev/nvidia{m}, which matches no GPU's device minor in the NVML inventory",
                what()
            )),
        }
    }
    out.retain(|u| {
        !gpus.iter().any(|g| {
            g.uuid == *u && g.mig.is_none() && g.minor.is_some() && parents.contains(&g.index)
        })
    });
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv() -> Vec<GpuRef> {
        (0..4)
            .map(|i| GpuRef {
                uuid: format!("GPU-{i}"),
                index: i,
                minor: Some(i + 10),
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn tokens() {
        assert_eq!(token(" 3 "), Some(GpuToken::Index(3)));
        assert_eq!(token("GPU-abc"), Some(GpuToken::Uuid("GPU-abc")));
        assert_eq!(token("MIG-abc"), Some(GpuToken::Uuid("MIG-abc")));
        assert_eq!(token("1.0"), Some(GpuToken::Instance(1, 0)));
        for junk in ["NoDevFiles", "-1", "", "GPU-", "+1", "1.", ".1", "1.0.2"] {
            assert_eq!(token(junk), None, "{junk}");
        }
        assert!(all_uuids("GPU-a,GPU-b"));
        assert!(!all_uuids("GPU-a,0"));
        assert!(!all_uuids(""));
    }

    #[test]
    fn resolution_reports_unknown_gpus() {
        let mut problems = Vec::new();
        let got = resolve_list("2,0,GPU-1,7,GPU-x", &inv(), &|| "X".into(), &mut problems);
        assert_eq!(got, vec!["GPU-0", "GPU-1", "GPU-2"]);
        assert_eq!(
            problems,
            ["X names GPU index 7 and 1 more, which is not in this node's GPU inventory"]
        );
        // Without an inventory: nothing kept, nothing reported (NVML's source says why).
        problems.clear();
        let got = resolve_list("0,GPU-x", &[], &|| "X".into(), &mut problems);
        assert!(got.is_empty());
        assert!(problems.is_empty());
    }

    /// 10,001 unknown GPUs: one problem, a GPU at most once.
    #[test]
    fn a_flood_of_unknown_gpus_is_one_problem() {
        let list: Vec<String> = (0..10_001).map(|i| (i + 100).to_string()).collect();
        let list = format!("0,0,0,{}", list.join(","));
        let mut problems = Vec::new();
        let got = resolve_list(&list, &inv(), &|| "X".into(), &mut problems);
        assert_eq!(got, vec!["GPU-0"]);
        assert_eq!(
            problems,
            ["X names GPU index 100 and 10000 more, which is not in this node's GPU inventory"]
        );
    }

    #[test]
    fn devices_list() {
        assert_eq!(
            parse_devices_list("a *:* rwm\n", None),
            Ok(DeviceAccess::Unconstrained)
        );
        assert_eq!(
            parse_devices_list("c 1:3 rwm\nc 195:255 rwm\nc 195:254 rwm\nc 195:2 rw\nc 195:0 rwm\nb 8:0 r\nc 510:0 rwm\nc *:* m\n", None),
            Ok(DeviceAccess::Minors(vec![(195, 0), (195, 2)]))
        );
        assert_eq!(
            parse_devices_list("c 195:* rwm\n", None),
            Ok(DeviceAccess::Unconstrained)
        );
        assert_eq!(
            parse_devices_list("", None),
            Ok(DeviceAccess::Minors(vec![]))
        );
        assert!(parse_devices_list("c 195:x rwm", None).is_err());
        assert!(parse_devices_list("garbage", None).is_err());
        let mut problems = Vec::new();
        assert_eq!(
            resolve_minors(
                &[(195, 11), (195, 13), (195, 99)],
                &inv(),
                &|| "D".into(),
                &mut problems
            ),
            vec!["GPU-1", "GPU-3"]
        );
        assert_eq!(problems.len(), 1);
        problems.clear();
        let no_minors: Vec<GpuRef> = inv()
            .into_iter()
            .map(|g| GpuRef { minor: None, ..g })
            .collect();
        assert!(resolve_minors(&[(195, 11)], &no_minors, &|| "D".into(), &mut problems).is_empty());
        assert!(problems.is_empty());
    }

    /// Two NVIDIA, two AMD (one with a ROCm UUID) and one Intel GPU, each vendor numbered from 0.
    fn mixed() -> Vec<GpuRef> {
        let mut v = inv()[..2].to_vec();
        for (i, id) in ["0a4c", "0000:c6:00.0"].into_iter().enumerate() {
            v.push(GpuRef {
                uuid: id.into(),
                index: i as u32,
                vendor: GpuVendor::Amd,
                drm_minors: vec![i as u32, 128 + i as u32],
                alias: (i == 0).then(|| "GPU-0a4c".into()),
                ..Default::default()
            });
        }
        v.push(GpuRef {
            uuid: "0000:3a:00.0".into(),
            index: 0,
            vendor: GpuVendor::Intel,
            drm_minors: vec![2, 130],
            ..Default::default()
        });
        v
    }

    #[test]
    fn runtime_variables_number_their_vendors_gpus() {
        let g = mixed();
        let mut problems = Vec::new();
        let what = || "V".to_string();
        let amd =
            |l: &str, p: &mut Vec<String>| resolve_vendor_list(l, GpuVendor::Amd, &g, &what, p);
        assert_eq!(amd("1", &mut problems), ["0000:c6:00.0"]);
        // ROCm's UUID, in either case; a UUID of another vendor's GPU is no AMD index.
        assert_eq!(amd("GPU-0A4C", &mut problems), ["0a4c"]);
        assert!(problems.is_empty());
        assert!(amd("2", &mut problems).is_empty());
        assert_eq!(
            problems,
            ["V names GPU index 2, which is not in this node's GPU inventory"]
        );
        problems.clear();
        let ze =
            |l: &str, p: &mut Vec<String>| resolve_vendor_list(l, GpuVendor::Intel, &g, &what, p);
        assert_eq!(ze("0.1", &mut problems), ["0000:3a:00.0"]);
        assert_eq!(ze("0,0.0", &mut problems), ["0000:3a:00.0"]);
        assert!(problems.is_empty());
        let cuda = resolve_vendor_list("1", GpuVendor::Nvidia, &g, &what, &mut problems);
        assert_eq!(cuda, ["GPU-1"]);
        // A vendor the node does not have: nothing, and nothing to report (Slurm sets every
        // runtime's variable).
        let only_nvidia = inv();
        assert!(
            resolve_vendor_list("0", GpuVendor::Amd, &only_nvidia, &what, &mut problems).is_empty()
        );
        assert!(problems.is_empty());
        // The scheduler's indices name the first GPU with that index (NVML's first).
        assert_eq!(resolve_list("0", &g, &what, &mut problems), ["GPU-0"]);
        for junk in ["", "a.1", "1.x", "-1"] {
            assert_eq!(ze_token(junk), None, "{junk}");
        }
    }

    #[test]
    fn drm_render_nodes_name_amd_and_intel_gpus() {
        let list =
            "c 1:3 rwm\nc 226:129 rw\nc 226:130 rwm\nc 226:200 rw\nc 195:10 rwm\nc 195:255 rwm\n";
        let Ok(DeviceAccess::Minors(m)) = parse_devices_list(list, None) else {
            panic!("not parsed");
        };
        assert_eq!(m, [(195, 10), (226, 129), (226, 130), (226, 200)]);
        let mut problems = Vec::new();
        assert_eq!(
            resolve_minors(&m, &mixed(), &|| "D".into(), &mut problems),
            ["0000:3a:00.0", "0000:c6:00.0", "GPU-0"]
        );
        // A DRM minor of no inventory GPU (an integrated GPU, a display) is not reported.
        assert!(problems.is_empty());
        assert_eq!(
            parse_devices_list("c 226:* rw\n", None),
            Ok(DeviceAccess::Unconstrained)
        );
    }

    /// Slurm on a MIG node allows a job its instance's capability devices (major 236 here,
    /// `nvidia-caps` in /proc/devices) with the GPU's /dev/nvidia10: the job holds the instance.
    #[test]
    fn mig_capability_minors_name_the_instance_not_its_gpu() {
        let mut g = inv();
        g.push(GpuRef {
            uuid: "MIG-a".into(),
            index: 0,
            mig: Some(1),
            caps: vec![(236, 12), (236, 13)],
            ..Default::default()
        });
        g.push(GpuRef {
            uuid: "MIG-b".into(),
            index: 0,
            mig: Some(2),
            caps: vec![(236, 21), (236, 22)],
            ..Default::default()
        });
        let list = "c 195:255 rwm\nc 195:10 rwm\nc 236:12 r\nc 236:13 r\nc 195:11 rwm\nc 237:1 r\n";
        let Ok(DeviceAccess::Minors(m)) = parse_devices_list(list, Some(236)) else {
            panic!("not parsed");
        };
        assert_eq!(m, [(195, 10), (195, 11), (236, 12), (236, 13)]);
        let mut problems = Vec::new();
        // GPU-0 (minor 10) is MIG-a's GPU; GPU-1 (minor 11) is held whole.
        assert_eq!(
            resolve_minors(&m, &g, &|| "D".into(), &mut problems),
            ["GPU-1", "MIG-a"]
        );
        assert!(problems.is_empty());
        // Without the caps major (no MIG on the node) those lines are other devices.
        let Ok(DeviceAccess::Minors(m)) = parse_devices_list(list, None) else {
            panic!("not parsed");
        };
        assert_eq!(m, [(195, 10), (195, 11)]);
        // Every capability allowed names no instance.
        assert_eq!(
            parse_devices_list("c 236:* r\n", Some(236)),
            Ok(DeviceAccess::Minors(vec![]))
        );
    }

    #[test]
    fn mig_instances_by_uuid_and_by_gpu_dot_instance() {
        let mut g = inv();
        for (gi, uuid) in [(1, "MIG-a"), (2, "MIG-b")] {
            g.push(GpuRef {
                uuid: uuid.into(),
                index: 0,
                mig: Some(gi),
                ..Default::default()
            });
        }
        let mut problems = Vec::new();
        let what = || "M".to_string();
        assert_eq!(
            resolve_list("0.2,MIG-a", &g, &what, &mut problems),
            ["MIG-a", "MIG-b"]
        );
        // An index alone is the physical GPU; an instance NVML does not list is its GPU.
        assert_eq!(resolve_list("0", &g, &what, &mut problems), ["GPU-0"]);
        assert_eq!(resolve_list("1.3", &g, &what, &mut problems), ["GPU-1"]);
        assert!(problems.is_empty());
        assert!(resolve_list("9.1", &g, &what, &mut problems).is_empty());
        assert_eq!(
            problems,
            ["M names GPU instance 9.1, which is not in this node's GPU inventory"]
        );
    }

    #[test]
    fn oar_resources() {
        assert_eq!(
            parse_oar_resources("# written by prolog\n 1\n\nGPU-3\n"),
            vec!["1", "GPU-3"]
        );
    }
}
