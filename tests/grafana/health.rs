//! The exporter health dashboard.

use super::*;

pub(super) fn exporter_health() -> Value {
    let mut l = Layout::new();
    exporter_health_status(&mut l);
    exporter_health_inventory(&mut l);
    exporter_health_sampling(&mut l);
    exporter_health_faults(&mut l);
    dashboard(
        "joulebook-exporter",
        "joulebook / Exporter health",
        "Are the exporters up, their sources healthy, and what does sampling cost.",
        vec![var_cluster(), var_node()],
        l,
    )
}

/// The stat row: exporters up and down, sources down, samples dropped.
fn exporter_health_status(l: &mut Layout) {
    l.add(
        stat(
            "Exporters up",
            "Targets of the `joulebook` scrape job that answered the last scrape.",
            "short",
            qi("A", &format!(r#"sum(up{{job="joulebook", {C}}})"#), ""),
        ),
        6,
        4,
    );
    l.add(
        stat(
            "Exporters down",
            "Targets that did not answer (JoulebookExporterDown fires after 5 minutes).",
            "short",
            qi(
                "A",
                &format!(r#"count(up{{job="joulebook", {C}}} == 0) or vector(0)"#),
                "",
            ),
        ),
        6,
        4,
    );
    l.add(
        stat(
            "Sources down",
            "Enabled sources whose last sample failed, all nodes (JoulebookSourceDown fires after 10 minutes).",
            "short",
            qi(
                "A",
                &format!("count(joulebook_source_up{{{CN}}} == 0 and on (cluster, instance, source) joulebook_source_enabled{{{CN}}} == 1) or vector(0)"),
                "",
            ),
        ),
        6,
        4,
    );
    l.add(
        stat(
            "Samples dropped in the last hour",
            "Energy deltas discarded as implausible or out of range, all nodes.",
            "short",
            qi(
                "A",
                &format!("sum(increase(joulebook_samples_dropped_total{{{CN}}}[1h]))"),
                "",
            ),
        ),
        6,
        4,
    );
}

/// Each node's sources and build.
fn exporter_health_inventory(l: &mut Layout) {
    l.add(
        table(
            "Sources",
            "Per node and source: enabled (1) and up (1) now; the exporter's landing page says why a source is down.",
            vec![
                qi("A", &format!("joulebook_source_enabled{{{CN}}}"), ""),
                qi("B", &format!("joulebook_source_up{{{CN}}}"), ""),
            ],
            &[("A", "Enabled", "short"), ("B", "Up", "short")],
            "Enabled",
        ),
        12,
        9,
    );
    l.add(
        table(
            "Versions",
            "The exporter's build on each node.",
            vec![qi("A", &format!("joulebook_build_info{{{CN}}}"), "")],
            &[("A", "Info", "short")],
            "instance",
        ),
        12,
        9,
    );
}

/// What sampling costs and how often it runs; wraps and resets corrected.
fn exporter_health_sampling(l: &mut Layout) {
    l.add(
        timeseries(
            "Sampling cost",
            "Wall time of each source's last sample; the sampling interval is shown for scale.",
            "s",
            false,
            vec![
                q(
                    "A",
                    &format!("joulebook_sample_duration_seconds{{{CN}}}"),
                    "{{instance}} {{source}}",
                ),
                q(
                    "B",
                    &format!("max(joulebook_sample_interval_seconds{{{CN}}})"),
                    "sample interval",
                ),
            ],
        ),
        12,
        8,
    );
    l.add(
        timeseries(
            "Samples per second",
            "Samples taken per source (successful or not).",
            "short",
            false,
            vec![q(
                "A",
                &format!("sum by (instance, source) (rate(joulebook_samples_total{{{CN}}}[$__rate_interval]))"),
                "{{instance}} {{source}}",
            )],
        ),
        12,
        8,
    );
    l.add(
        timeseries(
            "Counter wraps and resets",
            "RAPL wraps corrected and NVML resets absorbed, per interval. Expected: RAPL counters wrap every few minutes to hours.",
            "short",
            false,
            vec![q(
                "A",
                &format!("sum by (instance, source) (increase(joulebook_wraps_total{{{CN}}}[$__rate_interval]))"),
                "{{instance}} {{source}}",
            )],
        ),
        12,
        8,
    );
}

/// Dropped samples, the age of the last sample, the jobs each exporter sees.
fn exporter_health_faults(l: &mut Layout) {
    l.add(
        timeseries(
            "Dropped samples",
            "Deltas discarded per hour, by reason (JoulebookSamplesDropped fires on any).",
            "short",
            false,
            vec![q(
                "A",
                &format!("sum by (instance, source, reason) (increase(joulebook_samples_dropped_total{{{CN}}}[1h]))"),
                "{{instance}} {{source}} {{reason}}",
            )],
        ),
        12,
        8,
    );
    l.add(
        timeseries(
            "Age of the last sample",
            "Seconds since each exporter's last sampling cycle, and the threshold of JoulebookSamplerStuck.",
            "s",
            false,
            vec![
                q("A", &format!("time() - joulebook_last_sample_timestamp_seconds{{{CN}}}"), "{{instance}}"),
                q("B", "joulebook:threshold:sampler_stale_seconds", "alert threshold"),
            ],
        ),
        12,
        8,
    );
    l.add(
        timeseries(
            "Jobs seen",
            "Jobs each exporter finds (JoulebookNoJobsSeen fires for a node that sees none for 6 h while the cluster runs jobs).",
            "short",
            false,
            vec![q("A", &format!("joulebook_jobs_running{{{CN}}}"), "{{instance}}")],
        ),
        12,
        8,
    );
}
