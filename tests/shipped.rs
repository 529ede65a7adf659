//! The shipped node configuration as the package installs it: `/etc/joulebook` laid out in a
//! temporary folder, `exporter.yaml` from `deploy/etc/joulebook/` with its `/etc/joulebook/`
//! paths pointed there, and `web.yml` made by the package's own install script
//! (`deploy/packaging/init-web-config`, run with the built exporter).

use crate::{binary, repo_root};
use std::path::PathBuf;
use std::process::Command;

pub struct ShippedEtc {
    _dir: tempfile::TempDir,
    /// The folder standing for /etc/joulebook.
    pub etc: PathBuf,
    /// Its web.yml, as init-web-config wrote it.
    pub web: PathBuf,
    /// The generated password (prometheus.password), for user `prometheus`.
    pub password: String,
}

impl ShippedEtc {
    /// Runs init-web-config into a fresh folder; fails the test if it does not write both files.
    pub fn new() -> ShippedEtc {
        let dir = tempfile::tempdir().expect("temporary folder");
        let etc = dir.path().join("etc/joulebook");
        let o = init_web_config(&etc);
        assert!(
            o.status.success(),
            "init-web-config: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let password = std::fs::read_to_string(etc.join("prometheus.password"))
            .expect("prometheus.password written")
            .trim_end()
            .to_string();
        ShippedEtc {
            _dir: dir,
            web: etc.join("web.yml"),
            etc,
            password,
        }
    }

    /// Writes the shipped exporter.yaml into the folder, its /etc/joulebook/ paths pointing there.
    pub fn exporter_yaml(&self) -> PathBuf {
        let shipped = repo_root().join("deploy/etc/joulebook/exporter.yaml");
        let text = std::fs::read_to_string(&shipped).expect("deploy/etc/joulebook/exporter.yaml");
        assert!(
            text.lines()
                .any(|l| l.trim() == "config_file: /etc/joulebook/web.yml"),
            "the shipped configuration names no web file"
        );
        let path = self.etc.join("exporter.yaml");
        let here = format!("{}/", self.etc.display());
        std::fs::write(&path, text.replace("/etc/joulebook/", &here)).expect("write exporter.yaml");
        path
    }
}

impl Default for ShippedEtc {
    fn default() -> Self {
        ShippedEtc::new()
    }
}

/// Runs deploy/packaging/init-web-config for the folder `etc` with the built exporter.
pub fn init_web_config(etc: &std::path::Path) -> std::process::Output {
    Command::new("/bin/sh")
        .arg(repo_root().join("deploy/packaging/init-web-config"))
        .env("JOULEBOOK_ETC", etc)
        .env("JOULEBOOK_EXPORTER", binary("joulebook-exporter"))
        .output()
        .expect("run /bin/sh deploy/packaging/init-web-config")
}
