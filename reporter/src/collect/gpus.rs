//! The GPUs of the period: model, power limit, and the scrapes each was present and allocated.

use super::*;

impl Collector<'_> {
    /// The selector of the devices of the AMD and Intel GPU sources.
    fn drm_gpu_devices(&self) -> String {
        let sel = self.sel(&c::ENERGY_DEVICE_INFO);
        let inner = sel
            .strip_suffix('}')
            .and_then(|s| s.split_once('{'))
            .map_or("", |(_, m)| m);
        let sep = if inner.is_empty() { "" } else { "," };
        format!(
            "{}{{{inner}{sep}{}=~\"amdgpu|intel_gpu\"}}",
            c::ENERGY_DEVICE_INFO.name(),
            l::SOURCE,
        )
    }

    /// `q` with its `device` label copied to `gpu_uuid`.
    fn device_as_gpu(q: &str) -> String {
        format!(
            "label_replace({q}, \"{}\", \"$1\", \"{}\", \"(.*)\")",
            l::GPU_UUID,
            l::DEVICE
        )
    }

    /// GPUs (NVIDIA's, then AMD's and Intel's) with their power limits and the scrapes that saw
    /// them; how often a job held them comes with the jobs ([`Collector::add_allocations`]).
    ///
    /// One pass over each source's device series gives both a GPU's model and the scrapes that
    /// saw it (`count_over_time` by model): these passes read every sample of the period, so
    /// they are not made twice. A GPU whose model label changed in the period shows the model
    /// seen in the most scrapes.
    pub fn gpus(&self) -> Result<Vec<GpuData>, PromError> {
        self.client.progress().stage("GPUs", 3);
        let r = self.range();
        let by = [CLUSTER, INSTANCE, l::GPU_UUID];
        let k = |lb: &Labels| {
            (
                label(lb, CLUSTER),
                label(lb, INSTANCE),
                label(lb, l::GPU_UUID),
            )
        };
        let queries = [
            format!(
                "sum by ({}, {}) (count_over_time({}[{r}]))",
                by.join(", "),
                l::MODEL,
                self.sel(&c::GPU_INFO)
            ),
            // AMD and Intel GPUs: the devices of their sources, `device` as their `gpu_uuid`
            // (the label their energy and `joulebook_job_gpu_info` carry).
            Self::device_as_gpu(&format!(
                "sum by ({CLUSTER}, {INSTANCE}, {}, {}) (count_over_time({}[{r}]))",
                l::DEVICE,
                l::MODEL,
                self.drm_gpu_devices()
            )),
            self.gauge_max(&c::GPU_POWER_LIMIT, &by),
        ];
        let mut answers = self.all_at_end(&queries)?.into_iter();
        let (nvidia, drm, limits) = (
            answers.next().unwrap_or_default(),
            answers.next().unwrap_or_default(),
            answers.next().unwrap_or_default(),
        );
        // A key both sources had is NVIDIA's.
        let nvidia_keys: BTreeSet<(String, String, String)> =
            nvidia.iter().map(|s| k(&s.labels)).collect();
        let rows = nvidia.into_iter().chain(
            drm.into_iter()
                .filter(|s| !nvidia_keys.contains(&k(&s.labels))),
        );
        let mut gpus: BTreeMap<(String, String, String), GpuData> = BTreeMap::new();
        // Per GPU, the scrapes of the model shown.
        let mut shown: BTreeMap<(String, String, String), f64> = BTreeMap::new();
        for s in rows {
            let key = k(&s.labels);
            let g = gpus.entry(key.clone()).or_insert_with(|| GpuData {
                cluster: key.0.clone(),
                instance: key.1.clone(),
                gpu_uuid: key.2.clone(),
                ..GpuData::default()
            });
            g.samples_present += s.value;
            let model = labels_str(&s.labels, l::MODEL);
            let most = shown.entry(key).or_insert(f64::NEG_INFINITY);
            if s.value > *most || (s.value == *most && model > g.model.as_str()) {
                *most = s.value;
                g.model = model.to_string();
            }
        }
        for s in limits {
            if let Some(g) = gpus.get_mut(&k(&s.labels)) {
                g.power_limit_watts = Some(s.value);
            }
        }
        Ok(gpus.into_values().collect())
    }

    /// The scrapes in which a job held each GPU, read with the job series (a series per job
    /// and GPU: [`Collector::jobs`]).
    pub fn add_allocations(gpus: &mut [GpuData], counts: &super::jobs::GpuCounts) {
        for g in gpus {
            let k = (g.cluster.clone(), g.instance.clone(), g.gpu_uuid.clone());
            if let Some(n) = counts.get(&k) {
                g.samples_allocated = *n;
            }
        }
    }
}
