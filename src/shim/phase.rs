//! `OMNISHIM_PHASES=1`: each phase of a step prints, on stderr, the wall time and this
//! process's own CPU time since the shim started, so that where a step's time goes can be
//! measured on a real build. Unset, a phase costs one test of a flag read once.

use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Option<Instant>> = OnceLock::new();

/// Called first thing in a shim (and by every phase): reads the setting once.
pub fn start() {
    START.get_or_init(|| {
        std::env::var_os("OMNISHIM_PHASES")
            .filter(|v| !v.is_empty() && v != "0")
            .map(|_| Instant::now())
    });
}

/// Mark the end of a phase.
pub fn mark(name: &str) {
    start();
    if let Some(Some(t0)) = START.get() {
        eprintln!(
            "omnishim-phase {name} wall_us={} cpu_us={}",
            t0.elapsed().as_micros(),
            super::self_cpu_us()
        );
    }
}
