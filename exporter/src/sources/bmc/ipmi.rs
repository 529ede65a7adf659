//! IPMI DCMI "Get Power Reading", in band (through the node's `/dev/ipmi0`), by running a tool:
//! `ipmitool dcmi power reading`, or FreeIPMI's `ipmi-dcmi --get-system-power-statistics`.
//! With no `ipmi_command` configured, the first of the two found on `PATH` is used.
//!
//! Running a tool forks a process every poll (every 5 s by default) on the BMC thread: cheap at
//! that rate, and never in the sampler's hot path. DCMI has no energy counter, so IPMI readings
//! are always integrated (see the parent module).
//!
//! Output formats (the tools print the same layout whatever the BMC vendor; only the values and
//! the state line differ; `tests/fixtures/ipmi/` holds samples):
//! - ipmitool (`lib/ipmi_dcmi.c`): `Instantaneous power reading:   245 Watts` and
//!   `Power reading state is:   activated` (or `deactivated`).
//! - FreeIPMI (`ipmi-dcmi/ipmi-dcmi.c`): `Current Power   : 245 Watts` and
//!   `Power Measurement   : Active` (or `Not Available`).
//! - ipmiutil (`ipmiutil dcmi power`, through `ipmi_command`): `Current Power:   245 Watts` and
//!   `Power reading state is:   active` (or `not active`).
//!
//! A reading whose state says the measurement is not active is refused: DCMI 1.5 defines the
//! reading as valid only while power measurement is active, and such BMCs typically report 0 W.
//! (OpenBMC reports `deactivated` with real values; read such BMCs with Redfish.)
//!
//! ## Secrets in the command
//! The command is shown in logs, errors, the landing page and `--check-config` only through
//! [`shown`]: the argument after a flag of [`SECRET_FLAGS`] (or attached to it, `-Psecret`,
//! `--password=secret`) is `<redacted>`, and the values so found are also taken out of what the
//! tool printed before it is quoted. Out-of-band tools should read the password from a file
//! (`ipmitool -f FILE`) or the environment (`ipmitool -E`, `IPMI_PASSWORD`), never the command.

use super::{Meter, Protocol, Reading};
use crate::sources::SourceError;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The tools tried, in order, when no command is configured.
pub const DEFAULT_COMMANDS: [&[&str]; 2] = [
    &["ipmitool", "dcmi", "power", "reading"],
    &["ipmi-dcmi", "--get-system-power-statistics"],
];

/// Flags whose value is a secret, in ipmitool (`-P` password, `-k` and `-y` Kg key; ipmitool(1)),
/// FreeIPMI (`-p`/`--password`, `-k`/`--k-g`; freeipmi(7) common options) and ipmiutil (`-P/-R`
/// password; ipmiutil(8)): their value is never shown. Some are harmless flags in another tool
/// (ipmitool's `-p` is the port, `-R` the retry count): hiding those too costs nothing.
pub const SECRET_FLAGS: [&str; 8] = ["-P", "-p", "-k", "-y", "-R", "--password", "--k-g", "--kg"];

/// What replaces a secret wherever the command is shown.
pub const REDACTED: &str = "<redacted>";

/// The secret values in a command line: the arguments after (or attached to) [`SECRET_FLAGS`].
pub fn secrets(argv: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut next_is_secret = false;
    for a in argv.iter().skip(1) {
        if next_is_secret {
            out.push(a.clone());
            next_is_secret = false;
            continue;
        }
        for flag in SECRET_FLAGS {
            if a == flag {
                next_is_secret = true;
            } else if let Some(v) = a.strip_prefix(flag) {
                // `--password=x`, or a short flag with its value attached (`-Px`).
                let v = if flag.starts_with("--") {
                    v.strip_prefix('=')
                } else {
                    Some(v)
                };
                if let Some(v) = v.filter(|v| !v.is_empty()) {
                    out.push(v.to_string());
                }
            }
        }
    }
    out
}

/// The command as it may be shown: each secret value replaced by [`REDACTED`].
pub fn shown(argv: &[String]) -> String {
    let secrets = secrets(argv);
    argv.iter()
        .map(|a| scrub(a, &secrets))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text` with every occurrence of `secrets` replaced by [`REDACTED`].
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut t = text.to_string();
    // Longest first, so a secret that contains another is taken out whole.
    let mut by_len: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    by_len.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in by_len {
        t = t.replace(s.as_str(), REDACTED);
    }
    t
}

/// Most output read from the tool, bytes (its real output is under 1 kB).
const MAX_OUTPUT_BYTES: u64 = 64 * 1024;

/// Options of the IPMI meter. Its `Debug` output shows the command redacted.
#[derive(Clone, PartialEq)]
pub struct IpmiOptions {
    /// The command and its arguments; `None`: the first of [`DEFAULT_COMMANDS`] found.
    pub command: Option<Vec<String>>,
    /// Limit on one run of the command; it is killed after.
    pub timeout: Duration,
    /// Where to look for the default tools; `None`: the exporter's `PATH`.
    pub search_path: Option<OsString>,
}

impl std::fmt::Debug for IpmiOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpmiOptions")
            .field("command", &self.command.as_deref().map(shown))
            .field("timeout", &self.timeout)
            .field("search_path", &self.search_path)
            .finish()
    }
}

impl Default for IpmiOptions {
    fn default() -> Self {
        IpmiOptions {
            command: None,
            timeout: Duration::from_secs_f64(super::DEFAULT_TIMEOUT_S),
            search_path: None,
        }
    }
}

/// Reads a BMC through an IPMI tool.
pub struct IpmiMeter {
    opts: IpmiOptions,
    /// The command in use: configured, or the default tool found.
    argv: Option<Vec<String>>,
}

impl std::fmt::Debug for IpmiMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpmiMeter")
            .field("opts", &self.opts)
            .field("argv", &self.argv.as_deref().map(shown))
            .finish()
    }
}

impl IpmiMeter {
    pub fn new(opts: IpmiOptions) -> Self {
        let argv = opts.command.clone();
        IpmiMeter { opts, argv }
    }

    fn argv(&mut self) -> Result<Vec<String>, SourceError> {
        if let Some(a) = &self.argv {
            return Ok(a.clone());
        }
        let path = self
            .opts
            .search_path
            .clone()
            .or_else(|| std::env::var_os("PATH"))
            .unwrap_or_default();
        for cmd in DEFAULT_COMMANDS {
            if let Some(exe) = find_on_path(cmd[0], &path) {
                let mut argv = vec![exe.to_string_lossy().into_owned()];
                argv.extend(cmd[1..].iter().map(|s| s.to_string()));
                tracing::info!(source = "bmc", command = %shown(&argv), "BMC read with IPMI DCMI");
                self.argv = Some(argv.clone());
                return Ok(argv);
            }
        }
        Err(SourceError::new(
            "neither ipmitool nor ipmi-dcmi (FreeIPMI) is on PATH: cannot read the BMC over IPMI",
        )
        .with_fix(
            "install ipmitool (Debian/RHEL package ipmitool) or freeipmi-tools, or set \
             sources.bmc.ipmi_command",
        ))
    }
}

impl Meter for IpmiMeter {
    fn protocol(&self) -> Protocol {
        Protocol::Ipmi
    }

    fn read(&mut self) -> Result<Reading, SourceError> {
        let argv = self.argv()?;
        let secrets = secrets(&argv);
        let shown = shown(&argv);
        let out = run(&argv, self.opts.timeout)?;
        let watts = parse_dcmi(&out).map_err(|e| {
            let fix = match e {
                DcmiError::Deactivated(_) => {
                    "the BMC says its power measurement is not active, so the reading is not \
                     valid; read this BMC with Redfish (sources.bmc.kind: redfish)"
                }
                _ => {
                    "run the command by hand to see its output; if the BMC does not support DCMI \
                     power readings, read it with Redfish (sources.bmc.kind: redfish)"
                }
            };
            SourceError::new(scrub(&format!("`{shown}`: {e}"), &secrets)).with_fix(fix)
        })?;
        Ok(Reading {
            watts: Some(watts),
            energy_uj: None,
        })
    }
}

/// `name` if it is an executable file in one of `path`'s folders.
fn find_on_path(name: &str, path: &OsString) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Runs a command with a time limit; its standard output, or an error naming the command.
pub fn run(argv: &[String], timeout: Duration) -> Result<String, SourceError> {
    let secrets = secrets(argv);
    let shown = shown(argv);
    let Some((program, args)) = argv.split_first() else {
        return Err(SourceError::new("sources.bmc.ipmi_command is empty")
            .with_fix("give the command and its arguments as a list"));
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            let fix = if e.kind() == std::io::ErrorKind::NotFound {
                "install the tool (ipmitool or freeipmi-tools) or fix sources.bmc.ipmi_command"
            } else {
                "check that the exporter's user may run it"
            };
            SourceError::new(format!("cannot run `{shown}`: {e}")).with_fix(fix)
        })?;
    // Read both pipes on their own threads, so a chatty tool never blocks on a full pipe.
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(p) = pipe {
                let _ = p.take(MAX_OUTPUT_BYTES).read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SourceError::new(format!(
                    "`{shown}` did not finish within {} s (sources.bmc.timeout); killed",
                    timeout.as_secs_f64()
                ))
                .with_fix(
                    "check that the IPMI driver answers (ipmi_si loaded, BMC not hung: \
                     `ipmitool mc info`), or raise sources.bmc.timeout",
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(SourceError::new(format!("waiting for `{shown}`: {e}"))),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if !status.success() {
        let said = first_line(&stderr).or_else(|| first_line(&stdout));
        let detail = said
            .map(|s| format!(": {}", scrub(&s, &secrets)))
            .unwrap_or_default();
        return Err(
            SourceError::new(format!("`{shown}` failed ({status}){detail}"))
                .with_fix(ipmi_fix(&format!("{stderr}\n{stdout}"))),
        );
    }
    Ok(stdout)
}

fn first_line(s: &str) -> Option<String> {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.chars().take(200).collect())
}

/// What to do about a failed IPMI tool, from what it said.
fn ipmi_fix(said: &str) -> &'static str {
    let l = said.to_ascii_lowercase();
    if l.contains("could not open device")
        || l.contains("/dev/ipmi")
        || l.contains("driver")
        || l.contains("no such file")
    {
        "load the in-band IPMI driver (modprobe ipmi_si ipmi_devintf) so /dev/ipmi0 exists, and \
         run the exporter as a user that may open it (root, or a udev rule giving its group access)"
    } else if l.contains("permission denied") || l.contains("privilege") {
        "the exporter's user may not talk to the BMC: give it access to /dev/ipmi0 (udev rule) or \
         run it as root"
    } else if l.contains("invalid command") || l.contains("not supported") {
        "this BMC does not implement DCMI power readings: read it with Redfish \
         (sources.bmc.kind: redfish)"
    } else {
        "run the command by hand to see what it says"
    }
}

/// Why DCMI output gave no power.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DcmiError {
    /// The tool printed nothing.
    Empty,
    /// No power line was found; holds the first line of output.
    NoReading(String),
    /// The power line could not be read; holds the line.
    BadReading(String),
    /// The BMC says power measurement is not active; holds the state it printed.
    Deactivated(String),
}

impl std::fmt::Display for DcmiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DcmiError::Empty => f.write_str("printed nothing"),
            DcmiError::NoReading(first) => {
                write!(f, "printed no power reading (first line: {first:?})")
            }
            DcmiError::BadReading(line) => write!(f, "unreadable power reading {line:?}"),
            DcmiError::Deactivated(state) => {
                write!(f, "the BMC reports power measurement {state:?}")
            }
        }
    }
}

/// The instantaneous power in watts from the output of `ipmitool dcmi power reading`,
/// `ipmi-dcmi --get-system-power-statistics` or `ipmiutil dcmi power`.
pub fn parse_dcmi(text: &str) -> Result<f64, DcmiError> {
    let mut watts: Option<Result<f64, DcmiError>> = None;
    let mut state: Option<String> = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim();
        match key.as_str() {
            "instantaneous power reading" | "current power" if watts.is_none() => {
                watts =
                    Some(parse_watts(value).ok_or_else(|| {
                        DcmiError::BadReading(line.trim().chars().take(120).collect())
                    }));
            }
            "power reading state is" | "power measurement" => state = Some(value.to_string()),
            _ => {}
        }
    }
    if let Some(s) = &state {
        let s_lower = s.to_ascii_lowercase();
        if !matches!(s_lower.as_str(), "activated" | "active") {
            return Err(DcmiError::Deactivated(s.clone()));
        }
    }
    match watts {
        Some(w) => w,
        None => match first_line(text) {
            None => Err(DcmiError::Empty),
            Some(first) => Err(DcmiError::NoReading(first.chars().take(80).collect())),
        },
    }
}

/// `245 Watts`, `245 watts`, `245 W` → 245.
fn parse_watts(value: &str) -> Option<f64> {
    let mut parts = value.split_whitespace();
    let number: f64 = parts.next()?.parse().ok()?;
    let unit = parts.next()?.to_ascii_lowercase();
    (number.is_finite() && (unit == "w" || unit.starts_with("watt"))).then_some(number)
}

/// True if an in-band IPMI device exists (the paths ipmitool opens).
pub fn has_ipmi_device(dev: &Path) -> bool {
    ["ipmi0", "ipmi/0", "ipmidev/0"]
        .iter()
        .any(|p| dev.join(p).exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn secrets_in_the_command_are_never_shown() {
        let cases = [
            (
                &[
                    "ipmitool", "-I", "lanplus", "-H", "bmc1", "-U", "admin", "-P", "hunter2",
                    "dcmi", "power", "reading",
                ][..],
                "ipmitool -I lanplus -H bmc1 -U admin -P <redacted> dcmi power reading",
                &["hunter2"][..],
            ),
            (
                &["ipmitool", "-Phunter2", "-k", "kgkey", "-y", "0a0b", "dcmi"][..],
                "ipmitool -P<redacted> -k <redacted> -y <redacted> dcmi",
                &["hunter2", "kgkey", "0a0b"][..],
            ),
            (
                &[
                    "ipmi-dcmi",
                    "-h",
                    "bmc1",
                    "--password=hunter2",
                    "--k-g",
                    "kgkey",
                    "-p",
                    "pw2",
                ][..],
                "ipmi-dcmi -h bmc1 --password=<redacted> --k-g <redacted> -p <redacted>",
                &["hunter2", "kgkey", "pw2"][..],
            ),
            (
                &["ipmitool", "-f", "/etc/joulebook/ipmi.pass", "-E", "dcmi"][..],
                "ipmitool -f /etc/joulebook/ipmi.pass -E dcmi",
                &[][..],
            ),
            // The tool's own name is never a flag; a trailing flag without value hides nothing.
            (
                &["-P", "-P", "pw", "-P"][..],
                "-P -P <redacted> -P",
                &["pw"][..],
            ),
        ];
        for (words, expected, found) in cases {
            let a = argv(words);
            assert_eq!(shown(&a), expected);
            assert_eq!(
                secrets(&a),
                found.iter().map(|s| s.to_string()).collect::<Vec<_>>()
            );
            let dbg = format!(
                "{:?}",
                IpmiMeter::new(IpmiOptions {
                    command: Some(a.clone()),
                    ..Default::default()
                })
            );
            for s in found {
                assert!(!dbg.contains(s), "{dbg}");
            }
        }
        assert_eq!(
            scrub(
                "Error: Unable to establish IPMI v2 session with hunter2 and hunter2x",
                &["hunter2x".into(), "hunter2".into()]
            ),
            "Error: Unable to establish IPMI v2 session with <redacted> and <redacted>"
        );
    }

    #[test]
    fn a_failing_command_never_quotes_its_password() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("tool");
        std::fs::write(
            &tool,
            "#!/bin/sh\necho \"cannot log in with password $4\" >&2\nexit 1\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let a = argv(&[
            tool.to_str().unwrap(),
            "-U",
            "admin",
            "-P",
            "hunter2",
            "dcmi",
        ]);
        let e = run(&a, Duration::from_secs(5)).unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(
            text.contains("cannot log in") && text.contains("-P <redacted>"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
    }

    fn fixture(name: &str) -> String {
        let p = joulebook_tests::fixture("ipmi").join(name);
        let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn readings_from_every_tool() {
        let cases = [
            ("ipmitool-activated.txt", 245.0),
            ("ipmitool-timestamp-same-line.txt", 194.0),
            ("freeipmi-active.txt", 164.0),
            ("freeipmi-lowercase-watts.txt", 332.0),
            ("ipmiutil-active.txt", 49.0),
            ("ipmitool-zero-activated.txt", 0.0),
        ];
        for (name, watts) in cases {
            assert_eq!(parse_dcmi(&fixture(name)), Ok(watts), "{name}");
        }
    }

    #[test]
    fn unusable_outputs_are_clear_errors() {
        let cases = [
            (
                "ipmitool-deactivated.txt",
                DcmiError::Deactivated("deactivated".into()),
            ),
            (
                "ipmitool-openbmc-deactivated.txt",
                DcmiError::Deactivated("deactivated".into()),
            ),
            (
                "freeipmi-not-available.txt",
                DcmiError::Deactivated("Not Available".into()),
            ),
            (
                "ipmiutil-not-active.txt",
                DcmiError::Deactivated("not active".into()),
            ),
            ("empty.txt", DcmiError::Empty),
        ];
        for (name, err) in cases {
            assert_eq!(parse_dcmi(&fixture(name)), Err(err), "{name}");
        }
        for name in [
            "garbage.txt",
            "ipmitool-invalid-command.txt",
            "ipmitool-not-supported-present-state.txt",
            "ipmitool-no-device.txt",
        ] {
            let e = parse_dcmi(&fixture(name)).unwrap_err();
            assert!(matches!(e, DcmiError::NoReading(_)), "{name}: {e:?}");
        }
        let e = parse_dcmi(&fixture("ipmitool-bad-number.txt")).unwrap_err();
        assert!(matches!(e, DcmiError::BadReading(_)), "{e:?}");
        assert!(e.to_string().contains("Instantaneous power reading"), "{e}");
    }

    #[test]
    fn fixes_follow_what_the_tool_said() {
        assert!(ipmi_fix(&fixture("ipmitool-no-device.txt")).contains("modprobe"));
        assert!(ipmi_fix(&fixture("ipmitool-invalid-command.txt")).contains("Redfish"));
    }

    #[test]
    fn a_command_that_hangs_is_killed_at_the_timeout() {
        let started = Instant::now();
        let e = run(&["sleep".into(), "5".into()], Duration::from_millis(200)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(e.message.contains("`sleep 5` did not finish"), "{e}");
        let e = run(&["/nonexistent/ipmitool".into()], Duration::from_secs(1)).unwrap_err();
        assert!(e.message.contains("/nonexistent/ipmitool"), "{e}");
    }
}
