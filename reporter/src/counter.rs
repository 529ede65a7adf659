//! The increase of one energy counter over a period, from its raw samples: the reference the
//! PromQL fast path must agree with, and the slow path for the few series whose counter went down.
//!
//! A joulebook counter can go down for two reasons, and they need opposite treatments:
//!
//! * **Restart with the state file** (the normal case): the exporter resumes from totals saved at
//!   most `state.save_interval` (60 s) earlier, so the first value after the restart can be a
//!   little *below* the last one scraped. Nothing restarted from zero: the counter continues, and
//!   its final value is still the total. Adding the post-restart value as Prometheus' reset rule
//!   does would count the whole history twice.
//! * **Restart without a usable state file** (lost, corrupt, another host's): the counter starts
//!   again from zero, and the energy before the restart must be kept: the period's energy is the
//!   sum over the segments.
//!
//! Rule: a decrease to less than half of the value before it is a reset to zero (a new segment);
//! any smaller decrease is a resume from saved state, and the energy counts again only once the
//! counter passes its previous high-water mark. A restart without state can be mistaken for a
//! resume only when the counter had not yet doubled since the restart, so the error is at most
//! the energy from that restart to the sample that follows it; the converse mistake is possible
//! only for a counter younger than twice the save interval. Both are bounded by one scrape
//! interval of the series' power plus a save interval, and documented in `reporter/README.md`.

/// Increase of a counter over `(start, end]` from `base`, the value of the last sample at or
/// before `start` (`None` when the series did not exist then: a joulebook job counter starts at
/// zero), and the samples after it in time order. Units are the counter's (joules, seconds).
pub fn increase(base: Option<f64>, samples: impl IntoIterator<Item = f64>) -> f64 {
    let mut total = 0.0;
    // The value up to which energy has been counted in the current segment.
    let mut high = base.unwrap_or(0.0);
    for v in samples {
        if !v.is_finite() {
            continue;
        }
        if v >= high {
            total += v - high;
            high = v;
        } else if v < high / 2.0 {
            // Reset to zero: the counter's whole new value happened since the restart.
            total += v;
            high = v;
        }
        // else: resumed from a saved state a little behind; wait until it passes `high`.
    }
    total
}

#[cfg(test)]
mod tests {
    use super::increase;

    #[test]
    fn monotonic_is_last_minus_base() {
        assert_eq!(increase(Some(10.0), [12.0, 15.0, 20.0]), 10.0);
        assert_eq!(increase(None, [0.0, 5.0, 9.0]), 9.0);
    }

    #[test]
    fn short_job_seen_once_counts_fully() {
        // A job that began and ended between two scrapes is first seen with its final value.
        assert_eq!(increase(None, [7.5, 7.5, 7.5]), 7.5);
    }

    #[test]
    fn resume_from_state_keeps_the_final_counter() {
        // Scraped 100, restarted from a state saved at 98, went on to 150: the total is 150.
        assert_eq!(increase(None, [50.0, 100.0, 98.0, 99.0, 150.0]), 150.0);
    }

    #[test]
    fn reset_to_zero_sums_segments() {
        assert_eq!(increase(None, [50.0, 100.0, 3.0, 40.0]), 140.0);
        assert_eq!(increase(Some(20.0), [100.0, 0.0, 40.0]), 120.0);
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(increase(Some(3.0), []), 0.0);
        assert_eq!(increase(None, [f64::NAN]), 0.0);
    }
}
