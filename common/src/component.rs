//! [`PerComponent`]: one value for each energy [`Component`] (cpu, dram, gpu, other), indexed by
//! the component. Iteration always follows [`Component::ALL`]; serialised as the object
//! `{cpu, dram, gpu, other}` (the report JSON's shape).

use crate::Component;
use serde::{Deserialize, Serialize};
use std::ops::{Index, IndexMut};

/// A value per energy component: `v[Component::Gpu]`, `v.iter()` in [`Component::ALL`] order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PerComponent<T> {
    pub cpu: T,
    pub dram: T,
    pub gpu: T,
    pub other: T,
}

impl<T> PerComponent<T> {
    /// The value `f(c)` for each component, computed in [`Component::ALL`] order.
    pub fn from_fn(mut f: impl FnMut(Component) -> T) -> Self {
        PerComponent {
            cpu: f(Component::Cpu),
            dram: f(Component::Dram),
            gpu: f(Component::Gpu),
            other: f(Component::Other),
        }
    }

    /// `(component, value)` in [`Component::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Component, &T)> {
        Component::ALL.into_iter().map(move |c| (c, &self[c]))
    }

    /// `(component, value)` in [`Component::ALL`] order, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Component, &mut T)> {
        let PerComponent {
            cpu,
            dram,
            gpu,
            other,
        } = self;
        Component::ALL.into_iter().zip([cpu, dram, gpu, other])
    }

    /// The values in [`Component::ALL`] order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        [&self.cpu, &self.dram, &self.gpu, &self.other].into_iter()
    }

    /// `f` applied to each value.
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> PerComponent<U> {
        PerComponent {
            cpu: f(self.cpu),
            dram: f(self.dram),
            gpu: f(self.gpu),
            other: f(self.other),
        }
    }

    /// `f` applied to the two values of each component.
    pub fn zip_with<U, V>(
        self,
        o: PerComponent<U>,
        mut f: impl FnMut(T, U) -> V,
    ) -> PerComponent<V> {
        PerComponent {
            cpu: f(self.cpu, o.cpu),
            dram: f(self.dram, o.dram),
            gpu: f(self.gpu, o.gpu),
            other: f(self.other, o.other),
        }
    }
}

/// The values in [`Component::ALL`] order: `[cpu, dram, gpu, other]`.
impl<T> From<[T; 4]> for PerComponent<T> {
    fn from([cpu, dram, gpu, other]: [T; 4]) -> Self {
        PerComponent {
            cpu,
            dram,
            gpu,
            other,
        }
    }
}

impl<T> Index<Component> for PerComponent<T> {
    type Output = T;
    fn index(&self, c: Component) -> &T {
        match c {
            Component::Cpu => &self.cpu,
            Component::Dram => &self.dram,
            Component::Gpu => &self.gpu,
            Component::Other => &self.other,
        }
    }
}

impl<T> IndexMut<Component> for PerComponent<T> {
    fn index_mut(&mut self, c: Component) -> &mut T {
        match c {
            Component::Cpu => &mut self.cpu,
            Component::Dram => &mut self.dram,
            Component::Gpu => &mut self.gpu,
            Component::Other => &mut self.other,
        }
    }
}

/// Microjoules: sums saturate at `u64::MAX` rather than wrap.
impl PerComponent<u64> {
    /// The sum of each component, saturating.
    pub fn saturating_add(self, o: Self) -> Self {
        self.zip_with(o, u64::saturating_add)
    }

    /// `o` added to each component in place, saturating.
    pub fn saturating_add_assign(&mut self, o: &Self) {
        *self = self.saturating_add(*o);
    }

    /// Joules (µJ ÷ 10⁶).
    pub fn joules(self) -> PerComponent<f64> {
        self.map(|uj| uj as f64 / 1e6)
    }
}

impl PerComponent<f64> {
    /// The value of `c` (same as `self[c]`).
    pub fn get(&self, c: Component) -> f64 {
        self[c]
    }

    /// The value of `c`, mutably (same as `&mut self[c]`).
    pub fn get_mut(&mut self, c: Component) -> &mut f64 {
        &mut self[c]
    }

    /// Adds `v` to the component named by a `component` label; unknown names are ignored (a
    /// newer exporter may add components; they are reported once the reader knows them).
    pub fn add(&mut self, name: &str, v: f64) -> bool {
        match Component::ALL.iter().find(|c| c.as_str() == name) {
            Some(c) => {
                self[*c] += v;
                true
            }
            None => false,
        }
    }

    /// The sum over components, in [`Component::ALL`] order.
    pub fn total(&self) -> f64 {
        self.cpu + self.dram + self.gpu + self.other
    }

    pub fn plus(&self, o: &Self) -> Self {
        self.zip_with(*o, |a, b| a + b)
    }

    pub fn minus(&self, o: &Self) -> Self {
        self.zip_with(*o, |a, b| a - b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_iter_and_fields_agree_in_component_order() {
        let mut v = PerComponent::from_fn(|c| c.as_str().len() as u64 * 10);
        v[Component::Other] += 1;
        assert_eq!(v.other, 51);
        let order: Vec<Component> = v.iter().map(|(c, _)| c).collect();
        assert_eq!(order, Component::ALL);
        for (c, x) in v.iter() {
            assert_eq!(*x, v[c]);
        }
        for (c, x) in v.iter_mut() {
            *x += c as u64;
        }
        assert_eq!(v.values().copied().collect::<Vec<_>>(), [30, 41, 32, 54]);
    }

    #[test]
    fn u64_sums_saturate() {
        let a = PerComponent::from_fn(|_| u64::MAX - 1);
        let b = PerComponent::from([1, 2, 0, 5]);
        assert_eq!((b.cpu, b.dram, b.gpu, b.other), (1, 2, 0, 5));
        assert_eq!(
            a.saturating_add(b),
            PerComponent {
                cpu: u64::MAX,
                dram: u64::MAX,
                gpu: u64::MAX - 1,
                other: u64::MAX
            }
        );
        assert_eq!(b.joules().other, 5e-6);
    }

    #[test]
    fn f64_by_label_name_and_arithmetic() {
        let mut v = PerComponent::<f64>::default();
        assert!(v.add("gpu", 2.5));
        assert!(!v.add("fan", 1.0));
        assert_eq!(v.get(Component::Gpu), 2.5);
        *v.get_mut(Component::Cpu) += 1.0;
        assert_eq!(v.total(), 3.5);
        assert_eq!(v.plus(&v).minus(&v), v);
    }
}
