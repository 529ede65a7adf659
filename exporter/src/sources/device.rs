//! [`DeviceKey`]: which device of its domain an energy channel measures, typed from the source
//! to attribution (a RAPL socket stays a number). Rules:
//! * `Display` prints the string that labels and the state file have always used (`""`, `"1"`,
//!   `"1-die-0"`, a GPU id, a sensor name), and [`DeviceKey::parse`] reads it back by domain, so
//!   `parse(d, s).to_string() == s` for every domain and string: a state file always loads.
//! * Order is the order of those strings (then the variant), so maps keyed by channel list them
//!   as they always did (`"10"` before `"2"`).

use super::Domain;
use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

/// The device an energy channel belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKey {
    /// Node-wide (the BMC, RAPL psys, the estimate): printed empty.
    Node,
    /// A CPU socket (RAPL package or DRAM, a Grace socket).
    Socket(u32),
    /// One die of a socket whose RAPL counts dies apart (`S-die-D`).
    Die { socket: u32, die: u32 },
    /// A GPU by the id jobs name it by (NVIDIA UUID, AMD unique id or PCI address, Intel PCI
    /// address).
    Gpu(Arc<str>),
    /// A sensor named in the configuration (hwmon), or a string found under a per-socket domain
    /// that is no socket (never written by joulebook; kept so its energy is not lost).
    Sensor(Arc<str>),
}

impl DeviceKey {
    /// A GPU's key.
    pub fn gpu(id: impl Into<Arc<str>>) -> Self {
        DeviceKey::Gpu(id.into())
    }

    /// A configured sensor's key.
    pub fn sensor(name: impl Into<Arc<str>>) -> Self {
        DeviceKey::Sensor(name.into())
    }

    /// The key printed as `s` under `domain` (the inverse of `Display`): empty is the node; under
    /// a per-socket domain (RAPL, Grace) a socket `N` or die `N-die-M` in canonical decimal;
    /// under a GPU domain a GPU; anything else a sensor.
    pub fn parse(domain: Domain, s: &str) -> Self {
        if s.is_empty() {
            return DeviceKey::Node;
        }
        match domain {
            Domain::RaplPackage
            | Domain::RaplCore
            | Domain::RaplUncore
            | Domain::RaplDram
            | Domain::RaplPsys
            | Domain::GraceSocket
            | Domain::GraceCpuRail
            | Domain::GraceSysioRail
            | Domain::GraceModule => match s.split_once("-die-") {
                None => number(s).map(DeviceKey::Socket),
                Some((socket, die)) => number(socket)
                    .zip(number(die))
                    .map(|(socket, die)| DeviceKey::Die { socket, die }),
            }
            .unwrap_or_else(|| DeviceKey::sensor(s)),
            Domain::Gpu | Domain::AmdGpu | Domain::AmdApu | Domain::IntelGpu => DeviceKey::gpu(s),
            Domain::HwmonNode
            | Domain::HwmonCpu
            | Domain::HwmonDram
            | Domain::HwmonGpu
            | Domain::HwmonOther
            | Domain::EstimatedCpu
            | Domain::EstimatedDram
            | Domain::Bmc => DeviceKey::sensor(s),
        }
    }

    /// The socket a socket or die key belongs to.
    pub fn socket(&self) -> Option<u32> {
        match self {
            DeviceKey::Socket(s) | DeviceKey::Die { socket: s, .. } => Some(*s),
            DeviceKey::Node | DeviceKey::Gpu(_) | DeviceKey::Sensor(_) => None,
        }
    }

    /// The die of a die key.
    pub fn die(&self) -> Option<u32> {
        match self {
            DeviceKey::Die { die, .. } => Some(*die),
            _ => None,
        }
    }

    /// The printed form as a label value: borrowed where it is a string already.
    pub fn label(&self) -> Cow<'_, str> {
        match self {
            DeviceKey::Node => Cow::Borrowed(""),
            DeviceKey::Gpu(s) | DeviceKey::Sensor(s) => Cow::Borrowed(s),
            DeviceKey::Socket(_) | DeviceKey::Die { .. } => Cow::Owned(self.to_string()),
        }
    }

    /// The printed form, borrowed where it is a string already (GPU ids, sensor names).
    fn text(&self) -> Text<'_> {
        match self {
            DeviceKey::Node => Text::Str(""),
            DeviceKey::Gpu(s) | DeviceKey::Sensor(s) => Text::Str(s),
            // Written by hand, not through `fmt`: maps keyed by channel compare keys on every
            // lookup of every cycle, and `write!` made those comparisons a quarter of an idle
            // cycle's instructions (callgrind).
            DeviceKey::Socket(n) => {
                let mut buf = Buf::default();
                buf.push_u32(*n);
                Text::Buf(buf)
            }
            DeviceKey::Die { socket, die } => {
                let mut buf = Buf::default();
                buf.push_u32(*socket);
                buf.push(b"-die-");
                buf.push_u32(*die);
                Text::Buf(buf)
            }
        }
    }

    fn rank(&self) -> u8 {
        match self {
            DeviceKey::Node => 0,
            DeviceKey::Socket(_) => 1,
            DeviceKey::Die { .. } => 2,
            DeviceKey::Gpu(_) => 3,
            DeviceKey::Sensor(_) => 4,
        }
    }
}

/// `s` as a `u32` written in canonical decimal (no sign, no leading zero), so that printing it
/// gives `s` back.
fn number(s: &str) -> Option<u32> {
    let canonical = s == "0" || (!s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit()));
    s.parse().ok().filter(|_| canonical)
}

impl fmt::Display for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceKey::Node => Ok(()),
            DeviceKey::Socket(s) => write!(f, "{s}"),
            DeviceKey::Die { socket, die } => write!(f, "{socket}-die-{die}"),
            DeviceKey::Gpu(s) | DeviceKey::Sensor(s) => f.write_str(s),
        }
    }
}

impl PartialEq<&str> for DeviceKey {
    fn eq(&self, o: &&str) -> bool {
        self.text().as_str() == *o
    }
}

impl Ord for DeviceKey {
    fn cmp(&self, o: &Self) -> Ordering {
        self.text()
            .as_str()
            .cmp(o.text().as_str())
            .then_with(|| self.rank().cmp(&o.rank()))
    }
}

impl PartialOrd for DeviceKey {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// A socket or die key printed on the stack (at most 25 bytes), for comparisons.
#[derive(Default)]
struct Buf {
    bytes: [u8; 32],
    len: usize,
}

impl Buf {
    /// Appends `b`; two u32 and "-die-" (25 bytes) always fit.
    fn push(&mut self, b: &[u8]) {
        let end = (self.len + b.len()).min(self.bytes.len());
        let n = end - self.len;
        self.bytes[self.len..end].copy_from_slice(&b[..n]);
        self.len = end;
    }

    /// Appends `n` in decimal, as `{n}` prints it.
    fn push_u32(&mut self, mut n: u32) {
        let mut digits = [0u8; 10];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }
}

enum Text<'a> {
    Str(&'a str),
    Buf(Buf),
}

impl Text<'_> {
    fn as_str(&self) -> &str {
        match self {
            Text::Str(s) => s,
            // Only whole `str`s are written into the buffer.
            Text::Buf(b) => std::str::from_utf8(&b.bytes[..b.len]).unwrap_or(""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAINS: [Domain; 4] = [
        Domain::RaplPackage,
        Domain::Gpu,
        Domain::HwmonCpu,
        Domain::EstimatedCpu,
    ];

    #[test]
    fn every_variant_prints_as_before_and_parses_back() {
        let cases = [
            (Domain::Bmc, DeviceKey::Node, ""),
            (Domain::RaplPsys, DeviceKey::Node, ""),
            (Domain::RaplPackage, DeviceKey::Socket(1), "1"),
            (
                Domain::RaplDram,
                DeviceKey::Socket(4294967295),
                "4294967295",
            ),
            (
                Domain::RaplPackage,
                DeviceKey::Die { socket: 1, die: 0 },
                "1-die-0",
            ),
            (Domain::GraceSocket, DeviceKey::Socket(0), "0"),
            (Domain::Gpu, DeviceKey::gpu("GPU-1/2"), "GPU-1/2"),
            (Domain::AmdGpu, DeviceKey::gpu("1234"), "1234"),
            (
                Domain::IntelGpu,
                DeviceKey::gpu("0000:4d:00.0"),
                "0000:4d:00.0",
            ),
            (Domain::HwmonNode, DeviceKey::sensor("node"), "node"),
            (Domain::HwmonCpu, DeviceKey::sensor("7"), "7"),
        ];
        for (domain, key, text) in cases {
            assert_eq!(key.to_string(), text);
            assert_eq!(DeviceKey::parse(domain, text), key, "{domain:?} {text:?}");
            assert!(key == text);
        }
    }

    #[test]
    fn any_string_parses_to_a_key_that_prints_it() {
        for s in [
            "",
            "0",
            "007",
            "+1",
            "-1",
            "1-die-",
            "1-die-x",
            "pdu",
            "99999999999",
            "1-die-02",
        ] {
            for d in DOMAINS {
                assert_eq!(DeviceKey::parse(d, s).to_string(), s, "{d:?}");
            }
        }
        assert_eq!(
            DeviceKey::parse(Domain::RaplPackage, "007"),
            DeviceKey::sensor("007")
        );
        assert_eq!(
            DeviceKey::parse(Domain::RaplPackage, "pdu"),
            DeviceKey::sensor("pdu")
        );
    }

    #[test]
    fn order_is_the_order_of_the_printed_strings() {
        let mut keys = [
            DeviceKey::Socket(2),
            DeviceKey::Die { socket: 1, die: 0 },
            DeviceKey::Socket(10),
            DeviceKey::Node,
            DeviceKey::Socket(1),
            DeviceKey::gpu("GPU-b"),
            DeviceKey::sensor("GPU-a"),
        ];
        keys.sort();
        let printed: Vec<String> = keys.iter().map(ToString::to_string).collect();
        assert_eq!(printed, ["", "1", "1-die-0", "10", "2", "GPU-a", "GPU-b"]);
        // Equal strings of different kinds stay distinct, ordered by kind.
        assert!(DeviceKey::Socket(0) < DeviceKey::gpu("0"));
        assert_ne!(DeviceKey::Socket(0), DeviceKey::gpu("0"));
    }
}
