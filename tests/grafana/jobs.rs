//! The jobs dashboard.

use super::*;

/// Job energy over the range joined with its metadata (`max_over_time` keeps jobs that ended
/// during the range), filtered by the project and user variables.
fn job_join(counter: &str, by: &str) -> String {
    format!(
        r#"sum by ({by}) (increase({counter}{{{C}}}[$__range]) * on (cluster, instance, job_id) group_left (account, user) max_over_time(joulebook_job_info{{{C}, account=~"$project", user=~"$user"}}[$__range]))"#
    )
}

pub(super) fn jobs() -> Value {
    let mut l = Layout::new();
    jobs_rankings(&mut l);
    l.row("Over time");
    jobs_over_time(&mut l);
    l.row("One job ($job_id)");
    jobs_one_job_job_id(&mut l);
    dashboard(
        "joulebook-jobs",
        "joulebook / Projects, users and jobs",
        "Top consumers by measured energy, against core-hours and GPU-hours, and one job's energy over time.",
        vec![var_cluster(), var_project(), var_user(), var_job_id()],
        l,
    )
}

/// Top projects, users and jobs over the range.
fn jobs_rankings(l: &mut Layout) {
    let consumers = |by: &str, title: &str, label: &str| {
        table(
            title,
            "Over the dashboard's range: energy attributed to jobs (all components), allocated core-hours and GPU-hours, and energy per core-hour. Rankings by energy and by core-hours differ: that is the point.",
            vec![
                qi("A", &format!("topk(20, {} / 3.6e6)", job_join("joulebook_job_joules_total", by)), ""),
                qi("B", &format!("{} / 3600", job_join("joulebook_job_core_seconds_total", by)), ""),
                qi("C", &format!("{} / 3600", job_join("joulebook_job_gpu_seconds_total", by)), ""),
                qi(
                    "D",
                    &format!(
                        "{} / {}",
                        job_join("joulebook_job_joules_total", by),
                        job_join("joulebook_job_core_seconds_total", by)
                    ),
                    "",
                ),
            ],
            &[
                ("A", "Energy", "kwatth"),
                ("B", "Core-hours", "short"),
                ("C", "GPU-hours", "short"),
                // J per core-second = Wh per core-hour = W per allocated CPU.
                ("D", "Wh per core-hour", "short"),
            ],
            label,
        )
    };
    l.add(consumers("account", "Top projects", "Energy"), 12, 9);
    l.add(consumers("user", "Top users", "Energy"), 12, 9);
    l.add(
        consumers("job_id, account, user", "Top jobs", "Energy"),
        24,
        9,
    );
}

/// The row "Over time".
fn jobs_over_time(l: &mut Layout) {
    l.add(
        timeseries(
            "Power by project",
            "Power attributed to each project's jobs.",
            "watt",
            true,
            vec![q(
                "A",
                &format!(r#"sum by (account) (account:joulebook_job_power_watts:rate5m{{{C}, account=~"$project"}})"#),
                "{{account}}",
            )],
        ),
        12,
        9,
    );
    l.add(
        timeseries(
            "Power by user",
            "Power attributed to each user's jobs.",
            "watt",
            true,
            vec![q(
                "A",
                &format!(
                    r#"sum by (user) (user:joulebook_job_power_watts:rate5m{{{C}, user=~"$user"}})"#
                ),
                "{{user}}",
            )],
        ),
        12,
        9,
    );
}

/// The row "One job ($job_id)".
fn jobs_one_job_job_id(l: &mut Layout) {
    l.add(
        timeseries(
            "Job power by component",
            "The selected job's power, all its nodes together.",
            "watt",
            true,
            vec![q(
                "A",
                &format!(r#"sum by (component) (job_id_component:joulebook_job_power_watts:rate5m{{{C}, job_id=~"$job_id"}})"#),
                "{{component}}",
            )],
        ),
        12,
        9,
    );
    l.add(
        timeseries(
            "Job energy so far, by node",
            "Cumulative energy attributed to the selected job on each node.",
            "kwatth",
            true,
            vec![q(
                "A",
                &format!(r#"sum by (instance) (joulebook_job_joules_total{{{C}, job_id=~"$job_id"}}) / 3.6e6"#),
                "{{instance}}",
            )],
        ),
        12,
        9,
    );
    l.add(
        table(
            "Job",
            "The selected job's metadata on each node and the GPUs it holds.",
            vec![
                qi(
                    "A",
                    &format!(r#"joulebook_job_info{{{C}, job_id=~"$job_id"}}"#),
                    "",
                ),
                qi(
                    "B",
                    &format!(r#"joulebook_job_allocated_cpus{{{C}, job_id=~"$job_id"}}"#),
                    "",
                ),
                qi(
                    "C",
                    &format!(r#"joulebook_job_allocated_gpus{{{C}, job_id=~"$job_id"}}"#),
                    "",
                ),
            ],
            &[
                ("A", "Info", "short"),
                ("B", "CPUs", "short"),
                ("C", "GPUs", "short"),
            ],
            "instance",
        ),
        24,
        6,
    );
}
