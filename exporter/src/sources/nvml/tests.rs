//! Tests of the NVML source against a fake NVML.

use super::*;
use std::sync::{Arc, Mutex, MutexGuard};

/// NVML errors a fake GPU can return (`NvmlError` is not `Clone`).
#[derive(Clone, Copy, Debug)]
enum Fail {
    NotSupported,
    GpuLost,
    DriverNotLoaded,
    Uninitialized,
    NoPermission,
}

impl Fail {
    fn err(self) -> NvmlError {
        match self {
            Fail::NotSupported => NvmlError::NotSupported,
            Fail::GpuLost => NvmlError::GpuLost,
            Fail::DriverNotLoaded => NvmlError::DriverNotLoaded,
            Fail::Uninitialized => NvmlError::Uninitialized,
            Fail::NoPermission => NvmlError::NoPermission,
        }
    }
}

#[derive(Clone, Debug)]
struct FakeGpu {
    uuid: String,
    name: String,
    bus_id: String,
    minor: u32,
    energy_mj: Result<u64, Fail>,
    power_mw: Result<u32, Fail>,
    limit_mw: Result<u32, Fail>,
    compute: Result<Vec<u32>, Fail>,
    graphics: Result<Vec<u32>, Fail>,
    /// Every call fails with `GpuLost`.
    lost: bool,
}

fn gpu(n: u32) -> FakeGpu {
    FakeGpu {
        uuid: format!("GPU-{n}"),
        name: "NVIDIA H100 80GB HBM3".into(),
        bus_id: format!("00000000:{:02X}:00.0", n + 0x17),
        minor: n,
        energy_mj: Ok(1_000 * u64::from(n + 1)),
        power_mw: Ok(100_000),
        limit_mw: Ok(700_000),
        compute: Ok(vec![]),
        graphics: Ok(vec![]),
        lost: false,
    }
}

#[derive(Debug, Default)]
struct World {
    gpus: Vec<FakeGpu>,
    count_error: Option<Fail>,
    init_error: Option<SourceError>,
    inits: u32,
    energy_calls: u32,
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<World>>);

impl Shared {
    fn with(gpus: Vec<FakeGpu>) -> Self {
        let shared = Shared::default();
        shared.world().gpus = gpus;
        shared
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A source over this world, opened at `now`.
    fn source(&self, now: Instant) -> Result<NvmlSource, SourceError> {
        let shared = self.clone();
        let opener: Opener = Box::new(move || {
            let mut world = shared.world();
            world.inits += 1;
            match &world.init_error {
                Some(e) => Err(e.clone()),
                None => Ok(Box::new(FakeBackend(shared.clone())) as Box<dyn GpuBackend>),
            }
        });
        NvmlSource::with_opener(DEFAULT_MAX_GPU_WATTS, opener, now)
    }
}

struct FakeBackend(Shared);

impl FakeBackend {
    fn on<T>(&self, index: u32, f: impl FnOnce(&FakeGpu) -> Result<T, Fail>) -> NvmlResult<T> {
        let world = self.0.world();
        let gpu = world
            .gpus
            .get(index as usize)
            .ok_or(NvmlError::InvalidArg)?;
        if gpu.lost {
            return Err(NvmlError::GpuLost);
        }
        f(gpu).map_err(Fail::err)
    }
}

impl GpuBackend for FakeBackend {
    fn device_count(&self) -> NvmlResult<u32> {
        let world = self.0.world();
        match world.count_error {
            Some(fail) => Err(fail.err()),
            None => Ok(world.gpus.len() as u32),
        }
    }
    fn uuid(&self, index: u32) -> NvmlResult<String> {
        self.on(index, |g| Ok(g.uuid.clone()))
    }
    fn name(&self, index: u32) -> NvmlResult<String> {
        self.on(index, |g| Ok(g.name.clone()))
    }
    fn pci_bus_id(&self, index: u32) -> NvmlResult<String> {
        self.on(index, |g| Ok(g.bus_id.clone()))
    }
    fn total_energy_mj(&self, index: u32) -> NvmlResult<u64> {
        self.0.world().energy_calls += 1;
        self.on(index, |g| g.energy_mj)
    }
    fn power_mw(&self, index: u32) -> NvmlResult<u32> {
        self.on(index, |g| g.power_mw)
    }
    fn enforced_power_limit_mw(&self, index: u32) -> NvmlResult<u32> {
        self.on(index, |g| g.limit_mw)
    }
    fn minor_number(&self, index: u32) -> NvmlResult<u32> {
        self.on(index, |g| Ok(g.minor))
    }
    fn compute_pids(&self, index: u32) -> NvmlResult<Vec<u32>> {
        self.on(index, |g| g.compute.clone())
    }
    fn graphics_pids(&self, index: u32) -> NvmlResult<Vec<u32>> {
        self.on(index, |g| g.graphics.clone())
    }
}

fn open(shared: &Shared, now: Instant) -> NvmlSource {
    match shared.source(now) {
        Ok(source) => source,
        Err(e) => panic!("fake NVML did not open: {e}"),
    }
}

fn sample(source: &mut NvmlSource, now: Instant) -> SourceSample {
    match source.sample_at(now) {
        Ok(sample) => sample,
        Err(e) => panic!("sample failed: {e}"),
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn counter_gpus_give_microjoules_bounded_by_their_power_limit() {
    let t0 = Instant::now();
    let mut b = gpu(1);
    b.name = "NVIDIA A100-SXM4-40GB".into();
    b.limit_mw = Ok(400_000);
    b.energy_mj = Ok(123_456_789);
    b.power_mw = Ok(87_500);
    let shared = Shared::with(vec![gpu(0), b]);
    let mut source = open(&shared, t0);
    assert_eq!(source.kind(), SourceKind::Nvml);
    let s = sample(&mut source, t0);
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert_eq!(
        s.energy,
        vec![
            EnergyReading {
                channel: ChannelId::new(Domain::Gpu, "GPU-0"),
                raw: RawEnergy::Resetting {
                    uj: 1_000_000,
                    max_watts: 1050.0
                },
            },
            EnergyReading {
                channel: ChannelId::new(Domain::Gpu, "GPU-1"),
                raw: RawEnergy::Resetting {
                    uj: 123_456_789_000,
                    max_watts: 600.0
                },
            },
        ]
    );
    assert_eq!(
        s.gpus[1],
        GpuInfo {
            uuid: "GPU-1".into(),
            index: 1,
            model: "NVIDIA A100-SXM4-40GB".into(),
            pci_bus_id: "00000000:18:00.0".into(),
            power_watts: Some(87.5),
            power_limit_watts: Some(400.0),
            energy_counter: true,
        }
    );
}

#[test]
fn unknown_power_limit_uses_max_gpu_watts_and_unknown_power_is_none() {
    let t0 = Instant::now();
    let mut g = gpu(0);
    g.limit_mw = Err(Fail::NotSupported);
    g.power_mw = Err(Fail::NoPermission);
    let shared = Shared::with(vec![g]);
    let mut source = open(&shared, t0);
    let s = sample(&mut source, t0);
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert_eq!(
        s.energy[0].raw,
        RawEnergy::Resetting {
            uj: 1_000_000,
            max_watts: DEFAULT_MAX_GPU_WATTS
        }
    );
    assert_eq!(s.gpus[0].power_limit_watts, None);
    assert_eq!(s.gpus[0].power_watts, None);
    assert!(s.gpus[0].energy_counter);
}

#[test]
fn pre_volta_gpu_falls_back_to_power_decided_once() {
    let t0 = Instant::now();
    let mut old = gpu(0);
    old.name = "Tesla P100-PCIE-16GB".into();
    old.energy_mj = Err(Fail::NotSupported);
    old.power_mw = Ok(150_250);
    let shared = Shared::with(vec![old, gpu(1)]);
    let mut source = open(&shared, t0);
    for i in 0..3 {
        let s = sample(&mut source, t0 + secs(i));
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!(s.energy[0].channel, ChannelId::new(Domain::Gpu, "GPU-0"));
        assert_eq!(s.energy[0].raw, RawEnergy::Power { watts: 150.25 });
        assert!(!s.gpus[0].energy_counter);
        assert_eq!(s.gpus[0].power_watts, Some(150.25));
        assert!(matches!(s.energy[1].raw, RawEnergy::Resetting { .. }));
        assert!(s.gpus[1].energy_counter);
    }
    // GPU 0 was asked once; GPU 1 every time.
    assert_eq!(shared.world().energy_calls, 1 + 3);
}

/// Collects what tracing writes, to check what an administrator sees in the log.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn power_fallback_is_logged_once_per_gpu() {
    let t0 = Instant::now();
    let mut old = gpu(0);
    old.energy_mj = Err(Fail::NotSupported);
    let shared = Shared::with(vec![old, gpu(1)]);
    let log = LogBuffer::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let mut source = open(&shared, t0);
        for i in 0..3 {
            sample(&mut source, t0 + secs(i));
        }
    });
    let text =
        String::from_utf8_lossy(&log.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    assert_eq!(text.matches("no total-energy counter").count(), 1, "{text}");
    assert!(text.contains("WARN") && text.contains("GPU-0"), "{text}");
}

#[test]
fn pre_volta_gpu_without_power_is_a_problem() {
    let t0 = Instant::now();
    let mut old = gpu(0);
    old.energy_mj = Err(Fail::NotSupported);
    old.power_mw = Err(Fail::NotSupported);
    let shared = Shared::with(vec![old, gpu(1)]);
    let mut source = open(&shared, t0);
    let s = sample(&mut source, t0);
    assert_eq!(s.energy.len(), 1);
    assert_eq!(s.gpus[0].uuid, "GPU-1");
    assert_eq!(s.problems.len(), 1);
    assert!(
        s.problems[0].message.contains("GPU 0 (GPU-0)")
            && s.problems[0].message.contains("nvmlDeviceGetPowerUsage"),
        "{}",
        s.problems[0]
    );
}

#[test]
fn lost_gpu_is_a_problem_and_the_others_are_still_read() {
    let t0 = Instant::now();
    let shared = Shared::with(vec![gpu(0), gpu(1), gpu(2)]);
    let mut source = open(&shared, t0);
    assert_eq!(sample(&mut source, t0).energy.len(), 3);

    shared.world().gpus[1].lost = true;
    let s = sample(&mut source, t0 + secs(1));
    let uuids: Vec<_> = s.gpus.iter().map(|g| g.uuid.as_str()).collect();
    assert_eq!(uuids, ["GPU-0", "GPU-2"]);
    assert_eq!(s.energy.len(), 2);
    assert_eq!(s.problems.len(), 1);
    let p = &s.problems[0];
    // The UUID can no longer be read; the one last seen at that index names the GPU.
    assert_eq!(
        p.message,
        "NVML: GPU 1 (GPU-1) could not be read: nvmlDeviceGetUUID failed: device fell off \
         the bus or has otherwise become inacessible"
    );
    assert!(p.fix.as_deref().unwrap_or("").contains("Xid"), "{p}");
    // Same text every sample, so the sampler logs it once.
    let again = sample(&mut source, t0 + secs(2));
    assert_eq!(again.problems, s.problems);

    // Back on the bus: read again, with no problem.
    shared.world().gpus[1].lost = false;
    let s = sample(&mut source, t0 + secs(3));
    assert!(s.problems.is_empty());
    assert_eq!(s.energy.len(), 3);
}

#[test]
fn gpu_lost_on_an_optional_value_is_still_a_problem() {
    let t0 = Instant::now();
    let mut g = gpu(0);
    g.power_mw = Err(Fail::GpuLost);
    let shared = Shared::with(vec![g, gpu(1)]);
    let mut source = open(&shared, t0);
    let s = sample(&mut source, t0);
    assert_eq!(s.gpus.len(), 1);
    assert_eq!(s.problems.len(), 1);
    assert!(
        s.problems[0].message.contains("GPU 0 (GPU-0)")
            && s.problems[0].message.contains("nvmlDeviceGetPowerUsage"),
        "{}",
        s.problems[0]
    );
}

#[test]
fn gpu_lost_before_its_uuid_was_ever_read_is_named_by_index() {
    let t0 = Instant::now();
    let mut g = gpu(0);
    g.lost = true;
    let shared = Shared::with(vec![g, gpu(1)]);
    let mut source = open(&shared, t0);
    let s = sample(&mut source, t0);
    assert_eq!(s.gpus.len(), 1);
    assert!(
        s.problems[0].message.contains("GPU 0 (UUID unknown)"),
        "{}",
        s.problems[0]
    );
}

#[test]
fn nvml_failure_is_an_error_and_reinit_waits_30_seconds() {
    let t0 = Instant::now();
    let shared = Shared::with(vec![gpu(0)]);
    let mut source = open(&shared, t0);
    sample(&mut source, t0);
    assert_eq!(shared.world().inits, 1);

    // The driver goes away.
    shared.world().count_error = Some(Fail::DriverNotLoaded);
    let err = source.sample_at(t0 + secs(5)).unwrap_err();
    assert!(
        err.message.contains("nvmlDeviceGetCount_v2")
            && err.message.contains("driver is not loaded"),
        "{err}"
    );
    assert!(err.fix.is_some());

    // It is back, but the last init was less than 30 s ago: no attempt, same error.
    shared.world().count_error = None;
    assert_eq!(source.sample_at(t0 + secs(10)), Err(err.clone()));
    assert_eq!(source.sample_at(t0 + secs(29)), Err(err));
    assert_eq!(shared.world().inits, 1);

    // 30 s after the last init: initialised again, and the new GPU is picked up.
    shared.world().gpus.push(gpu(1));
    let s = sample(&mut source, t0 + secs(30));
    assert_eq!(shared.world().inits, 2);
    assert_eq!(s.gpus.len(), 2);
}

#[test]
fn failed_reinit_is_retried_only_after_30_more_seconds() {
    let t0 = Instant::now();
    let shared = Shared::with(vec![gpu(0)]);
    let mut source = open(&shared, t0);
    shared.world().count_error = Some(Fail::Uninitialized);
    assert!(source.sample_at(t0 + secs(40)).is_err());

    shared.world().count_error = None;
    let init_error = SourceError::new("NVML initialisation with x failed").with_fix("fix it");
    shared.world().init_error = Some(init_error.clone());
    assert_eq!(source.sample_at(t0 + secs(41)), Err(init_error.clone()));
    assert_eq!(shared.world().inits, 2);
    // Throttled: the init error is repeated without a new attempt.
    assert_eq!(source.sample_at(t0 + secs(70)), Err(init_error));
    assert_eq!(shared.world().inits, 2);

    shared.world().init_error = None;
    assert_eq!(sample(&mut source, t0 + secs(71)).gpus.len(), 1);
    assert_eq!(shared.world().inits, 3);
}

#[test]
fn library_wide_error_from_one_gpu_fails_the_sample() {
    let t0 = Instant::now();
    let mut g = gpu(1);
    g.energy_mj = Err(Fail::Uninitialized);
    let shared = Shared::with(vec![gpu(0), g]);
    let mut source = open(&shared, t0);
    let err = source.sample_at(t0).unwrap_err();
    assert!(
        err.message.contains("nvmlDeviceGetTotalEnergyConsumption"),
        "{err}"
    );
    assert!(source.running_processes().is_empty());
    assert!(source.gpu_minor_numbers().is_empty());
}

#[test]
fn failed_open_is_an_error() {
    let shared = Shared::default();
    let e = SourceError::new("NVML library could not be loaded").with_fix("install it");
    shared.world().init_error = Some(e.clone());
    assert_eq!(shared.source(Instant::now()).unwrap_err(), e);
}

#[test]
fn processes_and_minor_numbers_are_keyed_by_uuid() {
    let t0 = Instant::now();
    let mut a = gpu(0);
    a.compute = Ok(vec![300, 100]);
    a.graphics = Ok(vec![100, 200]);
    a.minor = 3;
    let mut b = gpu(1);
    b.compute = Err(Fail::NoPermission);
    b.graphics = Ok(vec![400]);
    b.minor = 1;
    let mut c = gpu(2);
    c.lost = true;
    c.compute = Ok(vec![500]);
    let shared = Shared::with(vec![a, b, c]);
    let source = open(&shared, t0);
    let pids: Vec<(String, u32)> = vec![
        ("GPU-0".into(), 100),
        ("GPU-0".into(), 200),
        ("GPU-0".into(), 300),
        ("GPU-1".into(), 400),
    ];
    assert_eq!(source.running_processes(), pids);
    assert_eq!(
        source.gpu_minor_numbers(),
        vec![("GPU-0".to_string(), 3), ("GPU-1".to_string(), 1)]
    );
}

#[test]
fn energy_counter_overflow_saturates_instead_of_panicking() {
    let t0 = Instant::now();
    let mut g = gpu(0);
    g.energy_mj = Ok(u64::MAX / 10);
    let shared = Shared::with(vec![g]);
    let mut source = open(&shared, t0);
    let s = sample(&mut source, t0);
    assert!(matches!(
        s.energy[0].raw,
        RawEnergy::Resetting { uj: u64::MAX, .. }
    ));
}

#[test]
fn default_options() {
    let o = NvmlOptions::default();
    assert_eq!(o.library, None);
    assert_eq!(o.max_gpu_watts, 1500.0);
}
