//! The core- and GPU-seconds of only the jobs a report can list (`--job-list top` with the owner
//! totals), read by job id after the rounds instead of for every job in them.
//!
//! Rules:
//! - With the owner totals, a job's core- and GPU-seconds are shown in the job list only; the
//!   project, user and headline figures come from the owner counters. So only the jobs that can
//!   be listed need them: the `n` first ([`JobData::by_energy`]) of the cluster, of each project
//!   and of each user, the scopes of a report and of its mails. Each is the same `last − base`
//!   per series as in the rounds, the flagged (node, job) pairs from raw samples.
//! - The jobs' energy decides both the list and which jobs exist: a job whose energy did not
//!   grow in the period is not met (the exporter adds to a running job's energy and time
//!   counters in the same cycle, so this is a job that did not run then).

use super::jobs::placement_on;
use super::*;

/// The most characters of job ids one matcher lists, so that a query stays well under
/// VictoriaMetrics' limit on its length (`-search.maxQueryLen`, 16 KB by default).
const MAX_MATCHER_CHARS: usize = 6_000;

/// The time counters read for the jobs listed, in the order [`add_time`] takes them.
const TIMES: [MetricDef; 2] = [c::JOB_CORE_SECONDS, c::JOB_GPU_SECONDS];

impl Collector<'_> {
    /// Adds to the jobs of `jobs` that a report listing `n` can show ([`listable`]) their core-
    /// and GPU-seconds, read by job id in batches; `flagged`: the (node, job) pairs whose
    /// counters went down, read from raw samples.
    pub(super) fn listed_times(
        &self,
        jobs: &mut [JobData],
        n: usize,
        flagged: &BTreeSet<PairKey>,
    ) -> Result<(), PromError> {
        let chosen = listable(jobs, n);
        let index: BTreeMap<(&str, &str), usize> = chosen
            .iter()
            .map(|&i| ((jobs[i].cluster.as_str(), jobs[i].job_id.as_str()), i))
            .collect();
        let ids: BTreeSet<&str> = index.keys().map(|(_, id)| *id).collect();
        let batches = id_batches(ids.into_iter());
        self.client
            .progress()
            .stage("jobs listed", batches.len() * 2 * TIMES.len());
        let mut found: Vec<(usize, String, usize, f64)> = Vec::new();
        for batch in &batches {
            let matcher = format!("{}=~{}", l::JOB_ID, quote(&batch.join("|")));
            let queries: Vec<String> = TIMES
                .iter()
                .flat_map(|m| {
                    let sel = self.sel_in(m, Some(&matcher));
                    self.increase_queries(&sel, self.scope.lookback, true)
                })
                .collect();
            let mut answers = self.all_at_end(&queries)?.into_iter();
            let of = |cl: &str, id: &str| index.get(&(cl, id)).copied();
            for (family, m) in TIMES.iter().enumerate() {
                let (last, base) = (
                    answers.next().unwrap_or_default(),
                    answers.next().unwrap_or_default(),
                );
                let rows =
                    self.increases(m, last, base, flagged, |(cl, id, _)| of(cl, id).is_some())?;
                for (labels, v) in rows {
                    let (cl, id) = (labels_str(&labels, CLUSTER), labels_str(&labels, l::JOB_ID));
                    if let Some(i) = of(cl, id) {
                        found.push((i, label(&labels, INSTANCE), family, v));
                    }
                }
            }
        }
        let mut names = Interner::default();
        for (i, instance, family, v) in found {
            add_time(&mut jobs[i], &instance, &mut names, family, v);
        }
        Ok(())
    }
}

/// The jobs of `jobs` (indices) that a report listing its `n` first can show: the `n` first by
/// [`JobData::by_energy`] of the whole list, of each account and of each user.
pub(super) fn listable(jobs: &[JobData], n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by(|&a, &b| JobData::by_energy(&jobs[a], &jobs[b]));
    let (mut accounts, mut users): (BTreeMap<&str, usize>, BTreeMap<&str, usize>) =
        Default::default();
    let mut chosen = Vec::new();
    for (rank, i) in order.into_iter().enumerate() {
        let j = &jobs[i];
        let a = accounts.entry(&j.account).or_default();
        let u = users.entry(&j.user).or_default();
        if rank < n || *a < n || *u < n {
            chosen.push(i);
        }
        *a += 1;
        *u += 1;
    }
    chosen
}

/// `ids` as regular-expression literals, in groups of at most [`MAX_MATCHER_CHARS`].
fn id_batches<'s>(ids: impl Iterator<Item = &'s str>) -> Vec<Vec<String>> {
    let mut batches: Vec<Vec<String>> = Vec::new();
    let mut chars = usize::MAX;
    for id in ids {
        let lit = regex_literal(id);
        if chars.saturating_add(lit.len() + 1) > MAX_MATCHER_CHARS {
            batches.push(Vec::new());
            chars = 0;
        }
        chars += lit.len() + 1;
        if let Some(b) = batches.last_mut() {
            b.push(lit);
        }
    }
    batches
}

/// Adds one series' increase of family `family` (an index into [`TIMES`]) on `instance` to the
/// job, to the placement there (made if the job had no energy on that node).
fn add_time(job: &mut JobData, instance: &str, names: &mut Interner, family: usize, v: f64) {
    let at = placement_on(&mut job.placements, instance, names);
    let pl = &mut job.placements[at];
    if family == 0 {
        pl.core_seconds += v;
        job.core_seconds += v;
    } else {
        pl.gpu_seconds += v;
        job.gpu_seconds += v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, account: &str, user: &str, kj: f64) -> JobData {
        let mut j = JobData {
            job_id: id.into(),
            account: account.into(),
            user: user.into(),
            ..JobData::default()
        };
        j.energy.cpu = kj * 1e3;
        j
    }

    #[test]
    fn the_jobs_listable_are_the_first_of_the_cluster_each_project_and_each_user() {
        let jobs = vec![
            job("1", "a", "ann", 5.0),
            job("2", "a", "ann", 9.0),
            job("3", "a", "bob", 1.0),
            job("4", "b", "bob", 7.0),
            job("5", "b", "cat", 0.5),
            job("6", "a", "ann", 9.0),
        ];
        let ids = |n| -> Vec<&str> {
            let mut v: Vec<&str> = listable(&jobs, n)
                .iter()
                .map(|&i| &*jobs[i].job_id)
                .collect();
            v.sort();
            v
        };
        // One each: the cluster's 2 (tie with 6, lower id), project a's 2, b's 4, ann's 2,
        // bob's 4, cat's 5.
        assert_eq!(ids(1), ["2", "4", "5"]);
        // Two each: 2 and 6 (the cluster's, a's, ann's), b's 4 and 5, bob's 4 and 3, cat's
        // 5; not 1, third in the cluster, in a and for ann.
        assert_eq!(ids(2), ["2", "3", "4", "5", "6"]);
        assert!(ids(0).is_empty());
    }

    #[test]
    fn id_batches_stay_under_their_bound_and_keep_every_id() {
        let ids: Vec<String> = (0..2_000)
            .map(|i| format!("{}.{i}", 1_000_000 + i))
            .collect();
        let batches = id_batches(ids.iter().map(String::as_str));
        assert!(batches.len() > 1);
        for b in &batches {
            assert!(b.iter().map(|s| s.len() + 1).sum::<usize>() <= MAX_MATCHER_CHARS);
        }
        let all: Vec<String> = batches.concat();
        assert_eq!(all.len(), ids.len());
        assert_eq!(all[0], r"1000000\.0");
        assert!(id_batches(std::iter::empty()).is_empty());
    }
}
