//! A fixed schedule for background loops (the sampler, the BMC poller): tick `n` is due at
//! `start + n × interval`; ticks missed while a cycle ran long are skipped, never bunched.

use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Waits for the next due tick after `*tick`, or until `stop` receives a message or hangs up.
/// Returns false when the loop must stop.
pub fn wait_next(
    start: Instant,
    interval: Duration,
    tick: &mut u32,
    stop: &mpsc::Receiver<()>,
) -> bool {
    let elapsed = start.elapsed();
    *tick = tick.saturating_add(1);
    while interval * *tick <= elapsed {
        *tick = tick.saturating_add(1);
    }
    let wait = (interval * *tick).saturating_sub(elapsed);
    matches!(
        stop.recv_timeout(wait),
        Err(mpsc::RecvTimeoutError::Timeout)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missed_ticks_are_skipped_and_stop_ends_the_loop() {
        let (tx, rx) = mpsc::channel();
        let start = Instant::now() - Duration::from_millis(35);
        let mut tick = 0;
        // 35 ms late on a 10 ms schedule: ticks 1 to 3 are skipped, tick 4 is awaited.
        assert!(wait_next(start, Duration::from_millis(10), &mut tick, &rx));
        assert_eq!(tick, 4);
        tx.send(()).unwrap();
        assert!(!wait_next(start, Duration::from_millis(10), &mut tick, &rx));
        drop(tx);
        assert!(!wait_next(start, Duration::from_millis(10), &mut tick, &rx));
    }
}
