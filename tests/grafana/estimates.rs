//! The estimates dashboard (formulas against measurement).

use super::*;

pub(super) fn estimates() -> Value {
    let mut l = Layout::new();
    estimates_over_time(&mut l);
    estimates_by_project(&mut l);
    dashboard(
        "joulebook-estimates",
        "joulebook / Estimation methods vs measurement",
        "Green Algorithms and ML CO2 Impact computed live from the jobs' allocations, against the energy measured and attributed to the same jobs.",
        vec![var_cluster(), var_project()],
        l,
    )
}

/// The estimates against the measurement over time, in total and by component.
fn estimates_over_time(l: &mut Layout) {
    l.add(
        timeseries(
            "Estimates against measurement",
            "Jobs' power: Green Algorithms (cores x TDP per core + memory x 0.3725 W/GB + GPUs x GPU TDP; doi 10.1002/advs.202100707) against the jobs' measured cpu + dram + gpu; ML CO2 Impact (GPUs x TDP; arXiv 1910.09700) against the jobs' measured GPU power. GPU TDP: the GPUs' enforced power limit. No PUE on either side.",
            "watt",
            false,
            vec![
                q("A", &format!("sum(cluster:joulebook_green_algorithms_power_watts:estimate5m{{{C}}})"), "Green Algorithms"),
                q("B", &format!("sum(cluster:joulebook_job_measured_power_watts:rate5m{{{C}}})"), "measured cpu+dram+gpu"),
                q("C", &format!("sum(cluster:joulebook_mlco2_power_watts:estimate5m{{{C}}})"), "ML CO2 Impact"),
                q("D", &format!("sum(cluster:joulebook_job_measured_gpu_power_watts:rate5m{{{C}}})"), "measured gpu"),
            ],
        ),
        12,
        9,
    );
    l.add(
        timeseries(
            "Estimate over measurement",
            "Above 1 the method overestimates the jobs' energy, below 1 it underestimates.",
            "short",
            false,
            vec![
                q(
                    "A",
                    &format!("cluster:joulebook_green_algorithms_power:ratio_measured5m{{{C}}}"),
                    "{{cluster}} Green Algorithms",
                ),
                q(
                    "B",
                    &format!("cluster:joulebook_mlco2_power:ratio_measured5m{{{C}}}"),
                    "{{cluster}} ML CO2 Impact",
                ),
            ],
        ),
        12,
        9,
    );
    l.add(
        timeseries(
            "By component: Green Algorithms against measurement",
            "cpu: allocated CPUs x TDP per physical core; dram: memory limit x 0.3725 W/GB; gpu: GPUs held x power limit. Measured: what the exporters attribute to the jobs.",
            "watt",
            false,
            vec![
                q(
                    "A",
                    &format!("sum by (component) (cluster_component:joulebook_green_algorithms_power_watts:estimate5m{{{C}}})"),
                    "Green Algorithms {{component}}",
                ),
                q(
                    "B",
                    &format!(r#"sum by (component) (cluster_component:joulebook_job_power_watts:rate5m{{{C}, component=~"cpu|dram|gpu"}})"#),
                    "measured {{component}}",
                ),
            ],
        ),
        24,
        9,
    );
}

/// The estimates against the measurement by project, over the range and now.
fn estimates_by_project(l: &mut Layout) {
    let sum_range = |rule: &str, extra: &str| {
        format!(
            r#"sum by (account) (sum_over_time({rule}{{{C}, account=~"$project"{extra}}}[$__range]))"#
        )
    };
    l.add(
        table(
            "By project, over the range",
            "Estimate over measurement for each project over the dashboard's range (ratios of the recorded power series' sums), and the power now. A method that ranks projects differently from the measurement shows different ratios.",
            vec![
                qi(
                    "A",
                    &format!(
                        "{} / {}",
                        sum_range("account:joulebook_green_algorithms_power_watts:estimate5m", ""),
                        sum_range("account_component:joulebook_job_power_watts:rate5m", r#", component=~"cpu|dram|gpu""#)
                    ),
                    "",
                ),
                qi(
                    "B",
                    &format!(
                        "{} / {}",
                        sum_range("account:joulebook_mlco2_power_watts:estimate5m", ""),
                        sum_range("account_component:joulebook_job_power_watts:rate5m", r#", component="gpu""#)
                    ),
                    "",
                ),
                qi("C", &format!(r#"sum by (account) (account:joulebook_job_power_watts:rate5m{{{C}, account=~"$project"}})"#), ""),
                qi(
                    "D",
                    &format!(r#"sum by (account) (account:joulebook_green_algorithms_power_watts:estimate5m{{{C}, account=~"$project"}})"#),
                    "",
                ),
            ],
            &[
                ("A", "Green Algorithms / measured", "short"),
                ("B", "ML CO2 / measured GPU", "short"),
                ("C", "Measured now", "watt"),
                ("D", "Green Algorithms now", "watt"),
            ],
            "Measured now",
        ),
        24,
        9,
    );
}
