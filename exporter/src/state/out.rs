//! What a save writes: a [`State`] whose jobs and owners may come from elsewhere than its own
//! maps ([`Part`]), so that the running exporter writes them straight from its records instead
//! of building a `State` of strings for every save (about 20 string allocations per job).
//!
//! Rule: [`Out::to_json`] writes the bytes of `serde_json::to_vec(&State)` with the same jobs
//! and owners (tests `a_state_written_from_its_parts_is_the_state_written_whole` and, for the
//! live parts, the engine's `a_save_from_the_snapshot_writes_what_to_state_gives`), so a file
//! reads back through [`State`] whichever way it was written.

use super::{JobState, OwnerState, State};
use joulebook_common::{Component, PerComponent};
use serde::Serialize;
use std::collections::BTreeMap;

/// The jobs or the owners of a state to save, serialized as [`State::jobs`] (a map by job id)
/// or [`State::owners`] (a list) are.
pub trait Part {
    /// The first float that JSON cannot hold, as (field, value), the field named as in
    /// `jobs["id"].cpu_seconds` or `owners[3].start_unix`.
    fn non_finite(&self) -> Option<(String, f64)>;

    /// Appends the JSON of `self` to `out`, as [`State`] serializes its part.
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()>;
}

/// The first of `fields` that is NaN or infinite, with its name as `field` spells it.
fn first_non_finite<'a>(
    field: impl Fn(&str) -> String,
    fields: impl IntoIterator<Item = (&'a str, Option<f64>)>,
) -> Option<(String, f64)> {
    fields
        .into_iter()
        .find_map(|(name, v)| v.filter(|v| !v.is_finite()).map(|v| (field(name), v)))
}

/// The first float of job `id`'s [`JobState`] fields that JSON cannot hold.
pub fn job_non_finite(
    id: &str,
    cpu_seconds: f64,
    core_seconds: f64,
    gpu_seconds: f64,
    ended_at_unix: Option<f64>,
) -> Option<(String, f64)> {
    first_non_finite(
        |name| format!("jobs[{id:?}].{name}"),
        [
            ("cpu_seconds", Some(cpu_seconds)),
            ("core_seconds", Some(core_seconds)),
            ("gpu_seconds", Some(gpu_seconds)),
            ("ended_at_unix", ended_at_unix),
        ],
    )
}

/// An owner's counters as the state writes them: [`OwnerState`]'s fields, borrowed, in its
/// order, with the energy as any map `J` of component names.
pub struct OwnerOut<'a, J> {
    pub account: &'a str,
    pub user: &'a str,
    pub joules_uj: J,
    pub cpu_seconds: f64,
    pub core_seconds: f64,
    pub gpu_seconds: f64,
    pub elapsed_seconds: f64,
    pub memory_byte_seconds: f64,
    pub jobs: u64,
    pub last_active_unix: f64,
    pub start_unix: Option<f64>,
}

impl<const N: usize> OwnerOut<'_, Fields<u64, N>> {
    /// Appends the owner's JSON, as [`OwnerState`]'s serialization writes it.
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.push(b'{');
        field(out, "account", self.account)?;
        field(out, "user", self.user)?;
        key(out, "joules_uj");
        self.joules_uj.write_json(out)?;
        field(out, "cpu_seconds", &self.cpu_seconds)?;
        field(out, "core_seconds", &self.core_seconds)?;
        field(out, "gpu_seconds", &self.gpu_seconds)?;
        field(out, "elapsed_seconds", &self.elapsed_seconds)?;
        field(out, "memory_byte_seconds", &self.memory_byte_seconds)?;
        field(out, "jobs", &self.jobs)?;
        field(out, "last_active_unix", &self.last_active_unix)?;
        field(out, "start_unix", &self.start_unix)?;
        out.push(b'}');
        Ok(())
    }
}

impl<J> OwnerOut<'_, J> {
    /// The first float of the `i`th owner that JSON cannot hold.
    pub fn non_finite(&self, i: usize) -> Option<(String, f64)> {
        first_non_finite(
            |name| format!("owners[{i}].{name}"),
            [
                ("cpu_seconds", Some(self.cpu_seconds)),
                ("core_seconds", Some(self.core_seconds)),
                ("gpu_seconds", Some(self.gpu_seconds)),
                ("elapsed_seconds", Some(self.elapsed_seconds)),
                ("memory_byte_seconds", Some(self.memory_byte_seconds)),
                ("last_active_unix", Some(self.last_active_unix)),
                ("start_unix", self.start_unix),
            ],
        )
    }
}

impl OwnerState {
    fn out(&self) -> OwnerOut<'_, &BTreeMap<String, u64>> {
        OwnerOut {
            account: &self.account,
            user: &self.user,
            joules_uj: &self.joules_uj,
            cpu_seconds: self.cpu_seconds,
            core_seconds: self.core_seconds,
            gpu_seconds: self.gpu_seconds,
            elapsed_seconds: self.elapsed_seconds,
            memory_byte_seconds: self.memory_byte_seconds,
            jobs: self.jobs,
            last_active_unix: self.last_active_unix,
            start_unix: self.start_unix,
        }
    }
}

impl Part for BTreeMap<String, JobState> {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(out, self)
    }

    fn non_finite(&self) -> Option<(String, f64)> {
        self.iter().find_map(|(id, j)| {
            job_non_finite(
                id,
                j.cpu_seconds,
                j.core_seconds,
                j.gpu_seconds,
                j.ended_at_unix,
            )
        })
    }
}

impl Part for Vec<OwnerState> {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(out, self)
    }

    fn non_finite(&self) -> Option<(String, f64)> {
        self.iter()
            .enumerate()
            .find_map(|(i, o)| o.out().non_finite(i))
    }
}

/// A JSON object of `(key, value)` pairs given in key order, with plain ASCII keys.
pub struct Fields<V, const N: usize>(pub [(&'static str, V); N]);

impl<V: Serialize, const N: usize> Fields<V, N> {
    /// Appends the object's JSON, as `serde_json` writes a `BTreeMap` of the same pairs.
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.push(b'{');
        for (k, v) in &self.0 {
            field(out, k, v)?;
        }
        out.push(b'}');
        Ok(())
    }
}

/// Energy by component as the state keys it (`joules_uj`), in key order.
pub fn uj_fields(uj: &PerComponent<u64>) -> Fields<u64, 4> {
    Fields(Component::ALL.map(|c| (c.as_str(), uj[c])))
}

/// [`uj_fields`] as a [`State`] holds them.
pub fn uj_map(uj: &PerComponent<u64>) -> BTreeMap<String, u64> {
    uj_fields(uj)
        .0
        .map(|(k, v)| (k.to_string(), v))
        .into_iter()
        .collect()
}

impl<T: Part + ?Sized> Part for &T {
    fn non_finite(&self) -> Option<(String, f64)> {
        (**self).non_finite()
    }

    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        (**self).write_json(out)
    }
}

/// `head` with `jobs` and `owners` in place of its own (which are not written).
pub struct Out<'a, J, O> {
    pub head: &'a State,
    pub jobs: J,
    pub owners: O,
}

impl<J: Part, O: Part> Out<'_, J, O> {
    /// The first float that JSON cannot hold (see [`Part::non_finite`]).
    pub fn non_finite(&self) -> Option<(String, f64)> {
        let h = self.head;
        first_non_finite(
            str::to_string,
            [
                ("saved_at_unix", Some(h.saved_at_unix)),
                ("counters_start_unix", h.counters_start_unix),
            ],
        )
        .or_else(|| self.jobs.non_finite())
        .or_else(|| self.owners.non_finite())
    }
}

impl<J: Part, O: Part> Out<'_, J, O> {
    /// The JSON a save writes: [`State`]'s fields in its order (the derived `Serialize` writes
    /// them so), the jobs and owners by [`Part::write_json`].
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        let h = self.head;
        let mut out = Vec::with_capacity(4096);
        out.push(b'{');
        field(&mut out, "format", &h.format)?;
        field(&mut out, "version", &h.version)?;
        field(&mut out, "hostname", &h.hostname)?;
        field(&mut out, "saved_at_unix", &h.saved_at_unix)?;
        field(&mut out, "boot_id", &h.boot_id)?;
        field(&mut out, "channels", &h.channels)?;
        field(&mut out, "node", &h.node)?;
        field(&mut out, "unallocated", &h.unallocated)?;
        key(&mut out, "jobs");
        self.jobs.write_json(&mut out)?;
        field(&mut out, "counters", &h.counters)?;
        field(&mut out, "raw", &h.raw)?;
        key(&mut out, "owners");
        self.owners.write_json(&mut out)?;
        field(&mut out, "counters_start_unix", &h.counters_start_unix)?;
        out.push(b'}');
        Ok(out)
    }
}

/// Appends `"name":` to an object being written, after a comma unless it is the first member.
/// `name` is plain ASCII (no character JSON escapes).
pub fn key(out: &mut Vec<u8>, name: &str) {
    if out.last() != Some(&b'{') {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Appends `"name":value` (see [`key`]).
pub fn field<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    name: &str,
    value: &T,
) -> serde_json::Result<()> {
    key(out, name);
    serde_json::to_writer(&mut *out, value)
}
