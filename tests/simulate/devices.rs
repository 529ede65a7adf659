//! The GPU nodes of the small run: AMD, MIG and Intel.

use super::*;

/// The mixed cluster: the AMD node's GPUs are measured by the amdgpu source (no NVML there), and
/// jobs on it are charged GPU energy.
#[test]
fn the_amd_node_measures_its_gpus_and_charges_its_jobs() {
    let run = small();
    let lines = samples(&run.text);
    let on_amd = |l: &&Line| l.labels.get("instance").map(String::as_str) == Some("mi30001:9977");
    let amd: Vec<&Line> = lines.iter().filter(on_amd).collect();
    assert!(
        amd.iter()
            .any(|l| l.name == "joulebook_amdgpu_joules_total" && l.value > 0.0),
        "no amdgpu energy on mi30001"
    );
    assert!(
        !amd.iter().any(|l| l.name == "joulebook_gpu_joules_total"),
        "NVML series on the AMD node"
    );
    assert!(
        amd.iter().any(|l| l.name == "joulebook_job_joules_total"
            && l.labels["component"] == "gpu"
            && l.value > 0.0),
        "no job charged GPU energy on mi30001"
    );
    assert!(amd.iter().any(|l| l.name == "joulebook_energy_device_info"
        && l.labels.get("model").map(String::as_str) == Some("AMD Instinct MI300X")));
}

#[test]
fn the_mig_node_splits_its_gpu_by_instance_and_leaves_free_slices_unallocated() {
    // small.yaml's mig01: one A100 as a 3g and a 2g instance (slot order of the truth's
    // gpu_uuids); 2 of its 7 slices are in no instance, so no job is ever charged them.
    let run = small();
    let node = run.truth["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "mig01")
        .expect("mig01 in the truth");
    let slices: BTreeMap<String, i64> = node["gpu_uuids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .zip([3, 2])
        .collect();
    assert_eq!(slices.len(), 2);
    assert!(slices.keys().all(|u| u.starts_with("MIG-")), "{slices:?}");
    let lines = samples(&run.text);
    let on_mig: Vec<&Line> = lines
        .iter()
        .filter(|l| l.labels.get("instance").map(String::as_str) == Some("mig01:9977"))
        .collect();
    let MigScrapes {
        gpu,
        free,
        job,
        held,
        physical,
        parts,
    } = MigScrapes::of(&on_mig);
    assert!(!held.is_empty(), "no job held a MIG instance on mig01");
    // Each instance is published as a part of the one physical GPU (what the idle-GPU alert
    // joins on), and nothing else is.
    assert_eq!(physical.len(), 1, "{physical:?}");
    let gpu_uuid = physical.iter().next().unwrap();
    let expected: std::collections::BTreeSet<(String, String)> = slices
        .keys()
        .map(|u| (u.clone(), gpu_uuid.clone()))
        .collect();
    assert_eq!(parts, expected);
    for (id, uuids) in &held {
        assert!(
            uuids.iter().all(|u| slices.contains_key(u)),
            "job {id} holds {uuids:?}, not mig01's instances"
        );
    }
    // Between two scrapes: the free slices' 2/7 of the GPU stay unallocated, and a job gets at
    // most its instances' share (a job charged the whole GPU would get 7/7). A few µJ of
    // carried remainders per sample either way.
    let slack = 10;
    let ts: Vec<i64> = gpu.keys().copied().collect();
    let mut charged = false;
    for w in ts.windows(2) {
        let d = gpu[&w[1]] - gpu[&w[0]];
        let u = free[&w[1]] - free[&w[0]];
        assert!(
            7 * u >= 2 * d - 7 * slack,
            "at {}: unallocated {u} of {d} µJ",
            w[1]
        );
        for (id, uuids) in &held {
            let (Some(a), Some(b)) = (job.get(&(id.clone(), w[0])), job.get(&(id.clone(), w[1])))
            else {
                continue;
            };
            let s: i64 = uuids.iter().map(|u| slices[u]).sum();
            assert!(
                7 * (b - a) <= s * d + 7 * slack,
                "at {}: job {id} ({s} slices) got {} of {d} µJ",
                w[1],
                b - a
            );
            charged |= b > a;
        }
    }
    assert!(charged, "no job on mig01 was charged GPU energy");
    let e = node["energy_j"]["gpu"].as_f64().unwrap();
    let un = node["unallocated_j"]["gpu"].as_f64().unwrap();
    assert!(
        e > 0.0 && un >= 2.0 / 7.0 * e - 1e-3,
        "mig01: {un} of {e} J unallocated"
    );
}

/// mig01's scrapes, per timestamp: the GPU's energy, the unallocated GPU energy, each job's GPU
/// energy; the instances each job holds, the physical GPUs and the (part, parent) pairs.
#[derive(Default)]
struct MigScrapes {
    gpu: BTreeMap<i64, i64>,
    free: BTreeMap<i64, i64>,
    job: BTreeMap<(String, i64), i64>,
    held: BTreeMap<String, std::collections::BTreeSet<String>>,
    physical: std::collections::BTreeSet<String>,
    parts: std::collections::BTreeSet<(String, String)>,
}

impl MigScrapes {
    fn of(lines: &[&Line]) -> MigScrapes {
        let mut m = MigScrapes::default();
        for l in lines {
            let comp = l.labels.get("component").map(String::as_str);
            match l.name.as_str() {
                "joulebook_node_joules_total" if comp == Some("gpu") => {
                    m.gpu.insert(l.ts, uj(l.value));
                }
                "joulebook_unallocated_joules_total" if comp == Some("gpu") => {
                    m.free.insert(l.ts, uj(l.value));
                }
                "joulebook_job_joules_total" if comp == Some("gpu") => {
                    m.job
                        .insert((l.labels["job_id"].clone(), l.ts), uj(l.value));
                }
                "joulebook_job_gpu_info" => {
                    m.held
                        .entry(l.labels["job_id"].clone())
                        .or_default()
                        .insert(l.labels["gpu_uuid"].clone());
                }
                "joulebook_gpu_info" => {
                    m.physical.insert(l.labels["gpu_uuid"].clone());
                }
                "joulebook_gpu_part_info" => {
                    m.parts.insert((
                        l.labels["gpu_uuid"].clone(),
                        l.labels["parent_gpu_uuid"].clone(),
                    ));
                }
                _ => {}
            }
        }
        m
    }
}

/// The Intel node: its GPUs are measured by the intel_gpu source as the live source publishes
/// them (PCI addresses, the xe `card` counter, no NVML), each GPU's counter ends at what the
/// hardware drew, and its jobs hold its GPUs by PCI address and are charged their energy.
#[test]
fn the_intel_node_measures_its_gpus_and_charges_its_jobs() {
    let run = intel();
    let node = run.truth["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "xe01")
        .expect("xe01 in the truth");
    let ids: Vec<&str> = node["gpu_uuids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert_eq!(ids, ["0000:18:00.0", "0000:28:00.0"]);
    let lines = samples(&run.text);
    let xe: Vec<&Line> = lines
        .iter()
        .filter(|l| l.labels.get("instance").map(String::as_str) == Some("xe01:9977"))
        .collect();
    assert!(
        !xe.iter().any(|l| l.name.starts_with("joulebook_gpu_")),
        "NVML series on the Intel node"
    );
    // Each GPU's last counter value; their sum is the node's GPU energy, as the truth has it.
    let mut last: BTreeMap<String, (i64, f64)> = BTreeMap::new();
    for l in xe
        .iter()
        .filter(|l| l.name == "joulebook_intel_gpu_joules_total")
    {
        let e = last
            .entry(l.labels["gpu_uuid"].clone())
            .or_insert((l.ts, l.value));
        assert!(
            l.value >= e.1,
            "the counter of {} went back",
            l.labels["gpu_uuid"]
        );
        *e = (l.ts, l.value);
    }
    let got: Vec<&str> = last.keys().map(String::as_str).collect();
    assert_eq!(got, ids);
    let sum: f64 = last.values().map(|(_, v)| v).sum();
    let truth = node["energy_j"]["gpu"].as_f64().unwrap();
    assert!(truth > 0.0);
    assert_eq!(
        uj(sum),
        uj(truth),
        "xe01: intel_gpu {sum} J vs truth {truth} J"
    );
    for id in &ids {
        assert!(
            xe.iter().any(|l| l.name == "joulebook_energy_device_info"
                && l.labels.get("device").map(String::as_str) == Some(id)
                && l.labels.get("model").map(String::as_str) == Some("Intel GPU 0x0bd5")
                && l.labels
                    .get("name")
                    .is_some_and(|n| n.ends_with("(xe card)"))),
            "no device info for {id}"
        );
    }
    let held: Vec<&str> = xe
        .iter()
        .filter(|l| l.name == "joulebook_job_gpu_info")
        .map(|l| l.labels["gpu_uuid"].as_str())
        .collect();
    assert!(!held.is_empty(), "no job held an Intel GPU");
    assert!(held.iter().all(|u| ids.contains(u)), "{held:?}");
    assert!(
        xe.iter().any(|l| l.name == "joulebook_job_joules_total"
            && l.labels["component"] == "gpu"
            && l.value > 0.0),
        "no job charged GPU energy on xe01"
    );
}
