//! A reader never sees a piece of a pid: `check()` and the pid named by
//! `AlreadyLocked` give the old pid or the new one while a holder rewrites a
//! short pid with a longer one and back.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::TempDir;
use pid_runtime::{Error, Pid, PidFile, Status};

/// `PIDFILE_TORN_ROUNDS` sets how many times the pid is rewritten.
fn rounds() -> usize {
    std::env::var("PIDFILE_TORN_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(400_000)
}

#[test]
fn readers_see_the_old_pid_or_the_new_one_never_a_piece() {
    let dir = TempDir::new();
    let pidfile = PidFile::new("worker").dir(dir.path());
    let short = Pid::from_raw(7);
    let long = Pid::from_raw(1_234_567_890);
    let mut guard = pidfile.acquire().unwrap();
    guard.set_pid(short).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let reader = std::thread::spawn({
        let pidfile = pidfile.clone();
        let done = Arc::clone(&done);
        move || {
            let mut seen = Vec::new();
            while !done.load(Ordering::Relaxed) {
                match pidfile.check() {
                    Ok(Status::Running { pid }) => seen.push(pid),
                    other => panic!("check: {other:?}"),
                }
                match pidfile.acquire() {
                    Err(Error::AlreadyLocked { pid, .. }) => seen.push(pid),
                    other => panic!("acquire: {other:?}"),
                }
            }
            seen
        }
    });
    for round in 0..rounds() {
        guard
            .set_pid(if round % 2 == 0 { long } else { short })
            .unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let seen = reader.join().unwrap();
    // None is a holder that left the file empty for 16 ms, as this one,
    // rewriting without pause, can: "pid unknown", not a piece of a pid.
    let torn: Vec<_> = seen
        .iter()
        .flatten()
        .filter(|pid| **pid != short && **pid != long)
        .collect();
    assert!(
        torn.is_empty(),
        "{} of {} reads were neither {short} nor {long}: {:?}",
        torn.len(),
        seen.len(),
        &torn[..torn.len().min(20)]
    );
    assert!(seen.iter().any(Option::is_some), "no read saw a pid");
}
