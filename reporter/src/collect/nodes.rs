//! Node facts, and node and unallocated energy per node and per day, chained across days
//! (module doc of `collect`).

use super::*;

impl Collector<'_> {
    /// Node facts (TDP, cores, memory, hostname) by (cluster, instance).
    pub fn node_facts(&self) -> Result<BTreeMap<(String, String), NodeData>, PromError> {
        self.client.progress().stage("node facts", 4);
        let by = [CLUSTER, INSTANCE];
        let facts = [c::NODE_CPU_TDP, c::NODE_PHYSICAL_CORES, c::NODE_MEMORY];
        let mut queries: Vec<String> = facts.iter().map(|m| self.gauge_max(m, &by)).collect();
        // The hostname each exporter publishes: the node's name in the reports.
        queries.push(self.gauge_max(&c::NODE_INFO, &[CLUSTER, INSTANCE, l::HOSTNAME]));
        let mut answers = self.all_at_end(&queries)?.into_iter();
        let mut nodes: BTreeMap<(String, String), NodeData> = BTreeMap::new();
        for f in 0..facts.len() {
            for s in answers.next().unwrap_or_default() {
                let n = node_entry(&mut nodes, &s.labels);
                let v = Some(s.value);
                match f {
                    0 => n.cpu_tdp_watts = v,
                    1 => n.physical_cores = v,
                    _ => n.memory_bytes = v,
                }
            }
        }
        for s in answers.next().unwrap_or_default() {
            if let Some(h) = s.labels.get(l::HOSTNAME).filter(|h| !h.is_empty()) {
                node_entry(&mut nodes, &s.labels).hostname = Some(h.to_string());
            }
        }
        Ok(nodes)
    }

    /// Node and unallocated energy per node and per day, chained across days (module doc).
    pub fn node_energy(
        &self,
        nodes: &mut BTreeMap<(String, String), NodeData>,
        starts: &CounterStarts,
    ) -> Result<Vec<DayData>, PromError> {
        let days = self.scope.zone.days(&self.scope.period);
        let mut out: Vec<DayData> = days
            .iter()
            .map(|d| DayData {
                period: *d,
                ..DayData::default()
            })
            .collect();
        // Every instance with series of either family (one index call for both): a day's
        // `resets` pass can then name the few nodes that need it instead of leaving out the
        // many that do not.
        let both = format!("{}|{}", c::NODE_ENERGY.name(), c::UNALLOCATED_ENERGY.name());
        let from = self.scope.period.start - self.scope.lookback;
        let complete = self.instances_of(&self.series_matching(&both), from);
        // Per node, the days on which its energy grew (`NodeData::seconds_reported`).
        let mut grew: BTreeMap<(String, String), Vec<bool>> = BTreeMap::new();
        for (fam, unalloc) in [(c::NODE_ENERGY, false), (c::UNALLOCATED_ENERGY, true)] {
            let per_series = self.chained(&fam, &days, starts, complete.as_deref())?;
            for (labels, per_day) in per_series {
                let comp = label(&labels, l::COMPONENT);
                if !unalloc {
                    self.seen_component(&comp);
                    let key = (label(&labels, CLUSTER), label(&labels, INSTANCE));
                    let days_grew = grew.entry(key).or_insert_with(|| vec![false; days.len()]);
                    for (g, v) in days_grew.iter_mut().zip(&per_day) {
                        *g |= *v > 0.0;
                    }
                }
                let n = node_entry(nodes, &labels);
                let mut known = true;
                for (d, v) in out.iter_mut().zip(&per_day) {
                    let (target, node_target) = if unalloc {
                        (&mut d.unallocated, &mut n.unallocated)
                    } else {
                        (&mut d.energy, &mut n.energy)
                    };
                    known &= target.add(&comp, *v);
                    node_target.add(&comp, *v);
                }
                if !known {
                    self.note(format!("energy of unknown component {comp:?} ignored"));
                }
            }
        }
        for (key, days_grew) in grew {
            if let Some(n) = nodes.get_mut(&key) {
                let s = days.iter().zip(days_grew).filter(|(_, g)| *g);
                n.seconds_reported = Some(s.map(|(d, _)| d.seconds() as f64).sum());
            }
        }
        Ok(out)
    }

    /// Per series of `m`, its increase in each of `days`; the `resets` pass skips the nodes
    /// whose counters only grew since before the day (`starts`). `complete`: every instance
    /// with series of `m` ([`Collector::instances_of`]), when known.
    pub(super) fn chained(
        &self,
        m: &MetricDef,
        days: &[Period],
        starts: &CounterStarts,
        complete: Option<&[String]>,
    ) -> Result<Vec<(Labels, Vec<f64>)>, PromError> {
        let lb = self.scope.lookback;
        let sel = self.sel(m);
        let p = self.client.progress();
        p.stage(&format!("{} by day", m.name()), 1 + 2 * days.len());
        let base: BTreeMap<Labels, f64> = self
            .client
            .vector(
                &format!("last_over_time({sel}[{lb}s])"),
                self.scope.period.start,
            )?
            .into_iter()
            .map(|s| (s.labels, s.value))
            .collect();
        let near_end = par_map(days, self.scope.parallelism, |d| {
            self.near_end(m, d, starts, complete)
        })?;
        // The series of the nodes without a pass that a day may hold: those known anywhere.
        let mut known: BTreeSet<Labels> = base.keys().cloned().collect();
        for n in &near_end {
            known.extend(n.last.keys().cloned());
        }
        let items: Vec<(&Period, NearEnd)> = days.iter().zip(near_end).collect();
        let per_day = par_map(&items, self.scope.parallelism, |(d, near)| {
            self.day(m, d, near, &known, starts)
        })?;
        let mut keys: BTreeSet<Labels> = base.keys().cloned().collect();
        for d in &per_day {
            keys.extend(d.last.keys().cloned());
        }
        let mut out = Vec::new();
        for k in keys {
            let row = self.chain(m, &k, base.get(&k).copied(), days, &per_day)?;
            out.push((k, row));
        }
        Ok(out)
    }

    /// Day `d`'s `resets` pass (not for the nodes whose counters only grew since before the
    /// day) and every series' last value, read near the day's end only.
    fn near_end(
        &self,
        m: &MetricDef,
        d: &Period,
        starts: &CounterStarts,
        complete: Option<&[String]>,
    ) -> Result<NearEnd, PromError> {
        let (lb, len) = (self.scope.lookback, d.seconds());
        // The one pass over the day's samples: which series had samples (and which went
        // down), every one of them in the answer, 0 when it did not go down.
        let matcher = Self::resets_scope(starts, d.start - lb, None, complete).pass();
        let seen: Vec<(Labels, f64)> = match matcher {
            None => Vec::new(),
            Some(x) => self
                .client
                .vector(
                    &format!("resets({}[{}s])", self.sel_in(m, x.as_deref()), len + lb),
                    d.end,
                )?
                .into_iter()
                .map(|s| (s.labels, s.value))
                .collect(),
        };
        let near = lb.min(len);
        let last: BTreeMap<Labels, f64> = self
            .client
            .vector(&format!("last_over_time({}[{near}s])", self.sel(m)), d.end)?
            .into_iter()
            .map(|s| (s.labels, s.value))
            .collect();
        Ok(NearEnd { seen, last })
    }

    /// Day `d`'s last value of every series and the series that went down. A series silent
    /// near the day's end (its node down or gone) is read over the whole day, its node's
    /// series only; `known`: every series met, for the nodes that had no `resets` pass.
    fn day(
        &self,
        m: &MetricDef,
        d: &Period,
        NearEnd { seen, last }: &NearEnd,
        known: &BTreeSet<Labels>,
        starts: &CounterStarts,
    ) -> Result<Day, PromError> {
        let lb = self.scope.lookback;
        let (len, near, from) = (d.seconds(), lb.min(d.seconds()), d.start - lb);
        let mut last = last.clone();
        let silent: BTreeSet<String> = seen
            .iter()
            .map(|(k, _)| k)
            .chain(
                known
                    .iter()
                    .filter(|k| starts.has_grown_since(&label(k, INSTANCE), from)),
            )
            .filter(|k| !last.contains_key(*k))
            .map(|k| regex_literal(&label(k, INSTANCE)))
            .collect();
        if !silent.is_empty() && near < len {
            let alt = silent.into_iter().collect::<Vec<_>>().join("|");
            let only = format!("{INSTANCE}=~{}", quote(&alt));
            let whole = self.sel_in(m, Some(&only));
            for s in self
                .client
                .vector(&format!("last_over_time({whole}[{len}s])"), d.end)?
            {
                last.entry(s.labels).or_insert(s.value);
            }
        }
        let reset = seen
            .iter()
            .filter(|(_, v)| *v > 0.0)
            .map(|(k, _)| k.clone())
            .collect();
        Ok(Day { last, reset })
    }

    /// Series `k`'s increase on each day, each day's base the previous day's last value (`prev`
    /// before the first); a day on which it went down from that day's raw samples.
    fn chain(
        &self,
        m: &MetricDef,
        k: &Labels,
        mut prev: Option<f64>,
        days: &[Period],
        per_day: &[Day],
    ) -> Result<Vec<f64>, PromError> {
        let mut row = Vec::with_capacity(days.len());
        for (d, day) in days.iter().zip(per_day) {
            let Some(&last) = day.last.get(k) else {
                row.push(0.0);
                continue;
            };
            let v = if day.reset.contains(k) {
                self.resets_seen.fetch_add(1, Ordering::Relaxed);
                let raw = self.client.matrix(
                    &format!("{}[{}s]", exact_selector(m, k), d.seconds()),
                    d.end,
                )?;
                let start = d.start as f64;
                counter::increase(
                    prev,
                    raw.iter()
                        .flat_map(|s| s.samples.iter())
                        .filter(|(t, _)| *t > start)
                        .map(|(_, v)| *v),
                )
            } else {
                counter::increase(prev, [last])
            };
            row.push(v);
            prev = Some(last);
        }
        Ok(row)
    }
}

/// A day's series: last values and those that went down.
struct Day {
    last: BTreeMap<Labels, f64>,
    reset: BTreeSet<Labels>,
}

/// A day's `resets` answer (the series seen, and how often each went down) and last values
/// near its end.
struct NearEnd {
    seen: Vec<(Labels, f64)>,
    last: BTreeMap<Labels, f64>,
}
