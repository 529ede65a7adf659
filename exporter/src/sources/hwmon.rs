//! Reading hwmon sensor files (`Documentation/hwmon/sysfs-interface.rst` in Linux): energy in
//! µJ (`energyN_input`), power in µW (`powerN_input`, `powerN_average`), labels
//! (`energyN_label`, `powerN_label`) and the ACPI power meter's `powerN_oem_info`. Shared by the
//! sources that read hwmon (amdgpu's fallback, Intel GPUs, Grace, configured sensors); keeps
//! nothing between calls. Errors name the file; a permission error says how to fix it.

use super::SourceError;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// The text of a sysfs file, trimmed.
pub fn read_text(path: &Path) -> Result<String, SourceError> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| read_error(path, e))
}

/// A non-negative integer file (µJ, µW).
pub fn read_u64(path: &Path) -> Result<u64, SourceError> {
    let text = read_text(path)?;
    text.parse::<u64>().map_err(|_| {
        let shown: String = text.chars().take(40).collect();
        SourceError::new(format!(
            "{} holds {shown:?}, not a non-negative integer",
            path.display()
        ))
    })
}

/// An error reading `path`, with the fix for the common cases.
pub fn read_error(path: &Path, e: std::io::Error) -> SourceError {
    match e.kind() {
        ErrorKind::PermissionDenied => SourceError::new(format!(
            "cannot read {}: permission denied",
            path.display()
        ))
        .with_fix(
            "run the exporter with AmbientCapabilities=CAP_DAC_READ_SEARCH as the shipped systemd \
             unit does, or make the file readable by its group with a udev rule",
        ),
        ErrorKind::NotFound => SourceError::new(format!(
            "{} vanished (device removed or driver unloaded)",
            path.display()
        ))
        .with_fix("check that the device's driver is loaded (dmesg, lsmod)"),
        // EIO, ENODATA, EOPNOTSUPP: the driver or firmware could not answer.
        _ => SourceError::new(format!("cannot read {}: {e}", path.display())).with_fix(
            "the driver or firmware did not answer: check dmesg; a firmware update may be needed",
        ),
    }
}

/// The `hwmonN` folders under `dir` (a device's `hwmon/` or `/sys/class/hwmon`), sorted by N.
pub fn hwmon_dirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(u32, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name.strip_prefix("hwmon")?.parse::<u32>().ok()?;
            Some((n, e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

/// A device's power file in µW: `power1_average` where the driver has it, else `power1_input`.
pub fn power_file(hwmon: &Path) -> Option<PathBuf> {
    ["power1_average", "power1_input"]
        .iter()
        .map(|f| hwmon.join(f))
        .find(|p| p.exists())
}

/// The indices N of the `<kind>N_input`/`<kind>N_average` files in a hwmon folder, sorted.
pub fn channels(hwmon: &Path, kind: &str) -> Vec<u32> {
    let Ok(entries) = fs::read_dir(hwmon) else {
        return Vec::new();
    };
    let mut ns: Vec<u32> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let rest = name.strip_prefix(kind)?;
            let (n, suffix) = rest.split_once('_')?;
            matches!(suffix, "input" | "average")
                .then_some(())
                .and(n.parse::<u32>().ok())
        })
        .collect();
    ns.sort_unstable();
    ns.dedup();
    ns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_errors() {
        let t = tempfile::tempdir().unwrap();
        let h = t.path().join("hwmon3");
        fs::create_dir_all(&h).unwrap();
        fs::create_dir_all(t.path().join("hwmon10")).unwrap();
        fs::create_dir_all(t.path().join("other")).unwrap();
        assert_eq!(hwmon_dirs(t.path()), [h.clone(), t.path().join("hwmon10")]);
        fs::write(h.join("power1_input"), "123000000\n").unwrap();
        assert_eq!(power_file(&h), Some(h.join("power1_input")));
        fs::write(h.join("power1_average"), "5\n").unwrap();
        assert_eq!(power_file(&h), Some(h.join("power1_average")));
        assert_eq!(read_u64(&h.join("power1_input")).unwrap(), 123_000_000);
        fs::write(h.join("energy2_input"), "x\n").unwrap();
        fs::write(h.join("energy1_input"), "1\n").unwrap();
        fs::write(h.join("energy1_label"), "card\n").unwrap();
        assert_eq!(channels(&h, "energy"), [1, 2]);
        assert_eq!(channels(&h, "power"), [1]);
        let e = read_u64(&h.join("energy2_input")).unwrap_err();
        assert!(e.message.contains("energy2_input") && e.message.contains("\"x\""));
        let e = read_u64(&h.join("energy9_input")).unwrap_err();
        assert!(e.message.contains("vanished") && e.fix.is_some());
    }
}
