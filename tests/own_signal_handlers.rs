//! A program that handles SIGTERM itself keeps its shutdown: the handler
//! `#[pidfile]` installed first does nothing once the program's own handler
//! (tokio, signal-hook, ctrlc) has replaced it and calls it as the previous
//! one, and the program's guards remove the file as they drop.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use common::{spawn_piped, TempDir, ANSWER_TIMEOUT};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn sigterm_runs_the_program_s_own_shutdown(program: &str) {
    let dir = TempDir::new();
    let mut command = Command::new(program);
    command.env("GRACEFUL_DIR", dir.path());
    let (mut child, lines) = spawn_piped(command);
    let ready = lines
        .recv_timeout(ANSWER_TIMEOUT)
        .expect("the program is ready");
    let path = dir.join("graceful.pid");
    assert_eq!(ready, format!("ready {}", path.display()));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", child.id())
    );
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    assert_eq!(
        lines.recv_timeout(ANSWER_TIMEOUT).as_deref(),
        Ok("shutting down"),
        "the program's own shutdown ran"
    );
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), None, "died of a signal: {status:?}");
    assert_eq!(status.code(), Some(i32::from(pid_tests::graceful::STATUS)));
    assert!(!path.exists(), "the guard removed the file as it dropped");
}

#[test]
fn tokio_server_with_the_attribute_above_tokio_main() {
    sigterm_runs_the_program_s_own_shutdown(env!("CARGO_BIN_EXE_graceful-tokio-outer"));
}

#[test]
fn tokio_server_with_the_attribute_below_tokio_main() {
    sigterm_runs_the_program_s_own_shutdown(env!("CARGO_BIN_EXE_graceful-tokio-inner"));
}

#[test]
fn signal_hook_program() {
    sigterm_runs_the_program_s_own_shutdown(env!("CARGO_BIN_EXE_graceful-signal-hook"));
}

#[test]
fn ctrlc_program_with_termination() {
    sigterm_runs_the_program_s_own_shutdown(env!("CARGO_BIN_EXE_graceful-ctrlc"));
}
