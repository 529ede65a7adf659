//! RAPL through Linux powercap (see module docs once implemented).
