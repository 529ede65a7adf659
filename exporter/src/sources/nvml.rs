//! NVIDIA GPUs through NVML (nvml-wrapper), library loaded at run time.
//!
//! The exporter links no NVIDIA code: `libnvidia-ml` is opened with `dlopen` when the source is
//! built, so the binary builds and runs on nodes without a driver, where this source is simply
//! "no data" with a message that says what to install or configure.
//!
//! Energy comes from `nvmlDeviceGetTotalEnergyConsumption` (millijoules since the driver loaded,
//! Volta and later), handed to the sampler in microjoules as [`RawEnergy::Resetting`]: the
//! sampler absorbs the reset to 0 that a driver reload causes. GPUs without that counter
//! (pre-Volta: the call answers `NotSupported`) fall back to [`RawEnergy::Power`] from
//! `nvmlDeviceGetPowerUsage`, which the sampler integrates; that is decided once per GPU and
//! logged, because integrated power samples only part of the run time and is less accurate.
//!
//! GPUs are identified by UUID everywhere: Slurm, `nvidia-smi` and `/dev/nvidiaN` number GPUs
//! differently, and NVML's own indices can change when the driver reloads.
//!
//! Faults: a GPU that fails (fell off the bus, needs a reset, ...) becomes a problem of the sample
//! and the other GPUs are still read. When NVML itself fails (driver unloaded or replaced by
//! another version), the sample is an error, NVML is shut down, and it is initialised again on a
//! later sample, at most once every [`REINIT_INTERVAL`]; GPUs that appear after the reload are
//! picked up then, since every sample enumerates the GPUs.
//!
//! The NVML calls sit behind the private `GpuBackend` trait so that all of the above is unit
//! tested with an in-memory backend; `exporter/tests/nvml_ffi.rs` tests the real FFI path against
//! a fake `libnvidia-ml.so` built from `tests/fake-nvml/fake_nvml.c`.

use super::{
    ChannelId, Domain, EnergyReading, GpuInfo, GpuPart, GpuPartitions, RawEnergy, Source,
    SourceError, SourceKind, SourceSample,
};
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Nvml;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Default plausibility bound, in watts, for a GPU whose power limit NVML does not report. Above
/// every current part (the largest boards draw about 1.2 kW).
pub const DEFAULT_MAX_GPU_WATTS: f64 = 1500.0;

/// Shortest time between two attempts to initialise NVML after it failed: initialising probes
/// every GPU and takes long on a node with many of them.
pub const REINIT_INTERVAL: Duration = Duration::from_secs(30);

/// Libraries tried, in order, when none is configured. The driver ships the versioned name; the
/// unversioned one often only comes with development packages.
const DEFAULT_LIBRARIES: [&str; 2] = ["libnvidia-ml.so.1", "libnvidia-ml.so"];

/// The plausibility bound of a GPU with a known power limit is this many times the limit: boards
/// exceed their enforced limit for short moments.
pub const POWER_LIMIT_HEADROOM: f64 = 1.5;

/// How the NVML source is set up (`sources.nvml` in the configuration file).
#[derive(Clone, Debug)]
pub struct NvmlOptions {
    /// Path or file name of `libnvidia-ml` (`--nvml.library`, `sources.nvml.library`). `None`
    /// tries `libnvidia-ml.so.1`, then `libnvidia-ml.so`, through the dynamic loader's search.
    pub library: Option<PathBuf>,
    /// Plausibility bound in watts for a GPU whose enforced power limit is unknown: an energy
    /// delta above what this power could give in the interval is discarded, not added. With a
    /// known limit the bound is 1.5 × that limit.
    pub max_gpu_watts: f64,
}

impl Default for NvmlOptions {
    fn default() -> Self {
        NvmlOptions {
            library: None,
            max_gpu_watts: DEFAULT_MAX_GPU_WATTS,
        }
    }
}

type NvmlResult<T> = Result<T, NvmlError>;

/// The NVML calls the source makes, by GPU enumeration index (`0..device_count()`). Implemented
/// by [`NvmlBackend`] over nvml-wrapper, and by an in-memory fake in the unit tests.
trait GpuBackend: Send {
    fn device_count(&self) -> NvmlResult<u32>;
    fn uuid(&self, index: u32) -> NvmlResult<String>;
    /// Product name, e.g. `NVIDIA H100 80GB HBM3`.
    fn name(&self, index: u32) -> NvmlResult<String>;
    /// PCI bus id as NVML writes it, e.g. `00000000:17:00.0`.
    fn pci_bus_id(&self, index: u32) -> NvmlResult<String>;
    /// Energy since the driver loaded, in millijoules.
    fn total_energy_mj(&self, index: u32) -> NvmlResult<u64>;
    /// Power draw, in milliwatts.
    fn power_mw(&self, index: u32) -> NvmlResult<u32>;
    /// Enforced power limit, in milliwatts.
    fn enforced_power_limit_mw(&self, index: u32) -> NvmlResult<u32>;
    /// Minor number of the GPU's device file (`/dev/nvidia<minor>`).
    fn minor_number(&self, index: u32) -> NvmlResult<u32>;
    /// Pids of the processes with a compute context on the GPU.
    fn compute_pids(&self, index: u32) -> NvmlResult<Vec<u32>>;
    /// Pids of the processes with a graphics context on the GPU.
    fn graphics_pids(&self, index: u32) -> NvmlResult<Vec<u32>>;
    /// The GPU's MIG instances while MIG is on; `None` for a GPU without MIG or with it off.
    fn mig_layout(&self, _index: u32) -> NvmlResult<Option<MigLayout>> {
        Ok(None)
    }
}

/// A MIG-enabled GPU: its streaming multiprocessors and its instances'.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigLayout {
    /// `nvmlDeviceGetAttributes_v2`'s `multiprocessorCount` of the physical GPU (0 when it
    /// cannot say: then the instances' sum).
    pub total_sms: u32,
    /// (MIG UUID, GPU instance id, SMs), by MIG device index.
    pub instances: Vec<(String, u32, u32)>,
}

/// `nvmlDeviceGetGpuInstanceId`, which nvml-wrapper 0.13 loads but does not wrap.
fn gpu_instance_id(nvml: &Nvml, device: &nvml_wrapper::Device<'_>) -> NvmlResult<u32> {
    let sym = nvml_wrapper::error::nvml_sym(nvml.lib().nvmlDeviceGetGpuInstanceId.as_ref())?;
    let mut id: std::os::raw::c_uint = 0;
    // SAFETY: the function as nvml.h declares it, called with a handle of a device of `nvml`
    // (alive for this call) and a valid out pointer.
    let code = unsafe { sym(device.handle(), &mut id) };
    nvml_wrapper::error::nvml_try(code)?;
    Ok(id)
}

/// The real backend: nvml-wrapper over the loaded library. Device handles are looked up for
/// each call (a table lookup inside NVML), because a `Device` borrows the `Nvml` it came from.
struct NvmlBackend {
    nvml: Nvml,
}

impl GpuBackend for NvmlBackend {
    fn device_count(&self) -> NvmlResult<u32> {
        self.nvml.device_count()
    }

    fn uuid(&self, index: u32) -> NvmlResult<String> {
        self.nvml.device_by_index(index)?.uuid()
    }

    fn name(&self, index: u32) -> NvmlResult<String> {
        self.nvml.device_by_index(index)?.name()
    }

    fn pci_bus_id(&self, index: u32) -> NvmlResult<String> {
        Ok(self.nvml.device_by_index(index)?.pci_info()?.bus_id)
    }

    fn total_energy_mj(&self, index: u32) -> NvmlResult<u64> {
        self.nvml.device_by_index(index)?.total_energy_consumption()
    }

    fn power_mw(&self, index: u32) -> NvmlResult<u32> {
        self.nvml.device_by_index(index)?.power_usage()
    }

    fn enforced_power_limit_mw(&self, index: u32) -> NvmlResult<u32> {
        self.nvml.device_by_index(index)?.enforced_power_limit()
    }

    fn minor_number(&self, index: u32) -> NvmlResult<u32> {
        self.nvml.device_by_index(index)?.minor_number()
    }

    fn compute_pids(&self, index: u32) -> NvmlResult<Vec<u32>> {
        Ok(pids(
            self.nvml
                .device_by_index(index)?
                .running_compute_processes()?,
        ))
    }

    fn graphics_pids(&self, index: u32) -> NvmlResult<Vec<u32>> {
        Ok(pids(
            self.nvml
                .device_by_index(index)?
                .running_graphics_processes()?,
        ))
    }

    fn mig_layout(&self, index: u32) -> NvmlResult<Option<MigLayout>> {
        let device = self.nvml.device_by_index(index)?;
        match device.mig_mode() {
            Ok(m) if m.current == 1 => {}
            Ok(_) => return Ok(None),
            Err(e) if means_no_energy_counter(&e) => return Ok(None),
            Err(e) => return Err(e),
        }
        let mut instances = Vec::new();
        for i in 0..device.mig_device_count()? {
            let mig = match device.mig_device_by_index(i) {
                Ok(m) => m,
                // No MIG device at this index.
                Err(NvmlError::NotFound | NvmlError::InvalidArg) => continue,
                Err(e) => return Err(e),
            };
            instances.push((
                mig.uuid()?,
                gpu_instance_id(&self.nvml, &mig)?,
                mig.attributes()?.multiprocessor_count,
            ));
        }
        let total_sms = device.attributes().map_or(0, |a| a.multiprocessor_count);
        Ok(Some(MigLayout {
            total_sms,
            instances,
        }))
    }
}

/// Loads the library and initialises NVML, turning every failure into a message that names the
/// library tried and a fix for the administrator.
fn init_nvml(library: Option<&Path>) -> Result<Nvml, SourceError> {
    let candidates: Vec<OsString> = match library {
        Some(path) => vec![path.as_os_str().to_owned()],
        None => DEFAULT_LIBRARIES.iter().map(OsString::from).collect(),
    };
    let mut not_loaded = Vec::new();
    for lib in &candidates {
        let shown = lib.to_string_lossy();
        match Nvml::builder().lib_path(lib).init() {
            Ok(nvml) => {
                tracing::info!(library = %shown, "NVML initialised");
                return Ok(nvml);
            }
            // The file could not be opened: try the next name.
            Err(NvmlError::LibloadingError(e)) => not_loaded.push(format!("{shown} ({e})")),
            // The library loaded but NVML did not start: another name will not do better.
            Err(e) => return Err(init_failed(&shown, &e)),
        }
    }
    let fix = if library.is_some() {
        "check the path set with `--nvml.library` (config key `sources.nvml.library`): it must \
         name the NVIDIA driver's libnvidia-ml.so.1; or install the NVIDIA driver and remove \
         the setting"
    } else {
        "install the NVIDIA driver (it provides libnvidia-ml.so.1), or set `--nvml.library` \
         (config key `sources.nvml.library`) to the full path of libnvidia-ml.so.1; on nodes \
         without NVIDIA GPUs, switch the nvml source off"
    };
    Err(SourceError::new(format!(
        "NVML library could not be loaded: tried {}",
        not_loaded.join(", ")
    ))
    .with_fix(fix))
}

fn init_failed(library: &str, e: &NvmlError) -> SourceError {
    let fix = match e {
        NvmlError::DriverNotLoaded => {
            "load the NVIDIA kernel module (`modprobe nvidia`; `nvidia-smi` must work on this node)"
        }
        NvmlError::NoPermission => {
            "run the exporter as a user that can open /dev/nvidiactl and /dev/nvidia*"
        }
        NvmlError::LibRmVersionMismatch => {
            "the library does not match the loaded kernel module (driver upgraded without a \
             reboot?): reboot or reload the nvidia module, or set `--nvml.library` (config key \
             `sources.nvml.library`) to the library of the running driver"
        }
        NvmlError::FailedToLoadSymbol(_) => {
            "this file is not the NVML library: set `--nvml.library` (config key \
             `sources.nvml.library`) to the NVIDIA driver's libnvidia-ml.so.1"
        }
        _ => "check that `nvidia-smi` works on this node",
    };
    SourceError::new(format!("NVML initialisation with {library} failed: {e}")).with_fix(fix)
}

/// How a GPU's energy is read, decided on its first successful read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EnergyMode {
    /// `nvmlDeviceGetTotalEnergyConsumption`.
    Counter,
    /// Integrated `nvmlDeviceGetPowerUsage` (pre-Volta).
    Power,
}

/// What stays true of a GPU while the process runs, cached so a sample makes few NVML calls.
#[derive(Clone, Debug)]
struct KnownGpu {
    model: String,
    pci_bus_id: String,
    mode: Option<EnergyMode>,
}

/// One GPU that could not be read.
#[derive(Debug)]
struct GpuFault {
    index: u32,
    /// `None` when the UUID itself could not be read.
    uuid: Option<String>,
    /// The NVML function that failed.
    call: &'static str,
    error: NvmlError,
}

/// Errors after which NVML as a whole is unusable and must be initialised again.
fn is_library_wide(e: &NvmlError) -> bool {
    matches!(
        e,
        NvmlError::Uninitialized
            | NvmlError::DriverNotLoaded
            | NvmlError::LibRmVersionMismatch
            | NvmlError::LibloadingError(_)
    )
}

/// Errors that make a GPU unreadable even when they come from a call whose value is optional.
fn is_gpu_fatal(e: &NvmlError) -> bool {
    matches!(e, NvmlError::GpuLost | NvmlError::ResetRequired) || is_library_wide(e)
}

/// Errors that say the GPU has no total-energy counter (pre-Volta GPU, or a driver too old to
/// have the function).
fn means_no_energy_counter(e: &NvmlError) -> bool {
    matches!(
        e,
        NvmlError::NotSupported | NvmlError::FailedToLoadSymbol(_) | NvmlError::FunctionNotFound
    )
}

/// A MIG GPU's instances as the parts of its energy, weighted by their SMs; the SMs no instance
/// holds stay the physical GPU's.
fn mig_partitions(uuid: &str, l: MigLayout) -> GpuPartitions {
    let held: u64 = l.instances.iter().map(|i| u64::from(i.2)).sum();
    GpuPartitions {
        device: uuid.to_string(),
        total_weight: u64::from(l.total_sms).max(held),
        parts: l
            .instances
            .into_iter()
            .map(|(id, gi, sms)| GpuPart {
                id,
                weight: u64::from(sms),
                activity: None,
                instance: Some(gi),
            })
            .collect(),
    }
}

fn milli_to_unit(milli: u32) -> f64 {
    f64::from(milli) / 1000.0
}

/// The per-GPU logic: turns backend answers into readings, problems or an NVML-wide error.
#[derive(Debug)]
struct GpuReader {
    max_gpu_watts: f64,
    /// By UUID.
    known: HashMap<String, KnownGpu>,
    /// UUID last seen at each index, to name a GPU whose UUID can no longer be read.
    uuid_by_index: HashMap<u32, String>,
    /// The MIG-enabled GPUs of the last sample, split between their instances by SMs.
    mig: Vec<GpuPartitions>,
}

impl GpuReader {
    fn read_all(&mut self, backend: &dyn GpuBackend) -> Result<SourceSample, SourceError> {
        let count = backend
            .device_count()
            .map_err(|e| nvml_failed("nvmlDeviceGetCount_v2", &e))?;
        let mut sample = SourceSample::default();
        self.mig.clear();
        for index in 0..count {
            match self.read_gpu(backend, index) {
                Ok((reading, info)) => {
                    match backend.mig_layout(index) {
                        Ok(Some(l)) => self.mig.push(mig_partitions(&info.uuid, l)),
                        Ok(None) => {}
                        // Its energy stays the physical GPU's (unallocated unless a job holds
                        // the whole GPU): never lost.
                        Err(e) => {
                            tracing::debug!(gpu = %info.uuid, error = %e, "MIG instances unreadable")
                        }
                    }
                    sample.energy.push(reading);
                    sample.gpus.push(info);
                }
                Err(fault) if is_library_wide(&fault.error) => {
                    return Err(nvml_failed(fault.call, &fault.error));
                }
                Err(fault) => sample.problems.push(self.problem(fault)),
            }
        }
        Ok(sample)
    }

    fn read_gpu(
        &mut self,
        backend: &dyn GpuBackend,
        index: u32,
    ) -> Result<(EnergyReading, GpuInfo), GpuFault> {
        let uuid = backend.uuid(index).map_err(|error| GpuFault {
            index,
            uuid: None,
            call: "nvmlDeviceGetUUID",
            error,
        })?;
        self.uuid_by_index.insert(index, uuid.clone());
        let fault = |call: &'static str| {
            let uuid = uuid.clone();
            move |error| GpuFault {
                index,
                uuid: Some(uuid),
                call,
                error,
            }
        };

        let known = match self.known.get(&uuid) {
            Some(known) => known.clone(),
            None => {
                let model = backend.name(index).map_err(fault("nvmlDeviceGetName"))?;
                let pci_bus_id = backend
                    .pci_bus_id(index)
                    .map_err(fault("nvmlDeviceGetPciInfo_v3"))?;
                KnownGpu {
                    model,
                    pci_bus_id,
                    mode: None,
                }
            }
        };

        let limit_mw = match backend.enforced_power_limit_mw(index) {
            Ok(mw) if mw > 0 => Some(mw),
            Ok(_) => None,
            Err(e) if is_gpu_fatal(&e) => return Err(fault("nvmlDeviceGetEnforcedPowerLimit")(e)),
            Err(_) => None,
        };
        let power = backend.power_mw(index);

        let (counter, mode) = energy_counter(backend, index, &uuid, &known)?;

        let (raw, power_watts) = match counter {
            Some(mj) => {
                let power_watts = match power {
                    Ok(mw) => Some(milli_to_unit(mw)),
                    Err(e) if is_gpu_fatal(&e) => return Err(fault("nvmlDeviceGetPowerUsage")(e)),
                    Err(_) => None,
                };
                let max_watts = match limit_mw {
                    Some(mw) => POWER_LIMIT_HEADROOM * milli_to_unit(mw),
                    None => self.max_gpu_watts,
                };
                let raw = RawEnergy::Resetting {
                    uj: mj.saturating_mul(1000),
                    max_watts,
                };
                (raw, power_watts)
            }
            None => {
                let watts = milli_to_unit(power.map_err(fault("nvmlDeviceGetPowerUsage"))?);
                (RawEnergy::Power { watts }, Some(watts))
            }
        };

        let info = GpuInfo {
            uuid: uuid.clone(),
            index,
            model: known.model.clone(),
            pci_bus_id: known.pci_bus_id.clone(),
            power_watts,
            power_limit_watts: limit_mw.map(milli_to_unit),
            energy_counter: mode == Some(EnergyMode::Counter),
        };
        self.known.insert(uuid.clone(), KnownGpu { mode, ..known });
        let reading = EnergyReading {
            channel: ChannelId::of(Domain::Gpu, super::DeviceKey::gpu(uuid)),
            raw,
        };
        Ok((reading, info))
    }

    /// The problem for one GPU. The text does not change from one sample to the next, so the
    /// sampler logs it once.
    fn problem(&self, fault: GpuFault) -> SourceError {
        let uuid = fault
            .uuid
            .or_else(|| self.uuid_by_index.get(&fault.index).cloned());
        let who = match uuid {
            Some(uuid) => format!("GPU {} ({uuid})", fault.index),
            None => format!("GPU {} (UUID unknown)", fault.index),
        };
        let fix = match fault.error {
            NvmlError::GpuLost => {
                "the GPU fell off the bus: check `nvidia-smi` and the kernel log for Xid errors; \
                 it usually needs a GPU reset or a reboot"
            }
            NvmlError::ResetRequired => "reset the GPU (`nvidia-smi -r`) or reboot the node",
            NvmlError::NoPermission => {
                "run the exporter as a user that can open /dev/nvidiactl and /dev/nvidia*"
            }
            _ => "check the GPU with `nvidia-smi -q`",
        };
        SourceError::new(format!(
            "NVML: {who} could not be read: {} failed: {}",
            fault.call, fault.error
        ))
        .with_fix(fix)
    }
}

fn nvml_failed(call: &str, e: &NvmlError) -> SourceError {
    SourceError::new(format!("NVML stopped working: {call} failed: {e}")).with_fix(format!(
        "the NVIDIA driver was probably unloaded or replaced; the exporter initialises NVML \
         again at most every {} s and picks the GPUs up when `nvidia-smi` works again",
        REINIT_INTERVAL.as_secs()
    ))
}

/// Opens a backend: loads the library and initialises NVML.
type Opener = Box<dyn FnMut() -> Result<Box<dyn GpuBackend>, SourceError> + Send>;

/// Energy of NVIDIA GPUs through NVML. See the module documentation.
pub struct NvmlSource {
    opener: Opener,
    /// `None` while NVML is down.
    backend: Option<Box<dyn GpuBackend>>,
    /// When NVML was last initialised, successfully or not.
    last_init: Instant,
    /// Why NVML is down, repeated while a new attempt must wait.
    down: Option<SourceError>,
    reader: GpuReader,
}

impl std::fmt::Debug for NvmlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlSource")
            .field("up", &self.backend.is_some())
            .field("last_init", &self.last_init)
            .field("down", &self.down)
            .field("reader", &self.reader)
            .finish_non_exhaustive()
    }
}

impl NvmlSource {
    /// Loads `libnvidia-ml` and initialises NVML. Fails, with the library tried and a fix, when
    /// the library is missing or NVML does not start (no driver, no permission, ...).
    pub fn open(opts: &NvmlOptions) -> Result<NvmlSource, SourceError> {
        let library = opts.library.clone();
        let opener: Opener = Box::new(move || {
            let nvml = init_nvml(library.as_deref())?;
            Ok(Box::new(NvmlBackend { nvml }) as Box<dyn GpuBackend>)
        });
        Self::with_opener(opts.max_gpu_watts, opener, Instant::now())
    }

    fn with_opener(
        max_gpu_watts: f64,
        mut opener: Opener,
        now: Instant,
    ) -> Result<NvmlSource, SourceError> {
        let backend = opener()?;
        Ok(NvmlSource {
            opener,
            backend: Some(backend),
            last_init: now,
            down: None,
            reader: GpuReader {
                max_gpu_watts,
                known: HashMap::new(),
                uuid_by_index: HashMap::new(),
                mig: Vec::new(),
            },
        })
    }

    /// [`Source::sample`] with the time given: `now` decides whether NVML may be initialised
    /// again after a failure (at most once every [`REINIT_INTERVAL`]).
    pub fn sample_at(&mut self, now: Instant) -> Result<SourceSample, SourceError> {
        if self.backend.is_none() {
            self.reinit(now)?;
        }
        let Some(backend) = self.backend.as_deref() else {
            return Err(self.down_error());
        };
        match self.reader.read_all(backend) {
            Ok(sample) => Ok(sample),
            Err(e) => {
                // Dropping the handle shuts NVML down, so the next init starts clean.
                self.backend = None;
                self.down = Some(e.clone());
                Err(e)
            }
        }
    }

    fn reinit(&mut self, now: Instant) -> Result<(), SourceError> {
        if now.saturating_duration_since(self.last_init) < REINIT_INTERVAL {
            return Err(self.down_error());
        }
        self.last_init = now;
        match (self.opener)() {
            Ok(backend) => {
                tracing::info!("NVML initialised again");
                // Indices may have changed with the driver reload.
                self.reader.uuid_by_index.clear();
                self.backend = Some(backend);
                self.down = None;
                Ok(())
            }
            Err(e) => {
                self.down = Some(e.clone());
                Err(e)
            }
        }
    }

    fn down_error(&self) -> SourceError {
        self.down
            .clone()
            .unwrap_or_else(|| SourceError::new("NVML is not initialised"))
    }

    /// `(GPU UUID, pid)` of every process with a compute or graphics context on a GPU, for
    /// mapping GPUs to jobs. A GPU whose list cannot be read contributes nothing; empty while
    /// NVML is down.
    pub fn running_processes(&self) -> Vec<(String, u32)> {
        self.per_gpu(|backend, index, uuid| {
            let mut pids = backend.compute_pids(index).unwrap_or_default();
            pids.extend(backend.graphics_pids(index).unwrap_or_default());
            pids.sort_unstable();
            pids.dedup();
            pids.into_iter().map(|pid| (uuid.clone(), pid)).collect()
        })
    }

    /// `(GPU UUID, minor number)`: GPU `uuid` is `/dev/nvidia<minor>`, which is how cgroup device
    /// lists and Slurm name GPUs. GPUs whose number cannot be read are left out; empty while
    /// NVML is down.
    pub fn gpu_minor_numbers(&self) -> Vec<(String, u32)> {
        self.per_gpu(|backend, index, uuid| {
            backend
                .minor_number(index)
                .map(|minor| (uuid, minor))
                .into_iter()
                .collect()
        })
    }

    /// The items `f(backend, index, uuid)` of every GPU whose UUID can be read, in index order;
    /// empty while NVML is down.
    fn per_gpu<T>(&self, mut f: impl FnMut(&dyn GpuBackend, u32, String) -> Vec<T>) -> Vec<T> {
        let Some(backend) = self.backend.as_deref() else {
            return Vec::new();
        };
        let Ok(count) = backend.device_count() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for index in 0..count {
            if let Ok(uuid) = backend.uuid(index) {
                out.extend(f(backend, index, uuid));
            }
        }
        out
    }
}

impl Source for NvmlSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Nvml
    }

    fn sample(&mut self) -> Result<SourceSample, SourceError> {
        self.sample_at(Instant::now())
    }

    fn gpu_processes(&self) -> Vec<(String, u32)> {
        self.running_processes()
    }

    fn gpu_minors(&self) -> Vec<(String, u32)> {
        self.gpu_minor_numbers()
    }

    fn gpu_partitions(&self) -> Vec<GpuPartitions> {
        self.reader.mig.clone()
    }
}

/// The process ids of a GPU's process list.
fn pids(processes: Vec<nvml_wrapper::struct_wrappers::device::ProcessInfo>) -> Vec<u32> {
    processes.into_iter().map(|p| p.pid).collect()
}

/// The GPU's total-energy counter (mJ) when it has one, and its energy mode: as `known` says,
/// or found on the first read (a GPU without a counter is integrated from power samples).
fn energy_counter(
    backend: &dyn GpuBackend,
    index: u32,
    uuid: &str,
    known: &KnownGpu,
) -> Result<(Option<u64>, Option<EnergyMode>), GpuFault> {
    let fault = |call: &'static str| {
        move |error| GpuFault {
            index,
            uuid: Some(uuid.to_string()),
            call,
            error,
        }
    };
    let mut mode = known.mode;
    let counter = match mode {
        Some(EnergyMode::Power) => None,
        Some(EnergyMode::Counter) => Some(
            backend
                .total_energy_mj(index)
                .map_err(fault("nvmlDeviceGetTotalEnergyConsumption"))?,
        ),
        None => match backend.total_energy_mj(index) {
            Ok(mj) => {
                mode = Some(EnergyMode::Counter);
                Some(mj)
            }
            Err(e) if means_no_energy_counter(&e) => {
                mode = Some(EnergyMode::Power);
                tracing::warn!(
                    gpu_uuid = %uuid,
                    index,
                    model = %known.model,
                    "GPU has no total-energy counter (pre-Volta; NVML says: {e}); its energy \
                     is integrated from power samples instead, which is less accurate"
                );
                None
            }
            Err(e) => return Err(fault("nvmlDeviceGetTotalEnergyConsumption")(e)),
        },
    };
    Ok((counter, mode))
}

#[cfg(test)]
mod tests;
