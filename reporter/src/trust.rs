//! How much of the report's energy is charged to a project only as its jobs claim it: the
//! exporter marks a job `metadata="environment"` when a published value (typically the account)
//! came from the job's own environment, which its user controls, rather than from the
//! scheduler's prolog or the kernel (docs/job-identity.md). Pure arithmetic on the dataset.

use crate::data::JobData;

/// The `metadata` value of a job whose project is only as the job claims it.
pub const CLAIMED: &str = "environment";

/// What the claimed-project notes say of the cause and the remedy.
const CLAIMED_WHY: &str = "(metadata=\"environment\": no job record from the scheduler's prolog on those nodes). Install the joulebook prolog for attested projects (docs/job-identity.md).";

/// The share (0–1) of the jobs' energy whose project is only as claimed by the job, and that
/// energy in joules; `None` when the jobs used no energy.
pub fn claimed_share(jobs: &[JobData]) -> Option<(f64, f64)> {
    let total: f64 = jobs.iter().map(|j| j.energy.total()).sum();
    if total <= 0.0 {
        return None;
    }
    let claimed: f64 = jobs
        .iter()
        .filter(|j| j.metadata == CLAIMED)
        .map(|j| j.energy.total())
        .sum();
    Some((claimed / total, claimed))
}

/// A note for the report when any of the jobs' energy is charged on the jobs' word alone.
pub fn claimed_project_note(jobs: &[JobData]) -> Option<String> {
    let (share, joules) = claimed_share(jobs).filter(|(s, _)| *s > 0.0)?;
    Some(format!(
        "{:.1} % of the jobs' energy ({:.1} kWh) is charged to projects only as the jobs themselves claim them {CLAIMED_WHY}",
        share * 100.0,
        joules / 3.6e6
    ))
}

/// The same note for a summary, which read no job's energy: the share of the jobs instead.
pub fn claimed_jobs_note(claimed: usize, jobs: usize) -> Option<String> {
    (claimed > 0 && jobs > 0).then(|| {
        format!(
            "{claimed} of {jobs} jobs ({:.1} %) are charged to projects only as the jobs themselves claim them {CLAIMED_WHY}",
            claimed as f64 * 100.0 / jobs as f64
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ByComponent;

    fn job(metadata: &str, cpu: f64) -> JobData {
        JobData {
            metadata: metadata.into(),
            energy: ByComponent {
                cpu,
                ..ByComponent::default()
            },
            ..JobData::default()
        }
    }

    #[test]
    fn the_claimed_share_counts_environment_jobs_only() {
        let jobs = [
            job("prolog", 3.6e6),
            job("environment", 1.8e6),
            job("kernel", 1.8e6),
            job("environment", 1.8e6),
        ];
        let (share, joules) = claimed_share(&jobs).expect("share");
        assert_eq!((share, joules), (0.4, 3.6e6));
        let note = claimed_project_note(&jobs).expect("note");
        assert!(
            note.starts_with("40.0 % of the jobs' energy (1.0 kWh)"),
            "{note}"
        );
        assert_eq!(claimed_project_note(&jobs[..1]), None);
        assert_eq!(claimed_share(&[]), None);
        let note = claimed_jobs_note(1, 8).expect("note");
        assert!(
            note.starts_with("1 of 8 jobs (12.5 %) are charged"),
            "{note}"
        );
        assert_eq!(claimed_jobs_note(0, 8), None);
    }
}
