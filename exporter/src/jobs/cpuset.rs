//! The kernel's CPU list format (`0-3,8,10-11`), as found in `cpuset.cpus` and
//! `cpuset.effective_cpus`. Pure, no I/O.

use std::fmt;

/// Largest CPU id accepted. Linux's `NR_CPUS` tops out at 8192 on the usual distributions; the
/// bound is far above that and exists so that a garbage range such as `0-4294967295` is an error
/// instead of a 16 GiB allocation.
pub const MAX_CPU_ID: u32 = 65_535;

/// A CPU list that could not be parsed. `value` is the whole text, for the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuListError {
    pub value: String,
    pub reason: &'static str,
}

impl fmt::Display for CpuListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug formatting quotes and escapes the value, so a hostile file cannot forge log lines.
        write!(
            f,
            "expected a CPU list such as \"0-3,8\", found {:?} ({})",
            shorten(&self.value),
            self.reason
        )
    }
}

impl std::error::Error for CpuListError {}

/// At most this many characters of bad content go into a message.
const MAX_SHOWN: usize = 64;

/// `s` cut to a length fit for a log line.
pub(crate) fn shorten(s: &str) -> &str {
    match s.char_indices().nth(MAX_SHOWN) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Parses a CPU list into sorted, deduplicated CPU ids. Whitespace and newlines around items
/// are ignored; an empty list (an unset v2 `cpuset.cpus`) is `Ok(vec![])`.
pub fn parse_cpu_list(text: &str) -> Result<Vec<u32>, CpuListError> {
    let err = |reason| CpuListError {
        value: text.to_string(),
        reason,
    };
    let mut cpus = Vec::new();
    for item in text.split(',') {
        let item = item.trim();
        if item.is_empty() {
            // "0-3," or a file holding only a newline: tolerated, as the kernel's own parser
            // tolerates a trailing separator.
            continue;
        }
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (parse_id(a.trim(), text)?, parse_id(b.trim(), text)?),
            None => {
                let v = parse_id(item, text)?;
                (v, v)
            }
        };
        if lo > hi {
            return Err(err("range runs backwards"));
        }
        cpus.extend(lo..=hi);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

fn parse_id(s: &str, whole: &str) -> Result<u32, CpuListError> {
    let err = |reason| CpuListError {
        value: whole.to_string(),
        reason,
    };
    // `u32::from_str` accepts a leading '+', the kernel does not.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err("not a CPU number"));
    }
    match s.parse::<u32>() {
        Ok(v) if v <= MAX_CPU_ID => Ok(v),
        _ => Err(err("CPU number too large")),
    }
}

/// Formats CPU ids (any order, duplicates allowed) the way the kernel does: ascending ranges.
pub fn format_cpu_list(cpus: &[u32]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}-{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_ranges_singles_and_whitespace() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11\n"),
            Ok(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list(" 4 - 5 ,\n 8 \n"), Ok(vec![4, 5, 8]));
        assert_eq!(parse_cpu_list("\n"), Ok(vec![]));
        assert_eq!(parse_cpu_list(""), Ok(vec![]));
        assert_eq!(parse_cpu_list("3,1-2,2"), Ok(vec![1, 2, 3]));
    }

    #[test]
    fn garbage_is_an_error_that_quotes_the_value() {
        for bad in [
            "zz-3",
            "1-",
            "-1",
            "+1",
            "3-1",
            "1:2",
            "0-8:2",
            "1 2",
            "99999999999",
        ] {
            let e = parse_cpu_list(bad).expect_err(bad);
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
        // A huge range is refused, not allocated.
        assert!(parse_cpu_list("0-4294967295").is_err());
    }

    #[test]
    fn long_garbage_is_shortened_in_the_message() {
        let bad = "x".repeat(10_000);
        let msg = parse_cpu_list(&bad).expect_err("garbage").to_string();
        assert!(msg.len() < 200, "{msg}");
    }

    #[test]
    fn formats_like_the_kernel() {
        assert_eq!(format_cpu_list(&[11, 0, 1, 2, 3, 8, 10]), "0-3,8,10-11");
        assert_eq!(format_cpu_list(&[]), "");
        assert_eq!(format_cpu_list(&[5, 5]), "5");
    }

    proptest! {
        /// Any set of CPUs survives format → parse unchanged.
        #[test]
        fn round_trip(set in proptest::collection::btree_set(0u32..=MAX_CPU_ID, 0..300)) {
            let cpus: Vec<u32> = set.into_iter().collect();
            let text = format_cpu_list(&cpus);
            prop_assert_eq!(parse_cpu_list(&text), Ok(cpus.clone()));
            // Also with the whitespace a file may carry.
            let spaced = format!(" {}\n", text.replace(',', " ,\n"));
            prop_assert_eq!(parse_cpu_list(&spaced), Ok(cpus));
        }

        /// Dense sets (long ranges) round-trip too.
        #[test]
        fn round_trip_dense(start in 0u32..1000, len in 0u32..500, holes in proptest::collection::vec(0u32..500, 0..10)) {
            let cpus: Vec<u32> = (start..start + len).filter(|c| !holes.contains(&(c - start))).collect();
            prop_assert_eq!(parse_cpu_list(&format_cpu_list(&cpus)), Ok(cpus));
        }

        /// Arbitrary input never panics.
        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = parse_cpu_list(&s);
        }
    }
}
