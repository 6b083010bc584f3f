//! `#[pidfile]` in real processes: the examples, run as their users would.

mod common;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;

use common::{example, spawn_piped, Holder, TempDir, ANSWER_TIMEOUT};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn start_singleton(dir: &TempDir) -> (std::process::Child, String) {
    let mut command = example("singleton");
    command.env("SINGLETON_DIR", dir.path());
    let (child, lines) = spawn_piped(command);
    let said = lines
        .recv_timeout(ANSWER_TIMEOUT)
        .expect("the singleton starts");
    (child, said)
}

#[test]
fn second_singleton_is_refused_with_the_configured_code_then_starts_once_the_first_is_gone() {
    let dir = TempDir::new();
    let (mut first, said) = start_singleton(&dir);
    assert_eq!(said, format!("running as pid {}", first.id()));
    let path = dir.join("singleton.pid");

    let second = example("singleton")
        .env("SINGLETON_DIR", dir.path())
        .output()
        .expect("run a second singleton");
    assert_eq!(second.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&second.stdout), "");
    assert_eq!(
        String::from_utf8_lossy(&second.stderr),
        format!(
            "singleton: already running as pid {} ({})\n",
            first.id(),
            path.display()
        )
    );

    drop(first.stdin.take());
    assert!(first.wait().unwrap().success());
    assert!(!path.exists());

    let (mut third, said) = start_singleton(&dir);
    assert_eq!(said, format!("running as pid {}", third.id()));
    drop(third.stdin.take());
    assert!(third.wait().unwrap().success());
}

#[test]
fn sigterm_to_a_guarded_main_removes_the_file() {
    let dir = TempDir::new();
    let (mut child, said) = start_singleton(&dir);
    assert!(said.starts_with("running as pid "), "{said}");
    let path = dir.join("singleton.pid");
    assert!(path.exists());
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(Signal::SIGTERM as i32));
    assert!(!path.exists(), "SIGTERM left {path:?} behind");
}

#[test]
fn worker_runs_each_call_while_free_and_returns_the_error_while_held() {
    let dir = TempDir::new();
    let run = || {
        example("worker")
            .arg("2")
            .env("WORKER_DIR", dir.path())
            .output()
            .expect("run the worker")
    };
    let free = run();
    assert!(free.status.success());
    assert_eq!(
        String::from_utf8_lossy(&free.stdout),
        "batch 1: done, 10 items\nbatch 2: done, 20 items\n"
    );
    assert!(!dir.join("worker.pid").exists());

    let mut holder = Holder::spawn();
    let path = holder.acquire(&dir, "worker");
    let held = run();
    let refusal = format!("already running as pid {} ({})", holder.pid, path.display());
    assert_eq!(
        String::from_utf8_lossy(&held.stdout),
        format!("batch 1: skipped, {refusal}\nbatch 2: skipped, {refusal}\n")
    );
}

#[test]
fn async_main_holds_the_file_across_awaits_and_is_refused_while_held() {
    let dir = TempDir::new();
    let free = example("async_main")
        .env("ASYNC_MAIN_DIR", dir.path())
        .output()
        .unwrap();
    assert!(free.status.success());
    assert!(String::from_utf8_lossy(&free.stdout).ends_with("done\n"));
    assert!(!dir.join("async-main.pid").exists());

    let mut holder = Holder::spawn();
    holder.acquire(&dir, "async-main");
    let mut command = example("async_main");
    command.env("ASYNC_MAIN_DIR", dir.path());
    let (mut child, _lines) = spawn_piped(command);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(1));
    assert!(
        stderr.starts_with(&format!(
            "async_main: already running as pid {}",
            holder.pid
        )),
        "{stderr}"
    );
}

/// `#[pidfile(daemonize = true)] fn main`: the starter exits 0 once the file
/// names the daemon; the daemon runs `main` and removes the file at its end.
#[test]
fn a_daemonized_main_owns_the_file_its_starter_took() {
    let dir = TempDir::new();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_daemon-main"));
    command.env("DAEMON_DIR", dir.path());
    let (mut starter, lines) = spawn_piped(command);
    let said = lines
        .recv_timeout(ANSWER_TIMEOUT)
        .expect("the daemon speaks");
    let daemon = said
        .strip_prefix("daemon ")
        .unwrap_or_else(|| panic!("{said}"));
    assert_ne!(daemon, starter.id().to_string());
    assert_eq!(
        lines.recv_timeout(ANSWER_TIMEOUT).as_deref(),
        Ok("child holds nothing"),
        "the pidfile's descriptor leaked into the daemon's child"
    );
    // Child::wait closes the child's input, which the daemon reads too.
    let daemon_s_input = starter.stdin.take();
    assert_eq!(starter.wait().unwrap().code(), Some(0));
    let path = dir.join("daemon-main.pid");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{daemon}\n")
    );
    drop(daemon_s_input);
    let deadline = std::time::Instant::now() + ANSWER_TIMEOUT;
    while path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon kept the file"
        );
        std::thread::yield_now();
    }
}
