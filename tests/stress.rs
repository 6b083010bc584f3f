//! Processes contending for one pidfile never hold it at the same time, and
//! every refusal is "already running": in a tight loop, with a fresh process
//! per attempt, and with attempts killed by SIGKILL at random points, each
//! beside a process running `check()` in a loop.
//!
//! Scale with `PIDFILE_STRESS_PROCS` (default 8) and `PIDFILE_STRESS_CYCLES`
//! (default 500 per process in the loop, a fifth of that per process for
//! fresh processes).

use std::process::Command;

fn scale(variable: &str, default: usize) -> usize {
    std::env::var(variable)
        .ok()
        .map(|value| value.parse().expect("a whole number"))
        .unwrap_or(default)
}

/// Runs `pidfile-stress` and returns its summary after checking it.
fn stress(mode: &str, cycles: usize) -> String {
    let procs = scale("PIDFILE_STRESS_PROCS", 8);
    let output = Command::new(env!("CARGO_BIN_EXE_pidfile-stress"))
        .args([
            "--procs",
            &procs.to_string(),
            "--cycles",
            &cycles.to_string(),
        ])
        .args(["--mode", mode, "--check"])
        .output()
        .expect("run pidfile-stress");
    let summary = String::from_utf8_lossy(&output.stdout).into_owned();
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{summary}{errors}");
    assert!(summary.contains(" overlaps=0 "), "{summary}");
    assert!(summary.contains(" errors=0 "), "{summary}");
    assert!(
        summary.contains(&format!(" attempts={} ", procs * cycles)),
        "{summary}"
    );
    summary
}

#[test]
fn contending_processes_never_hold_the_file_at_once() {
    let cycles = scale("PIDFILE_STRESS_CYCLES", 500);
    let procs = scale("PIDFILE_STRESS_PROCS", 8);
    let summary = stress("loop", cycles);
    assert!(
        summary.contains(&format!(" holds={} ", procs * cycles)),
        "{summary}"
    );
}

#[test]
fn holders_that_exit_right_after_releasing_never_overlap() {
    let summary = stress("fresh", scale("PIDFILE_STRESS_CYCLES", 500) / 5);
    assert!(!summary.contains(" holds=0 "), "{summary}");
}

#[test]
fn holders_killed_at_random_points_never_overlap() {
    let summary = stress("kill", scale("PIDFILE_STRESS_CYCLES", 500) / 5);
    assert!(!summary.contains(" killed=0 "), "{summary}");
}

/// The overlap count above means something only if the log catches two
/// holders at once: the simplest flock pidfile, which does not check that
/// the file it locked is still at the path, must be caught. Each run finds
/// hundreds; a few runs leave no room for chance.
#[test]
fn the_log_catches_the_overlaps_of_a_naive_pidfile() {
    let procs = scale("PIDFILE_STRESS_PROCS", 8).max(2);
    let mut summaries = Vec::new();
    for _ in 0..5 {
        let output = Command::new(env!("CARGO_BIN_EXE_pidfile-stress"))
            .args(["--procs", &procs.to_string(), "--cycles", "2000"])
            .args(["--mode", "loop", "--contender", "naive"])
            .output()
            .expect("run pidfile-stress");
        let summary = String::from_utf8_lossy(&output.stdout).into_owned();
        if !summary.contains(" overlaps=0 ") {
            assert!(summary.contains(" overlaps="), "{summary}");
            assert!(!output.status.success(), "overlaps fail the run: {summary}");
            return;
        }
        summaries.push(summary);
    }
    panic!("no overlap caught in five runs: {summaries:?}");
}
