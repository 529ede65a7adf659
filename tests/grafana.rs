//! The Grafana dashboards of `dashboards/`, generated. The JSON files are committed (so admins
//! import them without building anything) and `tests/deploy/dashboards.rs` checks that they equal what this
//! module generates; after editing it, refresh them with
//! `JOULEBOOK_UPDATE_GOLDEN=1 cargo test -p joulebook-tests --test deploy dashboards`.
//! dashboards/README.md says why they are generated.
//!
//! Conventions every dashboard follows (and the deploy tests check): one Prometheus datasource,
//! the import input `DS_PROMETHEUS`, referenced as `${DS_PROMETHEUS}` by every panel, target
//! and variable; template variables in label matchers always with `=~` (they may hold several
//! values or `.*`); power in watts from the recording rules of deploy/prometheus/rules; energy
//! over the dashboard's range in kWh from `increase()` of the exporters' counters.

use serde_json::{json, Value};

/// Grafana version the dashboards were written for (`__requires`); schemaVersion 39 is Grafana
/// 10.3-11.x.
const GRAFANA_VERSION: &str = "10.4.0";
const SCHEMA_VERSION: u64 = 39;

/// Default carbon intensity, g CO2e/kWh, and where it comes from (reference/factors.md).
const CO2_DEFAULT: &str = "44.2";
const CO2_SOURCE: &str = "Carbon intensity of electricity in g CO2e/kWh used for CO2 figures. \
Default 44.2: France 2024, lifecycle emissions (Ember, via Our World in Data). Others: EU-27 2023 \
237.5, World 2024 473 (both lifecycle, Ember/OWID); 475 is the IEA 2019 world average used by \
Green Algorithms and CodeCarbon. Enter your grid's value, and state its scope and year when you \
quote a figure.";

/// `${DS_PROMETHEUS}`: replaced by the datasource chosen at import.
fn ds() -> Value {
    json!({"type": "prometheus", "uid": "${DS_PROMETHEUS}"})
}

/// A range query (time series).
fn q(ref_id: &str, expr: &str, legend: &str) -> Value {
    json!({
        "datasource": ds(),
        "editorMode": "code",
        "expr": expr,
        "instant": false,
        "legendFormat": legend,
        "range": true,
        "refId": ref_id,
    })
}

/// An instant query for a table or a stat over the dashboard's range.
fn qi(ref_id: &str, expr: &str, legend: &str) -> Value {
    json!({
        "datasource": ds(),
        "editorMode": "code",
        "expr": expr,
        "format": "table",
        "instant": true,
        "legendFormat": legend,
        "range": false,
        "refId": ref_id,
    })
}

fn timeseries(
    title: &str,
    description: &str,
    unit: &str,
    stacked: bool,
    targets: Vec<Value>,
) -> Value {
    json!({
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": ds(),
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "min": 0,
                "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": if stacked { 30 } else { 0 },
                    "stacking": {"mode": if stacked { "normal" } else { "none" }, "group": "A"},
                    "showPoints": "never",
                    "spanNulls": false,
                },
            },
            "overrides": [],
        },
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "showLegend": true, "calcs": ["mean", "max", "lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": targets,
    })
}

fn stat(title: &str, description: &str, unit: &str, target: Value) -> Value {
    json!({
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": ds(),
        "fieldConfig": {"defaults": {"unit": unit, "decimals": 1}, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false},
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "auto",
        },
        "targets": [target],
    })
}

/// A table of instant queries merged on their common labels; `columns` renames value columns
/// (`Value #A` → a title) and sets their unit.
fn table(
    title: &str,
    description: &str,
    targets: Vec<Value>,
    columns: &[(&str, &str, &str)],
    sort_by: &str,
) -> Value {
    let mut rename = serde_json::Map::new();
    let mut overrides = Vec::new();
    for (ref_id, name, unit) in columns {
        let col = if targets.len() == 1 {
            "Value".to_string()
        } else {
            format!("Value #{ref_id}")
        };
        rename.insert(col, json!(name));
        overrides.push(json!({
            "matcher": {"id": "byName", "options": name},
            "properties": [{"id": "unit", "value": unit}, {"id": "decimals", "value": 2}],
        }));
    }
    json!({
        "type": "table",
        "title": title,
        "description": description,
        "datasource": ds(),
        "fieldConfig": {"defaults": {}, "overrides": overrides},
        "options": {
            "showHeader": true,
            "cellHeight": "sm",
            "sortBy": [{"displayName": sort_by, "desc": true}],
        },
        "targets": targets,
        "transformations": [
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {
                "excludeByName": {"Time": true, "__name__": true, "job": true},
                "renameByName": rename,
            }},
        ],
    })
}

/// A dashboard being laid out: panels flow left to right in rows of 24 columns.
struct Layout {
    panels: Vec<Value>,
    x: u64,
    y: u64,
    row_height: u64,
}

impl Layout {
    fn new() -> Layout {
        Layout {
            panels: Vec::new(),
            x: 0,
            y: 0,
            row_height: 0,
        }
    }

    fn add(&mut self, mut panel: Value, w: u64, h: u64) {
        if self.x + w > 24 {
            self.newline();
        }
        panel["id"] = json!(self.panels.len() + 1);
        panel["gridPos"] = json!({"h": h, "w": w, "x": self.x, "y": self.y});
        self.x += w;
        self.row_height = self.row_height.max(h);
        self.panels.push(panel);
    }

    fn newline(&mut self) {
        if self.x > 0 {
            self.y += self.row_height;
        }
        self.x = 0;
        self.row_height = 0;
    }

    /// A collapsible row header, on a line of its own.
    fn row(&mut self, title: &str) {
        self.newline();
        let panel = json!({"type": "row", "title": title, "collapsed": false, "panels": []});
        self.add(panel, 24, 1);
        self.newline();
    }
}

/// A query variable from `label_values(...)`.
fn var_query(name: &str, label: &str, query: &str, multi: bool, description: &str) -> Value {
    json!({
        "name": name,
        "label": label,
        "description": description,
        "type": "query",
        "datasource": ds(),
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "definition": query,
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        "allValue": if multi { json!(".*") } else { Value::Null },
        "current": {},
        "options": [],
        "hide": 0,
        "regex": "",
    })
}

fn var_textbox(name: &str, label: &str, default: &str, description: &str) -> Value {
    json!({
        "name": name,
        "label": label,
        "description": description,
        "type": "textbox",
        "query": default,
        "current": {"selected": false, "text": default, "value": default},
        "options": [{"selected": true, "text": default, "value": default}],
        "hide": 0,
    })
}

fn var_cluster() -> Value {
    var_query(
        "cluster",
        "Cluster",
        "label_values(joulebook_build_info, cluster)",
        true,
        "The `cluster` label set per target in the scrape configuration.",
    )
}

fn var_node() -> Value {
    var_query(
        "node",
        "Node",
        r#"label_values(joulebook_node_info{cluster=~"$cluster"}, instance)"#,
        true,
        "A node (the scrape target's instance).",
    )
}

fn var_project() -> Value {
    var_query(
        "project",
        "Project (account)",
        r#"label_values(joulebook_job_info{cluster=~"$cluster"}, account)"#,
        true,
        "The scheduler's account of a job (Slurm -A, OAR project).",
    )
}

fn var_user() -> Value {
    var_query(
        "user",
        "User",
        r#"label_values(joulebook_job_info{cluster=~"$cluster", account=~"$project"}, user)"#,
        true,
        "The user a job runs as.",
    )
}

fn var_job_id() -> Value {
    var_query(
        "job_id",
        "Job",
        r#"label_values(joulebook_job_info{cluster=~"$cluster", account=~"$project", user=~"$user"}, job_id)"#,
        false,
        "One job, for the job panels.",
    )
}

fn var_co2() -> Value {
    var_textbox("co2_intensity", "g CO2e/kWh", CO2_DEFAULT, CO2_SOURCE)
}

fn dashboard(uid: &str, title: &str, description: &str, vars: Vec<Value>, layout: Layout) -> Value {
    let mut types: Vec<&str> = layout
        .panels
        .iter()
        .filter_map(|p| p["type"].as_str())
        .filter(|t| *t != "row")
        .collect();
    types.sort_unstable();
    types.dedup();
    let mut requires = vec![
        json!({"type": "grafana", "id": "grafana", "name": "Grafana", "version": GRAFANA_VERSION}),
        json!({"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"}),
    ];
    for t in types {
        let name = match t {
            "timeseries" => "Time series",
            "stat" => "Stat",
            "table" => "Table",
            other => other,
        };
        requires.push(json!({"type": "panel", "id": t, "name": name, "version": ""}));
    }
    json!({
        "__inputs": [{
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "description": "The Prometheus (or Thanos, Mimir, VictoriaMetrics) that scrapes the joulebook exporters and evaluates deploy/prometheus/rules.",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }],
        "__elements": {},
        "__requires": requires,
        "annotations": {"list": [{
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": true,
            "hide": true,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }]},
        "description": description,
        "editable": true,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": null,
        "links": [{
            "type": "dashboards",
            "tags": ["joulebook"],
            "asDropdown": true,
            "title": "joulebook",
            "includeVars": true,
            "keepTime": true,
        }],
        "liveNow": false,
        "panels": layout.panels,
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["joulebook", "energy"],
        "templating": {"list": vars},
        "time": {"from": "now-24h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    })
}

/// `increase()` of a counter over the dashboard's range, summed, in kWh.
fn kwh(selector: &str) -> String {
    format!("sum(increase({selector}[$__range])) / 3.6e6")
}

const C: &str = r#"cluster=~"$cluster""#;
const CN: &str = r#"cluster=~"$cluster", instance=~"$node""#;

fn cluster_overview() -> Value {
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

fn node() -> Value {
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

/// Job energy over the range joined with its metadata (`max_over_time` keeps jobs that ended
/// during the range), filtered by the project and user variables.
fn job_join(counter: &str, by: &str) -> String {
    format!(
        r#"sum by ({by}) (increase({counter}{{{C}}}[$__range]) * on (cluster, instance, job_id) group_left (account, user) max_over_time(joulebook_job_info{{{C}, account=~"$project", user=~"$user"}}[$__range]))"#
    )
}

fn jobs() -> Value {
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

fn estimates() -> Value {
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

fn exporter_health() -> Value {
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

/// Every dashboard: (file name under dashboards/, JSON).
pub fn dashboards() -> Vec<(&'static str, Value)> {
    vec![
        ("joulebook-cluster.json", cluster_overview()),
        ("joulebook-node.json", node()),
        ("joulebook-jobs.json", jobs()),
        ("joulebook-estimates.json", estimates()),
        ("joulebook-exporter.json", exporter_health()),
    ]
}

/// The file's text: pretty JSON with a final newline.
pub fn render(dashboard: &Value) -> String {
    let mut s = serde_json::to_string_pretty(dashboard).expect("JSON");
    s.push('\n');
    s
}
