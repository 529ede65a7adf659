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
    pub fn gpus(&self) -> Result<Vec<GpuData>, PromError> {
        self.client.progress().stage("GPUs", 5);
        let r = self.range();
        let by = [CLUSTER, INSTANCE, l::GPU_UUID];
        let mut gpus: BTreeMap<(String, String, String), GpuData> = BTreeMap::new();
        let k = |lb: &Labels| {
            (
                label(lb, CLUSTER),
                label(lb, INSTANCE),
                label(lb, l::GPU_UUID),
            )
        };
        let info = self.at_end(&format!(
            "max by ({CLUSTER}, {INSTANCE}, {}, {}) (max_over_time({}[{r}]))",
            l::GPU_UUID,
            l::MODEL,
            self.sel(&c::GPU_INFO)
        ))?;
        for s in info {
            let key = k(&s.labels);
            gpus.insert(
                key.clone(),
                GpuData {
                    cluster: key.0,
                    instance: key.1,
                    gpu_uuid: key.2,
                    model: label(&s.labels, l::MODEL),
                    ..GpuData::default()
                },
            );
        }
        for s in self.gauge_max(&c::GPU_POWER_LIMIT, &by)? {
            if let Some(g) = gpus.get_mut(&k(&s.labels)) {
                g.power_limit_watts = Some(s.value);
            }
        }
        // AMD and Intel GPUs: the devices of their sources, `device` as their `gpu_uuid` (the
        // label their energy and `joulebook_job_gpu_info` carry).
        let devices = self.drm_gpu_devices();
        for s in self.at_end(&Self::device_as_gpu(&format!(
            "max by ({CLUSTER}, {INSTANCE}, {}, {}) (max_over_time({devices}[{r}]))",
            l::DEVICE,
            l::MODEL,
        )))? {
            let key = k(&s.labels);
            gpus.entry(key.clone()).or_insert_with(|| GpuData {
                cluster: key.0,
                instance: key.1,
                gpu_uuid: key.2,
                model: label(&s.labels, l::MODEL),
                ..GpuData::default()
            });
        }
        for s in self.at_end(&Self::device_as_gpu(&format!(
            "sum by ({CLUSTER}, {INSTANCE}, {}) (count_over_time({devices}[{r}]))",
            l::DEVICE
        )))? {
            if let Some(g) = gpus.get_mut(&k(&s.labels)) {
                g.samples_present = s.value;
            }
        }
        let count = |m: &MetricDef| {
            self.at_end(&format!(
                "sum by ({}) (count_over_time({}[{r}]))",
                by.join(", "),
                self.sel(m)
            ))
        };
        for s in count(&c::GPU_INFO)? {
            if let Some(g) = gpus.get_mut(&k(&s.labels)) {
                g.samples_present = s.value;
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
