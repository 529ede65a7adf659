//! Where a BMC's node power and energy are: the chassis chosen, the resource and property of
//! each reading (see the parent module for the order), and reading them with their units. Every
//! link followed goes through the parent's same-origin check (`get_json`).

use super::{shown_link, Fail, RedfishMeter, CHASSIS_PATH};
use crate::sources::bmc::Reading;
use crate::sources::SourceError;
use serde_json::Value;

/// Most chassis fetched during discovery (blade enclosures list a few dozen).
const MAX_CHASSIS: usize = 32;
/// Most sensors fetched during discovery.
const MAX_SENSORS: usize = 64;

/// What a reading is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Quantity {
    Power,
    Energy,
}

/// Where a reading lives: the resource, the JSON pointer to the object that holds it, the
/// property, and the units it has when `ReadingUnits` is absent.
#[derive(Clone, Debug, PartialEq)]
struct Locator {
    uri: String,
    pointer: String,
    property: &'static str,
    default_units: &'static str,
    quantity: Quantity,
}

impl Locator {
    fn describe(&self) -> String {
        let inner = self.pointer.trim_start_matches('/').replace('/', ".");
        if inner.is_empty() {
            format!("{} ({})", self.uri, self.property)
        } else {
            format!("{} ({inner}.{})", self.uri, self.property)
        }
    }
}

/// The result of discovery: which chassis, and where its power and energy are.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Plan {
    chassis: String,
    power: Option<Locator>,
    energy: Option<Locator>,
}

/// Power unit symbols (UCUM, case-sensitive) and their factor to watts.
pub fn watts_per_unit(units: &str) -> Option<f64> {
    match units.trim() {
        "W" => Some(1.0),
        "kW" => Some(1e3),
        "mW" => Some(1e-3),
        _ => None,
    }
}

/// Energy unit symbols (UCUM, case-sensitive; `kWh` and `Wh` also seen) and their factor to
/// joules.
pub fn joules_per_unit(units: &str) -> Option<f64> {
    match units.trim() {
        "kW.h" | "kWh" => Some(crate::sources::bmc::JOULES_PER_KWH),
        "W.h" | "Wh" => Some(3600.0),
        "J" => Some(1.0),
        "kJ" => Some(1e3),
        _ => None,
    }
}

impl RedfishMeter {
    pub(super) fn discover(&mut self) -> Result<Plan, Fail> {
        let members: Vec<String> = match &self.opts.chassis_id {
            Some(id) => vec![format!("{CHASSIS_PATH}/{id}")],
            None => {
                let coll = self.get_json(CHASSIS_PATH)?;
                members(&coll).into_iter().take(MAX_CHASSIS).collect()
            }
        };
        let mut candidates: Vec<(u8, String, Value)> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for uri in members {
            let v = self.get_json(&uri)?;
            let ty = v.get("ChassisType").and_then(Value::as_str);
            seen.push(format!(
                "{} ({})",
                last_segment(&uri),
                ty.unwrap_or("no type")
            ));
            let rank = if self.opts.chassis_id.is_some() {
                Some(0)
            } else {
                chassis_rank(ty)
            };
            if let Some(rank) = rank {
                candidates.push((rank, uri, v));
            }
        }
        candidates.sort_by_key(|(rank, _, _)| *rank);
        for (_, uri, v) in candidates {
            if let Some(plan) = self.plan_for(&uri, &v)? {
                tracing::info!(
                    source = "bmc",
                    chassis = %plan.chassis,
                    power = %plan.power.as_ref().map_or("none".into(), Locator::describe),
                    energy = %plan.energy.as_ref().map_or("none".into(), Locator::describe),
                    "BMC node power found (set sources.bmc.chassis_id to choose another chassis)"
                );
                return Ok(plan);
            }
        }
        let looked = if seen.is_empty() {
            "none listed".to_string()
        } else {
            seen.join(", ")
        };
        Err(Fail::rediscover(
            SourceError::new(format!(
                "no chassis of the BMC at {} reports node power or energy (chassis: {looked})",
                self.base
            ))
            .with_fix(
                "set sources.bmc.chassis_id to the chassis that holds the node's power reading \
                 (automatic choice only considers whole-node chassis types), or read the BMC with \
                 sources.bmc.kind: ipmi",
            ),
        ))
    }

    /// Where a chassis reports power and energy, if anywhere.
    fn plan_for(&mut self, uri: &str, chassis: &Value) -> Result<Option<Plan>, Fail> {
        let mut plan = Plan {
            chassis: uri.to_string(),
            power: None,
            energy: None,
        };
        if let Some(env) = link(chassis, "EnvironmentMetrics") {
            let doc = self.get_json(&env)?;
            if has_number(&doc, "/PowerWatts", "Reading") {
                plan.power = Some(Locator {
                    uri: env.clone(),
                    pointer: "/PowerWatts".into(),
                    property: "Reading",
                    default_units: "W",
                    quantity: Quantity::Power,
                });
            }
            if has_number(&doc, "/EnergykWh", "Reading") {
                plan.energy = Some(Locator {
                    uri: env,
                    pointer: "/EnergykWh".into(),
                    property: "Reading",
                    default_units: "kW.h",
                    quantity: Quantity::Energy,
                });
            }
        }
        if plan.power.is_none() || plan.energy.is_none() {
            if let Some(sensors) = link(chassis, "Sensors") {
                let (power, energy) = self.scan_sensors(&sensors)?;
                plan.power = plan.power.or(power);
                plan.energy = plan.energy.or(energy);
            }
        }
        if plan.power.is_none() {
            if let Some(power) = link(chassis, "Power") {
                let doc = self.get_json(&power)?;
                let entry = doc
                    .get("PowerControl")
                    .and_then(Value::as_array)
                    .and_then(|a| {
                        a.iter()
                            .position(|c| c.get("PowerConsumedWatts").is_some_and(Value::is_number))
                    });
                if let Some(i) = entry {
                    plan.power = Some(Locator {
                        uri: power,
                        pointer: format!("/PowerControl/{i}"),
                        property: "PowerConsumedWatts",
                        default_units: "W",
                        quantity: Quantity::Power,
                    });
                }
            }
        }
        Ok((plan.power.is_some() || plan.energy.is_some()).then_some(plan))
    }

    fn scan_sensors(
        &mut self,
        collection: &str,
    ) -> Result<(Option<Locator>, Option<Locator>), Fail> {
        let coll = self.get_json(collection)?;
        let mut power: Vec<(String, bool)> = Vec::new();
        let mut energy: Vec<(String, bool, &'static str)> = Vec::new();
        let named = members(&coll).into_iter().filter(|m| {
            let l = m.to_ascii_lowercase();
            ["power", "energy", "pwr", "watt", "kwh"]
                .iter()
                .any(|k| l.contains(k))
        });
        for uri in named.take(MAX_SENSORS) {
            // A link elsewhere is an error; one broken sensor does not stop the search.
            self.url_of(&uri).map_err(Fail::rediscover)?;
            let Ok(s) = self.get_json(&uri) else { continue };
            if !s.get("Reading").is_some_and(Value::is_number) {
                continue;
            }
            let chassis_context =
                s.get("PhysicalContext").and_then(Value::as_str) == Some("Chassis");
            match s.get("ReadingType").and_then(Value::as_str) {
                Some("Power") => power.push((uri, chassis_context)),
                Some("EnergykWh") => energy.push((uri, chassis_context, "kW.h")),
                Some("EnergyWh") => energy.push((uri, chassis_context, "W.h")),
                Some("EnergyJoules") => energy.push((uri, chassis_context, "J")),
                _ => {}
            }
        }
        let power = pick(&power, |p| p.1).map(|(uri, _)| Locator {
            uri: uri.clone(),
            pointer: String::new(),
            property: "Reading",
            default_units: "W",
            quantity: Quantity::Power,
        });
        let energy = pick(&energy, |e| e.1).map(|(uri, _, units)| Locator {
            uri: uri.clone(),
            pointer: String::new(),
            property: "Reading",
            default_units: units,
            quantity: Quantity::Energy,
        });
        Ok((power, energy))
    }

    pub(super) fn read_plan(&mut self, plan: &Plan) -> Result<Reading, Fail> {
        let mut docs: Vec<(String, Value)> = Vec::new();
        for loc in [plan.power.as_ref(), plan.energy.as_ref()]
            .into_iter()
            .flatten()
        {
            if !docs.iter().any(|(u, _)| *u == loc.uri) {
                let doc = self.get_json(&loc.uri)?;
                docs.push((loc.uri.clone(), doc));
            }
        }
        let value = |loc: &Locator| -> Result<f64, Fail> {
            let url = self
                .url_of(&loc.uri)
                .unwrap_or_else(|_| shown_link(&loc.uri));
            let doc = docs
                .iter()
                .find(|(u, _)| *u == loc.uri)
                .map(|(_, d)| d)
                .unwrap_or(&Value::Null);
            extract(doc, loc).map_err(|e| {
                Fail::rediscover(SourceError::new(format!("Redfish {url}: {e}")).with_fix(
                    "the BMC's answer changed shape or units; it is looked up again at the next \
                     poll, and if this persists, report the BMC model with this message",
                ))
            })
        };
        let watts = plan.power.as_ref().map(&value).transpose()?;
        let energy_uj = match plan.energy.as_ref().map(&value).transpose()? {
            None => None,
            Some(j) if j.is_finite() && j >= 0.0 && j * 1e6 < u64::MAX as f64 => {
                Some((j * 1e6).round() as u64)
            }
            Some(j) => {
                return Err(Fail::rediscover(SourceError::new(format!(
                    "Redfish {}: energy counter reads {j} J, not a non-negative number",
                    plan.energy
                        .as_ref()
                        .map_or(String::new(), Locator::describe)
                ))))
            }
        };
        Ok(Reading { watts, energy_uj })
    }
}

/// `Members[].@odata.id` of a collection.
fn members(coll: &Value) -> Vec<String> {
    coll.get("Members")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|m| m.get("@odata.id").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The `@odata.id` of a link property.
fn link(v: &Value, name: &str) -> Option<String> {
    v.get(name)
        .and_then(|l| l.get("@odata.id"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn last_segment(uri: &str) -> &str {
    uri.trim_end_matches('/').rsplit('/').next().unwrap_or(uri)
}

fn has_number(doc: &Value, pointer: &str, property: &str) -> bool {
    doc.pointer(pointer)
        .and_then(|o| o.get(property))
        .is_some_and(Value::is_number)
}

/// Order of automatic chassis choice (lower first); `None`: never chosen automatically.
fn chassis_rank(chassis_type: Option<&str>) -> Option<u8> {
    match chassis_type {
        Some("RackMount" | "StandAlone" | "Blade" | "Sled" | "Cartridge") => Some(0),
        None | Some("Enclosure" | "Other") => Some(1),
        Some(_) => None,
    }
}

/// Among candidates, the one in chassis context, else the only one.
fn pick<T>(items: &[T], chassis_context: impl Fn(&T) -> bool) -> Option<&T> {
    items
        .iter()
        .find(|i| chassis_context(i))
        .or_else(|| (items.len() == 1).then(|| &items[0]))
}

/// The reading at a locator, in watts (power) or joules (energy).
fn extract(doc: &Value, loc: &Locator) -> Result<f64, String> {
    let obj = doc.pointer(&loc.pointer).ok_or_else(|| {
        format!(
            "{} is missing",
            if loc.pointer.is_empty() {
                "the resource"
            } else {
                &loc.pointer
            }
        )
    })?;
    let reading = match obj.get(loc.property) {
        Some(Value::Number(n)) => n
            .as_f64()
            .ok_or_else(|| format!("{} is not a number", loc.property))?,
        Some(Value::Null) | None => {
            return Err(format!(
                "{} has no reading (null or absent)",
                loc.describe()
            ))
        }
        Some(other) => {
            let shown: String = other.to_string().chars().take(40).collect();
            return Err(format!("{} is {shown}, not a number", loc.describe()));
        }
    };
    let units = obj
        .get("ReadingUnits")
        .and_then(Value::as_str)
        .unwrap_or(loc.default_units);
    let factor = match loc.quantity {
        Quantity::Power => watts_per_unit(units).ok_or_else(|| {
            format!(
                "{} has ReadingUnits {units:?}, not a unit of power (W, kW or mW expected)",
                loc.describe()
            )
        })?,
        Quantity::Energy => joules_per_unit(units).ok_or_else(|| {
            format!(
                "{} has ReadingUnits {units:?}, not a unit of energy (kW.h, W.h or J expected)",
                loc.describe()
            )
        })?,
    };
    Ok(reading * factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn units_are_converted_or_refused() {
        let loc = |units: &'static str, q| Locator {
            uri: "/s".into(),
            pointer: String::new(),
            property: "Reading",
            default_units: units,
            quantity: q,
        };
        let p = loc("W", Quantity::Power);
        assert_eq!(extract(&json!({"Reading": 245}), &p).unwrap(), 245.0);
        assert_eq!(
            extract(&json!({"Reading": 0.245, "ReadingUnits": "kW"}), &p).unwrap(),
            245.0
        );
        assert_eq!(
            extract(&json!({"Reading": 245000, "ReadingUnits": "mW"}), &p).unwrap(),
            245.0
        );
        // Megawatts are not milliwatts, and are not a node's unit either.
        let e = extract(&json!({"Reading": 1, "ReadingUnits": "MW"}), &p).unwrap_err();
        assert!(e.contains("\"MW\""), "{e}");
        let e = extract(&json!({"Reading": 5, "ReadingUnits": "Cel"}), &p).unwrap_err();
        assert!(e.contains("not a unit of power"), "{e}");
        let e = extract(&json!({"Reading": null}), &p).unwrap_err();
        assert!(e.contains("no reading"), "{e}");
        let e = extract(&json!({"Reading": "245 W"}), &p).unwrap_err();
        assert!(e.contains("not a number"), "{e}");
        let en = loc("kW.h", Quantity::Energy);
        assert_eq!(extract(&json!({"Reading": 2.5}), &en).unwrap(), 9e6);
        assert_eq!(
            extract(&json!({"Reading": 10, "ReadingUnits": "W.h"}), &en).unwrap(),
            36000.0
        );
        assert!(extract(&json!({"Reading": 10, "ReadingUnits": "W"}), &en).is_err());
    }

    #[test]
    fn legacy_power_control_path() {
        let loc = Locator {
            uri: "/redfish/v1/Chassis/1/Power".into(),
            pointer: "/PowerControl/0".into(),
            property: "PowerConsumedWatts",
            default_units: "W",
            quantity: Quantity::Power,
        };
        let doc = json!({"PowerControl": [{"PowerConsumedWatts": 312}]});
        assert_eq!(extract(&doc, &loc).unwrap(), 312.0);
        assert_eq!(
            loc.describe(),
            "/redfish/v1/Chassis/1/Power (PowerControl.0.PowerConsumedWatts)"
        );
    }

    #[test]
    fn chassis_choice_prefers_whole_nodes() {
        assert_eq!(chassis_rank(Some("RackMount")), Some(0));
        assert_eq!(chassis_rank(Some("Enclosure")), Some(1));
        assert_eq!(chassis_rank(None), Some(1));
        assert_eq!(chassis_rank(Some("Module")), None);
        assert_eq!(chassis_rank(Some("Rack")), None);
    }
}
