//! Helpers for this crate's tests and benchmarks (never used by the exporter itself): one fake
//! RAPL source instead of a copy in each.

use crate::energy::RawEnergy;
use crate::sources::{
    ChannelId, DeviceKey, Domain, EnergyReading, Source, SourceError, SourceKind, SourceSample,
};

/// The range of a common RAPL package counter, µJ (`max_energy_range_uj` of many Intel CPUs).
pub const RAPL_RANGE_UJ: u64 = 262_143_328_850;

/// `sockets` RAPL packages whose counters each gain `step_uj` per sample, wrapping at
/// [`RAPL_RANGE_UJ`].
#[derive(Clone, Debug)]
pub struct FakeRapl {
    pub sockets: u32,
    pub step_uj: u64,
    uj: u64,
}

impl FakeRapl {
    pub fn new(sockets: u32, step_uj: u64) -> Self {
        FakeRapl {
            sockets,
            step_uj,
            uj: 0,
        }
    }
}

impl Source for FakeRapl {
    fn kind(&self) -> SourceKind {
        SourceKind::Rapl
    }
    fn sample(&mut self) -> Result<SourceSample, SourceError> {
        self.uj = (self.uj + self.step_uj) % RAPL_RANGE_UJ;
        Ok(SourceSample {
            energy: (0..self.sockets)
                .map(|s| EnergyReading {
                    channel: ChannelId::of(Domain::RaplPackage, DeviceKey::Socket(s)),
                    raw: RawEnergy::Wrapping {
                        uj: self.uj,
                        range_uj: RAPL_RANGE_UJ,
                        max_watts: 1000.0,
                    },
                })
                .collect(),
            ..Default::default()
        })
    }
}
