pub mod fake_nvml;
