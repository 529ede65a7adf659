//! A summary report's job figures, counted by the server (`--summary`): which jobs did
//! something in the period, under which (account, user), and the scrapes each GPU was held, so
//! that no job's counters, allocations or labels come back.
//!
//! A job counts when its core-seconds changed in the period (its last value in the period minus
//! its value at the start, zero for a job with none then), as the full report lists the jobs
//! with core-seconds or energy; its pair and metadata source are those of its
//! `joulebook_job_info` in the period (one of its series on a node where its labels changed).
//! The server returns one row per job; a job on several nodes (possibly in several rounds)
//! counts once, by a 64-bit hash of its (cluster, job id) (a collision among 10 million jobs:
//! about 3 in a million).

use super::*;
use crate::data::JobCount;
use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

impl Collector<'_> {
    /// The jobs of the period by (account, user), and the scrapes each GPU was held.
    pub fn job_counts(
        &self,
        instances: &[String],
    ) -> Result<(Vec<JobCount>, super::jobs::GpuCounts), PromError> {
        let mut acc = Counts::default();
        self.in_rounds("job count", &self.job_series(), instances, |round| {
            self.counts_round(round, &mut acc)
        })?;
        let jobs = acc
            .by_pair
            .into_iter()
            .map(|((account, user), (jobs, claimed))| JobCount {
                account,
                user,
                jobs,
                claimed,
            })
            .collect();
        Ok((jobs, acc.gpus))
    }

    fn counts_round(&self, round: &Round, acc: &mut Counts) -> Result<(), PromError> {
        let shard = round.matcher();
        let (r, lb, range) = (self.r(), self.scope.lookback, self.range());
        let core = self.sel_in(&c::JOB_CORE_SECONDS, shard.as_deref());
        let info = self.sel_in(&c::JOB_INFO, shard.as_deref());
        let (job, who) = (
            format!("{CLUSTER}, {INSTANCE}, {}", l::JOB_ID),
            format!("{}, {}, {}", l::ACCOUNT, l::USER, l::METADATA),
        );
        let end = format!("last_over_time({core}[{r}s])");
        let queries = [
            format!(
                "count by ({CLUSTER}, {}, {who}) ((({end} - (last_over_time({core}[{lb}s] offset {r}s) or {end} * 0)) != 0) * on ({job}) group_left ({who}) topk by ({job}) (1, last_over_time({info}[{range}])))",
                l::JOB_ID
            ),
            self.gpu_held_query(shard.as_deref()),
        ];
        self.client.progress().stage("job counts", queries.len());
        let mut answers = self.all_at_end(&queries)?.into_iter();
        for s in answers.next().unwrap_or_default() {
            let mut h = DefaultHasher::new();
            (
                labels_str(&s.labels, CLUSTER),
                labels_str(&s.labels, l::JOB_ID),
            )
                .hash(&mut h);
            if acc.seen.insert(h.finish()) {
                let key = (
                    acc.names.get(labels_str(&s.labels, l::ACCOUNT)),
                    acc.names.get(labels_str(&s.labels, l::USER)),
                );
                let n = acc.by_pair.entry(key).or_default();
                n.0 += 1;
                if labels_str(&s.labels, l::METADATA) == crate::trust::CLAIMED {
                    n.1 += 1;
                }
            }
        }
        super::jobs::add_gpu_held(&mut acc.gpus, answers.next().unwrap_or_default());
        Ok(())
    }
}

/// The counts met so far, over the rounds.
#[derive(Default)]
struct Counts {
    names: Interner,
    /// (cluster, job id) hashes of the jobs counted.
    seen: HashSet<u64>,
    /// Jobs, and jobs whose project is only claimed, by (account, user).
    by_pair: BTreeMap<(Name, Name), (usize, usize)>,
    gpus: super::jobs::GpuCounts,
}
