//! One measured device's energy split between its parts: NVIDIA MIG instances, AMD compute
//! partitions, the two dies of an MI250X package. The hardware measures only the whole device.
//!
//! Rules (documented in docs/sources.md, "Devices split between jobs"):
//! - each part gets the device's energy in proportion to its weight (its streaming
//!   multiprocessors, compute units, or 1 per die; measured activity instead where the policy is
//!   `usage_above_baseline` and the device reports it); the device's weight beyond its parts'
//!   (slices no instance holds) stays under the device's own id, which no job holds when it is
//!   partitioned, so it is unallocated, like an idle core;
//! - in integer µJ: every sample the parts add up to the device's energy exactly; what a part is
//!   owed below 1 µJ is carried to its next sample, so no part loses or gains by rounding over
//!   time (each part's total stays within 2 µJ of its exact share).

use crate::sources::GpuPartitions;
use std::collections::{BTreeMap, HashMap};

/// Splits `e` by `weights` (a zero total counts every part alike), carrying each part's
/// remainder in `carry` (units of 1/Σweights µJ; its sum stays 0). The parts add up to `e`
/// exactly and a part of weight 0 gets 0 (where some part weighs more).
pub fn split_exact(e: u64, weights: &[u64], carry: &mut [i128]) -> Vec<u64> {
    let n = weights.len();
    if n == 0 {
        return Vec::new();
    }
    let ones;
    let weights = if weights.iter().all(|&w| w == 0) {
        ones = vec![1u64; n];
        &ones[..]
    } else {
        weights
    };
    let total: i128 = weights.iter().map(|&w| w as i128).sum();
    let mut parts = vec![0i128; n];
    let mut exact = vec![0i128; n];
    for i in 0..n {
        exact[i] = e as i128 * weights[i] as i128 + carry[i];
        parts[i] = exact[i].div_euclid(total).max(0);
    }
    // What the floors left (or took beyond `e`, where a part owed back was clamped at 0) goes
    // to the parts most owed (or comes from those most overpaid), one µJ each.
    let mut left = e as i128 - parts.iter().sum::<i128>();
    while left != 0 {
        let owed = |i: usize| exact[i] - parts[i] * total;
        let pick = if left > 0 {
            (0..n)
                .filter(|&i| weights[i] > 0)
                .max_by_key(|&i| (owed(i), std::cmp::Reverse(i)))
        } else {
            (0..n)
                .filter(|&i| parts[i] > 0)
                .min_by_key(|&i| (owed(i), i))
        };
        let Some(i) = pick else { break };
        parts[i] += left.signum();
        left -= left.signum();
    }
    for i in 0..n {
        carry[i] = exact[i] - parts[i] * total;
    }
    parts.into_iter().map(|p| p as u64).collect()
}

/// The carried remainders of every partitioned device, by device and part.
#[derive(Debug, Default)]
pub struct Splitter {
    carry: HashMap<String, (Vec<String>, Vec<i128>)>,
}

impl Splitter {
    /// Replaces each partitioned device's energy in `by_device` by its parts' (and the rest, its
    /// unpartitioned share, under the device's id). `use_activity`: weight by measured activity
    /// where the layout has it.
    pub fn apply(
        &mut self,
        by_device: &mut BTreeMap<String, u64>,
        layouts: &[GpuPartitions],
        use_activity: bool,
    ) {
        for l in layouts {
            let Some(e) = by_device.remove(&l.device) else {
                continue;
            };
            let mut ids: Vec<String> = l.parts.iter().map(|p| p.id.clone()).collect();
            ids.push(l.device.clone());
            let activity = l
                .parts
                .iter()
                .map(|p| p.activity)
                .collect::<Option<Vec<u64>>>()
                .filter(|_| use_activity);
            let weights: Vec<u64> = match activity {
                // Activity measures only the parts; nothing is left to the device itself.
                Some(a) => a.into_iter().chain([0]).collect(),
                None => {
                    let held: u64 = l.parts.iter().map(|p| p.weight).sum();
                    l.parts
                        .iter()
                        .map(|p| p.weight)
                        .chain([l.total_weight.saturating_sub(held)])
                        .collect()
                }
            };
            let entry = self
                .carry
                .entry(l.device.clone())
                .or_insert_with(|| (Vec::new(), Vec::new()));
            if entry.0 != ids || entry.1.len() != ids.len() {
                // A new layout (instances created or destroyed): its remainders start afresh.
                *entry = (ids.clone(), vec![0; ids.len()]);
            }
            let parts = split_exact(e, &weights, &mut entry.1);
            for (id, uj) in ids.into_iter().zip(parts) {
                *by_device.entry(id).or_default() += uj;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::GpuPart;
    use proptest::prelude::*;

    #[test]
    fn a_7_slice_gpu_with_two_instances() {
        // An A100: 98 SMs; a 3g instance (42 SMs) and a 2g (28 SMs); 28 SMs in no instance.
        let layout = GpuPartitions {
            device: "GPU-a".into(),
            total_weight: 98,
            parts: vec![
                GpuPart {
                    id: "MIG-1".into(),
                    weight: 42,
                    activity: Some(10),
                    instance: None,
                },
                GpuPart {
                    id: "MIG-2".into(),
                    weight: 28,
                    activity: Some(30),
                    instance: None,
                },
            ],
        };
        let mut s = Splitter::default();
        let mut d: BTreeMap<String, u64> = [("GPU-a".to_string(), 980), ("GPU-b".into(), 5)].into();
        s.apply(&mut d, std::slice::from_ref(&layout), false);
        assert_eq!(
            d,
            [
                ("GPU-a".to_string(), 280),
                ("GPU-b".into(), 5),
                ("MIG-1".into(), 420),
                ("MIG-2".into(), 280)
            ]
            .into()
        );
        // By activity: 1:3, nothing left to the device.
        let mut d: BTreeMap<String, u64> = [("GPU-a".to_string(), 100)].into();
        s.apply(&mut d, &[layout], true);
        assert_eq!(
            d,
            [
                ("GPU-a".to_string(), 0),
                ("MIG-1".into(), 25),
                ("MIG-2".into(), 75)
            ]
            .into()
        );
    }

    #[test]
    fn remainders_are_carried() {
        // 1 µJ a sample between three equal parts: each gets one in three samples.
        let mut carry = vec![0; 3];
        let mut totals = [0u64; 3];
        for _ in 0..300 {
            let p = split_exact(1, &[1, 1, 1], &mut carry);
            assert_eq!(p.iter().sum::<u64>(), 1);
            for (t, x) in totals.iter_mut().zip(p) {
                *t += x;
            }
        }
        assert_eq!(totals, [100, 100, 100]);
    }

    proptest! {
        /// Every sample the parts add up to the energy exactly; a part of weight 0 gets nothing;
        /// each part's total stays within 2 µJ of its exact share.
        #[test]
        fn parts_add_up_exactly_and_follow_the_weights(
            weights in proptest::collection::vec(0u64..200, 1..8),
            energies in proptest::collection::vec(0u64..5_000_000, 1..60),
        ) {
            let mut carry = vec![0i128; weights.len()];
            let mut totals = vec![0u64; weights.len()];
            let all_zero = weights.iter().all(|&w| w == 0);
            let w: Vec<u64> = if all_zero { vec![1; weights.len()] } else { weights.clone() };
            let sum_w: u64 = w.iter().sum();
            let mut sum_e = 0u128;
            for &e in &energies {
                let p = split_exact(e, &weights, &mut carry);
                prop_assert_eq!(p.iter().sum::<u64>(), e);
                for i in 0..p.len() {
                    if w[i] == 0 {
                        prop_assert_eq!(p[i], 0);
                    }
                    totals[i] += p[i];
                }
                sum_e += e as u128;
                prop_assert_eq!(carry.iter().sum::<i128>(), 0);
            }
            for i in 0..w.len() {
                let exact = sum_e as f64 * w[i] as f64 / sum_w as f64;
                prop_assert!((totals[i] as f64 - exact).abs() <= 2.0, "part {} got {} of {}", i, totals[i], exact);
            }
        }

        /// Applied to a node's GPUs, the split keeps the GPU total, and the slices no instance
        /// holds stay under the device's id (unallocated unless a job holds the whole GPU).
        #[test]
        fn the_gpu_total_is_kept(
            held in proptest::collection::vec(1u64..20, 0..7),
            rest in 0u64..20,
            energies in proptest::collection::vec(0u64..1_000_000, 1..20),
        ) {
            let layout = GpuPartitions {
                device: "GPU-x".into(),
                total_weight: held.iter().sum::<u64>() + rest,
                parts: held.iter().enumerate().map(|(i, &w)| GpuPart { id: format!("MIG-{i}"), weight: w, activity: None, instance: None }).collect(),
            };
            let mut s = Splitter::default();
            for &e in &energies {
                let mut d: BTreeMap<String, u64> = [("GPU-x".to_string(), e), ("GPU-y".to_string(), 7)].into();
                s.apply(&mut d, std::slice::from_ref(&layout), false);
                prop_assert_eq!(d.values().sum::<u64>(), e + 7);
                prop_assert_eq!(d["GPU-y"], 7);
                if rest == 0 && !held.is_empty() {
                    prop_assert_eq!(d["GPU-x"], 0);
                }
            }
        }
    }
}
