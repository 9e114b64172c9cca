//! The soak switch. The default suite runs each end-to-end test at the smallest size that still
//! exercises what it claims (an interruption midway through many plans, a plan read by many
//! devices, a transfer cut partway through), so that CI stays well inside its time limit.
//! `EENPLAN_SOAK=1 cargo test --workspace` runs the same tests at the sizes of a real region
//! (200 plans, 60 readers, …), which is where slowness that grows with size shows.

/// Whether `EENPLAN_SOAK=1` asks for the full sizes. Any other value, or none, is the default
/// suite.
pub fn soak() -> bool {
    std::env::var_os("EENPLAN_SOAK").is_some_and(|value| value == "1")
}

/// `full` under [`soak`], else `default`.
pub fn size(default: usize, full: usize) -> usize {
    if soak() { full } else { default }
}
