//! Report periods and the few calendar computations they need (UTC only, proleptic Gregorian).
//!
//! Written by hand rather than pulling a date crate: the reporter needs month boundaries, day
//! boundaries and ISO-8601 formatting of Unix seconds, nothing more.

use std::fmt;

/// A half-open interval of time `(start, end]`, in Unix seconds (UTC).
///
/// Energy "in the period" is a counter's value at the last sample at or before `end` minus its
/// value at the last sample at or before `start` (see `reporter/README.md`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Period {
    /// Unix seconds.
    pub start: i64,
    /// Unix seconds.
    pub end: i64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct PeriodError(pub String);

impl Period {
    /// Length in seconds.
    pub fn seconds(&self) -> i64 {
        self.end - self.start
    }

    /// A calendar month, `YYYY-MM`, or `previous` / `current` (UTC), which is what a monthly
    /// timer needs: on the 1st of each month it reports the month just ended.
    pub fn month(s: &str) -> Result<Period, PeriodError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Period::month_at(s, now)
    }

    /// [`Period::month`], with `previous` and `current` relative to `now` (Unix seconds).
    pub fn month_at(s: &str, now: i64) -> Result<Period, PeriodError> {
        if s == "previous" || s == "current" {
            let (y, m, _) = civil_from_days(now.div_euclid(86_400));
            let (y, m) = match (s, m) {
                ("current", _) => (y, m),
                (_, 1) => (y - 1, 12),
                _ => (y, m - 1),
            };
            return Period::month(&format!("{y:04}-{m:02}"));
        }
        let bad = || {
            PeriodError(format!(
                "--month {s:?}: expected YYYY-MM (for example 2026-10), previous or current"
            ))
        };
        let (y, m) = s.split_once('-').ok_or_else(bad)?;
        let y: i64 = y.parse().map_err(|_| bad())?;
        let m: u32 = m.parse().map_err(|_| bad())?;
        if !(1..=12).contains(&m) || !(1970..=9999).contains(&y) {
            return Err(bad());
        }
        let start = days_from_civil(y, m, 1) * 86_400;
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        let end = days_from_civil(ny, nm, 1) * 86_400;
        Ok(Period { start, end })
    }

    /// A calendar year, `YYYY`, or `previous` / `current` (UTC): `--year`.
    pub fn year(s: &str) -> Result<Period, PeriodError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Period::year_at(s, now)
    }

    /// [`Period::year`], with `previous` and `current` relative to `now` (Unix seconds).
    pub fn year_at(s: &str, now: i64) -> Result<Period, PeriodError> {
        let this = civil_from_days(now.div_euclid(86_400)).0;
        let y = match s {
            "current" => this,
            "previous" => this - 1,
            _ => s
                .parse::<i64>()
                .ok()
                .filter(|y| (1970..=9999).contains(y))
                .ok_or_else(|| {
                    PeriodError(format!(
                        "--year {s:?}: expected YYYY (for example 2026), previous or current"
                    ))
                })?,
        };
        Ok(Period {
            start: days_from_civil(y, 1, 1) * 86_400,
            end: days_from_civil(y + 1, 1, 1) * 86_400,
        })
    }

    /// `--from`/`--to`: each `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM[:SS]Z`.
    pub fn between(from: &str, to: &str) -> Result<Period, PeriodError> {
        let start = parse_instant(from).map_err(|e| PeriodError(format!("--from: {e}")))?;
        let end = parse_instant(to).map_err(|e| PeriodError(format!("--to: {e}")))?;
        if end <= start {
            return Err(PeriodError(format!(
                "--to {to} is not after --from {from}: give an end later than the start"
            )));
        }
        Ok(Period { start, end })
    }

    /// Slices of at most one day aligned on UTC midnights (the first and last may be shorter):
    /// the days of the daily chart. Their sum is the period.
    pub fn days(&self) -> Vec<Period> {
        let mut out = Vec::new();
        let mut t = self.start;
        while t < self.end {
            let next = ((t.div_euclid(86_400)) + 1) * 86_400;
            let e = next.min(self.end);
            out.push(Period { start: t, end: e });
            t = e;
        }
        out
    }

    /// A short human label: `2026-10` for a whole month, else `2026-10-03 → 2026-10-09 12:00`.
    pub fn label(&self) -> String {
        let (y, m, d) = civil_from_days(self.start.div_euclid(86_400));
        if self.start % 86_400 == 0 && d == 1 {
            if let Ok(p) = Period::month(&format!("{y:04}-{m:02}")) {
                if p == *self {
                    return format!("{y:04}-{m:02}");
                }
            }
            if Period::year(&format!("{y:04}")).is_ok_and(|p| p == *self) {
                return format!("{y:04}");
            }
        }
        format!("{} → {}", short(self.start), short(self.end))
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to {}", iso(self.start), iso(self.end))
    }
}

fn short(t: i64) -> String {
    let s = iso(t);
    if t % 86_400 == 0 {
        s[..10].to_string()
    } else {
        s[..16].replace('T', " ")
    }
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn iso(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// Unix seconds as `YYYY-MM-DD`.
pub fn date(t: i64) -> String {
    iso(t)[..10].to_string()
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS]Z` or a plain number of Unix seconds.
pub fn parse_instant(s: &str) -> Result<i64, String> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    let bad = || format!("{s:?}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)");
    let (d, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t.strip_suffix('Z').ok_or_else(bad)?)),
        None => (s, None),
    };
    let mut parts = d.split('-');
    let y: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let m: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let day: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=days_in_month(y, m)).contains(&day)
    {
        return Err(bad());
    }
    let mut secs = 0;
    if let Some(t) = time {
        let f: Vec<&str> = t.split(':').collect();
        if !(2..=3).contains(&f.len()) {
            return Err(bad());
        }
        let h: i64 = f[0].parse().map_err(|_| bad())?;
        let mi: i64 = f[1].parse().map_err(|_| bad())?;
        let se: i64 = f.get(2).map_or(Ok(0), |x| x.parse()).map_err(|_| bad())?;
        if !(0..24).contains(&h) || !(0..60).contains(&mi) || !(0..60).contains(&se) {
            return Err(bad());
        }
        secs = h * 3600 + mi * 60 + se;
    }
    Ok(days_from_civil(y, m, day) * 86_400 + secs)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

pub use joulebook_common::calendar::{civil_from_days, days_from_civil};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months() {
        let p = Period::month("2026-10").unwrap();
        assert_eq!(iso(p.start), "2026-10-01T00:00:00Z");
        assert_eq!(iso(p.end), "2026-11-01T00:00:00Z");
        assert_eq!(p.days().len(), 31);
        assert_eq!(p.label(), "2026-10");
        let p = Period::month("2024-12").unwrap();
        assert_eq!(iso(p.end), "2025-01-01T00:00:00Z");
        assert_eq!(Period::month("2024-02").unwrap().days().len(), 29);
        assert!(Period::month("2024-13").is_err());
        // 2027-01-01T06:00Z: the previous month is December 2026.
        let jan = days_from_civil(2027, 1, 1) * 86_400 + 6 * 3600;
        assert_eq!(
            Period::month_at("previous", jan).unwrap(),
            Period::month("2026-12").unwrap()
        );
        assert_eq!(
            Period::month_at("current", jan).unwrap(),
            Period::month("2027-01").unwrap()
        );
        let mar = days_from_civil(2026, 3, 1) * 86_400;
        assert_eq!(
            Period::month_at("previous", mar).unwrap(),
            Period::month("2026-02").unwrap()
        );
        assert!(Period::month("oct").is_err());
    }

    #[test]
    fn years() {
        let p = Period::year("2026").unwrap();
        assert_eq!(iso(p.start), "2026-01-01T00:00:00Z");
        assert_eq!(iso(p.end), "2027-01-01T00:00:00Z");
        assert_eq!(p.days().len(), 365);
        assert_eq!(p.label(), "2026");
        assert_eq!(Period::year("2024").unwrap().days().len(), 366);
        let jan = days_from_civil(2027, 1, 1) * 86_400 + 6 * 3600;
        assert_eq!(Period::year_at("previous", jan).unwrap(), p);
        assert_eq!(
            Period::year_at("current", jan).unwrap(),
            Period::year("2027").unwrap()
        );
        let e = Period::year("26").unwrap_err().to_string();
        assert!(e.starts_with("--year \"26\""), "{e}");
        assert!(Period::year("2026-10").is_err());
    }

    #[test]
    fn between_and_days() {
        let p = Period::between("2026-10-03T12:00Z", "2026-10-05").unwrap();
        let d = p.days();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].seconds(), 43_200);
        assert_eq!(d.iter().map(Period::seconds).sum::<i64>(), p.seconds());
        assert!(Period::between("2026-10-05", "2026-10-03").is_err());
        assert!(parse_instant("2026-02-30").is_err());
        assert_eq!(p.label(), "2026-10-03 12:00 → 2026-10-05");
    }

    #[test]
    fn civil_roundtrip() {
        for z in -1000..40_000 {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }
}
