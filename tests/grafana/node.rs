//! The node dashboard.

use super::*;

pub(super) fn node() -> Value {
    let mut l = Layout::new();
    node_power(&mut l);
    l.row("RAPL");
    node_rapl(&mut l);
    l.row("GPUs");
    node_gpus(&mut l);
    l.row("BMC against RAPL + GPU");
    node_bmc_against_rapl_gpu(&mut l);
    l.row("Jobs on the node");
    node_jobs_on_the_node(&mut l);
    dashboard(
        "joulebook-node",
        "joulebook / Node",
        "One node: its components, RAPL domains, GPUs and the jobs holding them, the BMC against RAPL + GPU, and its idle baseline.",
        vec![var_cluster(), var_node()],
        l,
    )
}

/// The node's power by component and against its idle baseline.
fn node_power(l: &mut Layout) {
    l.add(
        timeseries(
            "Node power by component",
            "The node's components; method (measured or estimated) in the table below.",
            "watt",
            true,
            vec![q(
                "A",
                &format!("sum by (instance, component) (instance_component:joulebook_node_power_watts:rate5m{{{CN}}})"),
                "{{instance}} {{component}}",
            )],
        ),
        12,
        9,
    );
    l.add(
        timeseries(
            "Node power against its idle baseline",
            "Power now, the idle baseline (5th percentile of the 5-minute power over 7 days) and the baseline times the ratio above which JoulebookIdleNodeAboveBaseline fires when no job runs.",
            "watt",
            false,
            vec![
                q("A", &format!("instance:joulebook_node_power_watts:rate5m{{{CN}}}"), "{{instance}} power"),
                q("B", &format!("instance:joulebook_node_power_watts:p5_over_time7d{{{CN}}}"), "{{instance}} idle baseline"),
                q(
                    "C",
                    &format!("instance:joulebook_node_power_watts:p5_over_time7d{{{CN}}} * on () group_left joulebook:threshold:idle_node_power_ratio"),
                    "{{instance}} alert level",
                ),
            ],
        ),
        12,
        9,
    );
}

/// The row "RAPL".
fn node_rapl(l: &mut Layout) {
    let rapl = |domain: &str| {
        format!(
            "sum by (instance, socket) (rate(joulebook_rapl_{domain}_joules_total{{{CN}}}[$__rate_interval]))"
        )
    };
    l.add(
        timeseries(
            "RAPL domains",
            "Per socket: package (contains core and uncore, never add them), dram; psys is the whole platform and overlaps the rest.",
            "watt",
            false,
            vec![
                q("A", &rapl("package"), "{{instance}} package {{socket}}"),
                q("B", &rapl("core"), "{{instance}} core {{socket}}"),
                q("C", &rapl("uncore"), "{{instance}} uncore {{socket}}"),
                q("D", &rapl("dram"), "{{instance}} dram {{socket}}"),
                q(
                    "E",
                    &format!("sum by (instance) (rate(joulebook_rapl_psys_joules_total{{{CN}}}[$__rate_interval]))"),
                    "{{instance}} psys",
                ),
            ],
        ),
        24,
        9,
    );
}

/// The row "GPUs".
fn node_gpus(l: &mut Layout) {
    l.add(
        timeseries(
            "GPU power",
            "Power of each GPU at the exporter's last sample, with its enforced power limit (the TDP proxy of the estimation methods).",
            "watt",
            false,
            vec![
                q(
                    "A",
                    &format!("joulebook_gpu_power_watts{{{CN}}} * on (cluster, instance, gpu_uuid) group_left (index, model) joulebook_gpu_info{{{CN}}}"),
                    "{{instance}} GPU {{index}} {{model}}",
                ),
                q(
                    "B",
                    &format!("joulebook_gpu_power_limit_watts{{{CN}}} * on (cluster, instance, gpu_uuid) group_left (index) joulebook_gpu_info{{{CN}}}"),
                    "{{instance}} GPU {{index}} limit",
                ),
            ],
        ),
        12,
        9,
    );
    l.add(
        timeseries(
            "GPU energy rate",
            "NVIDIA: NVML's total-energy counter (or integrated power on pre-Volta GPUs). AMD: the amdgpu driver's energy accumulator (an MI250X package on its primary die). Intel: the xe/i915 hwmon counter.",
            "watt",
            false,
            vec![
                q(
                    "A",
                    &format!("rate(joulebook_gpu_joules_total{{{CN}}}[$__rate_interval]) * on (cluster, instance, gpu_uuid) group_left (index) joulebook_gpu_info{{{CN}}}"),
                    "{{instance}} GPU {{index}}",
                ),
                q(
                    "B",
                    &format!("rate(joulebook_amdgpu_joules_total{{{CN}}}[$__rate_interval])"),
                    "{{instance}} AMD {{gpu_uuid}}",
                ),
                q(
                    "C",
                    &format!("rate(joulebook_intel_gpu_joules_total{{{CN}}}[$__rate_interval])"),
                    "{{instance}} Intel {{gpu_uuid}}",
                ),
            ],
        ),
        12,
        9,
    );
    l.add(
        table(
            "GPUs and the jobs holding them",
            "Each GPU now, with the job holding it (from the prolog's mapping directory or the other GPU sources); no job: unallocated.",
            vec![
                qi(
                    "A",
                    &format!("joulebook_gpu_power_watts{{{CN}}} * on (cluster, instance, gpu_uuid) group_left (index, model) joulebook_gpu_info{{{CN}}}"),
                    "",
                ),
                qi("B", &format!("joulebook_job_gpu_info{{{CN}}}"), ""),
            ],
            &[("A", "Power", "watt"), ("B", "Held", "short")],
            "Power",
        ),
        24,
        8,
    );
}

/// The row "BMC against RAPL + GPU".
fn node_bmc_against_rapl_gpu(l: &mut Layout) {
    l.add(
        timeseries(
            "BMC against RAPL + GPU",
            "Whole-node power from the BMC against what RAPL and NVML measure. The gap is fans, disks, network, power supply losses: the `other` component. Empty until the BMC source is enabled (joulebook_bmc_* metrics).",
            "watt",
            false,
            vec![
                q("A", &format!("sum by (instance) (joulebook_bmc_power_watts{{{CN}}})"), "{{instance}} BMC power"),
                q(
                    "B",
                    &format!("sum by (instance) (rate(joulebook_bmc_joules_total{{{CN}}}[$__rate_interval]))"),
                    "{{instance}} BMC energy rate",
                ),
                q(
                    "C",
                    &format!(r#"sum by (instance) (instance_component:joulebook_node_power_watts:rate5m{{{CN}, component=~"cpu|dram|gpu"}})"#),
                    "{{instance}} RAPL + GPU",
                ),
            ],
        ),
        24,
        9,
    );
}

/// The row "Jobs on the node".
fn node_jobs_on_the_node(l: &mut Layout) {
    l.add(
        timeseries(
            "Power by job",
            "Power attributed to each job on the node; unallocated is what no job held.",
            "watt",
            true,
            vec![
                q(
                    "A",
                    &format!("sum by (instance, job_id) (rate(joulebook_job_joules_total{{{CN}}}[$__rate_interval]))"),
                    "{{instance}} job {{job_id}}",
                ),
                q("B", &format!("instance:joulebook_unallocated_power_watts:rate5m{{{CN}}}"), "{{instance}} unallocated"),
            ],
        ),
        12,
        9,
    );
    l.add(
        table(
            "How each component is obtained",
            "measured (RAPL, NVML) or estimated (from /proc/stat and a TDP), per node and component.",
            vec![qi("A", &format!("joulebook_node_component_info{{{CN}}}"), "")],
            &[("A", "Info", "short")],
            "instance",
        ),
        12,
        9,
    );
}
