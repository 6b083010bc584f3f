//! The lock is the one Python `pid`, util-linux `flock(1)` and BSD
//! `pidfile(3)` take: each peer and this library exclude each other on one
//! file, in both directions, and each takes over the other's stale file.
//!
//! The peers are real programs. A missing peer fails its tests with a line
//! saying how to install it; `.ci/run` installs them all.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use common::{read_lines, within_timeout, Holder, TempDir, ANSWER_TIMEOUT};
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{killpg, Signal};
use pid_runtime::{Error, Pid, PidFile, Status};

/// A peer program, in a process group of its own so SIGKILL reaches every
/// process that shares its lock.
struct Peer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Peer {
    fn spawn(mut command: Command) -> Peer {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| panic!("start {command:?}: {error}"));
        let lines = read_lines(child.stdout.take().expect("peer stdout"));
        Peer { child, lines }
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(ANSWER_TIMEOUT)
            .expect("the peer answers in time")
    }

    /// Waits for "locked PID" and returns PID.
    fn locked(&self) -> Pid {
        let line = self.line();
        let pid = line
            .strip_prefix("locked ")
            .unwrap_or_else(|| panic!("the peer said {line:?}"));
        Pid::from_raw(pid.trim().parse().expect("a pid"))
    }

    fn kill_group(mut self) {
        killpg(common::sys(Pid::from_raw(self.child.id())), Signal::SIGKILL)
            .expect("kill the peer");
        self.child.wait().expect("reap the peer");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = killpg(common::sys(Pid::from_raw(self.child.id())), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Runs a peer to completion and returns its first line of output.
fn run_once(mut command: Command) -> (Option<i32>, String) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("run {command:?}: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    (
        output.status.code(),
        stdout.lines().next().unwrap_or_default().to_string(),
    )
}

fn refused_with(dir: &TempDir, name: &str, expected: Option<Pid>) {
    let error = PidFile::new(name).dir(dir.path()).acquire().unwrap_err();
    assert!(
        matches!(&error, Error::AlreadyLocked { pid, .. } if *pid == expected),
        "expected AlreadyLocked naming {expected:?}, got {error:?}"
    );
    assert_eq!(
        PidFile::new(name).dir(dir.path()).check().unwrap(),
        Status::Running { pid: expected }
    );
}

fn takes_over_stale_file(dir: &TempDir, name: &str) {
    let guard = PidFile::new(name)
        .dir(dir.path())
        .acquire()
        .expect("the killed peer's file is stale");
    assert_eq!(
        std::fs::read_to_string(guard.path()).unwrap(),
        format!("{}\n", std::process::id())
    );
}

// Python `pid` 3.0.4

fn python() -> Command {
    let installed = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/peers/venv/bin/python");
    let python = std::env::var_os("PIDFILE_PYTHON").unwrap_or_else(|| {
        if installed.exists() {
            installed.into_os_string()
        } else {
            "python3".into()
        }
    });
    let probe = Command::new(&python)
        .args(["-c", "import pid; print(pid.__version__)"])
        .output();
    let version = probe
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string());
    assert!(
        version.as_deref().is_some_and(|v| v.starts_with("3.")),
        "Python pid 3.x not found for {python:?} (found {version:?}): run \
         tests/peers/install.sh, or set PIDFILE_PYTHON to a Python that has pid 3.0.4"
    );
    let mut command = Command::new(python);
    command.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/python_pid.py"));
    command
}

fn python_peer(mode: &str, dir: &TempDir, name: &str) -> Command {
    let mut command = python();
    command.args([mode, dir.arg(), name]);
    command
}

#[test]
fn python_pid_holding_refuses_us_with_its_pid() {
    let dir = TempDir::new();
    let peer = Peer::spawn(python_peer("hold", &dir, "job"));
    let pid = peer.locked();
    refused_with(&dir, "job", Some(pid));
}

#[test]
fn python_pid_is_refused_while_we_hold() {
    let dir = TempDir::new();
    let mut holder = Holder::spawn();
    holder.acquire(&dir, "job");
    let (code, said) = run_once(python_peer("try", &dir, "job"));
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.starts_with("refused PidFileAlreadyLockedError"),
        "{said}"
    );
}

#[test]
fn python_pid_killed_leaves_a_file_we_take_over() {
    let dir = TempDir::new();
    let peer = Peer::spawn(python_peer("hold", &dir, "job"));
    peer.locked();
    peer.kill_group();
    // flock(1) is reaped, but the shell it started shares the lock and may
    // still be dying: wait for the kernel to drop the lock, not for a time.
    wait_until_unlocked(&dir.join("job.pid"));
    takes_over_stale_file(&dir, "job");
}

#[test]
fn python_pid_takes_over_our_stale_file() {
    let dir = TempDir::new();
    let mut holder = Holder::spawn();
    let path = holder.acquire(&dir, "job");
    holder.kill_and_wait(Signal::SIGKILL);
    assert!(path.exists());
    let (code, said) = run_once(python_peer("try", &dir, "job"));
    assert_eq!((code, said.as_str()), (Some(0), "ok"));
}

// util-linux flock(1)

fn flock() -> Command {
    let found = Command::new("flock").arg("--version").output();
    assert!(
        found.is_ok_and(|output| output.status.success()),
        "flock(1) not found: run tests/peers/install.sh (or `apt-get install util-linux`)"
    );
    Command::new("flock")
}

/// `flock -n FILE sh -c ...`: the shell writes its pid when `write_pid`,
/// says "locked PID", and holds the lock until its input closes.
fn flock_holder(path: &Path, write_pid: bool) -> Command {
    let script = if write_pid {
        "echo $$ > \"$0\"; echo locked $$; read line"
    } else {
        "echo locked $$; read line"
    };
    let mut command = flock();
    command
        .arg("-n")
        .arg(path)
        .args(["sh", "-c", script])
        .arg(path);
    command
}

/// Blocks until no process holds the lock on `path`.
fn wait_until_unlocked(path: &Path) {
    let file = std::fs::File::open(path).expect("open the peer's file");
    within_timeout(move || Flock::lock(file, FlockArg::LockShared).map_err(|(_, errno)| errno))
        .expect("wait for the lock");
}

#[test]
fn flock_holding_refuses_us_with_the_pid_it_wrote() {
    let dir = TempDir::new();
    let peer = Peer::spawn(flock_holder(&dir.join("job.pid"), true));
    let pid = peer.locked();
    refused_with(&dir, "job", Some(pid));
}

#[test]
fn flock_holding_without_writing_refuses_us_with_an_unknown_pid() {
    let dir = TempDir::new();
    let peer = Peer::spawn(flock_holder(&dir.join("job.pid"), false));
    peer.locked();
    refused_with(&dir, "job", None);
}

#[test]
fn flock_is_refused_while_we_hold() {
    let dir = TempDir::new();
    let mut holder = Holder::spawn();
    let path = holder.acquire(&dir, "job");
    let mut command = flock();
    command.arg("-n").arg(&path).arg("true");
    let (code, _) = run_once(command);
    assert_eq!(code, Some(1));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", holder.pid)
    );
}

#[test]
fn flock_killed_leaves_a_file_we_take_over() {
    let dir = TempDir::new();
    let peer = Peer::spawn(flock_holder(&dir.join("job.pid"), true));
    peer.locked();
    peer.kill_group();
    // flock(1) is reaped, but the shell it started shares the lock and may
    // still be dying: wait for the kernel to drop the lock, not for a time.
    wait_until_unlocked(&dir.join("job.pid"));
    takes_over_stale_file(&dir, "job");
}

#[test]
fn flock_takes_the_lock_of_our_killed_holder() {
    let dir = TempDir::new();
    let mut holder = Holder::spawn();
    let path = holder.acquire(&dir, "job");
    holder.kill_and_wait(Signal::SIGKILL);
    let mut command = flock();
    command.arg("-n").arg(&path).arg("true");
    assert_eq!(run_once(command).0, Some(0));
}

// BSD pidfile(3), from libbsd

/// The C peer, compiled with `cc ... -lbsd` into `dir`.
fn bsd_pidfile(dir: &TempDir) -> PathBuf {
    common::build_c("tests/peers/bsd_pidfile.c", dir, &["-lbsd"])
}

fn bsd_peer(binary: &Path, mode: &str, path: &Path) -> Command {
    let mut command = Command::new(binary);
    command.arg(mode).arg(path);
    command
}

#[test]
fn bsd_pidfile_holding_refuses_us_with_its_pid() {
    let dir = TempDir::new();
    let binary = bsd_pidfile(&dir);
    let peer = Peer::spawn(bsd_peer(&binary, "hold", &dir.join("job.pid")));
    let pid = peer.locked();
    // It writes the pid without a newline; that is read the same.
    assert_eq!(
        std::fs::read_to_string(dir.join("job.pid")).unwrap(),
        pid.to_string()
    );
    refused_with(&dir, "job", Some(pid));
}

/// libbsd's pidfile_open refuses, and reports our pid, but with EINVAL rather
/// than EEXIST: its reader takes a file that ends in a newline for a bad one.
/// Every FHS pidfile ends in a newline, Python `pid`'s too.
#[test]
fn bsd_pidfile_is_refused_while_we_hold_and_reports_our_pid() {
    let dir = TempDir::new();
    let binary = bsd_pidfile(&dir);
    let mut holder = Holder::spawn();
    let path = holder.acquire(&dir, "job");
    let (code, said) = run_once(bsd_peer(&binary, "try", &path));
    assert_eq!(code, Some(1), "{said}");
    let words: Vec<&str> = said.split_whitespace().collect();
    assert!(
        matches!(words.as_slice(), ["refused", "EEXIST" | "EINVAL", pid] if *pid == holder.pid.to_string()),
        "{said}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", holder.pid)
    );
}

#[test]
fn bsd_pidfile_killed_leaves_a_file_we_take_over() {
    let dir = TempDir::new();
    let binary = bsd_pidfile(&dir);
    let peer = Peer::spawn(bsd_peer(&binary, "hold", &dir.join("job.pid")));
    peer.locked();
    peer.kill_group();
    // flock(1) is reaped, but the shell it started shares the lock and may
    // still be dying: wait for the kernel to drop the lock, not for a time.
    wait_until_unlocked(&dir.join("job.pid"));
    takes_over_stale_file(&dir, "job");
}

#[test]
fn bsd_pidfile_takes_over_our_stale_file() {
    let dir = TempDir::new();
    let binary = bsd_pidfile(&dir);
    let mut holder = Holder::spawn();
    let path = holder.acquire(&dir, "job");
    holder.kill_and_wait(Signal::SIGKILL);
    let (code, said) = run_once(bsd_peer(&binary, "try", &path));
    assert_eq!((code, said.as_str()), (Some(0), "ok"));
}

/// `acquire_timeout` wakes when flock(1), which leaves its file in place,
/// drops its lock as its command ends.
#[test]
fn acquire_timeout_takes_over_when_flock_drops_its_lock() {
    let dir = TempDir::new();
    let path = dir.join("worker.pid");
    let mut command = flock();
    command
        .arg(&path)
        .args(["-c", "echo locked; read line; exit 0"]);
    let mut peer = Peer::spawn(command);
    assert_eq!(peer.line(), "locked");
    let waiter = std::thread::spawn({
        let pidfile = PidFile::new("worker").dir(dir.path());
        move || pidfile.acquire_timeout(ANSWER_TIMEOUT)
    });
    drop(peer.child.stdin.take());
    assert!(peer.child.wait().unwrap().success());
    let guard = waiter.join().unwrap().expect("taken once flock let go");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", guard.pid())
    );
}
