//! What the BMC source publishes besides its energy channel: its protocol, how its energy is
//! obtained, its gaps. Here, not in `bmc`, so that a source's sample can carry it without the
//! sources module importing the BMC source.

use serde::{Deserialize, Serialize};

/// The protocol the BMC is read with, as published in `joulebook_bmc_energy_method_info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Redfish,
    Ipmi,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Redfish => "redfish",
            Protocol::Ipmi => "ipmi",
        }
    }
}

/// How the BMC's energy is obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// The BMC's own energy counter (Redfish `EnergykWh`).
    Counter,
    /// Power readings integrated with the trapezoidal rule.
    PowerIntegration,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Counter => "counter",
            Method::PowerIntegration => "power_integration",
        }
    }
}

/// What the BMC source publishes besides its energy channel.
#[derive(Clone, Debug, PartialEq)]
pub struct BmcStatus {
    pub protocol: Protocol,
    /// How the energy is obtained; `None` before the first reading.
    pub method: Option<Method>,
    /// The last power reading, watts; `None` while the BMC is down or its last reading is older
    /// than `max_gap`.
    pub power_watts: Option<f64>,
    /// Seconds over which no energy was counted because readings were more than `max_gap` apart.
    pub gap_seconds_total: f64,
    /// Seconds the counted energy covers (the time between integrated readings): with it, the
    /// sampler compares the BMC's energy with what RAPL and NVML measured over the same span.
    pub covered_seconds_total: f64,
}
