//! The workload: jobs drawn from the scenario's mix, then placed by a simple first-fit scheduler
//! on the virtual clock, so every job holds real CPU ids and GPUs on real nodes.
//!
//! Time is counted in ticks of the sample interval. A job that starts at tick `s` and ends at tick
//! `e` runs during the intervals `(s, e]`: the sampler cycles at ticks `s+1 ..= e` see it, which
//! is what the exporter would see of a job whose cgroup exists from `s` to `e`.

use super::scenario::{parse_hhmm, Choice, NodeSpec, Range, Scenario};
use rand::{Rng, RngExt};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// One job, as generated and then as scheduled.
#[derive(Clone, Debug)]
pub struct SimJob {
    /// Slurm-like job id: sequential in submit order from [`FIRST_JOB_ID`].
    pub id: u64,
    pub user: String,
    /// Index into the scenario's projects (the account).
    pub project: usize,
    pub class: usize,
    pub partition: String,
    pub name: String,
    pub final_run: bool,
    /// Submit time, seconds since the start of the period.
    pub submit_s: f64,
    /// Run time in ticks (at least 1).
    pub duration_ticks: u64,
    pub nodes: u32,
    /// Physical cores per node.
    pub cores: u32,
    /// GPUs per node.
    pub gpus: u32,
    pub cpu_util: f64,
    pub gpu_util: f64,
    /// Set by the scheduler: start tick, and where the job runs.
    pub start_tick: Option<u64>,
    pub placement: Vec<Placement>,
}

impl SimJob {
    pub fn end_tick(&self) -> Option<u64> {
        self.start_tick.map(|s| s + self.duration_ticks)
    }
}

/// A job's share of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Index into the scenario's node list.
    pub node: usize,
    /// Logical CPU ids, ascending.
    pub cpus: Vec<u32>,
    /// GPU indices on the node, ascending.
    pub gpus: Vec<u32>,
}

/// Slurm's first job id on a new cluster is 1; start higher so ids look like a cluster's.
pub const FIRST_JOB_ID: u64 = 1000;

/// A standard normal draw (Box–Muller).
pub fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: ln stays finite
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn pick<T: Copy>(rng: &mut impl Rng, c: &Choice<T>) -> T {
    let opts = c.options();
    opts[rng.random_range(0..opts.len())]
}

fn draw(rng: &mut impl Rng, r: &Range) -> f64 {
    let (lo, hi) = r.bounds();
    if hi > lo {
        rng.random_range(lo..hi)
    } else {
        lo
    }
}

/// Index drawn with probability proportional to `weights` (cumulative sums given).
fn weighted(rng: &mut impl Rng, cumulative: &[f64]) -> usize {
    let total = cumulative.last().copied().unwrap_or(0.0);
    let x = rng.random::<f64>() * total;
    cumulative
        .partition_point(|c| *c <= x)
        .min(cumulative.len().saturating_sub(1))
}

fn cumsum(w: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut acc = 0.0;
    w.into_iter()
        .map(|x| {
            acc += x;
            acc
        })
        .collect()
}

/// The relative arrival rate at Unix time `unix`, 0..1: nights and weekends (UTC) slow arrivals.
pub fn arrival_factor(s: &Scenario, unix: f64) -> f64 {
    let mut f = 1.0;
    let day = (unix / 86400.0).floor() as i64;
    let tod = (unix - day as f64 * 86400.0) as u32;
    if let Some(n) = &s.arrivals.night {
        if let (Some(from), Some(to)) = (parse_hhmm(&n.from), parse_hhmm(&n.to)) {
            let night = if from <= to {
                (from..to).contains(&tod)
            } else {
                tod >= from || tod < to
            };
            if night {
                f *= n.factor;
            }
        }
    }
    if let Some(w) = s.arrivals.weekend_factor {
        // 1970-01-01 was a Thursday: (day + 4) % 7 is 0 on Sundays, 6 on Saturdays.
        let weekday = (day + 4).rem_euclid(7);
        if weekday == 0 || weekday == 6 {
            f *= w;
        }
    }
    f
}

/// Submit times (seconds since start), ascending.
fn arrivals(s: &Scenario, rng: &mut impl Rng) -> Vec<f64> {
    let d = s.duration.0;
    let start = s.start.0;
    let mut out = Vec::new();
    if let Some(n) = s.jobs.count {
        // Rejection sampling from the arrival profile (its maximum is 1). A profile that is 0
        // almost everywhere could reject for long: after many misses, take the time as it is.
        for _ in 0..n {
            let mut t = rng.random_range(0.0..d);
            for _ in 0..10_000 {
                if rng.random::<f64>() < arrival_factor(s, start + t) {
                    break;
                }
                t = rng.random_range(0.0..d);
            }
            out.push(t);
        }
    } else if let Some(per_hour) = s.jobs.arrivals_per_hour {
        // A Poisson process at the full rate, thinned by the profile.
        let rate = per_hour / 3600.0;
        if rate > 0.0 {
            let mut t = 0.0;
            loop {
                t += -(1.0 - rng.random::<f64>()).ln() / rate;
                if t >= d {
                    break;
                }
                if rng.random::<f64>() < arrival_factor(s, start + t) {
                    out.push(t);
                }
            }
        }
    }
    out.sort_by(f64::total_cmp);
    out
}

/// Draws every job of the period (random and explicit), sorted by submit time, with ids.
pub fn generate(s: &Scenario, rng: &mut impl Rng) -> Vec<SimJob> {
    let step = s.sample_interval();
    let users: Vec<(String, f64, usize)> = (0..s.projects.len())
        .flat_map(|p| s.users_of(p).into_iter().map(move |(u, w)| (u, w, p)))
        .collect();
    let user_cum = cumsum(users.iter().map(|u| u.1));
    let class_of_project: Vec<(Vec<usize>, Vec<f64>)> = (0..s.projects.len())
        .map(|p| {
            let cs = s.classes_of(p);
            let cum = cumsum(cs.iter().map(|c| s.jobs.classes[*c].weight));
            (cs, cum)
        })
        .collect();
    let ticks = |secs: f64| ((secs / step).ceil() as u64).max(1);

    let mut jobs = Vec::new();
    for submit in arrivals(s, rng) {
        let (user, _, project) = users[weighted(rng, &user_cum)].clone();
        let (cs, cum) = &class_of_project[project];
        let class = cs[weighted(rng, cum)];
        let c = &s.jobs.classes[class];
        let fr = s.projects[project].final_runs.as_ref();
        let final_run = fr.is_some_and(|f| rng.random::<f64>() < f.share);
        let base = if c.names.is_empty() {
            c.name.clone()
        } else {
            c.names[rng.random_range(0..c.names.len())].clone()
        };
        let name = match (final_run, fr) {
            (true, Some(f)) => f.pattern.replacen('*', &base, 1),
            _ => base,
        };
        let dd = &c.duration;
        let mut secs = (dd.median.0.ln() + dd.sigma * normal(rng)).exp();
        secs = secs.clamp(dd.min.map_or(0.0, |m| m.0), dd.max.0);
        if let (true, Some(f)) = (final_run, fr) {
            secs *= f.duration_factor;
        }
        jobs.push(SimJob {
            id: 0,
            user,
            project,
            class,
            partition: c.partition.clone(),
            name,
            final_run,
            submit_s: submit,
            duration_ticks: ticks(secs),
            nodes: pick(rng, &c.nodes),
            cores: pick(rng, &c.cores),
            gpus: pick(rng, &c.gpus),
            cpu_util: draw(rng, &c.cpu_util),
            gpu_util: draw(rng, &c.gpu_util),
            start_tick: None,
            placement: Vec::new(),
        });
    }
    for e in &s.jobs.explicit {
        let class = s
            .jobs
            .classes
            .iter()
            .position(|c| c.name == e.class)
            .unwrap_or(0);
        let c = &s.jobs.classes[class];
        let project = s.project_of_user(&e.user).unwrap_or(0);
        let name = e.name.clone().unwrap_or_else(|| c.name.clone());
        let final_run = s.projects[project]
            .final_runs
            .as_ref()
            .is_some_and(|f| glob_match(&f.pattern, &name));
        jobs.push(SimJob {
            id: 0,
            user: e.user.clone(),
            project,
            class,
            partition: c.partition.clone(),
            name,
            final_run,
            submit_s: e.submit.0 - s.start.0,
            duration_ticks: ticks(e.duration.0),
            nodes: e.nodes.unwrap_or(1),
            cores: e.cores.unwrap_or(1),
            gpus: e.gpus.unwrap_or(0),
            cpu_util: e.cpu_util.unwrap_or_else(|| c.cpu_util.bounds().1),
            gpu_util: e.gpu_util.unwrap_or_else(|| c.gpu_util.bounds().1),
            start_tick: None,
            placement: Vec::new(),
        });
    }
    // Stable: random jobs keep their order among equal times, explicit ones come after them.
    jobs.sort_by(|a, b| a.submit_s.total_cmp(&b.submit_s));
    for (i, j) in jobs.iter_mut().enumerate() {
        j.id = FIRST_JOB_ID + i as u64;
    }
    jobs
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((pre, post)) => {
            name.len() >= pre.len() + post.len()
                && name.starts_with(pre)
                && glob_match_rest(post, &name[pre.len()..])
        }
    }
}

fn glob_match_rest(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => name.ends_with(pattern),
        Some((pre, post)) => (0..=name.len()).any(|i| {
            name.is_char_boundary(i)
                && name[i..].starts_with(pre)
                && glob_match_rest(post, &name[i + pre.len()..])
        }),
    }
}

/// Free resources of one node.
struct NodeFree {
    partition: String,
    sockets: u32,
    cores_per_socket: u32,
    threads: u32,
    /// Free flag per physical core (socket-major).
    core_free: Vec<bool>,
    free_cores: u32,
    gpu_free: Vec<bool>,
    free_gpus: u32,
}

impl NodeFree {
    /// Node `n`, all free.
    fn of(s: &Scenario, n: &NodeSpec) -> NodeFree {
        let g = &s.node_groups[n.group];
        NodeFree {
            partition: n.partition.clone(),
            sockets: g.sockets,
            cores_per_socket: g.cores_per_socket,
            threads: g.threads_per_core,
            core_free: vec![true; g.physical_cores() as usize],
            free_cores: g.physical_cores(),
            gpu_free: vec![true; g.gpu_count() as usize],
            free_gpus: g.gpu_count(),
        }
    }

    /// Lowest-numbered free cores (socket 0 first) and GPUs, as Slurm's block distribution does.
    fn take(&mut self, cores: u32, gpus: u32) -> (Vec<u32>, Vec<u32>) {
        let per_thread = self.sockets * self.cores_per_socket;
        let mut cpus = Vec::with_capacity((cores * self.threads) as usize);
        let mut taken = 0;
        for (c, free) in self.core_free.iter_mut().enumerate() {
            if taken == cores {
                break;
            }
            if *free {
                *free = false;
                taken += 1;
                // Linux numbers the first hardware thread of every core first, then the
                // siblings: logical id = thread × (sockets × cores) + physical index.
                for t in 0..self.threads {
                    cpus.push(t * per_thread + c as u32);
                }
            }
        }
        cpus.sort_unstable();
        self.free_cores -= cores;
        let mut ids = Vec::with_capacity(gpus as usize);
        for (g, free) in self.gpu_free.iter_mut().enumerate() {
            if ids.len() as u32 == gpus {
                break;
            }
            if *free {
                *free = false;
                ids.push(g as u32);
            }
        }
        self.free_gpus -= gpus;
        (cpus, ids)
    }

    fn give_back(&mut self, p: &Placement) {
        let per_thread = self.sockets * self.cores_per_socket;
        for &cpu in &p.cpus {
            if cpu < per_thread {
                self.core_free[cpu as usize] = true;
                self.free_cores += 1;
            }
        }
        for &g in &p.gpus {
            self.gpu_free[g as usize] = true;
            self.free_gpus += 1;
        }
    }
}

/// Maintenance windows in ticks: [first tick inside, first tick after].
fn maintenance_ticks(s: &Scenario, step: f64) -> Vec<(u64, u64)> {
    s.maintenance
        .iter()
        .map(|w| {
            let a = ((w.start.0 - s.start.0) / step).floor().max(0.0) as u64;
            let b = ((w.start.0 + w.duration.0 - s.start.0) / step)
                .ceil()
                .max(0.0) as u64;
            (a, b)
        })
        .collect()
}

/// The job's placement on the first of `members` (its partition's nodes) with room for it, its
/// resources taken; `None` (nothing taken) when fewer nodes than it needs have room.
fn place(job: &SimJob, members: &[usize], free: &mut [NodeFree]) -> Option<Vec<Placement>> {
    let chosen: Vec<usize> = members
        .iter()
        .copied()
        .filter(|&n| {
            free[n].partition == job.partition
                && free[n].free_cores >= job.cores
                && free[n].free_gpus >= job.gpus
        })
        .take(job.nodes as usize)
        .collect();
    if chosen.len() < job.nodes as usize {
        return None;
    }
    let (cores, gpus) = (job.cores, job.gpus);
    let placement = chosen
        .into_iter()
        .map(|n| {
            let (cpus, g) = free[n].take(cores, gpus);
            Placement {
                node: n,
                cpus,
                gpus: g,
            }
        })
        .collect();
    Some(placement)
}

/// Places the jobs: at every tick where a job arrives or ends (or a maintenance window closes),
/// ended jobs free their resources, then the queue is scanned in submit order and every job
/// that fits starts on the first nodes of its partition that have room (first fit, no
/// reservations, so small jobs pass large ones). A job whose run would overlap a maintenance
/// window waits for its end, as under a Slurm maintenance reservation with each job's time
/// limit equal to its run time. Jobs still queued at the end of the period never start.
pub fn schedule(s: &Scenario, jobs: &mut [SimJob]) {
    let step = s.sample_interval();
    let horizon = (s.duration.0 / step).round() as u64;
    let nodes = s.nodes();
    let mut free: Vec<NodeFree> = nodes.iter().map(|n| NodeFree::of(s, n)).collect();
    let mut by_partition: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, n) in nodes.iter().enumerate() {
        by_partition.entry(n.partition.clone()).or_default().push(i);
    }
    let windows = maintenance_ticks(s, step);

    let submit_tick = |j: &SimJob| (j.submit_s / step).ceil() as u64;
    let mut next_arrival = 0usize;
    let mut queues: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut ends: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut extra: Vec<u64> = windows.iter().map(|w| w.1).collect();
    extra.sort_unstable();
    let mut extra_at = 0usize;

    loop {
        // The next tick where something happens.
        let mut tick = u64::MAX;
        if let Some(j) = jobs.get(next_arrival) {
            tick = tick.min(submit_tick(j));
        }
        if let Some(Reverse((e, _))) = ends.peek() {
            tick = tick.min(*e);
        }
        if let Some(w) = extra.get(extra_at) {
            tick = tick.min(*w);
        }
        if tick == u64::MAX || tick > horizon {
            break;
        }
        while extra.get(extra_at).is_some_and(|w| *w <= tick) {
            extra_at += 1;
        }
        while let Some(Reverse((e, j))) = ends.peek().copied() {
            if e > tick {
                break;
            }
            ends.pop();
            for p in &jobs[j].placement {
                free[p.node].give_back(p);
            }
        }
        while next_arrival < jobs.len() && submit_tick(&jobs[next_arrival]) <= tick {
            let j = &jobs[next_arrival];
            queues
                .entry(j.partition.clone())
                .or_default()
                .push(next_arrival);
            next_arrival += 1;
        }
        for (partition, queue) in queues.iter_mut() {
            let Some(members) = by_partition.get(partition) else {
                continue;
            };
            let mut started = Vec::new();
            for (qi, &j) in queue.iter().enumerate() {
                let (max_cores, max_gpus) = members.iter().fold((0, 0), |(c, g), &n| {
                    (c.max(free[n].free_cores), g.max(free[n].free_gpus))
                });
                if max_cores == 0 {
                    break;
                }
                let job = &jobs[j];
                if job.cores > max_cores || job.gpus > max_gpus {
                    continue;
                }
                let end = tick + job.duration_ticks;
                if windows.iter().any(|&(a, b)| tick < b && end > a) {
                    continue;
                }
                let Some(placement) = place(job, members, &mut free) else {
                    continue;
                };
                let job = &mut jobs[j];
                job.placement = placement;
                job.start_tick = Some(tick);
                ends.push(Reverse((end, j)));
                started.push(qi);
            }
            for qi in started.into_iter().rev() {
                queue.remove(qi);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("final-*", "final-resnet"));
        assert!(glob_match("*-final", "resnet-final"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("final-*", "dev-resnet"));
        assert!(!glob_match("ab*ba", "aba"));
    }

    #[test]
    fn the_scheduler_never_overbooks_and_respects_maintenance() {
        use rand::SeedableRng;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let s = Scenario::load(&root.join("deploy/demo/scenario.yaml")).unwrap();
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(3);
        let mut jobs = generate(&s, &mut rng);
        schedule(&s, &mut jobs);
        let step = s.sample_interval();
        let nodes = s.nodes();
        let (ws, we) = {
            let w = &s.maintenance[0];
            (
                ((w.start.0 - s.start.0) / step) as u64,
                ((w.start.0 + w.duration.0 - s.start.0) / step) as u64,
            )
        };
        // Per node: +/- CPUs and GPUs at each tick.
        let mut events: Vec<BTreeMap<u64, (i64, i64)>> = vec![BTreeMap::new(); nodes.len()];
        let mut started = 0;
        for j in &jobs {
            let Some(st) = j.start_tick else { continue };
            started += 1;
            let en = st + j.duration_ticks;
            assert!(
                st as f64 * step >= j.submit_s - 1e-9,
                "job {} started early",
                j.id
            );
            assert!(
                en <= ws || st >= we,
                "job {} overlaps the maintenance",
                j.id
            );
            assert_eq!(j.placement.len(), j.nodes as usize);
            for p in &j.placement {
                assert_eq!(nodes[p.node].partition, j.partition);
                let g = &s.node_groups[nodes[p.node].group];
                assert_eq!(p.cpus.len() as u32, j.cores * g.threads_per_core);
                assert_eq!(p.gpus.len() as u32, j.gpus);
                let e = &mut events[p.node];
                let a = e.entry(st).or_default();
                *a = (a.0 + p.cpus.len() as i64, a.1 + p.gpus.len() as i64);
                let b = e.entry(en).or_default();
                *b = (b.0 - p.cpus.len() as i64, b.1 - p.gpus.len() as i64);
            }
        }
        assert!(started > 1900, "{started}");
        for (n, ev) in events.iter().enumerate() {
            let g = &s.node_groups[nodes[n].group];
            let (mut cpus, mut gpus) = (0i64, 0i64);
            for (c, gp) in ev.values() {
                cpus += c;
                gpus += gp;
                assert!(cpus <= i64::from(g.logical_cpus()) && gpus <= i64::from(g.gpu_count()));
            }
        }
    }

    #[test]
    fn normal_draws_look_normal() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(1);
        let xs: Vec<f64> = (0..20_000).map(|_| normal(&mut rng)).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }
}
