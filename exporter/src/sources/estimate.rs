//! CPU and memory estimate for machines without a hardware counter.
