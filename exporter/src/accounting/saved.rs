//! The jobs of a state to save, written straight from their records: the JSON of
//! [`crate::state::State::jobs`] without building a [`JobState`] (about 20 string allocations)
//! per job and save. [`Accounting::save_into`](super::Accounting::save_into) builds the same
//! from the same fields.

use super::{JobMeta, JobRecord};
use crate::state::{job_non_finite, uj_fields, Fields, JobState, Part};
use serde::ser::{Error, SerializeMap, SerializeStruct, Serializer};
use serde::Serialize;
use serde_json::value::RawValue;
use std::sync::{Arc, OnceLock};

/// A job's metadata as JSON, made once ([`JobMeta::saved`]): most of a job's bytes in a save.
/// Not part of the metadata's value: equal to any other.
#[derive(Clone, Debug, Default)]
pub struct SavedMeta(OnceLock<Box<RawValue>>);

impl PartialEq for SavedMeta {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for SavedMeta {}

/// `m`'s fields as the state file writes them, rendered at the first call.
fn meta_json(m: &JobMeta) -> Result<&RawValue, serde_json::Error> {
    if let Some(json) = m.saved.0.get() {
        return Ok(json);
    }
    let json = RawValue::from_string(serde_json::to_string(&Fields(meta_fields(m)))?)?;
    Ok(m.saved.0.get_or_init(|| json))
}

/// A job's metadata as the state file keys it, in key order.
pub(super) fn meta_fields(m: &JobMeta) -> [(&'static str, &str); 8] {
    [
        ("account", &m.account),
        ("job_name", &m.job_name),
        ("metadata", &m.metadata),
        ("partition", &m.partition),
        ("scheduler", &m.scheduler),
        ("sluid", &m.sluid),
        ("uid", &m.uid),
        ("user", &m.user),
    ]
}

/// A job's record as the state file keeps it.
pub(super) fn job_state(rec: &JobRecord) -> JobState {
    JobState {
        joules_uj: uj_fields(&rec.uj)
            .0
            .iter()
            .map(|&(k, v)| (k.to_string(), v))
            .collect(),
        cpu_seconds: rec.cpu_seconds,
        core_seconds: rec.core_seconds,
        gpu_seconds: rec.gpu_seconds,
        ended_at_unix: rec.ended_at,
        meta: meta_fields(&rec.meta)
            .iter()
            .map(|&(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// Jobs by id (in id order, as a snapshot lists them), written as [`JobState`]s.
pub struct SavedJobs<'a>(pub &'a [(Arc<str>, JobRecord)]);

impl Serialize for SavedJobs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (id, rec) in self.0 {
            m.serialize_entry(&**id, &SavedJob(rec))?;
        }
        m.end()
    }
}

struct SavedJob<'a>(&'a JobRecord);

impl Serialize for SavedJob<'_> {
    /// [`JobState`]'s fields in its order.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut st = s.serialize_struct("JobState", 6)?;
        st.serialize_field("joules_uj", &uj_fields(&r.uj))?;
        st.serialize_field("cpu_seconds", &r.cpu_seconds)?;
        st.serialize_field("core_seconds", &r.core_seconds)?;
        st.serialize_field("gpu_seconds", &r.gpu_seconds)?;
        st.serialize_field("ended_at_unix", &r.ended_at)?;
        st.serialize_field("meta", meta_json(&r.meta).map_err(S::Error::custom)?)?;
        st.end()
    }
}

impl Part for SavedJobs<'_> {
    fn non_finite(&self) -> Option<(String, f64)> {
        self.0.iter().find_map(|(id, r)| {
            job_non_finite(id, r.cpu_seconds, r.core_seconds, r.gpu_seconds, r.ended_at)
        })
    }
}
