//! Learning each socket's idle package power, for [`super::CpuPolicy::UsageAboveBaseline`].

use super::Baselines;
use std::collections::VecDeque;

/// Learns each socket's idle package power, for [`super::CpuPolicy::UsageAboveBaseline`].
///
/// How the baseline is found: the socket's energy is averaged over consecutive blocks of at least
/// `average_s` seconds of observed intervals (60 s by default), and the baseline is the **lowest
/// block average seen in the last `window_s` seconds** (24 h by default). Averaging first keeps a
/// short dip (or a counter glitch) from setting the baseline; the minimum over a day catches the
/// quiet hours that most nodes have. On a node that is busy the whole window the minimum is a
/// busy level, which over-estimates idle: more energy is then split by allocation and less by
/// usage, the conservative direction. A configured value per socket (from a measurement of the
/// idle node) overrides what is learned. Until a first block closes the learned value is unknown
/// and [`super::attribute`] falls back to allocation for that socket.
///
/// The tracker keeps one entry per block that could still be the minimum (a monotonic queue), so
/// memory is bounded by `window_s / average_s` entries per socket and each observation is
/// amortised O(1).
#[derive(Clone, Debug)]
pub struct BaselineTracker {
    window_s: f64,
    average_s: f64,
    configured: Vec<Option<f64>>,
    sockets: Vec<SocketTrack>,
}

#[derive(Clone, Debug, Default)]
struct SocketTrack {
    /// Energy of the open block, µJ.
    block_uj: u128,
    /// Observed time in the open block, seconds.
    block_s: f64,
    /// Closed blocks (time closed, average watts) that may still be the window's minimum; watts
    /// increase from front to back, so the front is the minimum.
    candidates: VecDeque<(f64, f64)>,
}

impl Default for BaselineTracker {
    /// A 24 h window of 60 s averages, nothing configured.
    fn default() -> Self {
        BaselineTracker::new(24.0 * 3600.0, 60.0)
    }
}

impl BaselineTracker {
    /// A tracker that keeps the minimum, over `window_s` seconds, of the socket power averaged
    /// over `average_s` seconds. Non-finite or negative settings fall back to the defaults
    /// (86,400 s and 60 s).
    pub fn new(window_s: f64, average_s: f64) -> Self {
        let valid = |v: f64, default: f64| {
            if v.is_finite() && v >= 0.0 {
                v
            } else {
                default
            }
        };
        BaselineTracker {
            window_s: valid(window_s, 24.0 * 3600.0),
            average_s: valid(average_s, 60.0),
            configured: Vec::new(),
            sockets: Vec::new(),
        }
    }

    /// Sets configured idle powers (watts, by socket) that override what is learned. `None`, or a
    /// value that is not a finite non-negative number, leaves that socket learned.
    pub fn set_configured(&mut self, idle_watts_by_socket: Vec<Option<f64>>) {
        self.configured = idle_watts_by_socket;
    }

    /// Feeds one interval: each socket's package energy (µJ) over `interval_s` seconds, observed
    /// at `now_s` (seconds on any monotonic clock, the same for every call). Intervals that are not
    /// finite and positive are ignored.
    pub fn observe(&mut self, now_s: f64, cpu_by_socket: &[u64], interval_s: f64) {
        if !(interval_s.is_finite() && interval_s > 0.0 && now_s.is_finite()) {
            return;
        }
        if self.sockets.len() < cpu_by_socket.len() {
            self.sockets
                .resize_with(cpu_by_socket.len(), SocketTrack::default);
        }
        for (track, &uj) in self.sockets.iter_mut().zip(cpu_by_socket) {
            track.block_uj += u128::from(uj);
            track.block_s += interval_s;
            if track.block_s >= self.average_s {
                let watts = track.block_uj as f64 / 1e6 / track.block_s;
                while track.candidates.back().is_some_and(|&(_, w)| w >= watts) {
                    track.candidates.pop_back();
                }
                track.candidates.push_back((now_s, watts));
                track.block_uj = 0;
                track.block_s = 0.0;
            }
        }
        let oldest = now_s - self.window_s;
        for track in &mut self.sockets {
            while track.candidates.front().is_some_and(|&(t, _)| t < oldest) {
                track.candidates.pop_front();
            }
        }
    }

    /// The learned idle power of a socket, watts, ignoring configuration.
    pub fn learned_watts(&self, socket: usize) -> Option<f64> {
        self.sockets
            .get(socket)
            .and_then(|t| t.candidates.front())
            .map(|&(_, w)| w)
    }

    /// The baselines to pass to [`super::attribute`]: configured where set, learned elsewhere.
    pub fn baselines(&self) -> Baselines {
        let n = self.configured.len().max(self.sockets.len());
        Baselines {
            idle_watts_by_socket: (0..n)
                .map(|s| {
                    self.configured
                        .get(s)
                        .copied()
                        .flatten()
                        .filter(|w| w.is_finite() && *w >= 0.0)
                        .or_else(|| self.learned_watts(s))
                })
                .collect(),
        }
    }
}
