//! What the `pidfile` command's tests share: a temporary directory and a
//! `pidfile run` whose output is read line by line.
#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

/// How long a process may take to answer before the test fails rather than
/// hangs. Generous: CI shares two cores with other work.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A directory removed with everything in it when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let template = std::env::temp_dir().join("pidfile-cli-XXXXXX");
        TempDir(nix::unistd::mkdtemp(&template).expect("make a temporary directory"))
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `pidfile run` in the background, its stdout read line by line.
pub struct Running {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub lines: mpsc::Receiver<String>,
}

impl Running {
    pub fn start(mut command: Command) -> Running {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start pidfile run");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Running {
            child,
            stdin,
            lines,
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    pub fn line(&self) -> String {
        self.lines
            .recv_timeout(PATIENCE)
            .expect("the command prints a line in time")
    }

    /// Closes the command's input, which ends the commands used here.
    pub fn finish(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        self.wait()
    }

    pub fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for pidfile run") {
                return status;
            }
            assert!(Instant::now() < deadline, "pidfile run did not end");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
