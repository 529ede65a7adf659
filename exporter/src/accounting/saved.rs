//! The jobs of a state to save, written straight from their records: the JSON of
//! [`crate::state::State::jobs`] without building a [`JobState`] (about 20 string allocations)
//! per job and save. [`Accounting::save_into`](super::Accounting::save_into) builds the same
//! from the same fields.

use super::{JobMeta, JobRecord};
use crate::state::{field, job_non_finite, key, uj_fields, uj_map, Fields, JobState, Part};
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
    let mut bytes = Vec::new();
    Fields(meta_fields(m)).write_json(&mut bytes)?;
    // JSON written from `str`s and ASCII keys is UTF-8.
    let text = String::from_utf8(bytes).map_err(serde::ser::Error::custom)?;
    let json = RawValue::from_string(text)?;
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
        joules_uj: uj_map(&rec.uj),
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

/// Jobs by id (in id order, as a snapshot lists them), written as [`JobState`]s are: the
/// keys as literals and each job's metadata as rendered once, the rest through `serde_json`.
pub struct SavedJobs<'a>(pub &'a [(Arc<str>, JobRecord)]);

impl Part for SavedJobs<'_> {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.push(b'{');
        for (id, r) in self.0 {
            if out.last() != Some(&b'{') {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, &**id)?;
            out.extend_from_slice(b":{");
            // [`JobState`]'s fields in its order.
            key(out, "joules_uj");
            uj_fields(&r.uj).write_json(out)?;
            field(out, "cpu_seconds", &r.cpu_seconds)?;
            field(out, "core_seconds", &r.core_seconds)?;
            field(out, "gpu_seconds", &r.gpu_seconds)?;
            field(out, "ended_at_unix", &r.ended_at)?;
            key(out, "meta");
            out.extend_from_slice(meta_json(&r.meta)?.get().as_bytes());
            out.push(b'}');
        }
        out.push(b'}');
        Ok(())
    }

    fn non_finite(&self) -> Option<(String, f64)> {
        self.0.iter().find_map(|(id, r)| {
            job_non_finite(id, r.cpu_seconds, r.core_seconds, r.gpu_seconds, r.ended_at)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::owners::{OwnerTotals, SavedOwners};
    use crate::state::{Out, Saver, State, StateError};

    /// A live save with a float JSON cannot hold, in a job or in an owner pair, is refused
    /// before anything is written, naming the file and the field.
    #[test]
    fn a_live_save_refuses_a_non_finite_value_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.json");
        let head = State::new("n1");
        let job = |cpu_seconds| JobRecord {
            cpu_seconds,
            ..Default::default()
        };
        let owner = |core_seconds| {
            let mut o = OwnerTotals::default();
            o.core_seconds = core_seconds;
            o
        };
        let key: crate::owners::OwnerKey = (Arc::from("p"), Arc::from("u"));
        let save = |jobs: &[(Arc<str>, JobRecord)], owners: Vec<_>| {
            let out = Out {
                head: &head,
                jobs: SavedJobs(jobs),
                owners: SavedOwners(owners),
            };
            Saver::new(&file).save_parts(&out)
        };
        let bad_job = [(Arc::from("7"), job(f64::NAN))];
        let good_job = [(Arc::from("7"), job(1.5))];
        for (jobs, owners, field) in [
            (&bad_job[..], vec![], "jobs[\"7\"].cpu_seconds"),
            (
                &good_job[..],
                vec![(key.clone(), owner(f64::INFINITY))],
                "owners[0].core_seconds",
            ),
        ] {
            let err = save(jobs, owners).unwrap_err();
            assert!(matches!(err, StateError::NotFinite { .. }), "{err}");
            let msg = err.to_string();
            assert!(msg.contains(field) && msg.contains("state.json"), "{msg}");
            assert!(!file.exists(), "nothing written");
        }
        save(&good_job, vec![(key, owner(2.0))]).unwrap();
        assert!(file.exists());
    }
}
