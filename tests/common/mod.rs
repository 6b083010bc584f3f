//! What the integration tests share: temporary directories, and helper
//! processes driven line by line, so tests order events by what a process
//! says, never by sleeping.
#![allow(dead_code)] // each test file uses its own part of this

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use pid_runtime::Pid;

/// How long a helper may take to answer before the test fails rather than
/// hangs. Generous: CI shares two cores with other work.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// A directory removed with everything in it when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let template = std::env::temp_dir().join("pid-test-XXXXXX");
        TempDir(nix::unistd::mkdtemp(&template).expect("make a temporary directory"))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The directory as the helpers take it.
    pub fn arg(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary directory")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `pidfile-holder` (see `tests/support/holder.rs`).
pub struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    pub pid: Pid,
}

impl Holder {
    pub fn spawn() -> Holder {
        Holder::spawn_with(|_| {})
    }

    pub fn spawn_with(configure: impl FnOnce(&mut Command)) -> Holder {
        Holder::spawn_program(Path::new(env!("CARGO_BIN_EXE_pidfile-holder")), configure)
    }

    /// Runs a copy of the helper at `program`: another user may not be able
    /// to reach the build directory.
    pub fn spawn_program(program: &Path, configure: impl FnOnce(&mut Command)) -> Holder {
        let mut command = Command::new(program);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        configure(&mut command);
        let mut child = command.spawn().expect("start pidfile-holder");
        let stdin = child.stdin.take();
        let lines = read_lines(child.stdout.take().expect("holder stdout"));
        let mut holder = Holder {
            pid: Pid::from_raw(child.id()),
            child,
            stdin,
            lines,
        };
        let ready = holder.read_line();
        assert!(ready.starts_with("ready "), "{ready}");
        holder
    }

    /// Runs a copy of the helper, made in `dir` (which becomes searchable
    /// by all), as `uid` with `uid` as its group; `None`, with a message,
    /// when this process may not.
    pub fn spawn_as(dir: &TempDir, uid: u32) -> Option<Holder> {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::process::CommandExt;
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: running a helper as another user needs root");
            return None;
        }
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("make the directory searchable");
        let program = dir.join(&format!("pidfile-holder-{uid}"));
        if !program.exists() {
            std::fs::copy(env!("CARGO_BIN_EXE_pidfile-holder"), &program).expect("copy the helper");
        }
        Some(Holder::spawn_program(&program, |command| {
            command.uid(uid).gid(uid);
        }))
    }

    /// Sends a command and returns the answer.
    pub fn ask(&mut self, command: &str) -> String {
        self.send(command);
        self.read_line()
    }

    /// Sends a command that ends the process, and waits for it to end.
    pub fn end_with(mut self, command: &str) -> ExitStatus {
        self.send(command);
        self.stdin = None;
        self.child.wait().expect("wait for the holder")
    }

    /// Acquires and returns the path; panics with the answer on refusal.
    pub fn acquire(&mut self, dir: &TempDir, name: &str) -> PathBuf {
        let answer = self.ask(&format!("acquire {} {name}", dir.arg()));
        let expected = format!("ok {} ", self.pid);
        let path = answer
            .strip_prefix(&expected)
            .unwrap_or_else(|| panic!("acquire answered {answer:?}"));
        PathBuf::from(path)
    }

    /// Sends `signal` and waits for the process to end, its standard input
    /// still open, so that it ends by the signal and not by reading the end
    /// of its input.
    pub fn signal_and_wait(mut self, signal: Signal) -> ExitStatus {
        self.signal(signal);
        let deadline = std::time::Instant::now() + ANSWER_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the holder") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the holder outlived {signal}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Acquires `name` in `dir` and returns the path; panics on refusal.
    pub fn acquire_path(&mut self, dir: &Path, name: &str) -> PathBuf {
        let answer = self.ask(&format!("acquire {} {name}", dir.display()));
        let expected = format!("ok {} ", self.pid);
        let path = answer
            .strip_prefix(&expected)
            .unwrap_or_else(|| panic!("acquire answered {answer:?}"));
        PathBuf::from(path)
    }

    pub fn signal(&self, signal: Signal) {
        kill(sys(self.pid), signal).expect("signal the holder");
    }

    /// Kills with `signal` and reaps the process, so its pid is truly gone.
    pub fn kill_and_wait(mut self, signal: Signal) -> ExitStatus {
        self.signal(signal);
        self.stdin = None;
        self.child.wait().expect("wait for the holder")
    }

    /// Waits for the process this helper started to end, keeping its input
    /// open (a daemon it made may still read it).
    pub fn wait_for_exit(&mut self) -> ExitStatus {
        self.child.wait().expect("wait for the holder")
    }

    /// Sends a command without waiting for an answer.
    pub fn send_line(&mut self, command: &str) {
        self.send(command);
    }

    fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("holder stdin");
        writeln!(stdin, "{command}").expect("send a command");
        stdin.flush().expect("send a command");
    }

    pub fn read_line(&mut self) -> String {
        self.lines
            .recv_timeout(ANSWER_TIMEOUT)
            .expect("the holder answers in time")
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines of `stdout`, read on a thread so a silent process times out.
pub fn read_lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// A live process unrelated to any pidfile, killed and reaped on drop.
pub struct Bystander(Child);

impl Bystander {
    pub fn spawn() -> Bystander {
        Bystander(
            Command::new("sleep")
                .arg("600")
                .spawn()
                .expect("start sleep"),
        )
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.0.id())
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `work` on a thread and fails if it has not finished in time: for
/// operations that must never block (a FIFO in place of a pidfile).
pub fn within_timeout<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(work());
    });
    receiver
        .recv_timeout(ANSWER_TIMEOUT)
        .expect("the operation finished instead of blocking")
}

/// A pid that no process has: one that was used and then reaped.
pub fn dead_pid() -> Pid {
    let mut child = Command::new("true").spawn().expect("start true");
    child.wait().expect("wait for true");
    Pid::from_raw(child.id())
}

/// A program from `examples/`, built next to the tests by `cargo test`.
pub fn example(name: &str) -> Command {
    let test_binary = std::env::current_exe().expect("own path");
    let profile_dir = test_binary
        .parent()
        .and_then(Path::parent)
        .expect("tests run from <target>/<profile>/deps");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: build the examples with `cargo test` or `cargo build --examples`",
        path.display()
    );
    Command::new(path)
}

/// Spawns with piped standard streams and returns the process with the
/// receiver of its output lines.
pub fn spawn_piped(mut command: Command) -> (Child, mpsc::Receiver<String>) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the program");
    let lines = read_lines(child.stdout.take().expect("stdout"));
    (child, lines)
}

/// Compiles the C program at `source` (relative to the root package) into
/// `dir` with `cc` and the extra `args`, and returns the binary's path.
pub fn build_c(source: &str, dir: &TempDir, args: &[&str]) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(source);
    let binary = dir.join(
        source
            .file_stem()
            .and_then(|stem| stem.to_str())
            .expect("a source file name"),
    );
    let built = Command::new("cc")
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .args(args)
        .output();
    let errors = match &built {
        Ok(output) if output.status.success() => return binary,
        Ok(output) => String::from_utf8_lossy(&output.stderr).into_owned(),
        Err(error) => error.to_string(),
    };
    panic!(
        "cannot build {}: run tests/peers/install.sh (or `apt-get install gcc libbsd-dev`)\n{errors}",
        source.display()
    );
}

/// `pid` for nix's system calls.
pub fn sys(pid: Pid) -> nix::unistd::Pid {
    nix::unistd::Pid::from_raw(i32::try_from(pid.as_raw()).expect("a pid_t"))
}

/// `PROCESSES x CYCLES` from the variable `name`, else `default`.
pub fn stress_scale(name: &str, default: (usize, usize)) -> (usize, usize) {
    std::env::var(name)
        .ok()
        .and_then(|scale| {
            let (processes, cycles) = scale.split_once('x')?;
            Some((processes.parse().ok()?, cycles.parse().ok()?))
        })
        .unwrap_or(default)
}

/// Reads a log of `start TOKEN PID` / `end TOKEN PID` lines that holders
/// appended, and asserts there are `holdings` of them, none began inside
/// another, and each token is greater than the one before.
pub fn assert_holdings_in_turn(log: &Path, holdings: usize) {
    let log = std::fs::read_to_string(log).expect("read the log");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2 * holdings);
    let mut last = 0_u64;
    for pair in lines.chunks(2) {
        let start: Vec<&str> = pair[0].split(' ').collect();
        let end: Vec<&str> = pair[1].split(' ').collect();
        assert_eq!(
            start[0], "start",
            "{pair:?}: a holding began inside another"
        );
        assert_eq!(end[0], "end", "{pair:?}");
        assert_eq!(start[1..], end[1..], "{pair:?}: another process ended it");
        let token: u64 = start[1].parse().expect("a token");
        assert!(token > last, "token {token} after {last}");
        last = token;
    }
}
