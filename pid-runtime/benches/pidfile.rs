//! One acquire + release cycle on tmpfs and on the disk under the temporary
//! directory, a refused acquire and `check()` while another process holds the
//! file, `check()` of a stale file (the rare path that looks for a lock)
//! with 1,000 unrelated flock locks held on the machine, and
//! `PidFile::path()`.
//!
//! The holding process is this benchmark program itself, started again with
//! `PID_RUNTIME_BENCH_HOLD` set: it takes the file, says so on stdout, and
//! holds it until its stdin closes.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use criterion::{criterion_group, Criterion};
use pid_runtime::{Error, PidFile, Status};

const HOLD_ENV: &str = "PID_RUNTIME_BENCH_HOLD";

/// A directory of its own under `parent`, removed at the end.
struct BenchDir(PathBuf);

impl BenchDir {
    fn new(parent: &Path) -> BenchDir {
        let dir = parent.join(format!("pid-runtime-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the benchmark directory");
        BenchDir(dir)
    }
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A tmpfs directory this user can write to, if there is one.
fn tmpfs_parent() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
        Some(PathBuf::from("/dev/shm")),
    ];
    candidates.into_iter().flatten().find(|dir| {
        let probe = dir.join(format!(".pid-runtime-bench-{}", std::process::id()));
        let writable = std::fs::create_dir(&probe).is_ok();
        let _ = std::fs::remove_dir(&probe);
        writable
    })
}

fn cycle(c: &mut Criterion) {
    let mut places = vec![("disk", std::env::temp_dir())];
    match tmpfs_parent() {
        Some(tmpfs) => places.insert(0, ("tmpfs", tmpfs)),
        None => eprintln!("no writable tmpfs (/dev/shm, $XDG_RUNTIME_DIR): tmpfs skipped"),
    }
    for (place, parent) in places {
        let dir = BenchDir::new(&parent);
        let pidfile = PidFile::new("bench").dir(&dir.0);
        c.bench_function(&format!("acquire + release/{place}"), |b| {
            b.iter(|| {
                pidfile
                    .acquire()
                    .expect("acquire")
                    .release()
                    .expect("release")
            });
        });
    }
}

/// Another process that holds `name` in `dir` until dropped.
struct OtherHolder(Child);

impl OtherHolder {
    fn start(path: &Path) -> OtherHolder {
        let mut child = Command::new(std::env::current_exe().expect("this program"))
            .env(HOLD_ENV, path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the holder");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().expect("holder stdout"))
            .read_line(&mut line)
            .expect("read from the holder");
        assert_eq!(line.trim(), "held", "the holder took the file");
        OtherHolder(child)
    }
}

impl Drop for OtherHolder {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

fn held_by_another_process(c: &mut Criterion) {
    let dir = BenchDir::new(&std::env::temp_dir());
    let pidfile = PidFile::new("held").dir(&dir.0);
    let _holder = OtherHolder::start(&pidfile.path().expect("path"));
    c.bench_function("acquire refused", |b| {
        b.iter(|| match pidfile.acquire() {
            Err(Error::AlreadyLocked { pid: Some(_), .. }) => {}
            other => panic!("expected AlreadyLocked with a pid, got {other:?}"),
        });
    });
    c.bench_function("check on a held file", |b| {
        b.iter(|| match pidfile.check() {
            Ok(Status::Running { pid: Some(_) }) => {}
            other => panic!("expected Running with a pid, got {other:?}"),
        });
    });
}

/// `check()` of a file naming a dead pid: the content cannot tell, so it
/// looks for a lock (in `/proc/locks` on Linux, listing 1,000 others here).
#[cfg(unix)]
fn stale_among_many_locks(c: &mut Criterion) {
    let dir = BenchDir::new(&std::env::temp_dir());
    let others: Vec<std::fs::File> = (0..1_000)
        .map(|n| {
            let file = std::fs::File::create(dir.0.join(format!("other-{n}"))).expect("create");
            // SAFETY: flock on a descriptor that stays open while it is held.
            let locked = unsafe {
                nix::libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), nix::libc::LOCK_EX)
            };
            assert_eq!(locked, 0, "lock an unrelated file");
            file
        })
        .collect();
    let pidfile = PidFile::new("stale").dir(&dir.0);
    std::fs::write(pidfile.path().expect("path"), "2147483646\n").expect("a stale file");
    c.bench_function("check on a stale file, 1000 other locks", |b| {
        b.iter(|| match pidfile.check() {
            Ok(Status::Stale { pid: Some(_) }) => {}
            other => panic!("expected Stale with a pid, got {other:?}"),
        });
    });
    drop(others);
}

fn path(c: &mut Criterion) {
    let pidfile = PidFile::new("worker").dir("/srv/run");
    c.bench_function("path", |b| b.iter(|| pidfile.path().expect("path")));
}

#[cfg(unix)]
criterion_group!(
    benches,
    cycle,
    held_by_another_process,
    stale_among_many_locks,
    path
);
#[cfg(not(unix))]
criterion_group!(benches, cycle, held_by_another_process, path);

/// The holder's side: take the file at `path`, say so, hold until stdin closes.
fn hold(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        panic!("{} is not a file path", path.display());
    };
    let _guard = PidFile::new(name)
        .dir(dir)
        .enforce_pid_suffix(false)
        .acquire()
        .expect("the holder takes the file");
    println!("held");
    std::io::stdout().flush().expect("flush");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

fn main() {
    if let Some(path) = std::env::var_os(HOLD_ENV) {
        hold(Path::new(&path));
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
