//! The `pidfile` command on Windows, as real processes: `run` records the
//! command's pid and passes its status on, a second `run` is refused,
//! `check`, `wait` and `stop` (TerminateProcess) in each state.
//!
//! The command is this test binary started again; events are ordered by
//! what the processes print.
#![cfg(windows)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};

const PIDFILE: &str = env!("CARGO_BIN_EXE_pidfile");

/// A fresh directory for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("pidfile-cli-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `pidfile SUBCOMMAND --name job --dir DIR ARGS...`.
fn pidfile(dir: &Path, subcommand: &str, args: &[&str]) -> Output {
    Command::new(PIDFILE)
        .args([subcommand, "--name", "job", "--dir"])
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `pidfile run` of a command that says its pid and runs until told to end.
struct Running {
    wrapper: Child,
    command_pid: u32,
    _stdout: BufReader<ChildStdout>,
}

impl Running {
    fn start(dir: &Path, exit_code: i32) -> Running {
        let mut wrapper = Command::new(PIDFILE)
            .args(["run", "--name", "job", "--dir"])
            .arg(dir)
            .arg("--")
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", "the_command", "--ignored", "--nocapture"])
            .env("PIDFILE_COMMAND_EXIT", exit_code.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(wrapper.stdout.take().unwrap());
        let mut line = String::new();
        let command_pid = loop {
            line.clear();
            assert_ne!(
                stdout.read_line(&mut line).unwrap(),
                0,
                "the command ended before running"
            );
            // libtest may have written "test the_command ... " first.
            if let Some((_, pid)) = line.trim().rsplit_once("running as ") {
                break pid.parse().unwrap();
            }
        };
        Running {
            wrapper,
            command_pid,
            _stdout: stdout,
        }
    }

    /// Tells the command to end, and returns pidfile's status.
    fn end(mut self) -> Option<i32> {
        let mut stdin = self.wrapper.stdin.take().unwrap();
        stdin.write_all(b"end\n").unwrap();
        drop(stdin);
        self.wrapper.wait().unwrap().code()
    }
}

/// The command `pidfile run` runs in these tests.
#[test]
#[ignore = "the command of the other tests, run by pidfile run"]
fn the_command() {
    let exit_code: i32 = std::env::var("PIDFILE_COMMAND_EXIT")
        .unwrap()
        .parse()
        .unwrap();
    println!("running as {}", std::process::id());
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    std::process::exit(exit_code);
}

#[test]
fn run_records_the_command_refuses_a_second_run_and_passes_the_status_on() {
    let dir = TempDir::new("run");
    let running = Running::start(&dir.0, 7);
    let path = dir.0.join("job.pid");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", running.command_pid)
    );

    let check = pidfile(&dir.0, "check", &[]);
    assert_eq!(check.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        running.command_pid.to_string()
    );

    let second = pidfile(&dir.0, "run", &["--", "cmd", "/c", "exit", "0"]);
    assert_eq!(second.status.code(), Some(1));
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(
        said.contains(&format!("pid {}", running.command_pid)),
        "{said}"
    );

    let timed_out = pidfile(&dir.0, "wait", &["--timeout", "0.1"]);
    assert_eq!(timed_out.status.code(), Some(1));

    assert_eq!(running.end(), Some(7));
    assert!(!path.exists(), "run left {}", path.display());
    assert_eq!(pidfile(&dir.0, "check", &[]).status.code(), Some(3));
    assert_eq!(pidfile(&dir.0, "wait", &[]).status.code(), Some(0));
}

#[test]
fn stop_terminates_the_command_and_run_removes_the_file() {
    let dir = TempDir::new("stop");
    let mut running = Running::start(&dir.0, 0);
    let stop = pidfile(&dir.0, "stop", &["--timeout", "30"]);
    assert_eq!(
        stop.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    // TerminateProcess ends the command with status 1; pidfile passes it on.
    assert_eq!(running.wrapper.wait().unwrap().code(), Some(1));
    assert!(!dir.0.join("job.pid").exists());
    assert_eq!(
        pidfile(&dir.0, "stop", &[]).status.code(),
        Some(1),
        "nothing runs now"
    );
}

#[test]
fn a_command_that_is_not_found_is_127_and_leaves_nothing() {
    let dir = TempDir::new("not-found");
    let run = pidfile(&dir.0, "run", &["--", "no-such-command-here"]);
    assert_eq!(run.status.code(), Some(127));
    assert!(!dir.0.join("job.pid").exists());
}
