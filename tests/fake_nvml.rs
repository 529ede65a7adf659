//! The fake `libnvidia-ml.so` of `fake-nvml/fake_nvml.c`: building it, and writing the state
//! file it reads on every call (format documented at the top of the C file).
//!
//! The library reads the state file named by the `FAKE_NVML_STATE` environment variable: set it
//! on the exporter process a test starts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The C source of the fake library.
pub fn fake_nvml_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fake-nvml/fake_nvml.c")
}

/// Compiles the fake library into `out_dir/libnvidia-ml.so.1` and returns that path. Panics
/// with a clear message when `cc` is missing or fails: in CI a missing component is a failure,
/// never a skip.
pub fn build_fake_nvml(out_dir: &Path) -> PathBuf {
    let src = fake_nvml_source();
    let out = out_dir.join("libnvidia-ml.so.1");
    let result = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&out)
        .arg(&src)
        .output();
    let output = match result {
        Ok(output) => output,
        Err(e) => panic!(
            "cannot run `cc` to build the fake NVML library from {}: {e}; install a C compiler \
             (Debian: `apt-get install gcc`)",
            src.display()
        ),
    };
    assert!(
        output.status.success(),
        "cc failed to build the fake NVML library from {}:\n{}",
        src.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// A value the fake returns: a number, or an NVML error for the call that reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FakeValue<T> {
    Value(T),
    /// An NVML error name from the C file's list, without the `!`: `not_supported`,
    /// `gpu_is_lost`, `driver_not_loaded`, `no_permission`, `unknown`, ...
    Error(&'static str),
}

impl<T: std::fmt::Display> FakeValue<T> {
    fn render(&self) -> String {
        match self {
            FakeValue::Value(v) => v.to_string(),
            FakeValue::Error(name) => format!("!{name}"),
        }
    }
}

/// One GPU of the fake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeGpu {
    pub uuid: String,
    pub name: String,
    /// As NVML writes it, e.g. `00000000:17:00.0`.
    pub bus_id: String,
    /// `/dev/nvidia<minor>`.
    pub minor: u32,
    /// Energy since the driver loaded, in millijoules; `Error("not_supported")` is a pre-Volta GPU.
    pub energy_mj: FakeValue<u64>,
    /// Power draw, in milliwatts.
    pub power_mw: FakeValue<u32>,
    /// Enforced power limit, in milliwatts.
    pub limit_mw: FakeValue<u32>,
    pub compute_pids: Vec<u32>,
    pub graphics_pids: Vec<u32>,
    /// Fell off the bus: every call on this GPU returns `NVML_ERROR_GPU_IS_LOST`.
    pub lost: bool,
    /// `nvmlDeviceGetAttributes_v2`'s `multiprocessorCount`; `None`: not supported.
    pub sms: Option<u32>,
    /// MIG mode (`nvmlDeviceGetMigMode`); `None`: a GPU without MIG (not supported).
    pub mig: Option<bool>,
    /// Its MIG devices, by MIG device index.
    pub mig_instances: Vec<FakeMig>,
}

/// A MIG device of a fake GPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeMig {
    /// `nvmlDeviceGetGpuInstanceId`.
    pub gpu_instance: u32,
    /// Its `multiprocessorCount`.
    pub sms: u32,
    /// `MIG-…`.
    pub uuid: String,
}

impl FakeGpu {
    /// An H100 with a 700 W limit drawing 300 W, numbered `n` (UUID, bus id and minor follow).
    pub fn h100(n: u32, energy_mj: u64) -> FakeGpu {
        FakeGpu {
            uuid: format!("GPU-{n:08x}-0000-4000-8000-000000000000"),
            name: "NVIDIA H100 80GB HBM3".into(),
            bus_id: format!("00000000:{:02X}:00.0", 0x17 + n),
            minor: n,
            energy_mj: FakeValue::Value(energy_mj),
            power_mw: FakeValue::Value(300_000),
            limit_mw: FakeValue::Value(700_000),
            compute_pids: Vec::new(),
            graphics_pids: Vec::new(),
            lost: false,
            sms: None,
            mig: None,
            mig_instances: Vec::new(),
        }
    }

    /// An A100 (98 SMs, 7 slices of 14) in MIG mode with the given instances
    /// (GPU instance id, SMs, UUID).
    pub fn a100_mig(n: u32, energy_mj: u64, instances: &[(u32, u32, &str)]) -> FakeGpu {
        FakeGpu {
            name: "NVIDIA A100-SXM4-80GB".into(),
            sms: Some(98),
            mig: Some(true),
            mig_instances: instances
                .iter()
                .map(|&(gpu_instance, sms, uuid)| FakeMig {
                    gpu_instance,
                    sms,
                    uuid: uuid.into(),
                })
                .collect(),
            ..FakeGpu::h100(n, energy_mj)
        }
    }
}

/// The whole state of the fake.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FakeNvmlState {
    /// `Some(name)` makes `nvmlInit` fail with that NVML error (e.g. `driver_not_loaded`).
    pub init_error: Option<&'static str>,
    /// `Some(name)` makes `nvmlDeviceGetCount` fail: NVML as a whole is broken (driver unloaded).
    pub count_error: Option<&'static str>,
    pub gpus: Vec<FakeGpu>,
}

impl FakeNvmlState {
    /// The state file's text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if let Some(e) = self.init_error {
            let _ = writeln!(s, "init=!{e}");
        }
        if let Some(e) = self.count_error {
            let _ = writeln!(s, "count=!{e}");
        }
        for g in &self.gpus {
            let pids = |p: &[u32]| p.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
            let _ = writeln!(s, "[gpu]");
            let _ = writeln!(s, "uuid={}", g.uuid);
            let _ = writeln!(s, "name={}", g.name);
            let _ = writeln!(s, "bus_id={}", g.bus_id);
            let _ = writeln!(s, "minor={}", g.minor);
            let _ = writeln!(s, "energy_mj={}", g.energy_mj.render());
            let _ = writeln!(s, "power_mw={}", g.power_mw.render());
            let _ = writeln!(s, "limit_mw={}", g.limit_mw.render());
            let _ = writeln!(s, "compute_pids={}", pids(&g.compute_pids));
            let _ = writeln!(s, "graphics_pids={}", pids(&g.graphics_pids));
            if g.lost {
                let _ = writeln!(s, "lost=1");
            }
            if let Some(sms) = g.sms {
                let _ = writeln!(s, "sms={sms}");
            }
            if let Some(mig) = g.mig {
                let _ = writeln!(s, "mig={}", u8::from(mig));
            }
            for m in &g.mig_instances {
                let _ = writeln!(s, "mig_instance={} {} {}", m.gpu_instance, m.sms, m.uuid);
            }
        }
        s
    }
}

/// Writes `state` to `path` at once (a temporary file renamed over it), so the fake never reads
/// half a file. Panics naming the path on failure.
pub fn write_state(path: &Path, state: &FakeNvmlState) {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    if let Err(e) = std::fs::write(&tmp, state.render()) {
        panic!("cannot write the fake NVML state {}: {e}", tmp.display());
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        panic!("cannot move the fake NVML state to {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_renders_in_the_documented_format() {
        let mut old = FakeGpu::h100(1, 0);
        old.energy_mj = FakeValue::Error("not_supported");
        old.compute_pids = vec![10, 20];
        old.lost = true;
        let state = FakeNvmlState {
            init_error: None,
            count_error: Some("driver_not_loaded"),
            gpus: vec![FakeGpu::h100(0, 1234), old],
        };
        let text = state.render();
        assert!(
            text.starts_with("count=!driver_not_loaded\n[gpu]\n"),
            "{text}"
        );
        assert!(text.contains("energy_mj=1234\n"), "{text}");
        assert!(text.contains("energy_mj=!not_supported\n"), "{text}");
        assert!(text.contains("compute_pids=10,20\n"), "{text}");
        assert!(text.contains("bus_id=00000000:18:00.0\n"), "{text}");
        assert!(text.ends_with("lost=1\n"), "{text}");
    }

    #[test]
    fn fake_library_builds_and_exports_nvml_symbols() {
        let dir = tempfile::tempdir().expect("cannot create a temporary directory");
        let lib = build_fake_nvml(dir.path());
        assert_eq!(lib, dir.path().join("libnvidia-ml.so.1"));
        let bytes = std::fs::read(&lib).expect("the library was not written");
        assert!(bytes.starts_with(b"\x7fELF"));
        for symbol in [
            "nvmlInit_v2",
            "nvmlShutdown",
            "nvmlDeviceGetTotalEnergyConsumption",
            "nvmlDeviceGetPciInfo_v3",
            "nvmlDeviceGetMigMode",
            "nvmlDeviceGetMaxMigDeviceCount",
            "nvmlDeviceGetMigDeviceHandleByIndex",
            "nvmlDeviceGetGpuInstanceId",
            "nvmlDeviceGetAttributes_v2",
        ] {
            assert!(
                bytes.windows(symbol.len()).any(|w| w == symbol.as_bytes()),
                "{symbol} missing from the fake library"
            );
        }
        let state = dir.path().join("state");
        write_state(&state, &FakeNvmlState::default());
        assert_eq!(std::fs::read_to_string(&state).ok().as_deref(), Some(""));
    }
}
