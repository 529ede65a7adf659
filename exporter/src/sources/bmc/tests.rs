use super::*;

fn power(w: f64) -> Reading {
    Reading {
        watts: Some(w),
        energy_uj: None,
    }
}

fn counter(uj: u64, w: f64) -> Reading {
    Reading {
        watts: Some(w),
        energy_uj: Some(uj),
    }
}

fn integ() -> Integrator {
    Integrator::new(MethodChoice::Auto, 15.0, DEFAULT_MAX_WATTS)
}

#[test]
fn power_is_integrated_between_the_readings_own_timestamps() {
    let mut i = integ();
    assert_eq!(i.feed(&power(200.0), 0.0).unwrap(), Step::Baseline);
    assert_eq!(
        i.feed(&power(200.0), 5.0).unwrap(),
        Step::Added {
            uj: 1_000_000_000,
            wrapped: false
        }
    );
    // Uneven interval (a slow answer): the trapezoid uses the real 7.5 s.
    assert_eq!(
        i.feed(&power(300.0), 12.5).unwrap(),
        Step::Added {
            uj: 1_875_000_000,
            wrapped: false
        }
    );
    assert_eq!(i.total_uj(), 2_875_000_000);
    assert_eq!(i.method(), Some(Method::PowerIntegration));
    assert_eq!(i.gap_seconds(12.5), 0.0);
}

#[test]
fn nothing_is_counted_over_a_gap_longer_than_max_gap() {
    let mut i = integ();
    i.feed(&power(100.0), 0.0).unwrap();
    i.feed(&power(100.0), 5.0).unwrap();
    // Down from 5 s on: at 19 s the gap (14 s) is not yet known to be one, at 21 s it is.
    assert_eq!(i.gap_seconds(19.0), 0.0);
    assert_eq!(i.gap_seconds(21.0), 16.0);
    assert_eq!(
        i.feed(&power(900.0), 30.0).unwrap(),
        Step::Gap { seconds: 25.0 }
    );
    assert_eq!(i.total_uj(), 500_000_000);
    assert_eq!(i.gap_seconds(30.0), 25.0);
    // Integration restarts from the reading after the gap.
    i.feed(&power(100.0), 35.0).unwrap();
    assert_eq!(i.total_uj(), 500_000_000 + 2_500_000_000);
    assert_eq!(i.gap_seconds(40.0), 25.0);
    // A gap of exactly max_gap is still integrated.
    assert_eq!(
        i.feed(&power(100.0), 50.0).unwrap(),
        Step::Added {
            uj: 1_500_000_000,
            wrapped: false
        }
    );
}

#[test]
fn gap_seconds_never_decrease() {
    let mut i = integ();
    i.feed(&power(100.0), 0.0).unwrap();
    let mut last = 0.0;
    for k in 0..100 {
        let now = k as f64 * 0.7;
        let g = i.gap_seconds(now);
        assert!(g >= last, "{g} < {last} at {now}");
        last = g;
    }
    i.feed(&power(100.0), 70.0).unwrap();
    assert!(i.gap_seconds(70.0) >= last);
}

#[test]
fn counter_differences_are_the_energy_and_a_reset_counts_from_zero() {
    let mut i = integ();
    // 1.000 kWh, then 1.001 kWh five seconds later: 3600 J exactly.
    assert_eq!(
        i.feed(&counter(3_600_000_000_000, 300.0), 0.0).unwrap(),
        Step::Baseline
    );
    assert_eq!(
        i.feed(&counter(3_603_600_000_000, 300.0), 5.0).unwrap(),
        Step::Added {
            uj: 3_600_000_000,
            wrapped: false
        }
    );
    assert_eq!(i.method(), Some(Method::Counter));
    // Reset by an administrator: the new value is the energy since the reset.
    assert_eq!(
        i.feed(&counter(1_000_000, 300.0), 10.0).unwrap(),
        Step::Added {
            uj: 1_000_000,
            wrapped: true
        }
    );
    assert_eq!(i.total_uj(), 3_601_000_000);
}

#[test]
fn a_coarse_counter_step_is_bounded_by_the_time_since_it_last_changed() {
    let mut i = Integrator::new(MethodChoice::Auto, 15.0, 1000.0);
    let kwh = 3_600_000_000_000u64;
    i.feed(&counter(kwh, 500.0), 0.0).unwrap();
    // Unchanged for two hours (500 W for 2 h = 1 kWh), then one whole-kWh step.
    let mut t = 0.0;
    while t < 7200.0 {
        t += 5.0;
        i.feed(&counter(kwh, 500.0), t).unwrap();
    }
    assert_eq!(
        i.feed(&counter(2 * kwh, 500.0), t + 5.0).unwrap(),
        Step::Added {
            uj: kwh,
            wrapped: false
        }
    );
    // A jump of 1000 kWh in five seconds is a glitch.
    assert_eq!(
        i.feed(&counter(1002 * kwh, 500.0), t + 10.0).unwrap(),
        Step::Dropped(DropReason::Implausible)
    );
    assert_eq!(i.total_uj(), kwh);
}

#[test]
fn implausible_power_is_dropped_and_the_chain_continues_from_the_last_good_reading() {
    let mut i = Integrator::new(MethodChoice::Auto, 15.0, 1000.0);
    i.feed(&power(100.0), 0.0).unwrap();
    assert_eq!(
        i.feed(&power(250_000.0), 5.0).unwrap(),
        Step::Dropped(DropReason::Implausible)
    );
    assert_eq!(
        i.feed(&power(f64::NAN), 6.0).unwrap(),
        Step::Dropped(DropReason::OutOfRange)
    );
    assert_eq!(
        i.feed(&power(-3.0), 7.0).unwrap(),
        Step::Dropped(DropReason::OutOfRange)
    );
    assert_eq!(
        i.feed(&power(100.0), 10.0).unwrap(),
        Step::Added {
            uj: 1_000_000_000,
            wrapped: false
        }
    );
}

#[test]
fn method_choice_is_honoured() {
    let mut i = Integrator::new(MethodChoice::PowerIntegration, 15.0, 1000.0);
    i.feed(&counter(0, 100.0), 0.0).unwrap();
    i.feed(&counter(999_000_000_000, 100.0), 5.0).unwrap();
    assert_eq!(i.total_uj(), 500_000_000);
    assert_eq!(i.method(), Some(Method::PowerIntegration));
    let mut c = Integrator::new(MethodChoice::Counter, 15.0, 1000.0);
    let e = c.feed(&power(100.0), 0.0).unwrap_err();
    assert!(e.message.contains("no energy counter"), "{e}");
    assert!(e.fix.unwrap().contains("energy_method: auto"));
}

#[test]
fn no_energy_is_computed_across_a_change_of_method() {
    let mut i = integ();
    i.feed(&power(100.0), 0.0).unwrap();
    assert_eq!(
        i.feed(&counter(5_000_000, 100.0), 5.0).unwrap(),
        Step::Baseline
    );
    assert_eq!(i.total_uj(), 0);
    assert_eq!(
        i.feed(&counter(6_000_000, 100.0), 10.0).unwrap(),
        Step::Added {
            uj: 1_000_000,
            wrapped: false
        }
    );
}

/// A meter that replays scripted results.
struct Script(std::collections::VecDeque<Result<Reading, SourceError>>);

impl Meter for Script {
    fn protocol(&self) -> Protocol {
        Protocol::Ipmi
    }
    fn read(&mut self) -> Result<Reading, SourceError> {
        self.0
            .pop_front()
            .unwrap_or_else(|| Err(SourceError::new("script exhausted")))
    }
}

fn opts() -> BmcOptions {
    BmcOptions {
        protocol: ProtocolOptions::Ipmi(ipmi::IpmiOptions::default()),
        poll_interval_s: 5.0,
        max_gap_s: 15.0,
        max_watts: DEFAULT_MAX_WATTS,
        energy_method: MethodChoice::Auto,
    }
}

#[test]
fn poller_records_errors_and_keeps_integrating_across_short_outages() {
    let script = Script(
        vec![
            Ok(power(100.0)),
            Err(SourceError::new("timed out")),
            Ok(power(100.0)),
            Ok(power(f64::INFINITY)),
        ]
        .into(),
    );
    let mut p = Poller::new(Box::new(script), &opts());
    p.poll_at(0.0);
    p.poll_at(5.0);
    assert_eq!(p.error().unwrap().message, "timed out");
    // One failed poll is bridged: 10 s at 100 W.
    p.poll_at(10.0);
    assert!(p.error().is_none());
    assert_eq!(p.total_uj(), 1_000_000_000);
    p.poll_at(15.0);
    assert_eq!(lock(&p.shared).dropped, vec![DropReason::OutOfRange]);
}

#[test]
fn sample_hands_over_a_monotonic_counter_and_the_status() {
    let now = Arc::new(Mutex::new(0.0f64));
    let n = now.clone();
    let clock: Clock = Arc::new(move || *n.lock().unwrap());
    let script = Script(vec![Ok(power(200.0))].into());
    // A long poll interval: the thread polls once at start, then waits.
    let mut o = opts();
    o.poll_interval_s = 3600.0;
    let mut s = BmcSource::start(Box::new(script), &o, clock).unwrap();
    let started = Instant::now();
    loop {
        let sample = s.sample().unwrap();
        if !sample.energy.is_empty() {
            assert_eq!(
                sample.energy[0].raw,
                RawEnergy::Resetting {
                    uj: 0,
                    max_watts: 0.0
                }
            );
            let b = sample.bmc.unwrap();
            assert_eq!(b.power_watts, Some(200.0));
            assert_eq!(b.method, Some(Method::PowerIntegration));
            assert_eq!(b.protocol, Protocol::Ipmi);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(5));
    }
    // Later than max_gap without a reading: the power is stale, the gap is counted live.
    *now.lock().unwrap() = 20.0;
    let b = s.sample().unwrap().bmc.unwrap();
    assert_eq!(b.power_watts, None);
    assert_eq!(b.gap_seconds_total, 20.0);
}
