//! NVIDIA GPUs through NVML (nvml-wrapper), library loaded at run time.
