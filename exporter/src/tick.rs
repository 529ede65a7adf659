//! Schedules for background loops. [`wait_next`]: a fixed schedule (the BMC poller): tick `n`
//! is due at `start + n × interval`; ticks missed while a cycle ran long are skipped, never
//! bunched. [`Stop`] and [`wait_woken`]: the sampler's wait, ended early by a stop request or by
//! a readable event descriptor (the job folders' inotify queue), so a job that starts or ends
//! is sampled at once and the waits between can be long. [`next_wait`] picks that wait.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A stop request that a `poll` sees: the other end of a socket pair is written to, or closed.
#[derive(Debug)]
pub struct Stop {
    rx: UnixStream,
}

/// The sending side of a [`Stop`].
#[derive(Debug)]
pub struct StopHandle(UnixStream);

impl StopHandle {
    /// Asks the loop to stop (a lost write means it was already asked).
    pub fn stop(&self) {
        let _ = (&self.0).write(&[1]);
    }
}

impl Stop {
    pub fn new() -> std::io::Result<(Stop, StopHandle)> {
        let (rx, tx) = UnixStream::pair()?;
        Ok((Stop { rx }, StopHandle(tx)))
    }

    /// True once a stop was requested (does not block).
    pub fn requested(&self) -> bool {
        poll_readable(&[self.rx.as_fd()], Duration::ZERO)[0]
    }
}

/// Why [`wait_woken`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// The wait ran out.
    Timeout,
    /// The event descriptor became readable.
    Event,
    /// A stop was requested.
    Stop,
}

/// Waits `wait` at most, for a stop or for `events` to be readable (events are not read: their
/// owner drains them on its next cycle). A failing `poll` is a timeout after a short sleep, so a
/// broken descriptor costs at most the fixed schedule, never a busy loop.
pub fn wait_woken(wait: Duration, stop: &Stop, events: Option<BorrowedFd<'_>>) -> Woken {
    let mut fds = vec![stop.rx.as_fd()];
    fds.extend(events);
    let ready = poll_readable(&fds, wait);
    if ready[0] {
        Woken::Stop
    } else if ready.get(1).copied().unwrap_or(false) {
        Woken::Event
    } else {
        Woken::Timeout
    }
}

/// `poll(2)` for readability, restarted after a signal with the time left; all false on an
/// error or at the timeout.
fn poll_readable(fds: &[BorrowedFd<'_>], wait: Duration) -> Vec<bool> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let end = Instant::now() + wait;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        // Rounded up to the next millisecond, so a wait never ends early.
        let ms = i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        // SAFETY: `p` is a valid, exclusively borrowed array of `p.len()` pollfd structures
        // whose descriptors stay open (borrowed) for the duration of the call.
        let n = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms) };
        if n >= 0 {
            break;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            std::thread::sleep(left.min(Duration::from_secs(1)));
            return vec![false; fds.len()];
        }
    }
    p.iter()
        .map(|f| f.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0)
        .collect()
}

/// What the sampler's next wait depends on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// `sample_interval`: the wait while jobs run, and the floor.
    pub interval_s: f64,
    /// `sample_idle_interval`: the longest wait while no job runs.
    pub idle_interval_s: f64,
    /// The longest wait the sources allow (half the fastest wrap of a RAPL counter;
    /// `interval_s` for sources that integrate power); infinite when they set none.
    pub sources_limit_s: f64,
    /// Jobs ran at the last scan, or a job start or end would go unseen (folders not watched).
    pub busy: bool,
}

/// When the next cycle is due, seconds on the loop's clock, after one that started at `t`: on
/// the fixed grid of `interval_s` (as [`wait_next`]: a cycle woken early by an event does not
/// move it, missed ticks are skipped) when the wait is the interval, `t` + the wait otherwise.
pub fn next_due_s(t: f64, p: Pace) -> f64 {
    let wait = next_wait(p).as_secs_f64();
    if wait <= p.interval_s && p.interval_s > 0.0 {
        ((t / p.interval_s).floor() + 1.0) * p.interval_s
    } else {
        t + wait
    }
}

/// The wait after a cycle: `interval_s` while busy, otherwise the idle interval capped by the
/// sources; never below `interval_s`.
pub fn next_wait(p: Pace) -> Duration {
    let s = if p.busy {
        p.interval_s
    } else {
        p.idle_interval_s.min(p.sources_limit_s).max(p.interval_s)
    };
    Duration::from_secs_f64(s.max(0.0))
}

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
    fn the_wait_follows_the_work_and_the_sources() {
        let p = Pace {
            interval_s: 1.0,
            idle_interval_s: 30.0,
            sources_limit_s: f64::INFINITY,
            busy: false,
        };
        assert_eq!(next_wait(p), Duration::from_secs(30));
        assert_eq!(next_wait(Pace { busy: true, ..p }), Duration::from_secs(1));
        // A RAPL DRAM zone of 39.4 kJ at a 1000 W bound wraps in 39.4 s: half of it.
        let wrap = Pace {
            sources_limit_s: 19.7,
            ..p
        };
        assert_eq!(next_wait(wrap), Duration::from_secs_f64(19.7));
        // Never below the sampling interval.
        let slow = Pace {
            interval_s: 2.0,
            idle_interval_s: 0.5,
            ..p
        };
        assert_eq!(next_wait(slow), Duration::from_secs(2));
        // On the grid while busy, also after an early cycle; from the cycle while idle.
        let busy = Pace { busy: true, ..p };
        assert_eq!(next_due_s(7.0004, busy), 8.0);
        assert_eq!(next_due_s(7.6, busy), 8.0);
        assert_eq!(next_due_s(7.6, p), 37.6);
    }

    #[test]
    fn an_event_or_a_stop_ends_the_wait_early() {
        let (stop, handle) = Stop::new().unwrap();
        let (mut a, b) = UnixStream::pair().unwrap();
        let long = Duration::from_secs(60);
        let started = Instant::now();
        assert_eq!(
            wait_woken(Duration::from_millis(20), &stop, Some(b.as_fd())),
            Woken::Timeout
        );
        assert!(started.elapsed() >= Duration::from_millis(20));
        a.write_all(&[1]).unwrap();
        assert_eq!(wait_woken(long, &stop, Some(b.as_fd())), Woken::Event);
        assert!(!stop.requested());
        handle.stop();
        // A stop wins over a pending event, and stays requested.
        assert_eq!(wait_woken(long, &stop, Some(b.as_fd())), Woken::Stop);
        assert_eq!(wait_woken(long, &stop, None), Woken::Stop);
        assert!(stop.requested());
        assert!(started.elapsed() < long);
    }

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
