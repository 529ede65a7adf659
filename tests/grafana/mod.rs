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

mod cluster;
mod estimates;
mod health;
mod jobs;
mod node;

use cluster::cluster_overview;
use estimates::estimates;
use health::exporter_health;
use jobs::jobs;
use node::node;

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
