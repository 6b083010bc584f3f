//! What others do to the file while we look or take it: readers' shared
//! locks, files renamed over the path, and peers that never wait.

mod common;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{within_timeout, TempDir};
use pid_runtime::{Error, PidFile, Status};

fn flock(file: &File, operation: i32) -> Result<(), nix::errno::Errno> {
    // SAFETY: flock on a descriptor that is open for the call.
    nix::errno::Errno::result(unsafe { nix::libc::flock(file.as_raw_fd(), operation) }).map(drop)
}

/// A user who holds `LOCK_SH` on the pidfile and renames a fresh, share-
/// locked file over it every 0.4 s cannot stall an acquisition: one budget
/// covers waiting on readers and opening replaced files, then a clear error.
#[test]
fn a_reader_replacing_the_file_cannot_stall_an_acquisition() {
    let dir = TempDir::new();
    let path = dir.join("worker.pid");
    let stop = Arc::new(AtomicBool::new(false));
    let (started, first_lock) = std::sync::mpsc::channel();
    let replacer = std::thread::spawn({
        let (dir, path, stop) = (dir.path().to_path_buf(), path.clone(), Arc::clone(&stop));
        move || {
            let mut held: Option<File> = None;
            for round in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let fresh = dir.join(format!("fresh-{round}"));
                let file = File::create(&fresh).unwrap();
                flock(&file, nix::libc::LOCK_SH).unwrap();
                std::fs::rename(&fresh, &path).unwrap();
                held = Some(file); // drops the lock on the one before
                let _ = started.send(());
                std::thread::sleep(Duration::from_millis(400));
            }
            drop(held);
        }
    });
    first_lock.recv().unwrap();
    let error = within_timeout({
        let pidfile = PidFile::new("worker").dir(dir.path());
        move || pidfile.acquire().unwrap_err()
    });
    stop.store(true, Ordering::Relaxed);
    replacer.join().unwrap();
    assert!(
        matches!(
            error,
            Error::HeldForReading { .. } | Error::KeptChanging { .. }
        ),
        "{error:?}"
    );
}

/// When only a reader (`flock -s`) keeps us out, the error says so, and does
/// not claim that the dead pid in the file is running.
#[test]
fn a_reader_is_not_a_runner() {
    let dir = TempDir::new();
    let path = dir.join("worker.pid");
    let dead = common::dead_pid();
    std::fs::write(&path, format!("{dead}\n")).unwrap();
    let mut reader = std::process::Command::new("flock");
    reader
        .arg("-s")
        .arg(&path)
        .args(["-c", "echo locked; read line; exit 0"]);
    let (mut reader, lines) = common::spawn_piped(reader);
    assert_eq!(
        lines.recv_timeout(common::ANSWER_TIMEOUT).as_deref(),
        Ok("locked")
    );
    let error = PidFile::new("worker")
        .dir(dir.path())
        .acquire()
        .unwrap_err();
    assert!(matches!(error, Error::HeldForReading { .. }), "{error:?}");
    let message = error.to_string();
    assert!(!message.contains("already running"), "{message}");
    assert!(!message.contains(&dead.to_string()), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(!error.is_already_running());
    drop(reader.stdin.take());
    assert!(reader.wait().unwrap().success());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{dead}\n"));
}

/// `check()` in a loop never makes a peer that does not wait (`flock -n`,
/// Python `pid`) fail on a free file: it takes no lock where the content and
/// `/proc/locks` can tell. `PIDFILE_CHECK_CONTENDERS` sets how many times
/// the peer tries (default 20000).
#[cfg(target_os = "linux")]
#[test]
fn check_never_makes_a_peer_that_does_not_wait_fail() {
    let attempts: usize = std::env::var("PIDFILE_CHECK_CONTENDERS")
        .ok()
        .and_then(|attempts| attempts.parse().ok())
        .unwrap_or(20_000);
    let dir = TempDir::new();
    let path = dir.join("worker.pid");
    // Above any pid_max: a pid that was used and reaped can be reused while
    // this runs beside other tests, and a free file naming a live process is
    // the one that check() asks with a shared lock.
    std::fs::write(&path, "2147483646\n").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicUsize::new(0));
    let checker = std::thread::spawn({
        let (stop, checks) = (Arc::clone(&stop), Arc::clone(&checks));
        let pidfile = PidFile::new("worker").dir(dir.path());
        move || {
            while !stop.load(Ordering::Relaxed) {
                // Running while the peer holds it for an instant.
                let status = pidfile.check();
                assert!(
                    matches!(status, Ok(Status::Stale { .. } | Status::Running { .. })),
                    "{status:?}"
                );
                checks.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    while checks.load(Ordering::Relaxed) == 0 {
        std::thread::yield_now();
    }
    let mut refused = 0;
    for _ in 0..attempts {
        let file = File::options().read(true).write(true).open(&path).unwrap();
        match flock(&file, nix::libc::LOCK_EX | nix::libc::LOCK_NB) {
            Ok(()) => {}
            Err(nix::errno::Errno::EWOULDBLOCK) => refused += 1,
            Err(error) => panic!("flock: {error}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    checker.join().unwrap();
    let checks = checks.load(Ordering::Relaxed);
    assert!(checks > 1, "check() ran {checks} times");
    assert_eq!(
        refused, 0,
        "{refused} of {attempts} attempts refused during {checks} checks"
    );
}
