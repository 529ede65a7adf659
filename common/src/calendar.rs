//! Civil dates (proleptic Gregorian) to and from days since 1970-01-01, for the simulator's
//! scenario times. The arithmetic is jiff's (`jiff::civil::Date`); jiff's dates run from year
//! -9999 to 9999, and a day number beyond them gives the nearest end of that range.

use jiff::civil::Date;
use jiff::SignedDuration;

const DAY: i64 = 86_400;
const EPOCH: Date = jiff::civil::date(1970, 1, 1);

/// Days since 1970-01-01 of a civil date; `None` for a date that does not exist (2025-02-30,
/// month 13) or lies outside years -9999..=9999.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> Option<i64> {
    let date = Date::new(
        i16::try_from(y).ok()?,
        i8::try_from(m).ok()?,
        i8::try_from(d).ok()?,
    )
    .ok()?;
    Some(date.duration_since(EPOCH).as_secs().div_euclid(DAY))
}

/// The civil date (year, month, day) of a day number: the inverse of [`days_from_civil`], clamped
/// to jiff's range (-9999-01-01 to 9999-12-31).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let (lo, hi) = (first_day(), last_day());
    let z = z.clamp(lo, hi);
    let date = EPOCH
        .checked_add(SignedDuration::from_secs(z * DAY))
        .unwrap_or(if z == lo { Date::MIN } else { Date::MAX });
    (
        i64::from(date.year()),
        date.month() as u32,
        date.day() as u32,
    )
}

fn first_day() -> i64 {
    Date::MIN.duration_since(EPOCH).as_secs() / DAY
}

fn last_day() -> i64 {
    Date::MAX.duration_since(EPOCH).as_secs() / DAY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates_and_round_trips() {
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(days_from_civil(2000, 3, 1), Some(11_017));
        assert_eq!(days_from_civil(2024, 2, 29), Some(19_782));
        assert_eq!(civil_from_days(19_783), (2024, 3, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        for z in -800_000..800_000 {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), Some(z));
        }
    }

    #[test]
    fn impossible_dates_are_none_and_far_days_clamp() {
        assert_eq!(days_from_civil(2025, 2, 29), None);
        assert_eq!(days_from_civil(2025, 4, 31), None);
        assert_eq!(days_from_civil(2025, 13, 1), None);
        assert_eq!(days_from_civil(2025, 0, 1), None);
        assert_eq!(days_from_civil(10_000, 1, 1), None);
        assert_eq!(civil_from_days(i64::MAX), (9999, 12, 31));
        assert_eq!(civil_from_days(i64::MIN), (-9999, 1, 1));
        assert_eq!(civil_from_days(last_day()), (9999, 12, 31));
        assert_eq!(civil_from_days(first_day()), (-9999, 1, 1));
    }
}
