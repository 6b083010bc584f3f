//! `#[pidfile(cluster = ..)]` against a real etcd these tests start: two
//! programs on two "hosts" (UTS namespaces with their own host names, when
//! this runs as root), one runs and the other is refused with the holder
//! named; a holder stopped past its lease exits 75 when continued, before it
//! writes; a worker whose lock was lost returns `Err(Lost)`, sync or async.

mod common;
// Shared with tests/cluster.rs, which uses the rest.
#[allow(dead_code)]
mod etcd;
#[allow(dead_code)]
mod postgres;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command};
use std::sync::mpsc;
use std::time::Duration;

use common::TempDir;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// A program of these tests, its lines read in the background.
struct Program {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Program {
    /// Runs `program` with `args` on a host named `host`, its environment
    /// set by `env`.
    fn start(program: &str, args: &[&str], host: &str, env: &[(&str, &Path)]) -> Program {
        let mut command = if nix::unistd::geteuid().is_root() {
            let mut command = Command::new("unshare");
            command
                .args(["--uts", "sh", "-c", "hostname \"$0\" && exec \"$@\"", host])
                .arg(program);
            command
        } else {
            Command::new(program)
        };
        command.args(args);
        for (key, value) in env {
            command.env(key, value);
        }
        let (mut child, lines) = common::spawn_piped(command);
        let stdin = child.stdin.take();
        Program {
            child,
            stdin,
            lines,
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(ANSWER_TIMEOUT)
            .expect("the program answers in time")
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").expect("send a line");
        stdin.flush().expect("send a line");
    }

    /// Closes its input and waits: its exit code and what it wrote on
    /// standard error.
    fn finish(mut self) -> (Option<i32>, String) {
        self.stdin = None;
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .expect("read its standard error");
        let status = self.child.wait().expect("wait for the program");
        (status.code(), stderr)
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn token(line: &str) -> u64 {
    line.strip_prefix("holding ")
        .unwrap_or_else(|| panic!("not holding: {line}"))
        .parse()
        .expect("a token")
}

struct Host {
    dir: TempDir,
    name: String,
}

impl Host {
    fn new(name: &str) -> Host {
        Host {
            dir: TempDir::new(),
            name: name.to_string(),
        }
    }

    fn main(&self, etcd: &etcd::Etcd, lock: &str) -> Program {
        self.main_on(("PIDFILE_ETCD_ENDPOINTS", &etcd.endpoint()), lock)
    }

    /// `cluster-main` with its servers named by the variable `server`.
    fn main_on(&self, server: (&str, &str), lock: &str) -> Program {
        Program::start(
            env!("CARGO_BIN_EXE_cluster-main"),
            &[],
            &self.name,
            &[
                ("PIDFILE_TEST_NAME", Path::new(lock)),
                ("PIDFILE_TEST_DIR", self.dir.path()),
                ("PIDFILE_TEST_STORE", &self.dir.join("store")),
                (server.0, Path::new(server.1)),
            ],
        )
    }

    fn pidfile(&self, lock: &str) -> std::path::PathBuf {
        self.dir.join(&format!("{lock}.pid"))
    }
}

fn lock_name(case: &str) -> String {
    format!("attribute-{case}-{}", std::process::id())
}

/// Waits until etcd holds no key of `lock`: its holder's lease expired.
fn wait_until_free(etcd: &etcd::Etcd, lock: &str) {
    let deadline = std::time::Instant::now() + ANSWER_TIMEOUT;
    while !etcd.keys(&format!("{lock}/")).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the lease never expired"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn one_program_runs_across_two_hosts_and_the_other_is_refused_with_the_holder_named() {
    let etcd = etcd_or_skip!();
    let lock = lock_name("refused");
    let (a, b) = (Host::new("host-a"), Host::new("host-b"));
    let mut first = a.main(&etcd, &lock);
    let held = token(&first.line());
    assert!(
        a.pidfile(&lock).exists(),
        "the local pidfile is taken first"
    );

    let (code, stderr) = b.main(&etcd, &lock).finish();
    assert_eq!(code, Some(1), "{stderr}");
    let named = if nix::unistd::geteuid().is_root() {
        format!("already running as pid {} on host-a", first.pid())
    } else {
        format!("already running as pid {}", first.pid())
    };
    assert!(stderr.contains(&named), "{stderr}");
    assert!(
        stderr.contains(&format!("cluster lock '{lock}', token {held}")),
        "{stderr}"
    );
    assert!(
        !b.pidfile(&lock).exists(),
        "the refused program left its pidfile"
    );

    first.send("write");
    assert_eq!(first.line(), "wrote");
    let (code, stderr) = first.finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!a.pidfile(&lock).exists());
    assert!(
        etcd.keys(&format!("{lock}/")).is_empty(),
        "the lease was not revoked"
    );
}

#[test]
fn a_holder_stopped_past_its_lease_exits_75_when_continued_before_it_writes() {
    let etcd = etcd_or_skip!();
    let lock = lock_name("stopped");
    let (a, b) = (Host::new("host-a"), Host::new("host-b"));
    let first = a.main(&etcd, &lock);
    let old = token(&first.line());
    kill(first.pid(), Signal::SIGSTOP).unwrap();
    wait_until_free(&etcd, &lock);
    let mut successor = b.main(&etcd, &lock);
    let new = token(&successor.line());
    assert!(new > old, "{new} after {old}");

    resumed_holder_exits_75_before_it_writes(first, &a, &lock, old);

    successor.send("write");
    assert_eq!(successor.line(), "wrote");
    let written = std::fs::read_to_string(b.dir.join("store")).unwrap();
    assert_eq!(written, format!("{new}\n"));
}

/// Continues `first`, a `cluster-main` on `host` stopped past its lease of
/// `lock` with token `old`, with a write waiting in its input: it exits 75
/// naming the loss, without writing, and its local pidfile is gone.
fn resumed_holder_exits_75_before_it_writes(mut first: Program, host: &Host, lock: &str, old: u64) {
    first.send("write");
    kill(first.pid(), Signal::SIGCONT).unwrap();
    let (code, stderr) = first.finish();
    assert_eq!(code, Some(75), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cluster-main: lost cluster lock '{lock}' (token {old})"
        )),
        "{stderr}"
    );
    assert!(!host.dir.join("store").exists(), "the stopped holder wrote");
    assert!(!host.pidfile(lock).exists(), "exit left the local pidfile");
}

/// A worker stopped past its lease, then continued: `on_lost = "cancel"`,
/// the default for a worker.
fn lost_worker(kind: &str, finish_body: bool) {
    let etcd = etcd_or_skip!();
    let lock = lock_name(kind);
    let endpoint = etcd.endpoint();
    let mut worker = Program::start(
        env!("CARGO_BIN_EXE_cluster-worker"),
        &[kind],
        "host-a",
        &[
            ("PIDFILE_TEST_NAME", Path::new(&lock)),
            ("PIDFILE_ETCD_ENDPOINTS", Path::new(&endpoint)),
        ],
    );
    let held = token(&worker.line());
    kill(worker.pid(), Signal::SIGSTOP).unwrap();
    wait_until_free(&etcd, &lock);
    if finish_body {
        worker.send("done");
    }
    kill(worker.pid(), Signal::SIGCONT).unwrap();
    let answer = worker.line();
    assert!(
        answer.starts_with(&format!("err lost cluster lock '{lock}' (token {held})")),
        "{answer}"
    );
}

#[test]
fn a_sync_worker_that_lost_its_lock_returns_err_lost_though_its_body_succeeded() {
    // The body reads the line and returns Ok: the loss still comes out.
    lost_worker("sync", true);
}

#[test]
fn an_async_worker_that_lost_its_lock_is_dropped_and_returns_err_lost() {
    // Nothing ends the body: it is dropped at the loss.
    lost_worker("async", false);
}

#[test]
fn on_postgres_one_program_runs_the_other_is_refused_and_a_stopped_holder_exits_75() {
    let server = postgres_or_skip!();
    let url = server.url();
    let lock = lock_name("postgres");
    let on_postgres = ("PIDFILE_POSTGRES_URL", url.as_str());
    let (a, b) = (Host::new("host-a"), Host::new("host-b"));
    let first = a.main_on(on_postgres, &lock);
    let old = token(&first.line());

    let (code, stderr) = b.main_on(on_postgres, &lock).finish();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("already running as pid {}", first.pid())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("cluster lock '{lock}', token {old}")),
        "{stderr}"
    );

    kill(first.pid(), Signal::SIGSTOP).unwrap();
    // The server ends the stopped holder's idle session after its TTL.
    let check = pid_runtime::cluster::ClusterLock::new(lock.as_str())
        .backend(pid_runtime::cluster::Postgres::url(url.as_str()));
    let deadline = std::time::Instant::now() + ANSWER_TIMEOUT;
    while check.check().unwrap() != pid_runtime::cluster::ClusterStatus::Free {
        assert!(
            std::time::Instant::now() < deadline,
            "the session never ended"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut successor = b.main_on(on_postgres, &lock);
    let new = token(&successor.line());
    assert!(new > old, "{new} after {old}");

    resumed_holder_exits_75_before_it_writes(first, &a, &lock, old);
    successor.send("write");
    assert_eq!(successor.line(), "wrote");
}

#[test]
fn under_tokio_main_in_either_order_main_holds_and_releases() {
    let etcd = etcd_or_skip!();
    let endpoint = etcd.endpoint();
    for program in [
        env!("CARGO_BIN_EXE_cluster-tokio-outer"),
        env!("CARGO_BIN_EXE_cluster-tokio-inner"),
    ] {
        let lock = lock_name("tokio");
        let mut main = Program::start(
            program,
            &[],
            "host-a",
            &[
                ("PIDFILE_TEST_NAME", Path::new(&lock)),
                ("PIDFILE_ETCD_ENDPOINTS", Path::new(&endpoint)),
            ],
        );
        token(&main.line());
        assert_eq!(etcd.keys(&format!("{lock}/")).len(), 1, "{program}");
        main.send("done");
        let (code, stderr) = main.finish();
        assert_eq!(code, Some(0), "{program}: {stderr}");
        assert!(
            etcd.keys(&format!("{lock}/")).is_empty(),
            "{program}: the lease was not revoked"
        );
    }
}
