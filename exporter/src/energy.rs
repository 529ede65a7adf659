//! Energy arithmetic: turning raw hardware readings into monotonic totals. Pure, no I/O.
//!
//! Totals are kept as integer microjoules, so a wrap-corrected counter accumulates exactly what
//! the hardware counted, with no floating-point drift. They are converted to joules only when
//! published.

/// A raw energy reading, as the hardware gives it. The sampler turns these into joules.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RawEnergy {
    /// A cumulative counter in microjoules that wraps to 0 after `range_uj` (RAPL's
    /// `energy_uj` / `max_energy_range_uj`). `max_watts` bounds the plausible delta.
    Wrapping {
        uj: u64,
        range_uj: u64,
        max_watts: f64,
    },
    /// A cumulative counter in microjoules that only resets (to near 0) when the driver reloads
    /// (NVML total energy, converted from mJ).
    Resetting { uj: u64, max_watts: f64 },
    /// Instantaneous power, integrated by the sampler with the trapezoidal rule (pre-Volta GPUs,
    /// estimates).
    Power { watts: f64 },
}

/// Why a delta was discarded instead of added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// The delta is larger than the hardware could have drawn in the interval: a glitch, a missed
    /// double wrap or a counter that jumped. Adding it would invent energy.
    Implausible,
    /// The reading is outside the counter's range (garbage from the hardware or the file).
    OutOfRange,
}

impl DropReason {
    pub const ALL: [DropReason; 2] = [DropReason::Implausible, DropReason::OutOfRange];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Implausible => "implausible",
            DropReason::OutOfRange => "out_of_range",
        }
    }
}

/// What one reading did to an energy total ([`Accumulator`], the BMC's `Integrator`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Step {
    /// First reading of the channel (or the first after a restart): it only sets the baseline.
    Baseline,
    /// `uj` microjoules were added; `wrapped` is true when a counter wrap or reset was corrected.
    Added { uj: u64, wrapped: bool },
    /// The previous reading is too old (the BMC's `max_gap`): nothing was added for these
    /// seconds, and the integration restarts from this reading.
    Gap { seconds: f64 },
    /// The reading was discarded; the baseline moved to it so the next delta is right.
    Dropped(DropReason),
}

/// Power integrated into whole microjoules (or another integer unit) with the remainder below
/// one unit carried to the next interval, so that rounding never loses or invents energy.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PowerIntegral {
    carry: f64,
}

impl PowerIntegral {
    /// The whole units of `exact` plus the remainder carried so far; keeps the new remainder.
    pub fn whole(&mut self, exact: f64) -> u64 {
        let exact = exact + self.carry;
        let whole = exact.floor();
        self.carry = exact - whole;
        whole as u64
    }

    /// Microjoules of the trapezoid between power readings `from_w` and `to_w`, `dt` s apart.
    pub fn trapezoid_uj(&mut self, from_w: f64, to_w: f64, dt: f64) -> u64 {
        self.whole((from_w + to_w) / 2.0 * dt * 1e6)
    }
}

/// Slack on the plausibility bound, in seconds, for jitter between the reading and the clock.
const PLAUSIBILITY_SLACK_S: f64 = 0.05;

/// The energy delta of a counter that wraps at `range` (values in `0..range`): the correction
/// every peer should make (lesson 1 in the reference notes). `None` if `cur` is out of range.
pub fn wrapping_delta(prev: u64, cur: u64, range: u64) -> Option<(u64, bool)> {
    if range == 0 || cur > range || prev > range {
        return None;
    }
    if cur >= prev {
        Some((cur - prev, false))
    } else {
        Some((range - prev + cur, true))
    }
}

/// Accumulates one channel's energy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Accumulator {
    /// Energy accumulated, in microjoules.
    total_uj: u64,
    /// Last raw counter value (counters) or power in watts (power channels).
    last_raw: Option<u64>,
    last_watts: Option<f64>,
    /// Time of the last reading, in seconds on the sampler's clock.
    last_t: Option<f64>,
    /// Power integration and its sub-microjoule remainder.
    integral: PowerIntegral,
    /// The baseline came from a state file: the first delta spans the exporter's downtime and is
    /// trusted only if the counter cannot have wrapped more than once meanwhile.
    resumed: bool,
}

impl Accumulator {
    /// An accumulator that resumes from a saved total (the state file).
    pub fn resume(total_uj: u64) -> Self {
        Accumulator {
            total_uj,
            ..Default::default()
        }
    }

    /// Resumes a saved total and the hardware reading it was taken at, `age_s` seconds before
    /// time `t`, so the next reading adds the energy drawn while the exporter was down.
    pub fn resume_with_baseline(total_uj: u64, raw: u64, t: f64, age_s: f64) -> Self {
        Accumulator {
            total_uj,
            last_raw: Some(raw),
            last_t: Some(t - age_s.max(0.0)),
            resumed: true,
            ..Default::default()
        }
    }

    /// The last raw counter reading, for the state file.
    pub fn last_raw(&self) -> Option<u64> {
        self.last_raw
    }

    pub fn total_uj(&self) -> u64 {
        self.total_uj
    }

    pub fn joules(&self) -> f64 {
        self.total_uj as f64 / 1e6
    }

    /// Forgets the baseline (the source went away): the next reading starts a new one and the
    /// energy of the gap is not guessed.
    pub fn forget_baseline(&mut self) {
        self.last_raw = None;
        self.last_watts = None;
        self.last_t = None;
    }

    /// Feeds one reading taken at time `t` (seconds, monotonic).
    pub fn update(&mut self, raw: RawEnergy, t: f64) -> Step {
        let dt = self.last_t.map(|last| (t - last).max(0.0));
        self.last_t = Some(t);
        if std::mem::take(&mut self.resumed) {
            if let (
                RawEnergy::Wrapping {
                    range_uj,
                    max_watts,
                    ..
                },
                Some(dt),
            ) = (raw, dt)
            {
                // Over a long downtime the counter may have wrapped twice, which no reading can
                // reveal: start afresh rather than guess.
                if max_watts * dt * 1e6 >= range_uj as f64 {
                    self.last_raw = None;
                }
            }
            if matches!(raw, RawEnergy::Power { .. }) {
                self.last_raw = None;
            }
        }
        match raw {
            RawEnergy::Wrapping {
                uj,
                range_uj,
                max_watts,
            } => {
                let prev = self.last_raw.replace(uj);
                let (Some(prev), Some(dt)) = (prev, dt) else {
                    if uj > range_uj {
                        self.last_raw = None;
                        return Step::Dropped(DropReason::OutOfRange);
                    }
                    return Step::Baseline;
                };
                match wrapping_delta(prev, uj, range_uj) {
                    None => {
                        if uj > range_uj {
                            self.last_raw = None;
                        }
                        Step::Dropped(DropReason::OutOfRange)
                    }
                    Some((delta, wrapped)) => self.add_checked(delta, wrapped, dt, max_watts),
                }
            }
            RawEnergy::Resetting { uj, max_watts } => {
                let prev = self.last_raw.replace(uj);
                let (Some(prev), Some(dt)) = (prev, dt) else {
                    return Step::Baseline;
                };
                // A counter that went down was reset (driver reload): what it shows now is the
                // energy since the reset, all of it inside this interval.
                let (delta, reset) = if uj >= prev {
                    (uj - prev, false)
                } else {
                    (uj, true)
                };
                self.add_checked(delta, reset, dt, max_watts)
            }
            RawEnergy::Power { watts } => {
                let watts = if watts.is_finite() && watts >= 0.0 {
                    watts
                } else {
                    self.last_watts = None;
                    return Step::Dropped(DropReason::OutOfRange);
                };
                let prev = self.last_watts.replace(watts);
                let (Some(prev), Some(dt)) = (prev, dt) else {
                    return Step::Baseline;
                };
                let uj = self.integral.trapezoid_uj(prev, watts, dt);
                self.total_uj = self.total_uj.saturating_add(uj);
                Step::Added { uj, wrapped: false }
            }
        }
    }

    fn add_checked(&mut self, delta: u64, wrapped: bool, dt: f64, max_watts: f64) -> Step {
        let bound = max_watts * (dt + PLAUSIBILITY_SLACK_S) * 1e6;
        if max_watts > 0.0 && delta as f64 > bound {
            return Step::Dropped(DropReason::Implausible);
        }
        self.total_uj = self.total_uj.saturating_add(delta);
        Step::Added { uj: delta, wrapped }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn wrap(uj: u64, range_uj: u64) -> RawEnergy {
        RawEnergy::Wrapping {
            uj,
            range_uj,
            max_watts: f64::INFINITY,
        }
    }

    #[test]
    fn wrap_is_corrected() {
        let mut a = Accumulator::default();
        assert_eq!(a.update(wrap(900, 1000), 0.0), Step::Baseline);
        assert_eq!(
            a.update(wrap(950, 1000), 1.0),
            Step::Added {
                uj: 50,
                wrapped: false
            }
        );
        assert_eq!(
            a.update(wrap(30, 1000), 2.0),
            Step::Added {
                uj: 80,
                wrapped: true
            }
        );
        assert_eq!(a.total_uj(), 130);
    }

    #[test]
    fn implausible_delta_is_dropped_not_added() {
        let mut a = Accumulator::default();
        let r = |uj| RawEnergy::Wrapping {
            uj,
            range_uj: u64::MAX,
            max_watts: 500.0,
        };
        a.update(r(0), 0.0);
        // 10 kJ in one second from a 500 W part: a glitch.
        assert_eq!(
            a.update(r(10_000_000_000), 1.0),
            Step::Dropped(DropReason::Implausible)
        );
        assert_eq!(a.total_uj(), 0);
        // The baseline moved to the glitch value, so the next real delta counts.
        assert_eq!(
            a.update(r(10_000_000_000 + 200_000_000), 2.0),
            Step::Added {
                uj: 200_000_000,
                wrapped: false
            }
        );
    }

    #[test]
    fn out_of_range_reading_is_dropped() {
        let mut a = Accumulator::default();
        a.update(wrap(10, 1000), 0.0);
        assert_eq!(
            a.update(wrap(5000, 1000), 1.0),
            Step::Dropped(DropReason::OutOfRange)
        );
        // After garbage the next good reading is a fresh baseline.
        assert_eq!(a.update(wrap(20, 1000), 2.0), Step::Baseline);
        assert_eq!(a.total_uj(), 0);
    }

    #[test]
    fn reset_counts_energy_since_reset() {
        let mut a = Accumulator::default();
        let r = |uj| RawEnergy::Resetting { uj, max_watts: 1e9 };
        a.update(r(5_000_000), 0.0);
        a.update(r(6_000_000), 1.0);
        assert_eq!(
            a.update(r(400_000), 2.0),
            Step::Added {
                uj: 400_000,
                wrapped: true
            }
        );
        assert_eq!(a.total_uj(), 1_400_000);
    }

    #[test]
    fn power_is_integrated_with_the_trapezoidal_rule_without_rounding_loss() {
        let mut a = Accumulator::default();
        a.update(RawEnergy::Power { watts: 100.0 }, 0.0);
        a.update(RawEnergy::Power { watts: 200.0 }, 2.0);
        assert_eq!(a.total_uj(), 300_000_000);
        // 1/3 µJ steps: the carry keeps the total within one µJ of the truth.
        let mut b = Accumulator::default();
        let w = 1.0 / 3.0 / 1e6;
        for i in 0..=3000 {
            b.update(RawEnergy::Power { watts: w }, i as f64);
        }
        assert!((b.total_uj() as i64 - 1000).abs() <= 1, "{}", b.total_uj());
    }

    #[test]
    fn the_power_integral_carries_its_remainder() {
        let mut p = PowerIntegral::default();
        // 0.4 + 0.4 + 0.4 units: nothing, nothing, then the whole unit the three make.
        assert_eq!((p.whole(0.4), p.whole(0.4), p.whole(0.4)), (0, 0, 1));
        let mut p = PowerIntegral::default();
        let sum: u64 = (0..1000).map(|_| p.trapezoid_uj(0.5e-6, 1.0e-6, 1.0)).sum();
        assert_eq!(sum, 750);
        assert_eq!(p.trapezoid_uj(100.0, 200.0, 2.0), 300_000_000);
    }

    #[test]
    fn resumed_baseline_recovers_downtime_energy_unless_a_double_wrap_was_possible() {
        let r = |uj| RawEnergy::Wrapping {
            uj,
            range_uj: 1_000_000_000,
            max_watts: 500.0,
        };
        // Saved at raw 900 J, 1 s before: the counter wrapped once to 100 J → +200 J recovered.
        let mut a = Accumulator::resume_with_baseline(5, 900_000_000, 10.0, 1.0);
        assert_eq!(
            a.update(r(100_000_000), 10.0),
            Step::Added {
                uj: 200_000_000,
                wrapped: true
            }
        );
        // Saved 3 s before: at 500 W the counter could have wrapped twice (1000 J range).
        let mut b = Accumulator::resume_with_baseline(5, 900_000_000, 10.0, 3.0);
        assert_eq!(b.update(r(100_000_000), 10.0), Step::Baseline);
        assert_eq!(b.total_uj(), 5);
    }

    #[test]
    fn resumed_total_keeps_growing() {
        let mut a = Accumulator::resume(7_000_000);
        a.update(wrap(100, 1000), 0.0);
        a.update(wrap(200, 1000), 1.0);
        assert_eq!(a.total_uj(), 7_000_100);
    }

    proptest! {
        /// For random increment sequences with wraps at random ranges, the accumulated energy
        /// equals the true increment exactly.
        #[test]
        fn accumulated_energy_equals_true_increment(
            range in 1u64..=u64::MAX / 256,
            start_frac in 0.0f64..1.0,
            steps in proptest::collection::vec(0.0f64..1.0, 1..200),
        ) {
            let start = ((range as f64 * start_frac) as u64).min(range - 1);
            let mut a = Accumulator::default();
            a.update(wrap(start, range), 0.0);
            let mut counter = start;
            let mut truth: u128 = 0;
            for (i, f) in steps.iter().enumerate() {
                // Any increment below one full range is recoverable from the wrapped value.
                let inc = (((range - 1) as f64 * f) as u64).min(range - 1);
                truth += inc as u128;
                counter = ((counter as u128 + inc as u128) % range as u128) as u64;
                let step = a.update(wrap(counter, range), (i + 1) as f64);
                let ok = matches!(step, Step::Added { uj, .. } if uj == inc);
                prop_assert!(ok, "step {:?} for increment {}", step, inc);
            }
            prop_assert_eq!(a.total_uj() as u128, truth);
        }

        /// Totals never go down, whatever the readings.
        #[test]
        fn totals_never_decrease(readings in proptest::collection::vec((0u64..2000, 0u8..3), 1..100)) {
            let mut a = Accumulator::default();
            let mut last = 0;
            for (i, (v, kind)) in readings.into_iter().enumerate() {
                let raw = match kind {
                    0 => wrap(v, 1000),
                    1 => RawEnergy::Resetting { uj: v, max_watts: 1e-3 },
                    _ => RawEnergy::Power { watts: v as f64 },
                };
                a.update(raw, i as f64 * 0.5);
                prop_assert!(a.total_uj() >= last);
                last = a.total_uj();
            }
        }
    }
}
