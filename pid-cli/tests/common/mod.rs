//! What the `pidfile` command's tests share: a temporary directory and a
//! `pidfile run` whose output is read line by line.
#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
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

/// `pidfile SUBCOMMAND --dir DIR ARGS...`.
pub fn pidfile(args: &[&str], dir: &TempDir) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pidfile"));
    let (subcommand, rest) = args.split_first().expect("a subcommand");
    command.arg(subcommand).arg("--dir").arg(&dir.0).args(rest);
    command
}

/// Runs `command` to its end, without input.
pub fn output(mut command: Command) -> Output {
    command.stdin(Stdio::null()).output().expect("run pidfile")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
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

    /// What pidfile said on its standard error, when the caller piped it:
    /// all of it, so once it has ended.
    pub fn said(&mut self) -> String {
        let mut said = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            pipe.read_to_string(&mut said).expect("read stderr");
        }
        said
    }

    /// The next line, or a failure with what pidfile said instead.
    pub fn line_or_said(&mut self) -> String {
        match self.lines.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(_) => panic!("no line; pidfile said: {}", self.said()),
        }
    }

    /// Signals the whole job, pidfile and its command, started in a process
    /// group of its own, as a frozen or thawed host would be.
    pub fn signal_job(&self, signal: nix::sys::signal::Signal) {
        let group = Pid::from_raw(-self.pid().as_raw());
        nix::sys::signal::kill(group, signal).expect("signal the job");
    }

    /// Continues a job stopped past its cluster lock's lease and asserts it
    /// ends as one that lost it: pidfile exits 75 naming `lock` and `token`,
    /// and its command (`child`) is dead.
    pub fn assert_continued_job_lost(&mut self, child: Pid, lock: &str, token: u64) {
        self.signal_job(nix::sys::signal::Signal::SIGCONT);
        let status = self.wait();
        let stderr = self.said();
        assert_eq!(status.code(), Some(75), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "pidfile: lost cluster lock '{lock}' (token {token})"
            )),
            "{stderr}"
        );
        assert!(
            nix::sys::signal::kill(child, None).is_err(),
            "the command outlived the lock"
        );
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
