//! Site constants and mail settings, from a YAML file (`--config`). Every constant the report
//! uses carries its source, printed beside it in every format; the defaults come from the
//! project's reference factors and cite theirs.
//!
//! Unknown keys are errors (a misspelt `pue:` must not silently leave the default), reported with
//! the file, line and column by serde-saphyr.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A constant with the place it comes from.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Sourced {
    pub value: f64,
    pub source: String,
}

fn sourced(value: f64, source: &str) -> Sourced {
    Sourced {
        value,
        source: source.to_string(),
    }
}

/// Grid carbon intensity. Always printed with its scope and year: a lifecycle figure and a
/// direct-emissions figure for the same grid differ by a factor of two in France.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CarbonIntensity {
    /// g CO2e per kWh.
    pub value: f64,
    /// `lifecycle` or `direct`.
    pub scope: String,
    pub year: u32,
    pub zone: String,
    pub source: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Household {
    /// kWh per household per year.
    pub kwh_per_year: f64,
    pub description: String,
    pub source: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Currency units per kWh (facility energy, i.e. after PUE).
    pub per_kwh: f64,
    pub currency: String,
    pub source: String,
}

/// Constants of the estimation methods compared with measurement.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Estimation {
    /// Green Algorithms: W per GB of memory.
    pub ga_memory_w_per_gb: Sourced,
    /// Green Algorithms: W per core where the node exports no CPU TDP.
    pub ga_core_w_default: Sourced,
    /// Green Algorithms and ML CO2: W per GPU where the node exports no power limit.
    pub gpu_w_default: Sourced,
    /// CodeCarbon: W per GB of the node's memory.
    pub codecarbon_memory_w_per_gb: Sourced,
}

impl Default for Estimation {
    fn default() -> Self {
        Estimation {
            ga_memory_w_per_gb: sourced(
                0.3725,
                "Green Algorithms (Lannelongue et al. 2021, doi 10.1002/advs.202100707), green-algorithms-tool data",
            ),
            ga_core_w_default: sourced(
                12.0,
                "Green Algorithms generic CPU, 12 W per core (green-algorithms-tool data)",
            ),
            gpu_w_default: sourced(
                200.0,
                "Green Algorithms generic GPU, 200 W (green-algorithms-tool data)",
            ),
            codecarbon_memory_w_per_gb: sourced(
                0.375,
                "CodeCarbon v2.x, 3 W per 8 GB (codecarbon external/hardware.py)",
            ),
        }
    }
}

/// How each project's "final run" is found, for the development-versus-final ratio.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BestRun {
    /// Regular expression on the job name; the largest matching job of a project is its final run.
    pub job_name_pattern: Option<String>,
    /// Project (account) → job ids of its final run(s). Wins over the pattern.
    pub jobs: BTreeMap<String, Vec<String>>,
}

/// Who receives which report. A user receives only their own jobs, a project lead the project,
/// an administrator the whole cluster.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Recipients {
    pub admins: Vec<String>,
    /// Project (account) → addresses.
    pub projects: BTreeMap<String, Vec<String>>,
    /// User name → addresses.
    pub users: BTreeMap<String, Vec<String>>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (required, port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on localhost.
    None,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Smtp {
    pub host: String,
    pub port: Option<u16>,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    /// File holding the password (kept out of the config so the config can be shared).
    pub password_file: Option<PathBuf>,
    /// Extra CA certificate (PEM) for the SMTP server.
    pub ca_file: Option<PathBuf>,
    pub from: String,
    /// Subject; `{period}` and `{scope}` are replaced.
    pub subject: String,
}

impl Default for Smtp {
    fn default() -> Self {
        Smtp {
            host: "localhost".into(),
            port: None,
            security: SmtpSecurity::Starttls,
            username: None,
            password_file: None,
            ca_file: None,
            from: "joulebook <joulebook@localhost>".into(),
            subject: "Energy report {period}: {scope}".into(),
        }
    }
}

/// Connection to the Prometheus-compatible engine; command-line flags win.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusConf {
    pub url: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub bearer_token_file: Option<PathBuf>,
    /// Seconds per HTTP request.
    pub timeout_seconds: Option<f64>,
    /// The most one answer may hold, in MiB (default `prom::DEFAULT_MAX_ANSWER_MIB`).
    pub max_answer_mib: Option<u64>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Shown in titles.
    pub site_name: String,
    /// Power usage effectiveness: facility energy = IT energy × PUE.
    pub pue: Sourced,
    pub carbon_intensity: CarbonIntensity,
    pub household: Household,
    pub electricity_price: Option<Price>,
    pub estimation: Estimation,
    pub best_run: BestRun,
    pub recipients: Recipients,
    pub smtp: Smtp,
    pub prometheus: PrometheusConf,
    /// Rows in the top-jobs, top-projects and top-users tables.
    pub top_n: usize,
    /// Replace user names by "User 1", "User 2"… (public reports).
    pub anonymize_users: bool,
    /// The site's time zone (IANA name): months, days and printed times; `--timezone` wins.
    pub timezone: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            site_name: "HPC cluster".into(),
            pue: sourced(
                1.56,
                "Uptime Institute Global Data Center Survey 2024, industry average (placeholder until the site measures its own)",
            ),
            carbon_intensity: CarbonIntensity {
                value: 44.2,
                scope: "lifecycle".into(),
                year: 2024,
                zone: "France".into(),
                source: "Ember via Our World in Data, carbon intensity of electricity".into(),
            },
            household: Household {
                kwh_per_year: 4792.0,
                description: "French dwelling, all uses".into(),
                source: "ADEME/RTE/Enertech, Panel ElecDom 2019-2020".into(),
            },
            electricity_price: None,
            estimation: Estimation::default(),
            best_run: BestRun::default(),
            recipients: Recipients::default(),
            smtp: Smtp::default(),
            prometheus: PrometheusConf::default(),
            top_n: 10,
            anonymize_users: false,
            timezone: "UTC".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
        Config::parse(&text)
            .map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let c: Config = serde_saphyr::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let positive = |v: f64, key: &str| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(ConfigError(format!("{key}: {v} must be a positive number")))
            }
        };
        positive(self.household.kwh_per_year, "household.kwh_per_year")?;
        positive(
            self.estimation.ga_core_w_default.value,
            "estimation.ga_core_w_default.value",
        )?;
        positive(
            self.estimation.gpu_w_default.value,
            "estimation.gpu_w_default.value",
        )?;
        if !(self.pue.value >= 1.0 && self.pue.value < 5.0) {
            return Err(ConfigError(format!(
                "pue.value: {} is not a PUE (between 1.0 and 5)",
                self.pue.value
            )));
        }
        if !(self.carbon_intensity.value >= 0.0 && self.carbon_intensity.value < 2000.0) {
            return Err(ConfigError(format!(
                "carbon_intensity.value: {} g CO2e/kWh is out of range (0-2000)",
                self.carbon_intensity.value
            )));
        }
        if let Some(p) = &self.best_run.job_name_pattern {
            regex::Regex::new(p)
                .map_err(|e| ConfigError(format!("best_run.job_name_pattern: {e}")))?;
        }
        crate::period::Zone::named(&self.timezone)
            .map_err(|e| ConfigError(format!("timezone: {e}")))?;
        if self.top_n == 0 {
            return Err(ConfigError("top_n: must be at least 1".into()));
        }
        if self.prometheus.max_answer_mib == Some(0) {
            return Err(ConfigError(
                "prometheus.max_answer_mib: 0 must be at least 1 (MiB)".into(),
            ));
        }
        self.validate_addresses()
    }

    /// Every address is checked before anything is sent: a typo must not stop the mail half way.
    fn validate_addresses(&self) -> Result<(), ConfigError> {
        check_address("smtp.from", &self.smtp.from)?;
        let r = &self.recipients;
        for (i, a) in r.admins.iter().enumerate() {
            check_address(&format!("recipients.admins[{i}]"), a)?;
        }
        for (section, map) in [("projects", &r.projects), ("users", &r.users)] {
            for (name, list) in map {
                for (i, a) in list.iter().enumerate() {
                    check_address(&format!("recipients.{section}.{name}[{i}]"), a)?;
                }
            }
        }
        Ok(())
    }
}

/// `name@domain` or `Name <name@domain>`, as the message's `To:` takes it.
fn check_address(key: &str, value: &str) -> Result<(), ConfigError> {
    let bad = |why: String| {
        ConfigError(format!(
            "{key}: {value:?} is not a mail address ({why}); write name@example.org or \"Name <name@example.org>\""
        ))
    };
    if value.chars().any(char::is_control) {
        return Err(bad("it holds a control character".into()));
    }
    value
        .parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::parse("{}").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.pue.value, 1.56);
        assert_eq!(c.carbon_intensity.value, 44.2);
        assert_eq!(c.household.kwh_per_year, 4792.0);
        assert_eq!(c.timezone, "UTC");
        let c = Config::parse("timezone: Europe/Paris").unwrap();
        assert_eq!(c.timezone, "Europe/Paris");
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = Config::parse("site_name: x\npeu:\n  value: 1.3\n")
            .unwrap_err()
            .0;
        assert!(e.contains("peu"), "{e}");
        assert!(e.contains("line 2") || e.contains("2:"), "{e}");
    }

    #[test]
    fn partial_sections_keep_other_defaults() {
        let c = Config::parse(
            "pue: {value: 1.2, source: site meter 2025}\nrecipients:\n  users: {alice: [a@x.org]}\n",
        )
        .unwrap();
        assert_eq!(c.pue.value, 1.2);
        assert_eq!(c.recipients.users["alice"], vec!["a@x.org".to_string()]);
        assert_eq!(c.household.kwh_per_year, 4792.0);
        assert!(Config::parse("pue: {value: 0.5, source: x}").is_err());
        assert!(Config::parse("best_run: {job_name_pattern: '('}").is_err());
    }

    #[test]
    fn bad_addresses_are_refused_with_the_key_and_value() {
        let err = |text: &str| Config::parse(text).unwrap_err().0;
        let e = err("recipients:\n  users: {alice: [alice@x.org, 'bob@']}\n");
        assert!(e.starts_with("recipients.users.alice[1]: \"bob@\""), "{e}");
        let e = err("recipients: {admins: [root]}");
        assert!(e.starts_with("recipients.admins[0]: \"root\""), "{e}");
        let e = err("recipients: {projects: {astro: [\"a@x.org\\nBcc: all@x.org\"]}}");
        assert!(e.starts_with("recipients.projects.astro[0]:"), "{e}");
        let e = err("smtp: {from: 'joulebook'}");
        assert!(e.starts_with("smtp.from: \"joulebook\""), "{e}");
        let e = err("prometheus: {max_answer_mib: 0}");
        assert!(e.starts_with("prometheus.max_answer_mib"), "{e}");
        let e = err("timezone: Europe/Pariss");
        assert!(
            e.starts_with("timezone: \"Europe/Pariss\" is not a time zone"),
            "{e}"
        );
        let c = Config::parse(
            "recipients: {admins: ['HPC admins <hpc@x.org>'], users: {bob: [bob@x.org]}}",
        )
        .unwrap();
        assert_eq!(c.recipients.admins.len(), 1);
    }
}
