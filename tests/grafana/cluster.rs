//! The cluster overview dashboard.

use super::*;

pub(super) fn cluster_overview() -> Value {
    let mut l = Layout::new();
    cluster_overview_headline(&mut l);
    l.row("Power");
    cluster_overview_power(&mut l);
    l.row("Idle waste");
    cluster_overview_idle_waste(&mut l);
    l.row("GPU share and CO2e");
    cluster_overview_gpu_share_and_co2e(&mut l);
    dashboard(
        "joulebook-cluster",
        "joulebook / Cluster overview",
        "Power and energy of the cluster by component, the share held by no job (idle waste), the GPU share and CO2e.",
        vec![var_cluster(), var_co2()],
        l,
    )
}

/// The headline figures: power, energy, unallocated share, GPU share, CO2e.
fn cluster_overview_headline(l: &mut Layout) {
    l.add(
        stat(
            "Power now",
            "Power of the selected clusters' nodes, all components (5-minute average).",
            "watt",
            qi(
                "A",
                &format!("sum(cluster:joulebook_node_power_watts:rate5m{{{C}}})"),
                "",
            ),
        ),
        5,
        4,
    );
    l.add(
        stat(
            "Energy over the range",
            "Energy of the nodes over the dashboard's time range.",
            "kwatth",
            qi(
                "A",
                &kwh(&format!("joulebook_node_joules_total{{{C}}}")),
                "",
            ),
        ),
        5,
        4,
    );
    l.add(
        stat(
            "Unallocated (idle) share over the range",
            "Energy that no job held (idle but powered hardware) over node energy, over the dashboard's range.",
            "percentunit",
            qi(
                "A",
                &format!(
                    "sum(increase(joulebook_unallocated_joules_total{{{C}}}[$__range])) / sum(increase(joulebook_node_joules_total{{{C}}}[$__range]))"
                ),
                "",
            ),
        ),
        5,
        4,
    );
    l.add(
        stat(
            "GPU share now",
            "GPU power over node power.",
            "percentunit",
            qi(
                "A",
                &format!(
                    r#"sum(cluster_component:joulebook_node_power_watts:rate5m{{{C}, component="gpu"}}) / sum(cluster:joulebook_node_power_watts:rate5m{{{C}}})"#
                ),
                "",
            ),
        ),
        4,
        4,
    );
    l.add(
        stat(
            "CO2e over the range",
            "Node energy over the range times the carbon intensity variable (g CO2e/kWh, see its description for the default's source). IT energy only: multiply by the site's PUE for the facility.",
            "masskg",
            qi(
                "A",
                &format!("{} * $co2_intensity / 1000", kwh(&format!("joulebook_node_joules_total{{{C}}}"))),
                "",
            ),
        ),
        5,
        4,
    );
}

/// The row "Power".
fn cluster_overview_power(l: &mut Layout) {
    l.add(
        timeseries(
            "Power by component",
            "cpu (RAPL packages or the estimate), dram, gpu (NVML), other (BMC minus the rest, where a BMC is read). Stacked: the top is the nodes' total.",
            "watt",
            true,
            vec![q(
                "A",
                &format!("sum by (component) (cluster_component:joulebook_node_power_watts:rate5m{{{C}}})"),
                "{{component}}",
            )],
        ),
        12,
        9,
    );
    l.add(
        timeseries(
            "Held by jobs vs unallocated",
            "Power attributed to jobs and power of hardware no job held. Stacked: the top is the nodes' total.",
            "watt",
            true,
            vec![
                q("A", &format!("sum(cluster_component:joulebook_job_power_watts:rate5m{{{C}}})"), "jobs"),
                q("B", &format!("sum(cluster:joulebook_unallocated_power_watts:rate5m{{{C}}})"), "unallocated (idle)"),
            ],
        ),
        12,
        9,
    );
}

/// The row "Idle waste".
fn cluster_overview_idle_waste(l: &mut Layout) {
    l.add(
        timeseries(
            "Unallocated power by component",
            "Power of hardware that no job held.",
            "watt",
            true,
            vec![q(
                "A",
                &format!("sum by (component) (cluster_component:joulebook_unallocated_power_watts:rate5m{{{C}}})"),
                "{{component}}",
            )],
        ),
        12,
        8,
    );
    l.add(
        timeseries(
            "Unallocated share",
            "Unallocated energy over node energy: over 5 minutes, over the last day (what JoulebookClusterIdleShareHigh reads), and the alert's threshold.",
            "percentunit",
            false,
            vec![
                q("A", &format!("cluster:joulebook_unallocated_energy:ratio_rate5m{{{C}}}"), "{{cluster}} 5 min"),
                q("B", &format!("cluster:joulebook_unallocated_energy:ratio_1d{{{C}}}"), "{{cluster}} last day"),
                q("C", "joulebook:threshold:cluster_idle_share_ratio", "alert threshold"),
            ],
        ),
        12,
        8,
    );
    l.add(
        table(
            "Nodes with the most unallocated power",
            "Now, the 15 nodes whose unallocated hardware draws most.",
            vec![qi(
                "A",
                &format!("topk(15, sum by (instance) (instance:joulebook_unallocated_power_watts:rate5m{{{C}}}))"),
                "",
            )],
            &[("A", "Unallocated power", "watt")],
            "Unallocated power",
        ),
        12,
        8,
    );
    l.add(
        timeseries(
            "Jobs running",
            "Jobs running on the selected clusters' nodes (a job on several nodes counts once per node).",
            "short",
            false,
            vec![q("A", &format!("sum by (cluster) (joulebook_jobs_running{{{C}}})"), "{{cluster}}")],
        ),
        12,
        8,
    );
}

/// The row "GPU share and CO2e".
fn cluster_overview_gpu_share_and_co2e(l: &mut Layout) {
    l.add(
        timeseries(
            "Share of power by component",
            "Each component's power over the nodes' total.",
            "percentunit",
            false,
            vec![q(
                "A",
                &format!("cluster_component:joulebook_node_power:ratio_rate5m{{{C}}}"),
                "{{cluster}} {{component}}",
            )],
        ),
        12,
        8,
    );
    l.add(
        timeseries(
            "CO2e emission rate",
            "Node power times the carbon intensity variable, in kg CO2e per hour.",
            "suffix:kg/h",
            false,
            vec![q(
                "A",
                &format!("sum(cluster:joulebook_node_power_watts:rate5m{{{C}}}) / 1000 * $co2_intensity / 1000"),
                "CO2e",
            )],
        ),
        12,
        8,
    );
}
