//! A real SMTP server for the tests: aiosmtpd (Debian's `python3-aiosmtpd`) running
//! `tests/fixtures/smtp_sink.py` on 127.0.0.1, which saves every message it accepts and can
//! refuse chosen recipients with `550`. Killed on drop.

use crate::{free_port, repo_root};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SmtpSink {
    child: Child,
    pub port: u16,
    pub maildir: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts the server, refusing every address in `refused` at RCPT with 550, and waits until
    /// it accepts connections.
    pub fn start(refused: &[&str]) -> SmtpSink {
        let python = ["python3", "/usr/bin/python3"]
            .into_iter()
            .find(|p| {
                Command::new(p)
                    .args(["-c", "import aiosmtpd"])
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .unwrap_or_else(|| {
                panic!("no python3 with aiosmtpd: install Debian's `python3-aiosmtpd` (scripts/install-test-deps)")
            });
        let dir = tempfile::tempdir().expect("smtp dir");
        let maildir = dir.path().join("received");
        std::fs::create_dir_all(&maildir).expect("mkdir");
        let port = free_port();
        let mut child = Command::new(python)
            .arg(repo_root().join("tests/fixtures/smtp_sink.py"))
            .arg(port.to_string())
            .arg(&maildir)
            .arg(refused.join(","))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start smtp sink");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(s)) = child.try_wait() {
                panic!("the SMTP sink exited with {s}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "SMTP server did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        SmtpSink {
            child,
            port,
            maildir,
            _dir: dir,
        }
    }

    /// Every message received so far: (envelope recipients joined by commas, the message),
    /// sorted.
    pub fn received(&self) -> Vec<(String, String)> {
        let mut msgs: Vec<(String, String)> = std::fs::read_dir(&self.maildir)
            .expect("maildir")
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .map(|e| {
                let text = std::fs::read_to_string(e.path()).expect("message");
                let to: Vec<&str> = text
                    .lines()
                    .filter_map(|l| l.strip_prefix("X-RcptTo: "))
                    .collect();
                (to.join(","), text)
            })
            .collect();
        msgs.sort();
        msgs
    }

    /// The recipients of every message received so far, sorted.
    pub fn recipients(&self) -> Vec<String> {
        self.received().into_iter().map(|(to, _)| to).collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
