//! Runs job discovery in a loop on a node root, for profiling and syscall counts:
//!
//! ```sh
//! bench/make-slurm-node /tmp/bn 1000
//! cargo build --release -p joulebook-exporter --example jobs_scan
//! target/release/examples/jobs_scan /tmp/bn 100            # times per scan
//! strace -f -c target/release/examples/jobs_scan /tmp/bn 101   # minus a run with 1 scan
//! ```
//!
//! Arguments: the root (as `JobsOptions::under_root`), the number of scans (default 100) and
//! optionally `JobsOptions::cpu_time_every`.
//! Prints the first scan's time, then the median, minimum and mean of the others, wall clock
//! and CPU time of this thread, and the heap allocations per scan.

use joulebook_exporter::jobs::{JobDiscovery, JobsOptions};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The system allocator, counting allocations (to report them per scan).
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// CPU time of the calling thread (user + system), from `/proc/thread-self/stat`.
fn thread_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here; USER_HZ is 100.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(root) = args.next().map(PathBuf::from) else {
        eprintln!("usage: jobs_scan ROOT [SCANS [CPU_TIME_EVERY]]");
        std::process::exit(2);
    };
    let scans: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100);
    let mut opts = JobsOptions::under_root(&root);
    if let Some(k) = args.next().and_then(|s| s.parse().ok()) {
        opts.cpu_time_every = k;
    }
    let mut d = JobDiscovery::new(opts);
    let t = Instant::now();
    let r = d.scan(&[], &[]);
    let first = t.elapsed();
    if let Some(p) = r.problems.first() {
        eprintln!("{} problems, first: {p}", r.problems.len());
    }
    let jobs = r.jobs.len();
    let mut times = Vec::with_capacity(scans);
    let cpu0 = thread_cpu();
    let allocs0 = ALLOCS.load(Relaxed);
    let wall0 = Instant::now();
    for _ in 1..scans {
        let t = Instant::now();
        let r = d.scan(&[], &[]);
        times.push(t.elapsed());
        std::hint::black_box(r);
    }
    let (wall, cpu) = (wall0.elapsed(), thread_cpu().saturating_sub(cpu0));
    let allocs = ALLOCS.load(Relaxed) - allocs0;
    times.sort();
    let n = times.len().max(1) as u32;
    println!(
        "{jobs} jobs: first scan {first:?}; next {} scans: median {:?}, min {:?}, mean {:?} wall, mean {:?} CPU, {} allocations per scan",
        times.len(),
        times.get(times.len() / 2).copied().unwrap_or_default(),
        times.first().copied().unwrap_or_default(),
        wall / n,
        cpu / n,
        allocs / u64::from(n),
    );
}
