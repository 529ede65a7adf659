//! The exporter's version and source revision: published in `joulebook_build_info`, logged at
//! start, and sent in the Redfish user agent. Imports nothing.

/// The crate's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The source revision, from `JOULEBOOK_REVISION` at build time (`unknown` without it).
pub const REVISION: &str = match option_env!("JOULEBOOK_REVISION") {
    Some(r) => r,
    None => "unknown",
};
