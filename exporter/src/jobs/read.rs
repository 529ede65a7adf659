//! The per-job reads of one scan ([`Ctx::read_job`]): CPUs, CPU time, memory limit, the
//! prolog's record, the environment and the uid owning the processes, GPUs; each only when due,
//! else from the job's cache. A job whose folder vanishes meanwhile is left out ([`Vanished`]).

use super::*;

/// What one scan's per-job reads share.
pub(super) struct Ctx<'a> {
    pub(super) opts: &'a JobsOptions,
    pub(super) hierarchy: &'a Hierarchy,
    /// The hierarchies listed on this scan.
    pub(super) listed_now: PerSlot<bool>,
    pub(super) now: u64,
    /// Scans between reads of a job's CPU time.
    pub(super) every: u64,
    pub(super) passwd: &'a mut passwd::Passwd,
    pub(super) reader: &'a mut Reader,
    pub(super) env_buf: &'a mut Vec<u8>,
    pub(super) fds: &'a mut FdBudget,
    pub(super) revisions: &'a mut u64,
    pub(super) records: &'a RecordDir,
    pub(super) gpus: &'a [GpuRef],
    pub(super) mapping: &'a HashMap<String, Vec<String>>,
    pub(super) nvml: &'a HashMap<JobKey, Vec<String>>,
    /// The per-scan GPU inputs (the inventory, the mapping directory, NVML's processes) are
    /// the last scan's and name no job: a job's GPUs then depend on its cache alone.
    pub(super) gpus_steady: bool,
    /// The [`Cache::epoch`] whose output slots `jobs` holds (see [`Ctx::read_steady`]).
    pub(super) slot_epoch: u64,
    pub(super) problems: &'a mut Vec<String>,
}

/// A CPU time reading of one folder.
enum Usage {
    Ns(u64),
    /// The file is not there (fall back to the steps).
    Absent,
    /// The file is there but unusable (already reported).
    Bad,
}

impl Ctx<'_> {
    /// The job as of this scan. Reads, in this order (the order of the problems): CPUs, CPU
    /// time, memory limit, environment, GPUs; each only when due, else from the cache.
    /// Writes the job into `out` (another job's slot of the previous scan: every field is
    /// overwritten, and only once nothing can fail any more).
    pub(super) fn read_job(
        &mut self,
        key: &JobKey,
        e: &mut JobCache,
        out: &mut Job,
    ) -> Result<(), Vanished> {
        let now = self.now;
        if e.relayout {
            e.relayout = false;
            e.reopen(now);
        }
        let statics_due = e.statics.is_none() || now >= e.next_static;
        if statics_due {
            self.probe_folders(e);
        }
        // What the job publishes of its static data before this read: a read that finds the
        // same values keeps the job's revision.
        let before = statics_due
            .then(|| {
                e.statics
                    .as_ref()
                    .map(|s| (s.cpus.clone(), s.memory_limit_bytes))
            })
            .flatten();
        let s = e.statics.get_or_insert_with(Statics::default);
        if statics_due {
            s.cpus_problems.clear();
            (s.cpus, s.cpus_file) = self.cpus(
                &e.found,
                s.cpus_file,
                &mut s.cpus_held,
                &mut s.cpus_problems,
            )?;
        }
        self.problems.extend_from_slice(&s.cpus_problems);

        if e.usage_now.is_none() {
            e.usage_now = Some(self.usage_by_path(&e.found, &mut e.usage)?);
            e.next_usage = next_in_phase(now, e.hash % self.every, self.every);
        }
        let mut cpu_usage_ns = None;
        if let Some(u) = &e.usage_now {
            self.problems.extend_from_slice(&u.problems);
            cpu_usage_ns = u.ns;
        }

        let s = e.statics.get_or_insert_with(Statics::default);
        if statics_due {
            s.memory_problems.clear();
            s.memory_limit_bytes =
                self.memory_limit(&e.found, &mut s.memory_held, &mut s.memory_problems)?;
            e.devices = None;
            let young = e.first_seen > 1 && now < e.first_seen + YOUNG_SCANS;
            e.next_static = if young {
                now + 1
            } else {
                let period = STATIC_REFRESH_SCANS;
                next_in_phase(now, e.hash % period, period)
            };
        }
        self.problems.extend_from_slice(&s.memory_problems);
        let statics_changed = statics_due
            && before.is_none_or(|(cpus, memory)| cpus != s.cpus || memory != s.memory_limit_bytes);

        self.find_metadata(key, e)?;
        let (gpus, gpu_source) = self.job_gpus(key, e)?;

        self.write_metadata(key, e, statics_changed, out);
        out.cpu_usage_ns = cpu_usage_ns;
        out.gpus = gpus;
        out.gpu_source = gpu_source;
        Ok(())
    }

    /// The prolog's record and the environment (with the uid owning the processes), each
    /// while not found yet and when due; repeats the problems of the last search.
    fn find_metadata(&mut self, key: &JobKey, e: &mut JobCache) -> Result<(), Vanished> {
        let now = self.now;
        if key.scheduler != Scheduler::UserSlice {
            self.find_record(key, e);
        }
        // The uid owning the processes is read with the environment (the same pids), while
        // that is looked for, when the path gives none.
        let wants_uid = e.found.uid.is_none() && e.found.user.is_none() && e.kernel_uid.is_none();
        if e.env.is_none() && key.scheduler != Scheduler::UserSlice {
            let searched = now >= e.next_env;
            if searched {
                e.env_problems.clear();
                let (env, uid) = self.find_env(key, &e.found, wants_uid, &mut e.env_problems)?;
                e.env = e.env.take().or(env);
                e.kernel_uid = e.kernel_uid.or(uid);
                e.next_env = self.retry_at(e.first_seen);
            }
            if searched || e.env.is_none() {
                self.problems.extend_from_slice(&e.env_problems);
            }
        }
        Ok(())
    }

    /// Writes the job's metadata, CPUs and memory limit into `out` when its revision changed.
    fn write_metadata(
        &mut self,
        key: &JobKey,
        e: &mut JobCache,
        statics_changed: bool,
        out: &mut Job,
    ) {
        // What is published besides the CPU time and GPUs changes only with the static data
        // (read again just now when due, and found changed), the environment and record once
        // found, the uids of
        // the path and the processes, the path's user name, and the user database: a new
        // revision then, else `out` may already hold it.
        let inputs = e.revision_inputs(self.passwd.generation());
        if statics_changed || e.revision == 0 || inputs != e.revision_inputs {
            *self.revisions += 1;
            e.revision = *self.revisions;
            e.revision_inputs = inputs;
        }
        if out.revision != e.revision {
            let m = meta::resolve(
                &e.found,
                e.kernel_uid,
                e.record.as_ref(),
                e.env.as_ref(),
                self.passwd,
            );
            if let (Some(c), false) = (&m.contradiction, e.warned) {
                e.warned = true;
                self.problems.push(format!(
                    "{} job {}: {c}; the job's value is ignored",
                    key.scheduler, key.id
                ));
            }
            out.id.clear();
            out.id.push_str(key.id.as_str());
            out.scheduler = key.scheduler;
            out.uid = m.uid;
            set_text(&mut out.user, m.user);
            set_text(&mut out.account, m.account);
            set_text(&mut out.partition, m.partition);
            set_text(&mut out.job_name, m.job_name);
            set_text(&mut out.sluid, m.sluid);
            out.metadata = m.source;
            match &e.statics {
                Some(s) => {
                    out.cpus.clone_from(&s.cpus);
                    out.memory_limit_bytes = s.memory_limit_bytes;
                }
                None => {
                    out.cpus.clear();
                    out.memory_limit_bytes = None;
                }
            }
            out.revision = e.revision;
        }
    }

    /// When to look again for something a job does not have yet (its environment, its OAR
    /// resources file).
    pub(super) fn retry_at(&self, first_seen: u64) -> u64 {
        if self.now < first_seen + EAGER_SCANS {
            self.now + 1
        } else {
            self.now + RETRY_SCANS
        }
    }

    /// A v1 job's folders in the controllers not listed on this scan: the same path below
    /// each controller's root as below the one that listed it.
    fn probe_folders(&mut self, e: &mut JobCache) {
        let h = self.hierarchy;
        let Some(rel) = Controller::ALL.iter().find_map(|c| {
            let dir = e.found.v1[*c as usize].as_deref()?;
            dir.strip_prefix(h.v1[*c as usize].as_deref()?).ok()
        }) else {
            return;
        };
        let rel = rel.to_path_buf();
        for c in Controller::ALL {
            let i = c as usize;
            if self.listed_now[Slot::V1(c).index()] || e.found.v1[i].is_some() {
                continue;
            }
            let Some(root) = &h.v1[i] else {
                continue;
            };
            let path = root.join(&rel);
            if let Some(ino) = cgroup::probe(&path) {
                e.found.v1[i] = Some(path);
                e.ino[Slot::V1(c).index()] = Some(ino);
                // Another folder may give the CPU time now (cpuacct wins over v2).
                e.usage = UsageFile::ByPath;
                e.usage_now = None;
                e.devices = None;
            }
        }
    }

    /// The job's CPUs: from `hint` (the file that gave them last time) when it is still there,
    /// else the first present of the job folder's files, else the union over its steps.
    fn cpus(
        &mut self,
        f: &Found,
        hint: Option<usize>,
        held: &mut Option<std::fs::File>,
        problems: &mut Vec<String>,
    ) -> Result<(Vec<u32>, Option<usize>), Vanished> {
        let (dir, files): (&Path, &[&str]) = if let Some(d) = &f.v1[Controller::Cpuset as usize] {
            (d, &["cpuset.effective_cpus", "cpuset.cpus"])
        } else if let Some(d) = &f.v2 {
            (d, &["cpuset.cpus.effective", "cpuset.cpus"])
        } else {
            return Ok((Vec::new(), None));
        };
        if let Some(file) = hint.and_then(|i| files.get(i)) {
            if let Some(text) = self.reader.read_held(dir, file, held, self.fds, problems)? {
                return Ok((
                    cpus_of(parse_cpu_list(text), self.reader.path(), problems),
                    hint,
                ));
            }
        }
        *held = None;
        for (i, file) in files.iter().enumerate() {
            if let Some(cpus) = self.cpus_at(dir, std::slice::from_ref(file), problems)? {
                return Ok((cpus, Some(i)));
            }
        }
        let mut all = Vec::new();
        for sub in cgroup::subdirs(dir)? {
            // A step that ended meanwhile just adds nothing.
            if let Ok(Some(cpus)) = self.cpus_at(&sub, files, problems) {
                all.extend(cpus);
            }
        }
        all.sort_unstable();
        all.dedup();
        Ok((all, None))
    }

    /// The first of `files` present in `dir`, parsed; `None` when none is present.
    fn cpus_at(
        &mut self,
        dir: &Path,
        files: &[&str],
        problems: &mut Vec<String>,
    ) -> Result<Option<Vec<u32>>, Vanished> {
        for file in files {
            let Some(text) = self.reader.read(dir, file, problems)? else {
                continue;
            };
            return Ok(Some(cpus_of(
                parse_cpu_list(text),
                self.reader.path(),
                problems,
            )));
        }
        Ok(None)
    }

    /// The CPU time read by path (the first read, or after the open file failed): the job
    /// folder's file, kept open for the next scans when a descriptor is to spare, else the sum
    /// over the steps.
    fn usage_by_path(&mut self, f: &Found, held: &mut UsageFile) -> Result<UsageRead, Vanished> {
        *held = UsageFile::ByPath;
        let mut r = UsageRead::default();
        let (dir, v2) = if let Some(d) = &f.v1[Controller::Cpuacct as usize] {
            (d, false)
        } else if let Some(d) = &f.v2 {
            (d, true)
        } else {
            return Ok(r);
        };
        let file = if v2 { "cpu.stat" } else { "cpuacct.usage" };
        if let Some((text, path, file)) = self.reader.read_keep(dir, file, &mut r.problems)? {
            // Bad content too is read again from the open file: it is reported each scan.
            let parsed = parse_usage(text, v2, path);
            if self.fds.take() {
                *held = UsageFile::Held {
                    file,
                    path: path.to_path_buf(),
                    v2,
                };
            }
            r.problems.extend(parsed.problems);
            r.ns = parsed.ns;
            return Ok(r);
        }
        let mut sum: Option<u64> = None;
        for sub in cgroup::subdirs(dir)? {
            if let Ok(Usage::Ns(ns)) = self.usage_at(&sub, v2, &mut r.problems) {
                sum = Some(sum.unwrap_or(0).saturating_add(ns));
            }
        }
        r.ns = sum;
        Ok(r)
    }

    fn usage_at(
        &mut self,
        dir: &Path,
        v2: bool,
        problems: &mut Vec<String>,
    ) -> Result<Usage, Vanished> {
        let file = if v2 { "cpu.stat" } else { "cpuacct.usage" };
        let Some((text, path, _)) = self.reader.read_keep(dir, file, problems)? else {
            return Ok(Usage::Absent);
        };
        let parsed = parse_usage(text, v2, path);
        problems.extend(parsed.problems);
        Ok(parsed.ns.map_or(Usage::Bad, Usage::Ns))
    }

    fn memory_limit(
        &mut self,
        f: &Found,
        held: &mut Option<std::fs::File>,
        problems: &mut Vec<String>,
    ) -> Result<Option<u64>, Vanished> {
        let (dir, file) = if let Some(d) = &f.v1[Controller::Memory as usize] {
            (d, "memory.limit_in_bytes")
        } else if let Some(d) = &f.v2 {
            (d, "memory.max")
        } else {
            return Ok(None);
        };
        let Some(text) = self.reader.read_held(dir, file, held, self.fds, problems)? else {
            return Ok(None);
        };
        let v = text.trim();
        if v == "max" {
            return Ok(None);
        }
        match v.parse::<u64>() {
            Ok(b) if b >= V1_NO_LIMIT => Ok(None),
            Ok(b) => Ok(Some(b)),
            Err(_) => {
                let shown = shorten(text).to_string();
                let msg = format!(
                    "{}: expected a byte count or \"max\", found {shown:?}",
                    self.reader.path().display(),
                );
                problems.push(msg);
                Ok(None)
            }
        }
    }

    /// The prolog's record of the job, looked for like the environment until found (the
    /// prolog may run after the folders appear), then kept.
    fn find_record(&mut self, key: &JobKey, e: &mut JobCache) {
        let Some(dir) = &self.opts.record_dir else {
            return;
        };
        // The folder's listing is as of its last change: a job reads its record only when
        // the file came, went or was replaced since it last did.
        // (A listing already looked at by this job, or none at all, changes nothing.)
        let seen = e.record_generation == self.records.generation;
        e.record_generation = self.records.generation;
        let ino = if seen {
            e.record_ino
        } else {
            self.records.ino(key.id.as_str())
        };
        if ino != e.record_ino {
            e.record = None;
            e.record_ino = ino;
            e.record_problem = None;
            let path = dir.join(key.id.as_str());
            match record::read(&path, self.env_buf) {
                Ok(Some(r)) if r.job_id == key.id.as_str() => e.record = Some(r),
                Ok(Some(r)) => {
                    e.record_problem = Some(format!(
                        "job record {}: names job {}, not {}",
                        path.display(),
                        r.job_id,
                        key.id
                    ))
                }
                Ok(None) => {}
                Err(p) => e.record_problem = Some(p),
            }
        }
        if let (None, Some(p)) = (&e.record, &e.record_problem) {
            self.problems.push(p.clone());
        }
    }

    /// The job's environment, from the first of its processes whose environment carries the
    /// job's id, and with `want_uid` the uid owning its first process that has one (any
    /// process of the job's folders: the kernel's word, not the job's). `None`s when no
    /// process could be read yet (retried later).
    fn find_env(
        &mut self,
        key: &JobKey,
        f: &Found,
        want_uid: bool,
        problems: &mut Vec<String>,
    ) -> Result<(Option<JobEnv>, Option<u32>), Vanished> {
        // Every hierarchy lists the same processes, but a controller may leave a job's folder
        // empty (OAR 2 puts processes in cpuset only): try the next until one has any.
        let mut pids = Vec::new();
        for dir in f.v2.iter().chain(f.v1.iter().flatten()) {
            self.collect_pids(dir, 0, &mut pids, problems)?;
            if !pids.is_empty() {
                break;
            }
        }
        let mut uid = None;
        if want_uid {
            for pid in &pids {
                let path = self.opts.procfs.join(pid.to_string()).join("status");
                if let Some(u) = sluid::proc_uid(&path, self.env_buf) {
                    uid = Some(u);
                    // A root helper (a setuid program) is not who runs the job: look further.
                    if u != 0 {
                        break;
                    }
                }
            }
        }
        let mut search = EnvSearch::default();
        let env = env::find_job_env(
            &self.opts.procfs,
            &pids,
            key.scheduler,
            key.id.as_str(),
            self.env_buf,
            &mut search,
        );
        if env.is_none() {
            if let Some(path) = search.denied {
                problems.push(format!(
                    "cannot read {}: permission denied, so {} job {} has no account, partition or name (fix: run the exporter as root or with CAP_SYS_PTRACE)",
                    path.display(),
                    key.scheduler,
                    key.id
                ));
            }
        }
        Ok((env, uid))
    }

    /// Pids of the processes below `dir`, deepest folders first (tasks before their step's
    /// slurmstepd), at most [`MAX_ENV_CANDIDATES`].
    fn collect_pids(
        &mut self,
        dir: &Path,
        depth: usize,
        out: &mut Vec<u32>,
        problems: &mut Vec<String>,
    ) -> Result<(), Vanished> {
        let subs = match cgroup::subdirs(dir) {
            Ok(s) => s,
            Err(Vanished) if depth == 0 => return Err(Vanished),
            Err(Vanished) => return Ok(()),
        };
        if depth < MAX_PROC_DEPTH {
            for sub in subs {
                if out.len() >= MAX_ENV_CANDIDATES {
                    return Ok(());
                }
                // A step that ended meanwhile holds no processes.
                let _ = self.collect_pids(&sub, depth + 1, out, problems);
            }
        }
        for file in ["cgroup.procs", "tasks"] {
            let text = match self.reader.read(dir, file, problems) {
                Ok(Some(t)) => t,
                Ok(None) => continue,
                Err(Vanished) if depth == 0 => return Err(Vanished),
                Err(Vanished) => return Ok(()),
            };
            for pid in text.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
                if out.len() >= MAX_ENV_CANDIDATES {
                    break;
                }
                if !out.contains(&pid) {
                    out.push(pid);
                }
            }
            break;
        }
        Ok(())
    }

    fn job_gpus(
        &mut self,
        key: &JobKey,
        e: &mut JobCache,
    ) -> Result<(Vec<String>, Option<GpuMappingSource>), Vanished> {
        use GpuMappingSource as S;
        let found = |list: Vec<String>, s: S| Ok((list, Some(s)));
        if key.scheduler != Scheduler::UserSlice && !self.mapping.is_empty() {
            if let Some(list) = self.mapping.get(key.id.as_str()) {
                return found(list.clone(), S::MappingDir);
            }
        }
        if let Some(v) = e.record.as_ref().and_then(|r| r.gpus.as_deref()) {
            let what = || format!("the job record of {} job {}", key.scheduler, key.id);
            let list = gpu::resolve_list(v, self.gpus, &what, self.problems);
            if !list.is_empty() {
                return found(list, S::JobRecord);
            }
        }
        if key.scheduler == Scheduler::Oar {
            let list = self.oar_resources(key, e);
            if !list.is_empty() {
                return found(list, S::OarResources);
            }
        }
        let mut devices: Option<Vec<String>> = None;
        if let Some(env) = &e.env {
            // Builds the message lazily: only a problem pays for the formatting.
            let what =
                |var: &'static str| move || format!("{var} of {} job {}", key.scheduler, key.id);
            if let Some((var, v)) = &env.slurm_gpus {
                let list = gpu::resolve_list(v, self.gpus, &what(var), self.problems);
                if !list.is_empty() {
                    return found(list, S::SlurmJobGpus);
                }
            }
            // The runtimes' variables, each numbering its vendor's GPUs (Slurm sets all three
            // on every node, to the same indices; the others' name no GPU here, silently).
            let (rocr, rocr_var) = match (&env.rocr_visible_devices, &env.hip_visible_devices) {
                (Some(v), _) => (Some(v), "ROCR_VISIBLE_DEVICES"),
                (None, h) => (h.as_ref(), "HIP_VISIBLE_DEVICES"),
            };
            let runtimes = [
                (
                    env.cuda_visible_devices.as_ref(),
                    GpuVendor::Nvidia,
                    "CUDA_VISIBLE_DEVICES",
                    S::CudaVisibleDevices,
                ),
                (rocr, GpuVendor::Amd, rocr_var, S::RocrVisibleDevices),
                (
                    env.ze_affinity_mask.as_ref(),
                    GpuVendor::Intel,
                    "ZE_AFFINITY_MASK",
                    S::ZeAffinityMask,
                ),
            ];
            for (v, vendor, var, source) in runtimes {
                let Some(v) = v else { continue };
                if !self.gpus.iter().any(|g| g.vendor == vendor) {
                    continue;
                }
                if !gpu::all_uuids(v) && devices.is_none() {
                    // Indices may be renumbered from 0 in a constrained job: the devices list,
                    // when it names GPUs, is exact.
                    let d = self.devices_gpus(&e.found, &mut e.devices)?;
                    if !d.is_empty() {
                        return found(d, S::DevicesList);
                    }
                    devices = Some(d);
                }
                let list =
                    gpu::resolve_vendor_list(v, vendor, self.gpus, &what(var), self.problems);
                if !list.is_empty() {
                    return found(list, source);
                }
            }
        }
        let d = match devices {
            Some(d) => d,
            None => self.devices_gpus(&e.found, &mut e.devices)?,
        };
        if !d.is_empty() {
            return found(d, S::DevicesList);
        }
        // (No hashing of the key when NVML sees no process.)
        if let Some(list) = Some(self.nvml)
            .filter(|m| !m.is_empty())
            .and_then(|m| m.get(key))
        {
            return found(list.clone(), S::NvmlProcesses);
        }
        Ok((Vec::new(), None))
    }

    /// GPUs from the OAR resources file, read once per job (an absent file is looked for
    /// again: the prolog may be late).
    fn oar_resources(&mut self, key: &JobKey, e: &mut JobCache) -> Vec<String> {
        let Some(dir) = &self.opts.oar_resources_dir else {
            return Vec::new();
        };
        let path = dir.join(key.id.as_str());
        if e.oar_resources.is_none() && self.now >= e.next_oar {
            e.oar_problem = None;
            e.next_oar = self.retry_at(e.first_seen);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let entries = gpu::parse_oar_resources(&text);
                    if !entries.is_empty() {
                        e.oar_resources = Some(entries);
                    }
                }
                Err(err) if cgroup::is_gone(&err) => {}
                Err(err) => {
                    e.oar_problem = Some(format!(
                        "cannot read OAR resources file {}: {err}",
                        path.display()
                    ));
                }
            }
        }
        let Some(entries) = &e.oar_resources else {
            if let Some(p) = &e.oar_problem {
                self.problems.push(p.clone());
            }
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut bad = Vec::new();
        let tokens = entries.iter().filter_map(|e| {
            let t = gpu::token(e);
            if t.is_none() {
                bad.push(e.as_str());
            }
            t
        });
        gpu::resolve(
            tokens,
            self.gpus,
            &|| format!("OAR resources file {}", path.display()),
            &mut out,
            self.problems,
        );
        for b in bad {
            self.problems.push(format!(
                "OAR resources file {}: expected a GPU index or GPU-… UUID per line, found {:?}",
                path.display(),
                shorten(b)
            ));
        }
        out
    }

    /// GPUs from the v1 `devices.list` at the job level, else the union over its steps. The
    /// file is read when first needed and again after each read of the static data; not at all
    /// without a GPU inventory (NVML off or absent), when no minor could name a GPU.
    fn devices_gpus(
        &mut self,
        f: &Found,
        cached: &mut Option<Devices>,
    ) -> Result<Vec<String>, Vanished> {
        let Some(dir) = &f.v1[Controller::Devices as usize] else {
            return Ok(Vec::new());
        };
        if self.gpus.is_empty() {
            return Ok(Vec::new());
        }
        if cached.is_none() {
            {
                let mut problems = Vec::new();
                let mut minors = match self.minors_at(dir, &mut problems)? {
                    Some(m) => m,
                    None => {
                        let mut all = Vec::new();
                        for sub in cgroup::subdirs(dir)? {
                            if let Ok(Some(m)) = self.minors_at(&sub, &mut problems) {
                                all.extend(m);
                            }
                        }
                        all
                    }
                };
                minors.sort_unstable();
                minors.dedup();
                *cached = Some(Devices {
                    minors,
                    problems,
                    path: dir.join("devices.list"),
                });
            }
        }
        let Some(d) = cached.as_ref() else {
            return Ok(Vec::new());
        };
        self.problems.extend_from_slice(&d.problems);
        Ok(gpu::resolve_minors(
            &d.minors,
            self.gpus,
            &|| d.path.display().to_string(),
            self.problems,
        ))
    }

    /// The GPU minors a `devices.list` allows; `None` when the file is absent.
    fn minors_at(
        &mut self,
        dir: &Path,
        problems: &mut Vec<String>,
    ) -> Result<Option<Vec<(u32, u32)>>, Vanished> {
        let Some(text) = self.reader.read(dir, "devices.list", problems)? else {
            return Ok(None);
        };
        let caps_major = self.gpus.iter().find_map(|g| g.caps.first()).map(|c| c.0);
        match gpu::parse_devices_list(text, caps_major) {
            Ok(gpu::DeviceAccess::Minors(m)) => Ok(Some(m)),
            Ok(gpu::DeviceAccess::Unconstrained) => Ok(Some(Vec::new())),
            Err(line) => {
                problems.push(format!(
                    "{}: expected lines such as \"c 195:0 rwm\", found {:?}",
                    self.reader.path().display(),
                    shorten(&line)
                ));
                Ok(Some(Vec::new()))
            }
        }
    }
}
