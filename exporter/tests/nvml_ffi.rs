//! The NVML source through the real FFI path (nvml-wrapper, dlopen, the C ABI) against the fake
//! `libnvidia-ml.so` of `tests/fake-nvml/fake_nvml.c`, compiled here with `cc`. A missing `cc` is
//! a failure, never a skip.
//!
//! The fake reads its state from the file named by `FAKE_NVML_STATE`, an environment variable of
//! the whole process, so the tests take a lock for as long as they use the fake.

use joulebook_exporter::energy::{Accumulator, Step};
use joulebook_exporter::sources::nvml::{NvmlOptions, NvmlSource};
use joulebook_exporter::sources::{
    ChannelId, Domain, EnergyReading, GpuInfo, RawEnergy, Source, SourceError, SourceKind,
    SourceSample,
};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const FAKE_SOURCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fake-nvml/fake_nvml.c"
);

const UUID_A: &str = "GPU-11111111-2222-3333-4444-555555555555";
const UUID_B: &str = "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const UUID_C: &str = "GPU-cccccccc-0000-0000-0000-000000000000";

static FAKE_LOCK: Mutex<()> = Mutex::new(());

/// A freshly built fake library and its state file. Fields drop in order: the lock goes last.
struct Fake {
    dir: TempDir,
    lib: PathBuf,
    state: PathBuf,
    _lock: MutexGuard<'static, ()>,
}

impl Fake {
    fn new() -> Fake {
        let lock = FAKE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().expect("cannot create a temporary directory");
        let lib = dir.path().join("libnvidia-ml.so.1");
        let out = Command::new("cc")
            .args(["-shared", "-fPIC", "-O1", "-o"])
            .arg(&lib)
            .arg(FAKE_SOURCE)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `cc` to build the fake NVML library from {FAKE_SOURCE}: {e}; \
                     install a C compiler (Debian: `apt-get install gcc`)"
                )
            });
        assert!(
            out.status.success(),
            "cc failed to build {FAKE_SOURCE}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let state = dir.path().join("state");
        // Set under the lock, before any call into the fake of this test.
        std::env::set_var("FAKE_NVML_STATE", &state);
        Fake {
            dir,
            lib,
            state,
            _lock: lock,
        }
    }

    /// Replaces the state file at once (the fake re-reads it on every call).
    fn write(&self, text: &str) {
        let tmp = self.dir.path().join("state.tmp");
        std::fs::write(&tmp, text).expect("cannot write the fake NVML state");
        std::fs::rename(&tmp, &self.state).expect("cannot replace the fake NVML state");
    }

    fn options(&self) -> NvmlOptions {
        NvmlOptions {
            library: Some(self.lib.clone()),
            ..NvmlOptions::default()
        }
    }

    fn open(&self) -> NvmlSource {
        NvmlSource::open(&self.options())
            .unwrap_or_else(|e| panic!("the fake NVML library did not open: {e}"))
    }
}

fn gpu_a(energy_mj: u64, extra: &str) -> String {
    format!(
        "[gpu]\nuuid={UUID_A}\nname=NVIDIA H100 80GB HBM3\nbus_id=00000000:17:00.0\nminor=2\n\
         energy_mj={energy_mj}\npower_mw=312500\nlimit_mw=700000\ncompute_pids=4343,4242\n{extra}\n"
    )
}

fn gpu_b(energy_mj: u64, extra: &str) -> String {
    format!(
        "[gpu]\nuuid={UUID_B}\nname=NVIDIA A100-SXM4-40GB\nbus_id=00000000:B1:00.0\nminor=0\n\
         energy_mj={energy_mj}\npower_mw=55000\nlimit_mw=400000\ngraphics_pids=99,4242\n{extra}\n"
    )
}

fn ok(result: Result<SourceSample, SourceError>) -> SourceSample {
    result.unwrap_or_else(|e| panic!("sample failed: {e}"))
}

#[test]
fn two_gpus_are_read_by_uuid_with_exact_energy_and_changes_are_seen() {
    let fake = Fake::new();
    fake.write(&format!(
        "init=ok\n{}{}",
        gpu_a(1_234_567, ""),
        gpu_b(42, "")
    ));
    let mut source = fake.open();
    assert_eq!(source.kind(), SourceKind::Nvml);

    let s = ok(source.sample());
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert_eq!(
        s.energy,
        vec![
            EnergyReading {
                channel: ChannelId::new(Domain::Gpu, UUID_A),
                raw: RawEnergy::Resetting {
                    uj: 1_234_567_000,
                    max_watts: 1050.0
                },
            },
            EnergyReading {
                channel: ChannelId::new(Domain::Gpu, UUID_B),
                raw: RawEnergy::Resetting {
                    uj: 42_000,
                    max_watts: 600.0
                },
            },
        ]
    );
    assert_eq!(
        s.gpus,
        vec![
            GpuInfo {
                uuid: UUID_A.into(),
                index: 0,
                model: "NVIDIA H100 80GB HBM3".into(),
                pci_bus_id: "00000000:17:00.0".into(),
                power_watts: Some(312.5),
                power_limit_watts: Some(700.0),
                energy_counter: true,
            },
            GpuInfo {
                uuid: UUID_B.into(),
                index: 1,
                model: "NVIDIA A100-SXM4-40GB".into(),
                pci_bus_id: "00000000:B1:00.0".into(),
                power_watts: Some(55.0),
                power_limit_watts: Some(400.0),
                energy_counter: true,
            },
        ]
    );

    // The counter moves between two samples.
    fake.write(&format!(
        "{}{}",
        gpu_a(1_234_567 + 31_250, ""),
        gpu_b(42 + 5_500, "")
    ));
    let s = ok(source.sample());
    let uj: Vec<_> = s
        .energy
        .iter()
        .map(|r| match r.raw {
            RawEnergy::Resetting { uj, .. } => uj,
            other => panic!("expected a counter, got {other:?}"),
        })
        .collect();
    assert_eq!(uj, [1_265_817_000, 5_542_000]);

    let processes: Vec<(String, u32)> = vec![
        (UUID_A.into(), 4242),
        (UUID_A.into(), 4343),
        (UUID_B.into(), 99),
        (UUID_B.into(), 4242),
    ];
    assert_eq!(source.running_processes(), processes);
    assert_eq!(
        source.gpu_minor_numbers(),
        vec![(UUID_A.to_string(), 2), (UUID_B.to_string(), 0)]
    );
}

#[test]
fn lost_gpu_is_a_problem_and_the_other_gpu_is_still_read() {
    let fake = Fake::new();
    fake.write(&format!("{}{}", gpu_a(1_000, ""), gpu_b(2_000, "")));
    let mut source = fake.open();
    assert_eq!(ok(source.sample()).energy.len(), 2);

    fake.write(&format!("{}{}", gpu_a(1_100, "lost=1"), gpu_b(2_100, "")));
    let s = ok(source.sample());
    assert_eq!(s.gpus.len(), 1);
    assert_eq!(s.gpus[0].uuid, UUID_B);
    assert_eq!(
        s.energy,
        vec![EnergyReading {
            channel: ChannelId::new(Domain::Gpu, UUID_B),
            raw: RawEnergy::Resetting {
                uj: 2_100_000,
                max_watts: 600.0
            },
        }]
    );
    assert_eq!(s.problems.len(), 1);
    let p = &s.problems[0];
    assert!(
        p.message.contains(&format!("GPU 0 ({UUID_A})")) && p.message.contains("fell off the bus"),
        "{p}"
    );
    assert!(p.fix.is_some());
    // The lost GPU's processes are not listed; the other GPU's are.
    assert_eq!(
        source.running_processes(),
        vec![(UUID_B.to_string(), 99), (UUID_B.to_string(), 4242)]
    );

    // A single call failing with GPU_IS_LOST is enough.
    fake.write(&format!(
        "{}{}",
        gpu_a(1_200, ""),
        gpu_b(2_200, "energy_mj=!gpu_is_lost")
    ));
    let s = ok(source.sample());
    assert_eq!(s.gpus.len(), 1);
    assert_eq!(s.gpus[0].uuid, UUID_A);
    assert!(
        s.problems[0].message.contains(&format!("GPU 1 ({UUID_B})"))
            && s.problems[0]
                .message
                .contains("nvmlDeviceGetTotalEnergyConsumption"),
        "{}",
        s.problems[0]
    );
}

#[test]
fn gpu_without_energy_counter_falls_back_to_power() {
    let fake = Fake::new();
    let state = |power_mw: u32| {
        format!(
            "[gpu]\nuuid={UUID_A}\nname=Tesla P100-PCIE-16GB\nbus_id=00000000:04:00.0\n\
             energy_mj=!not_supported\npower_mw={power_mw}\nlimit_mw=250000\n{}",
            gpu_b(7, "")
        )
    };
    fake.write(&state(180_250));
    let mut source = fake.open();
    let s = ok(source.sample());
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert_eq!(s.energy[0].channel, ChannelId::new(Domain::Gpu, UUID_A));
    assert_eq!(s.energy[0].raw, RawEnergy::Power { watts: 180.25 });
    assert!(!s.gpus[0].energy_counter);
    assert_eq!(s.gpus[0].power_limit_watts, Some(250.0));
    assert!(s.gpus[1].energy_counter);

    fake.write(&state(90_000));
    let s = ok(source.sample());
    assert_eq!(s.energy[0].raw, RawEnergy::Power { watts: 90.0 });
}

#[test]
fn missing_library_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().expect("cannot create a temporary directory");
    let missing = dir.path().join("no-such-dir").join("libnvidia-ml.so.1");
    let opts = NvmlOptions {
        library: Some(missing.clone()),
        ..NvmlOptions::default()
    };
    let err = NvmlSource::open(&opts).expect_err("a missing library must not open");
    assert!(
        err.message.contains(&missing.display().to_string()),
        "{err}"
    );
    let fix = err.fix.as_deref().unwrap_or_default();
    assert!(
        fix.contains("--nvml.library") && fix.contains("sources.nvml.library"),
        "{err}"
    );
}

#[test]
fn failed_init_names_the_library_and_a_fix() {
    let fake = Fake::new();
    fake.write("init=!driver_not_loaded\n");
    let err = NvmlSource::open(&fake.options()).expect_err("init must fail");
    assert!(
        err.message.contains(&fake.lib.display().to_string())
            && err.message.contains("driver is not loaded"),
        "{err}"
    );
    assert!(
        err.fix.as_deref().unwrap_or_default().contains("modprobe"),
        "{err}"
    );
}

/// A driver reload: NVML fails, comes back after the re-init delay, and the counter restarts
/// near 0. The accumulator keeps the energy from before and adds the energy since the reset; a
/// GPU that appeared with the reload is picked up.
#[test]
fn driver_reload_is_absorbed_without_losing_energy() {
    let fake = Fake::new();
    fake.write(&format!("{}{}", gpu_a(5_000, ""), gpu_b(100, "")));
    let mut source = fake.open();
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let mut acc_a = Accumulator::default();

    let feed = |acc: &mut Accumulator, sample: &SourceSample, uuid: &str, t: f64| -> Step {
        let reading = sample
            .energy
            .iter()
            .find(|r| r.channel == ChannelId::new(Domain::Gpu, uuid))
            .unwrap_or_else(|| panic!("no reading for {uuid} in {sample:?}"));
        acc.update(reading.raw, t)
    };

    let s = ok(source.sample_at(at(0)));
    assert_eq!(feed(&mut acc_a, &s, UUID_A, 0.0), Step::Baseline);
    fake.write(&format!("{}{}", gpu_a(6_000, ""), gpu_b(200, "")));
    let s = ok(source.sample_at(at(1)));
    assert_eq!(
        feed(&mut acc_a, &s, UUID_A, 1.0),
        Step::Added {
            uj: 1_000_000,
            wrapped: false
        }
    );

    // The driver is unloaded: NVML as a whole fails.
    fake.write(&format!(
        "count=!driver_not_loaded\n{}{}",
        gpu_a(6_000, ""),
        gpu_b(200, "")
    ));
    let err = source.sample_at(at(2)).expect_err("NVML is down");
    assert!(err.message.contains("driver is not loaded"), "{err}");

    // Reloaded: counters restart near 0, and a third GPU is there. The source waits 30 s after
    // its last init before trying again.
    fake.write(&format!(
        "{}{}[gpu]\nuuid={UUID_C}\nenergy_mj=10\nlimit_mw=300000\n",
        gpu_a(400, ""),
        gpu_b(50, "")
    ));
    assert_eq!(source.sample_at(at(3)), Err(err));
    let s = ok(source.sample_at(at(40)));
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    let uuids: Vec<_> = s.gpus.iter().map(|g| g.uuid.as_str()).collect();
    assert_eq!(uuids, [UUID_A, UUID_B, UUID_C]);
    assert_eq!(
        feed(&mut acc_a, &s, UUID_A, 40.0),
        Step::Added {
            uj: 400_000,
            wrapped: true
        }
    );
    // 1000 mJ before the reload, 400 mJ since: nothing lost, nothing invented.
    assert_eq!(acc_a.total_uj(), 1_400_000);

    fake.write(&format!(
        "{}{}[gpu]\nuuid={UUID_C}\nenergy_mj=20\n",
        gpu_a(900, ""),
        gpu_b(60, "")
    ));
    let s = ok(source.sample_at(at(41)));
    feed(&mut acc_a, &s, UUID_A, 41.0);
    assert_eq!(acc_a.total_uj(), 1_900_000);
}
