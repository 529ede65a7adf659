//! Which GPUs a job holds. Each source turns its own notation (indices, UUIDs, device minors)
//! into GPU UUIDs through the NVML inventory ([`GpuRef`]); an entry that names no GPU of the
//! inventory is reported, never guessed.

use super::GpuRef;
use std::collections::HashMap;
use std::io;
use std::path::Path;

/// Major device number of the NVIDIA character devices (`/dev/nvidia<minor>`).
const NVIDIA_MAJOR: u32 = 195;
/// Minors of `/dev/nvidia-modeset` (254) and `/dev/nvidiactl` (255): every GPU job may open
/// them, they are not GPUs.
const NVIDIA_CONTROL_MINORS: [u32; 2] = [254, 255];

/// One entry of a GPU list, before resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GpuToken<'a> {
    Index(u32),
    Uuid(&'a str),
}

/// Classifies one entry: a decimal index, or a `GPU-…` / `MIG-…` UUID. Anything else (Slurm's
/// `NoDevFiles`, `-1`, empty) is `None`.
pub(crate) fn token(s: &str) -> Option<GpuToken<'_>> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok().map(GpuToken::Index);
    }
    if (s.starts_with("GPU-") || s.starts_with("MIG-")) && s.len() > 4 {
        return Some(GpuToken::Uuid(s));
    }
    None
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
    if gpus.is_empty() {
        return;
    }
    let mut unknown = 0usize;
    let mut first: Option<String> = None;
    for t in tokens {
        let g = match t {
            GpuToken::Index(i) => gpus.iter().find(|g| g.index == i),
            GpuToken::Uuid(u) => gpus.iter().find(|g| g.uuid == u),
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
            "{} names {first}{others}, which NVML does not list on this node",
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
///   dcgm-exporter ≥ 4 also accepts `<gpu>.<instance>` for a MIG instance, which joulebook
///   attributes to the physical GPU `<gpu>`, since energy is only measured per physical GPU;
///   as a joulebook extension a file may be named by the GPU's UUID (`GPU-…`);
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
        let tok = match name.split_once('.') {
            // `<gpu>.<instance>`: a MIG instance of GPU `<gpu>`.
            Some((gpu, inst)) if is_digits(gpu) && is_digits(inst) && !name.starts_with("GPU-") => {
                token(gpu)
            }
            _ if is_digits(name) || name.starts_with("GPU-") => token(name),
            _ => None,
        };
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

/// What a cgroup v1 `devices.list` says about NVIDIA GPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DeviceAccess {
    /// `a *:* rwm` (the default) or `c 195:* …`: every device is allowed, which tells nothing
    /// about which GPUs the job was given.
    Unconstrained,
    /// Minors of the `/dev/nvidia<N>` devices explicitly allowed.
    Minors(Vec<u32>),
}

/// Parses `devices.list`: lines `<type> <major>:<minor> <access>`. Unparsable lines are
/// returned as an error with the offending line.
pub(crate) fn parse_devices_list(text: &str) -> Result<DeviceAccess, String> {
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
        if major != "*" {
            match major.parse::<u32>() {
                Ok(NVIDIA_MAJOR) => {}
                Ok(_) => continue,
                Err(_) => return Err(line.to_string()),
            }
        }
        if minor == "*" {
            return Ok(DeviceAccess::Unconstrained);
        }
        let Ok(minor) = minor.parse::<u32>() else {
            return Err(line.to_string());
        };
        if !NVIDIA_CONTROL_MINORS.contains(&minor) {
            minors.push(minor);
        }
    }
    minors.sort_unstable();
    minors.dedup();
    Ok(DeviceAccess::Minors(minors))
}

/// Resolves device minors to UUIDs through [`GpuRef::minor`]. When the inventory knows no
/// minor at all (NVML absent or unable to tell), nothing can be resolved and nothing is reported.
pub(crate) fn resolve_minors(
    minors: &[u32],
    gpus: &[GpuRef],
    what: &dyn Fn() -> String,
    problems: &mut Vec<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for &m in minors {
        match gpus.iter().find(|g| g.minor == Some(m)) {
            Some(g) => out.push(g.uuid.clone()),
            None if gpus.iter().all(|g| g.minor.is_none()) => {}
            None => problems.push(format!(
                "{} allows /dev/nvidia{m}, which matches no GPU's device minor in the NVML inventory",
                what()
            )),
        }
    }
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
            })
            .collect()
    }

    #[test]
    fn tokens() {
        assert_eq!(token(" 3 "), Some(GpuToken::Index(3)));
        assert_eq!(token("GPU-abc"), Some(GpuToken::Uuid("GPU-abc")));
        assert_eq!(token("MIG-abc"), Some(GpuToken::Uuid("MIG-abc")));
        for junk in ["NoDevFiles", "-1", "", "GPU-", "+1", "1.0"] {
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
            ["X names GPU index 7 and 1 more, which NVML does not list on this node"]
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
            ["X names GPU index 100 and 10000 more, which NVML does not list on this node"]
        );
    }

    #[test]
    fn devices_list() {
        assert_eq!(
            parse_devices_list("a *:* rwm\n"),
            Ok(DeviceAccess::Unconstrained)
        );
        assert_eq!(
            parse_devices_list("c 1:3 rwm\nc 195:255 rwm\nc 195:254 rwm\nc 195:2 rw\nc 195:0 rwm\nb 8:0 r\nc 510:0 rwm\nc *:* m\n"),
            Ok(DeviceAccess::Minors(vec![0, 2]))
        );
        assert_eq!(
            parse_devices_list("c 195:* rwm\n"),
            Ok(DeviceAccess::Unconstrained)
        );
        assert_eq!(parse_devices_list(""), Ok(DeviceAccess::Minors(vec![])));
        assert!(parse_devices_list("c 195:x rwm").is_err());
        assert!(parse_devices_list("garbage").is_err());
        let mut problems = Vec::new();
        assert_eq!(
            resolve_minors(&[11, 13, 99], &inv(), &|| "D".into(), &mut problems),
            vec!["GPU-1", "GPU-3"]
        );
        assert_eq!(problems.len(), 1);
        problems.clear();
        let no_minors: Vec<GpuRef> = inv()
            .into_iter()
            .map(|g| GpuRef { minor: None, ..g })
            .collect();
        assert!(resolve_minors(&[11], &no_minors, &|| "D".into(), &mut problems).is_empty());
        assert!(problems.is_empty());
    }

    #[test]
    fn oar_resources() {
        assert_eq!(
            parse_oar_resources("# written by prolog\n 1\n\nGPU-3\n"),
            vec!["1", "GPU-3"]
        );
    }
}
