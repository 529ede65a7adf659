//! Report periods in the site's time zone (`timezone:` in the config, `--timezone`; UTC by
//! default). Rules: a period is a half-open interval of Unix seconds; its months, years and days
//! are the zone's civil ones, so a day lasts 23 or 25 hours across a daylight-saving change and
//! the days of a period add up to it exactly; every time printed carries its offset (RFC 3339,
//! `Z` in UTC). Calendar arithmetic and the IANA rules are jiff's (the database it reads:
//! reporter/Cargo.toml).

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};
use jiff::{Timestamp, ToSpan};

/// A half-open interval of time `(start, end]`, in Unix seconds.
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
}

/// In UTC, `2026-10-01T00:00:00Z to 2026-11-01T00:00:00Z`, whatever the site's zone.
impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} to {}", iso_utc(self.start), iso_utc(self.end))
    }
}

/// The site's time zone: the calendar of its periods and the clock of the times a report prints.
#[derive(Clone, Debug)]
pub struct Zone {
    tz: TimeZone,
    name: String,
    /// Times print with `Z` rather than `+00:00`.
    utc: bool,
}

impl Default for Zone {
    fn default() -> Zone {
        Zone::utc()
    }
}

impl Zone {
    pub fn utc() -> Zone {
        Zone {
            tz: TimeZone::UTC,
            name: "UTC".into(),
            utc: true,
        }
    }

    /// A zone by its IANA name (`Europe/Paris`, `UTC`; any case). The error quotes the value; the
    /// caller names the flag or key in front of it.
    pub fn named(name: &str) -> Result<Zone, String> {
        // The database's other names of UTC print `Z` too.
        const UTC: [&str; 7] = [
            "Etc/UTC",
            "Etc/UCT",
            "Etc/Universal",
            "Etc/Zulu",
            "UCT",
            "Universal",
            "Zulu",
        ];
        if UTC.iter().any(|u| u.eq_ignore_ascii_case(name)) {
            return Ok(Zone::utc());
        }
        let tz = TimeZone::get(name)
            .ok()
            .filter(|tz| !tz.is_unknown())
            .ok_or_else(|| {
                format!(
                    "{name:?} is not a time zone of the IANA database: write a name such as Europe/Paris, America/New_York or UTC"
                )
            })?;
        let utc = tz.to_fixed_offset().is_ok_and(|o| o == Offset::UTC);
        let name = tz.iana_name().unwrap_or(name).to_string();
        Ok(Zone { tz, name, utc })
    }

    /// The zone's IANA name, as the database spells it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Unix seconds as RFC 3339 in the zone: `2026-10-01T00:00:00+02:00`, `…Z` in UTC.
    pub fn iso(&self, t: i64) -> String {
        match Timestamp::from_second(t) {
            Ok(ts) if self.utc => ts.to_string(),
            Ok(ts) => ts.display_with_offset(self.tz.to_offset(ts)).to_string(),
            Err(_) => format!("{t} (Unix seconds)"),
        }
    }

    /// The local date of Unix seconds, `YYYY-MM-DD`.
    pub fn date(&self, t: i64) -> String {
        self.local(t)
            .map_or_else(|| format!("{t} (Unix seconds)"), |dt| dt.date().to_string())
    }

    fn local(&self, t: i64) -> Option<DateTime> {
        Timestamp::from_second(t)
            .ok()
            .map(|ts| self.tz.to_datetime(ts))
    }

    /// The first instant of a local day (its midnight, or the end of a gap that swallows it).
    fn day_start(&self, d: Date) -> Option<i64> {
        let z = d.to_zoned_datetime(self.tz.clone()).ok()?;
        Some(z.timestamp().as_second())
    }

    fn span(&self, from: Date, to: Date) -> Option<Period> {
        Some(Period {
            start: self.day_start(from)?,
            end: self.day_start(to)?,
        })
    }

    /// A calendar month, `YYYY-MM`, or `previous` / `current` relative to `now` (Unix seconds),
    /// which is what a monthly timer needs: on the 1st it reports the month just ended.
    pub fn month(&self, s: &str, now: i64) -> Result<Period, PeriodError> {
        let bad = || {
            PeriodError(format!(
                "--month {s:?}: expected YYYY-MM (for example 2026-10), previous or current"
            ))
        };
        let first = match s {
            "previous" | "current" => {
                let this = self.local(now).ok_or_else(bad)?.date().first_of_month();
                if s == "current" {
                    this
                } else {
                    this.checked_sub(1.month()).map_err(|_| bad())?
                }
            }
            _ => {
                let (y, m) = s.split_once('-').ok_or_else(bad)?;
                let y: i16 = y.parse().map_err(|_| bad())?;
                let m: i8 = m.parse().map_err(|_| bad())?;
                if !(1970..=9999).contains(&y) {
                    return Err(bad());
                }
                Date::new(y, m, 1).map_err(|_| bad())?
            }
        };
        let next = first.checked_add(1.month()).map_err(|_| bad())?;
        self.span(first, next).ok_or_else(bad)
    }

    /// A calendar year, `YYYY`, or `previous` / `current` relative to `now`: `--year`.
    pub fn year(&self, s: &str, now: i64) -> Result<Period, PeriodError> {
        let bad = || {
            PeriodError(format!(
                "--year {s:?}: expected YYYY (for example 2026), previous or current"
            ))
        };
        let y = match s {
            "current" | "previous" => {
                let this = self.local(now).ok_or_else(bad)?.year();
                if s == "current" {
                    this
                } else {
                    this - 1
                }
            }
            _ => s
                .parse::<i16>()
                .ok()
                .filter(|y| (1970..=9999).contains(y))
                .ok_or_else(bad)?,
        };
        let first = Date::new(y, 1, 1).map_err(|_| bad())?;
        let next = first.checked_add(1.year()).map_err(|_| bad())?;
        self.span(first, next).ok_or_else(bad)
    }

    /// `--from`/`--to`: each `YYYY-MM-DD` (the local midnight), `YYYY-MM-DDTHH:MM[:SS]` (local
    /// time), either with `Z` or an offset (`+02:00`), or Unix seconds.
    pub fn between(&self, from: &str, to: &str) -> Result<Period, PeriodError> {
        let start = self
            .instant(from)
            .map_err(|e| PeriodError(format!("--from {from:?}: {e}")))?;
        let end = self
            .instant(to)
            .map_err(|e| PeriodError(format!("--to {to:?}: {e}")))?;
        if end <= start {
            return Err(PeriodError(format!(
                "--to {to} is not after --from {from}: give an end later than the start"
            )));
        }
        Ok(Period { start, end })
    }

    fn instant(&self, s: &str) -> Result<i64, String> {
        let bad = || {
            format!(
                "expected YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] ({} time), either with Z or an offset (+02:00), or Unix seconds",
                self.name
            )
        };
        if let Ok(n) = s.parse::<i64>() {
            Timestamp::from_second(n).map_err(|_| bad())?;
            return Ok(n);
        }
        if !s.contains(['T', 't', ' ']) {
            let d: Date = s.parse().map_err(|_| bad())?;
            return self.day_start(d).ok_or_else(bad);
        }
        let ts = match s.parse::<Timestamp>() {
            Ok(ts) => ts,
            Err(_) => {
                let dt: DateTime = s.parse().map_err(|_| bad())?;
                self.unambiguous(dt)?
            }
        };
        if ts.subsec_nanosecond() != 0 {
            return Err("give whole seconds".into());
        }
        Ok(ts.as_second())
    }

    /// A local time that happens exactly once in the zone.
    fn unambiguous(&self, dt: DateTime) -> Result<Timestamp, String> {
        let amb = self.tz.to_ambiguous_timestamp(dt);
        let (day, hm) = (dt.date(), dt.time().strftime("%H:%M:%S"));
        match amb.offset() {
            AmbiguousOffset::Unambiguous { offset } => offset
                .to_timestamp(dt)
                .map_err(|e| format!("out of range ({e})")),
            AmbiguousOffset::Gap { before, after } => Err(format!(
                "there is no {hm} in {} on {day} (clocks go from {} to {}): give a time that exists",
                self.name,
                offset_text(before),
                offset_text(after)
            )),
            AmbiguousOffset::Fold { before, after } => Err(format!(
                "{hm} happens twice in {} on {day} (at {} and {}): add the offset, e.g. {day}T{hm}{}",
                self.name,
                offset_text(before),
                offset_text(after),
                offset_text(before)
            )),
        }
    }

    /// Slices of at most one local day, cut at local midnights (the first and last may be
    /// shorter; a day may be 23 or 25 hours): the days of the daily chart. Their sum is the period.
    pub fn days(&self, p: &Period) -> Vec<Period> {
        let mut out = Vec::new();
        let mut t = p.start;
        while t < p.end {
            let next = self
                .local(t)
                .and_then(|dt| dt.date().tomorrow().ok())
                .and_then(|d| self.day_start(d))
                .filter(|&n| n > t)
                .unwrap_or(p.end);
            let e = next.min(p.end);
            out.push(Period { start: t, end: e });
            t = e;
        }
        out
    }

    /// A short human label: `2026-10` for a whole month, `2026` for a whole year, else
    /// `2026-10-03 → 2026-10-09 12:00` (a time shown carries its offset outside UTC).
    pub fn label(&self, p: &Period) -> String {
        if let Some(d) = self.local(p.start).map(|dt| dt.date()) {
            if d.day() == 1 && self.day_start(d) == Some(p.start) {
                let (y, m) = (d.year(), d.month());
                if self.month(&format!("{y:04}-{m:02}"), 0).ok() == Some(*p) {
                    return format!("{y:04}-{m:02}");
                }
                if self.year(&format!("{y:04}"), 0).ok() == Some(*p) {
                    return format!("{y:04}");
                }
            }
        }
        format!("{} → {}", self.short(p.start), self.short(p.end))
    }

    /// `YYYY-MM-DD` at the start of a local day, else `YYYY-MM-DD HH:MM` (and the offset).
    fn short(&self, t: i64) -> String {
        let Some(dt) = self.local(t) else {
            return self.iso(t);
        };
        if self.day_start(dt.date()) == Some(t) {
            return dt.date().to_string();
        }
        let hm = dt.strftime("%Y-%m-%d %H:%M").to_string();
        match Timestamp::from_second(t) {
            Ok(ts) if !self.utc => format!("{hm}{}", offset_text(self.tz.to_offset(ts))),
            _ => hm,
        }
    }
}

/// An offset as RFC 3339 writes it: `+02:00`, `-03:30` (seconds only where it has some).
fn offset_text(o: Offset) -> String {
    let s = o.seconds();
    let sign = if s < 0 { '-' } else { '+' };
    let a = s.unsigned_abs();
    let (h, m, sec) = (a / 3600, a / 60 % 60, a % 60);
    if sec == 0 {
        format!("{sign}{h:02}:{m:02}")
    } else {
        format!("{sign}{h:02}:{m:02}:{sec:02}")
    }
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` whatever the site's zone: for names and records that
/// must not depend on it (the send record).
pub fn iso_utc(t: i64) -> String {
    Zone::utc().iso(t)
}

#[cfg(test)]
mod tests;
