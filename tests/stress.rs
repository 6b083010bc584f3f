//! Processes contending for one pidfile never hold it at the same time.
//!
//! Scale with `PIDFILE_STRESS_PROCS` (default 8) and `PIDFILE_STRESS_CYCLES`
//! (default 500 per process).

use std::process::Command;

fn scale(variable: &str, default: usize) -> usize {
    std::env::var(variable)
        .ok()
        .map(|value| value.parse().expect("a whole number"))
        .unwrap_or(default)
}

#[test]
fn contending_processes_never_hold_the_file_at_once() {
    let procs = scale("PIDFILE_STRESS_PROCS", 8);
    let cycles = scale("PIDFILE_STRESS_CYCLES", 500);
    let output = Command::new(env!("CARGO_BIN_EXE_pidfile-stress"))
        .args([
            "--procs",
            &procs.to_string(),
            "--cycles",
            &cycles.to_string(),
        ])
        .output()
        .expect("run pidfile-stress");
    let summary = String::from_utf8_lossy(&output.stdout);
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{summary}{errors}");
    assert!(
        summary.contains(&format!("cycles={} overlaps=0 ", procs * cycles)),
        "{summary}"
    );
    assert!(summary.contains(" errors=0 "), "{summary}");
}
