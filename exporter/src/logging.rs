//! Logging setup. Rules: colour (ANSI escapes) only when stderr is a terminal and `NO_COLOR` is
//! unset, so files and the journal never hold escape bytes; when stderr is the journal (systemd
//! sets `JOURNAL_STREAM` to the device and inode of that stream) the text format drops its own
//! timestamp, which journald adds to every line anyway. JSON keeps its timestamp: it is data.

use crate::config::{Config, LogFormat};
use std::io::IsTerminal;

/// How text lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    pub ansi: bool,
    pub timestamp: bool,
}

/// The style for a stderr that is (or not) a terminal, with `NO_COLOR` set or not, under a
/// `JOURNAL_STREAM` value (`DEV:INODE`), for a stderr of that device and inode if known.
pub fn style(
    terminal: bool,
    no_color: bool,
    journal_stream: Option<&str>,
    stderr_id: Option<(u64, u64)>,
) -> Style {
    // systemd.exec(5): a process whose stderr is the journal sees JOURNAL_STREAM naming it; a
    // child whose stderr was redirected inherits the variable but not the stream.
    let journal = match (journal_stream.and_then(parse_stream), stderr_id) {
        (Some(j), Some(s)) => j == s,
        _ => false,
    };
    Style {
        ansi: terminal && !no_color && !journal,
        timestamp: !journal,
    }
}

fn parse_stream(v: &str) -> Option<(u64, u64)> {
    let (dev, ino) = v.trim().split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// Device and inode of this process's stderr.
fn stderr_id() -> Option<(u64, u64)> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

/// Sets up logging: text (coloured on a terminal) or JSON, to stderr.
pub fn init(cfg: &Config) {
    let mut filter = tracing_subscriber::EnvFilter::try_new(&cfg.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // The HTTP client's trace output dumps raw requests, which carry the BMC credentials: never
    // let a global `debug` or `trace` switch it on.
    for quiet in ["ureq=info", "ureq_proto=info", "rustls=info"] {
        if let Ok(d) = quiet.parse() {
            filter = filter.add_directive(d);
        }
    }
    let s = style(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
        std::env::var("JOURNAL_STREAM").ok().as_deref(),
        stderr_id(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(s.ansi);
    let _ = match (cfg.log.format, s.timestamp) {
        (LogFormat::Json, _) => builder.json().try_init(),
        (LogFormat::Text, true) => builder.try_init(),
        (LogFormat::Text, false) => builder.without_time().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        let on = |t, n| style(t, n, None, Some((1, 2)));
        assert!(on(true, false).ansi);
        assert!(!on(false, false).ansi);
        assert!(!on(true, true).ansi);
        assert!(on(false, false).timestamp);
    }

    #[test]
    fn journal_drops_the_timestamp_only_when_stderr_is_its_stream() {
        let s = style(false, false, Some("64769:1234"), Some((64769, 1234)));
        assert_eq!(
            s,
            Style {
                ansi: false,
                timestamp: false
            }
        );
        // Inherited by a process whose stderr goes elsewhere: a normal file log.
        let s = style(false, false, Some("64769:1234"), Some((64769, 99)));
        assert!(s.timestamp);
        for bad in ["", "x:1", "1", "1:2:3"] {
            assert!(
                style(false, false, Some(bad), Some((1, 2))).timestamp,
                "{bad}"
            );
        }
    }
}
