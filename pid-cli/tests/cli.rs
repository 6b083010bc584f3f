//! The `pidfile` command, run as real processes: concurrent runs, the
//! recorded pid, signals in and out, commands that cannot start, waiting, and
//! `check` in every state.
//!
//! Events are ordered by what the processes print and by the pidfile's
//! content, never by sleeping.
#![cfg(unix)]

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

mod common;
use common::{output, pidfile, stderr, Running, TempDir, PATIENCE};

impl Running {
    /// Waits for "ready PID" from the command and returns PID.
    fn ready(&self) -> Pid {
        let line = self.line();
        let pid = line
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("the command said {line:?}"));
        Pid::from_raw(pid.parse().expect("a pid"))
    }

    fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).expect("signal pidfile run");
    }
}

/// A program on a pseudo-terminal, leading its own session with the
/// terminal as its controlling one, so that Ctrl-C and Ctrl-Z typed on it
/// reach its foreground process group. What it prints is gathered on a
/// thread and waited for with [`Session::expect`].
struct Session {
    child: Child,
    master: std::fs::File,
    said: std::sync::Arc<(std::sync::Mutex<String>, std::sync::Condvar)>,
    /// How much of what was said earlier `expect`s consumed.
    seen: std::cell::Cell<usize>,
}

impl Session {
    fn start(command: &mut Command) -> Session {
        let pty = nix::pty::openpty(None, None).expect("open a pseudo-terminal");
        let terminal: OwnedFd = pty.slave;
        let terminal_fd = terminal.as_raw_fd();
        command
            .stdin(terminal.try_clone().unwrap())
            .stdout(terminal.try_clone().unwrap())
            .stderr(terminal.try_clone().unwrap());
        // SAFETY: setsid and ioctl are async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if nix::libc::ioctl(terminal_fd, nix::libc::TIOCSCTTY as _, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("start the session");
        drop(terminal);
        let master = std::fs::File::from(pty.master);
        let said = std::sync::Arc::new((
            std::sync::Mutex::new(String::new()),
            std::sync::Condvar::new(),
        ));
        let mut reader = master.try_clone().unwrap();
        let gathered = std::sync::Arc::clone(&said);
        std::thread::spawn(move || {
            let mut buffer = [0_u8; 4096];
            // EIO once the last process on the terminal has closed it.
            while let Ok(read @ 1..) = std::io::Read::read(&mut reader, &mut buffer) {
                let (text, changed) = &*gathered;
                text.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..read]));
                changed.notify_all();
            }
        });
        Session {
            child,
            master,
            said,
            seen: std::cell::Cell::new(0),
        }
    }

    /// Waits until the session says `text`, after what earlier calls
    /// consumed; returns the rest of the line it is on.
    fn expect(&self, text: &str) -> String {
        let (said, changed) = &*self.said;
        let deadline = Instant::now() + PATIENCE;
        let mut guard = said.lock().unwrap();
        loop {
            if let Some(at) = guard[self.seen.get()..].find(text) {
                let start = self.seen.get() + at + text.len();
                let rest = &guard[start..];
                let line = rest
                    .split(['\r', '\n'])
                    .next()
                    .unwrap_or_default()
                    .to_string();
                self.seen.set(start);
                return line;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the session never said {text:?}: {:?}",
                *guard
            );
            guard = changed.wait_timeout(guard, left).unwrap().0;
        }
    }

    fn type_bytes(&self, bytes: &[u8]) {
        (&self.master)
            .write_all(bytes)
            .expect("type on the terminal");
    }

    fn type_line(&self, line: &str) {
        self.type_bytes(format!("{line}\n").as_bytes());
    }

    fn said(&self) -> String {
        self.said.0.lock().unwrap().clone()
    }

    fn wait(&self) -> std::process::ExitStatus {
        let pid = Pid::from_raw(self.child.id() as i32);
        let deadline = Instant::now() + PATIENCE;
        loop {
            match nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)).unwrap()
            {
                nix::sys::wait::WaitStatus::Exited(_, code) => {
                    return std::process::ExitStatus::from_raw(code << 8)
                }
                nix::sys::wait::WaitStatus::Signaled(_, signal, _) => {
                    return std::process::ExitStatus::from_raw(signal as i32)
                }
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "the session did not end: {:?}",
                self.said()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Whether the process is stopped, as /proc tells.
fn is_stopped(pid: Pid) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
}

/// A command that says "ready PID" and runs until its input closes.
const UNTIL_EOF: &str = "echo ready $$; while read line; do :; done";

fn run_until_eof(dir: &TempDir, name: &str) -> Command {
    pidfile(&["run", "--name", name, "--", "sh", "-c", UNTIL_EOF], dir)
}

/// A `pidfile run` holding `job.pid` in `dir`, once the file names its
/// command; returns it and the command's pid.
fn holding_job(dir: &TempDir) -> (Running, Pid) {
    holding_job_started_as(run_until_eof(dir, "job"), dir)
}

/// [`holding_job`], with `command`, a `pidfile run` of `job` in `dir`.
fn holding_job_started_as(command: Command, dir: &TempDir) -> (Running, Pid) {
    let run = Running::start(command);
    let child = run.ready();
    wait_for_content(&dir.join("job.pid"), &format!("{child}\n"));
    (run, child)
}

/// Waits until `path` holds `expected`: `pidfile run` records the child's
/// pid just after starting it, so the child may speak first.
fn wait_for_content(path: &Path, expected: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let content = std::fs::read_to_string(path).unwrap_or_default();
        if content == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} holds {content:?}, not {expected:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `--quiet`: a refusal says nothing, so a crontab line with
/// `--exit-code 0` mails nobody; errors are still said.
#[test]
fn quiet_refusals_say_nothing() {
    let dir = TempDir::new();
    let (run, _) = holding_job(&dir);
    let out = output(pidfile(
        &[
            "run",
            "--name",
            "job",
            "--quiet",
            "--exit-code",
            "0",
            "--",
            "true",
        ],
        &dir,
    ));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stderr(&out), "");
    assert_eq!(run.finish().code(), Some(0));
    let out = output(pidfile(
        &["run", "--name", "job", "--quiet", "--", "/no/such/cmd"],
        &dir,
    ));
    assert_eq!(out.status.code(), Some(127));
    assert!(stderr(&out).contains("/no/such/cmd"), "{}", stderr(&out));
}

#[test]
fn second_run_is_refused_with_the_child_s_pid_and_the_configured_status() {
    let dir = TempDir::new();
    let (first, child) = holding_job(&dir);
    let path = dir.join("job.pid");

    let second = output(pidfile(
        &["run", "--name", "job", "--exit-code", "7", "--", "true"],
        &dir,
    ));
    assert_eq!(second.status.code(), Some(7));
    assert_eq!(
        stderr(&second),
        format!(
            "pidfile: already running as pid {child} ({})\n",
            path.display()
        )
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{child}\n")
    );

    assert_eq!(first.finish().code(), Some(0));
    assert!(!path.exists(), "the file is removed when the command ends");
}

#[test]
fn the_command_s_exit_status_is_pidfile_s() {
    let dir = TempDir::new();
    let out = output(pidfile(
        &["run", "--name", "job", "--", "sh", "-c", "exit 3"],
        &dir,
    ));
    assert_eq!(out.status.code(), Some(3));
    assert!(!dir.join("job.pid").exists());
}

#[test]
fn name_defaults_to_the_command_s_file_name() {
    let dir = TempDir::new();
    let path = dir.join("sh.pid");
    let out = output(pidfile(
        &[
            "run",
            "--",
            "/bin/sh",
            "-c",
            "test -f \"$0\"",
            path.to_str().unwrap(),
        ],
        &dir,
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!path.exists());
}

/// A command killed by signal N: pidfile removes the file and dies of N
/// too, as systemd and a shell's loop expect of the command itself.
#[test]
fn a_command_killed_by_signal_n_makes_pidfile_die_of_n_and_leaves_no_file() {
    for signal in [
        Signal::SIGUSR1,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGQUIT,
    ] {
        let dir = TempDir::new();
        let script = format!("kill -{} $$", signal.as_str().trim_start_matches("SIG"));
        let out = output(pidfile(
            &["run", "--name", "job", "--", "sh", "-c", &script],
            &dir,
        ));
        assert_eq!(
            (out.status.signal(), out.status.code()),
            (Some(signal as i32), None),
            "{signal}"
        );
        assert!(!out.status.core_dumped(), "{signal}: pidfile dumped core");
        assert!(!dir.join("job.pid").exists());
    }
}

/// A bash loop of `pidfile run` stops at a Ctrl-C only when the command died
/// of SIGINT: bash waits for its child and breaks out when the child died of
/// the SIGINT it got too. Here the whole group gets the SIGINT, from a pty.
#[test]
fn a_shell_loop_of_pidfile_run_stops_at_ctrl_c() {
    let dir = TempDir::new();
    let script = format!(
        "for i in 1 2 3; do {} run --dir {} --name job -- sh -c 'echo ready $$; while read line; do :; done'; \
         echo after $?; done; echo loop finished",
        env!("CARGO_BIN_EXE_pidfile"),
        dir.0.display()
    );
    let session = Session::start(Command::new("bash").args(["-c", &script]));
    session.expect("ready ");
    session.type_bytes(b"\x03");
    let status = session.wait();
    let said = session.said();
    assert!(!said.contains("after"), "the loop went on: {said:?}");
    assert!(!said.contains("loop finished"), "{said:?}");
    assert_eq!(status.signal(), Some(Signal::SIGINT as i32), "{said:?}");
    assert!(!dir.join("job.pid").exists());
}

#[test]
fn every_signal_a_process_sends_to_pidfile_reaches_the_command() {
    let mut signals = vec![
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGQUIT,
        Signal::SIGWINCH,
        Signal::SIGALRM,
    ];
    #[cfg(target_os = "linux")]
    signals.push(Signal::SIGPWR);
    for signal in signals {
        let dir = TempDir::new();
        let name = signal.as_str().trim_start_matches("SIG");
        let script = format!("trap 'echo got {name}' {name}; {UNTIL_EOF}");
        let mut run = Running::start(pidfile(
            &["run", "--name", "job", "--", "sh", "-c", &script],
            &dir,
        ));
        run.ready();
        run.signal(signal);
        assert_eq!(run.line(), format!("got {name}"));
        drop(run.stdin.take());
        assert_eq!(run.wait().code(), Some(0), "{signal}");
        assert!(!dir.join("job.pid").exists());
    }
}

/// A parent that ignores SIGCHLD (and so reaps its children without
/// waiting) does not leave pidfile unable to learn that its command ended;
/// the command still gets the dispositions pidfile inherited, as `nohup`
/// leaves SIGHUP ignored for it.
#[test]
fn pidfile_starts_from_a_known_signal_state_and_passes_on_what_it_inherited() {
    let dir = TempDir::new();
    let mut command = pidfile(
        &["run", "--name", "job", "--", "bash", "-c", "trap; exit 7"],
        &dir,
    );
    // SAFETY: signal is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            for ignored in [Signal::SIGCHLD, Signal::SIGHUP] {
                nix::sys::signal::signal(ignored, nix::sys::signal::SigHandler::SigIgn)
                    .map_err(std::io::Error::from)?;
            }
            Ok(())
        });
    }
    let mut run = Running::start(command);
    let traps = run.line();
    assert_eq!(traps, "trap -- '' SIGHUP");
    assert_eq!(run.wait().code(), Some(7));
    assert!(!dir.join("job.pid").exists());
}

/// Job control sees one job: Ctrl-Z stops the command and pidfile with it,
/// `fg` continues both, and a stop signal sent to pidfile by a process is
/// passed on, so the command stops and pidfile with it.
#[cfg(target_os = "linux")]
#[test]
fn job_control_stops_and_continues_pidfile_with_its_command() {
    let dir = TempDir::new();
    let mut bash = Command::new("bash");
    bash.args(["--norc", "--noprofile", "-i"])
        .env("PS1", "$ ")
        .env("TERM", "dumb");
    let session = Session::start(&mut bash);
    session.expect("$ ");
    session.type_line(&format!(
        "{} run --dir {} --name job -- sh -c 'echo ready $$ $PPID; while read line; do echo got $line; done'",
        env!("CARGO_BIN_EXE_pidfile"),
        dir.0.display()
    ));
    session.expect("\nready ");
    let ready = session.expect("");
    let _ = ready;
    let said = session.said();
    let line = said
        .rsplit("ready ")
        .next()
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_string();
    let (child, pidfile_pid) = line.split_once(' ').expect("two pids");
    let child = Pid::from_raw(child.parse().unwrap());
    let pidfile_pid = Pid::from_raw(pidfile_pid.parse().unwrap());

    session.type_bytes(b"\x1a");
    session.expect("Stopped");
    assert!(
        is_stopped(child) && is_stopped(pidfile_pid),
        "both stop at Ctrl-Z"
    );
    session.type_line("fg");
    session.type_line("hello");
    session.expect("got hello");

    wait_until_running_again(pidfile_pid, "pidfile runs again after fg");
    kill(pidfile_pid, Signal::SIGTSTP).unwrap();
    session.expect("Stopped");
    assert!(
        is_stopped(child) && is_stopped(pidfile_pid),
        "both stop at kill -TSTP pidfile"
    );
    session.type_line("fg");
    session.type_line("again");
    session.expect("got again");

    session.type_bytes(b"\x04");
    session.expect("$ ");
    session.type_line("exit");
    assert_eq!(session.wait().code(), Some(0));
    assert!(!dir.join("job.pid").exists());
}

/// Waits until `done` holds, polling: failing with `what` after
/// [`PATIENCE`].
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until `pid` is stopped.
fn wait_until_stopped(pid: Pid, what: &str) {
    wait_until(what, || is_stopped(pid));
}

/// Waits until pidfile, continued, runs again and has put back SIGCONT's
/// disposition, as `/proc/PID/status` shows it: while it stops, SIGCONT has
/// a handler, which blocks the stop signals once it is continued. A stop
/// signal sent to pidfile from then on is passed on; one sent to it alone
/// before, while the kernel has not yet run it again, stops pidfile alone
/// (see `pidfile run --help`).
#[cfg(target_os = "linux")]
fn wait_until_running_again(pidfile: Pid, what: &str) {
    let cont = 1_u64 << (Signal::SIGCONT as u32 - 1);
    wait_until(what, || {
        let status = std::fs::read_to_string(format!("/proc/{pidfile}/status")).unwrap();
        let caught = status
            .lines()
            .find_map(|line| line.strip_prefix("SigCgt:"))
            .map(|mask| u64::from_str_radix(mask.trim(), 16).unwrap())
            .unwrap();
        !is_stopped(pidfile) && caught & cont == 0
    });
}

/// A `pidfile run` of [`UNTIL_EOF`] in its own process group, which is not
/// orphaned (the test, its parent, is in another group of the same
/// session), so that stop signals stop it; returns it and the command.
#[cfg(target_os = "linux")]
fn holding_job_in_its_own_group(dir: &TempDir) -> (Running, Pid) {
    let mut command = run_until_eof(dir, "job");
    // SAFETY: setpgid is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0)).map_err(std::io::Error::from)
        });
    }
    holding_job_started_as(command, dir)
}

/// A stop signal sent to the command and another sent to pidfile while it
/// stops with the command stop pidfile once: continued, both run. Each
/// round puts a different delay between the two signals, so that the
/// second reaches pidfile at each step of its stopping. Scale with
/// `PIDFILE_CROSSING_STOPS_RUNS`.
#[cfg(target_os = "linux")]
#[test]
fn stops_that_cross_stop_pidfile_once() {
    let runs: u32 = std::env::var("PIDFILE_CROSSING_STOPS_RUNS")
        .ok()
        .and_then(|runs| runs.parse().ok())
        .unwrap_or(1000);
    let dir = TempDir::new();
    let (run, child) = holding_job_in_its_own_group(&dir);
    let group = run.pid();
    for round in 0..runs {
        kill(child, Signal::SIGTSTP).unwrap();
        let delay = Duration::from_micros(u64::from(round % 100) * 2);
        let sent = Instant::now();
        while sent.elapsed() < delay {
            std::hint::spin_loop();
        }
        run.signal(Signal::SIGTSTP);
        wait_until_stopped(child, "the command stops");
        wait_until_stopped(group, "pidfile stops with its command");
        nix::sys::signal::killpg(group, Signal::SIGCONT).unwrap();
        wait_until_running_again(
            group,
            &format!("round {round}: pidfile stopped again once continued"),
        );
        assert!(!is_stopped(child), "round {round}: the command runs");
    }
    assert_eq!(run.finish().code(), Some(0));
    assert!(!dir.join("job.pid").exists());
}

/// A command stopped with SIGSTOP, which pidfile cannot catch or pass on,
/// stops pidfile too, and a continue of pidfile alone continues both.
#[cfg(target_os = "linux")]
#[test]
fn a_command_stopped_with_sigstop_stops_pidfile_too() {
    let dir = TempDir::new();
    let (run, child) = holding_job_in_its_own_group(&dir);
    kill(child, Signal::SIGSTOP).unwrap();
    wait_until_stopped(run.pid(), "pidfile stops with its command");
    run.signal(Signal::SIGCONT);
    wait_until_running_again(run.pid(), "pidfile runs again");
    wait_until("the command is continued", || !is_stopped(child));
    assert_eq!(run.finish().code(), Some(0));
}

#[test]
fn a_signal_that_comes_before_the_command_starts_is_not_lost() {
    // SIGTERM is pending when pidfile starts, as one sent while it takes the
    // file would be: it must reach the command once the command exists. The
    // command has no handler yet, so it dies of it, and so does pidfile.
    let dir = TempDir::new();
    let mut command = pidfile(&["run", "--name", "job", "--", "sh", "-c", UNTIL_EOF], &dir);
    // SAFETY: sigprocmask and raise are async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            let mut set = nix::sys::signal::SigSet::empty();
            set.add(Signal::SIGTERM);
            set.thread_block().map_err(std::io::Error::from)?;
            nix::sys::signal::raise(Signal::SIGTERM).map_err(std::io::Error::from)
        });
    }
    let mut run = Running::start(command);
    let status = run.wait();
    assert_eq!(
        (status.code(), status.signal()),
        (None, Some(Signal::SIGTERM as i32))
    );
    assert!(!dir.join("job.pid").exists());
}

#[test]
fn a_terminal_s_ctrl_c_reaches_the_command_exactly_once() {
    let dir = TempDir::new();
    let pty = nix::pty::openpty(None, None).expect("open a pseudo-terminal");
    let script = "n=0; trap 'n=$((n+1)); echo int $n' INT; trap 'echo total $n; exit 0' TERM; \
                  echo ready $$; while :; do read line; done";
    let mut command = pidfile(&["run", "--name", "job", "--", "sh", "-c", script], &dir);
    let terminal: OwnedFd = pty.slave;
    let terminal_fd = terminal.as_raw_fd();
    // pidfile leads a session whose controlling terminal is the pty, so the
    // line discipline sends ^C as SIGINT to its foreground group: pidfile
    // and the command both.
    // SAFETY: setsid and ioctl are async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if nix::libc::ioctl(terminal_fd, nix::libc::TIOCSCTTY as _, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut run = Running::start(command);
    run.ready();
    let mut master = std::fs::File::from(pty.master);
    master.write_all(b"\x03").expect("type ^C");
    assert_eq!(run.line(), "int 1");
    // A SIGTERM from a process is passed on; had the ^C been passed on too,
    // the lower-numbered SIGINT would be counted first.
    run.signal(Signal::SIGTERM);
    assert_eq!(run.line(), "total 1");
    assert_eq!(run.wait().code(), Some(0));
    drop(terminal);
}

#[test]
fn a_command_that_does_not_exist_gives_127_and_leaves_no_file() {
    let dir = TempDir::new();
    let out = output(pidfile(
        &["run", "--name", "job", "--", "/nonexistent/command"],
        &dir,
    ));
    assert_eq!(out.status.code(), Some(127));
    assert!(
        stderr(&out).starts_with("pidfile: cannot run /nonexistent/command: "),
        "{}",
        stderr(&out)
    );
    assert!(!dir.join("job.pid").exists());
}

#[test]
fn a_command_that_is_not_executable_gives_126_and_leaves_no_file() {
    let dir = TempDir::new();
    let script = dir.join("script");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let out = output(pidfile(
        &["run", "--name", "job", "--", script.to_str().unwrap()],
        &dir,
    ));
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert!(!dir.join("job.pid").exists());
}

#[test]
fn wait_without_a_timeout_runs_the_command_once_the_holder_ends() {
    let dir = TempDir::new();
    let (first, first_child) = holding_job(&dir);

    let second = Running::start(pidfile(
        &[
            "run",
            "--name",
            "job",
            "--wait",
            "--",
            "sh",
            "-c",
            "echo ready $$",
        ],
        &dir,
    ));
    assert_eq!(first.finish().code(), Some(0));
    let second_child = second.ready();
    assert_ne!(second_child, first_child);
    assert_eq!(second.finish().code(), Some(0));
}

#[test]
fn wait_with_a_timeout_gives_up_with_the_configured_status() {
    let dir = TempDir::new();
    let (first, child) = holding_job(&dir);

    let started = Instant::now();
    let second = output(pidfile(
        &[
            "run",
            "--name",
            "job",
            "--wait=0.3",
            "--exit-code",
            "4",
            "--",
            "true",
        ],
        &dir,
    ));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(second.status.code(), Some(4));
    assert!(stderr(&second).contains(&format!("already running as pid {child}")));
    assert_eq!(first.finish().code(), Some(0));
}

#[test]
fn sigkill_to_pidfile_leaves_the_command_running_and_named() {
    let dir = TempDir::new();
    let (mut first, child) = holding_job(&dir);
    first.signal(Signal::SIGKILL);
    first.wait();

    // The lock died with pidfile, but the file names a command still running.
    let out = output(pidfile(&["run", "--name", "job", "--", "true"], &dir));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("already running as pid {child}")),
        "{}",
        stderr(&out)
    );
    let check = output(pidfile(&["check", "--name", "job"], &dir));
    assert_eq!(check.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&check.stdout), format!("{child}\n"));
    // Closing its input (pidfile's end of the pipe died with it) ends the command.
    drop(first);
    let _ = kill(child, Signal::SIGKILL);
}

#[test]
fn check_in_each_state() {
    let dir = TempDir::new();
    let path = dir.join("job.pid");
    let check = || output(pidfile(&["check", "--name", "job"], &dir));

    let out = check();
    assert_eq!(
        (out.status.code(), out.stdout.len()),
        (Some(3), 0),
        "no file"
    );

    let (run, child) = holding_job(&dir);
    let out = check();
    assert_eq!(out.status.code(), Some(0), "running");
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{child}\n"));
    assert_eq!(run.finish().code(), Some(0));

    // A file left by a process that has gone.
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    std::fs::write(&path, format!("{}\n", gone.id())).unwrap();
    let out = check();
    assert_eq!((out.status.code(), out.stdout.len()), (Some(1), 0), "stale");
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert!(path.exists(), "check removes nothing");

    std::fs::write(&path, "not a pid\n").unwrap();
    let out = check();
    assert_eq!(out.status.code(), Some(4), "garbage");
    assert!(
        stderr(&out).starts_with(&format!(
            "pidfile: {} does not hold a process id",
            path.display()
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a pid\n");
}

/// The Python that has `pid` 3.0.4 (`PIDFILE_PYTHON`, or the one
/// `tests/peers/install.sh` puts in `target/peers/venv`) and the workspace's
/// script that drives it; `None` in a packaged crate, which has neither.
fn python_pid_peer() -> Option<(PathBuf, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("tests/peers/python_pid.py");
    if !script.exists() {
        eprintln!("skipped: {} is outside this package", script.display());
        return None;
    }
    let python = std::env::var_os("PIDFILE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/peers/venv/bin/python"));
    assert!(
        python.exists(),
        "{} not found: run tests/peers/install.sh, or set PIDFILE_PYTHON to a Python that has pid 3.0.4",
        python.display()
    );
    Some((python, script))
}

#[test]
fn check_reads_a_file_held_by_python_pid() {
    let Some((python, script)) = python_pid_peer() else {
        return;
    };
    let dir = TempDir::new();
    let mut peer = Command::new(python)
        .arg(script)
        .args(["hold", dir.0.to_str().unwrap(), "job"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start Python pid");
    let mut line = String::new();
    BufReader::new(peer.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid = line
        .trim()
        .strip_prefix("locked ")
        .expect("locked PID")
        .to_string();

    let out = output(pidfile(&["check", "--name", "job"], &dir));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{pid}\n"));

    drop(peer.stdin.take());
    assert!(peer.wait().unwrap().success());
    // Python pid removes its file as it ends: not running, no file.
    let out = output(pidfile(&["check", "--name", "job"], &dir));
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn wait_returns_when_the_holder_ends_and_times_out_while_it_runs() {
    let dir = TempDir::new();
    let (run, _) = holding_job(&dir);

    let out = output(pidfile(
        &["wait", "--name", "job", "--timeout", "0.2"],
        &dir,
    ));
    assert_eq!(out.status.code(), Some(1), "timed out");

    let mut waiting = Command::new(env!("CARGO_BIN_EXE_pidfile"));
    waiting.args(["wait", "--name", "job", "--dir"]).arg(&dir.0);
    let mut waiting = waiting.spawn().expect("start pidfile wait");
    assert_eq!(run.finish().code(), Some(0));
    let status = waiting.wait().expect("pidfile wait ends");
    assert_eq!(status.code(), Some(0));

    let out = output(pidfile(&["wait", "--name", "job"], &dir));
    assert_eq!(out.status.code(), Some(0), "nothing to wait for");
}

#[test]
fn path_prints_the_resolved_path() {
    let dir = TempDir::new();
    let out = output(pidfile(&["path", "--name", "job"], &dir));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n", dir.join("job.pid").display())
    );
    let out = output(pidfile(&["path", "--name", "a/b"], &dir));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with("pidfile: invalid pidfile name"));
}

#[test]
fn usage_errors_keep_clap_s_detail_and_help_shows_examples() {
    let dir = TempDir::new();
    let out = output(pidfile(&["run", "--mode", "999", "--", "true"], &dir));
    assert_eq!(out.status.code(), Some(2));
    let said = stderr(&out);
    assert!(
        said.starts_with("pidfile: invalid value '999' for '--mode <MODE>'"),
        "{said}"
    );

    let out = output(pidfile(&["run", "--name", "job"], &dir));
    assert_eq!(out.status.code(), Some(2));
    let said = stderr(&out);
    assert!(
        said.contains("<CMD>") && said.contains("Usage: pidfile run"),
        "{said}"
    );

    let out = output(pidfile(&["run", "--name", "job", "true"], &dir));
    assert_eq!(out.status.code(), Some(2));
    let said = stderr(&out);
    assert!(said.contains("unexpected argument 'true'"), "{said}");
    assert!(said.contains("put `--` before the command"), "{said}");

    let out = output(pidfile(
        &["run", "--name", "job", "--wait", "5", "--", "true"],
        &dir,
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let help = Command::new(env!("CARGO_BIN_EXE_pidfile"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for example in [
        "crontab",
        "a shell script",
        "[Service]",
        "ExecStart=/usr/local/bin/pidfile run",
    ] {
        assert!(help.contains(example), "--help lacks {example:?}");
    }
}

/// `pidfile stop` signals the command a `pidfile run` holds, waits until
/// the file is free, and exits 0.
#[test]
fn stop_signals_the_holder_and_waits_until_it_is_gone() {
    let dir = TempDir::new();
    let script = format!("trap 'echo got TERM; exit 0' TERM; {UNTIL_EOF}");
    let mut run = Running::start(pidfile(
        &["run", "--name", "job", "--", "sh", "-c", &script],
        &dir,
    ));
    let child = run.ready();
    wait_for_content(&dir.join("job.pid"), &format!("{child}\n"));
    let out = output(pidfile(&["stop", "--name", "job"], &dir));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(run.line(), "got TERM");
    assert_eq!(run.wait().code(), Some(0));
    assert!(
        !dir.join("job.pid").exists(),
        "stop returned before the release"
    );
}

/// A holder that ignores the signal is killed on schedule with
/// `--kill-after`, and without it `stop` gives up with status 2.
#[test]
fn stop_escalates_to_sigkill_on_schedule_or_says_it_still_runs() {
    let dir = TempDir::new();
    let script = format!("trap '' TERM; {UNTIL_EOF}");
    let mut run = Running::start(pidfile(
        &["run", "--name", "job", "--", "sh", "-c", &script],
        &dir,
    ));
    let child = run.ready();
    wait_for_content(&dir.join("job.pid"), &format!("{child}\n"));
    let out = output(pidfile(
        &["stop", "--name", "job", "--timeout", "0.3"],
        &dir,
    ));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("pid {child} still runs")),
        "{}",
        stderr(&out)
    );
    let out = output(pidfile(
        &[
            "stop",
            "--name",
            "job",
            "--kill-after",
            "0.2",
            "--timeout",
            "60",
        ],
        &dir,
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(run.wait().signal(), Some(Signal::SIGKILL as i32));
    assert!(!dir.join("job.pid").exists());
}

/// A stale file's pid, here one that a younger process has taken, is never
/// signalled: `stop` exits 1 and the stranger lives on.
#[test]
fn stop_never_signals_the_pid_of_a_stale_file() {
    let dir = TempDir::new();
    let path = dir.join("job.pid");
    let mut stranger = Command::new("sleep").arg("600").spawn().unwrap();
    std::fs::write(&path, format!("{}\n", stranger.id())).unwrap();
    // Written, as far as anyone can tell, long before the stranger started.
    let long_ago = nix::sys::time::TimeSpec::new(946_684_800, 0);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        &path,
        &long_ago,
        &long_ago,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
    let out = output(pidfile(
        &["stop", "--name", "job", "--signal", "KILL"],
        &dir,
    ));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("not signalled"), "{}", stderr(&out));
    assert_eq!(
        stranger.try_wait().unwrap(),
        None,
        "the stranger was signalled"
    );
    let out = output(pidfile(&["stop", "--name", "nothing"], &dir));
    assert_eq!(out.status.code(), Some(1));
    stranger.kill().unwrap();
    stranger.wait().unwrap();
}

/// A service manager's notify socket, as systemd listens on it: datagrams
/// with the sender's credentials and any descriptors they carry.
struct FakeSystemd {
    socket: std::os::unix::net::UnixDatagram,
    path: PathBuf,
}

impl FakeSystemd {
    fn new(dir: &TempDir) -> FakeSystemd {
        let path = dir.join("notify");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::PassCred, &true).unwrap();
        socket.set_read_timeout(Some(PATIENCE)).unwrap();
        FakeSystemd { socket, path }
    }

    /// The next message, its sender's pid, and the descriptors it carries.
    fn receive(&self) -> (String, Pid, Vec<OwnedFd>) {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        use std::os::fd::FromRawFd;
        let mut buffer = [0_u8; 4096];
        let mut iov = [std::io::IoSliceMut::new(&mut buffer)];
        let mut control =
            nix::cmsg_space!(nix::sys::socket::UnixCredentials, [std::os::fd::RawFd; 4]);
        let message = recvmsg::<()>(
            self.socket.as_raw_fd(),
            &mut iov,
            Some(&mut control),
            MsgFlags::empty(),
        )
        .expect("a notification in time");
        let mut sender = None;
        let mut fds = Vec::new();
        for control in message.cmsgs().unwrap() {
            match control {
                ControlMessageOwned::ScmCredentials(credentials) => {
                    sender = Some(Pid::from_raw(credentials.pid()))
                }
                // SAFETY: descriptors the kernel just gave this process.
                ControlMessageOwned::ScmRights(received) => fds.extend(
                    received
                        .into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                ),
                _ => {}
            }
        }
        let len = message.bytes;
        let text = String::from_utf8_lossy(&buffer[..len]).into_owned();
        (text, sender.expect("credentials"), fds)
    }
}

/// The start of a Python command that speaks to its NOTIFY_SOCKET (a path
/// or an abstract name): `s`, a datagram socket connected to it.
const NOTIFY_SOCKET_PYTHON: &str = "import os, select, socket, sys\n\
    name = os.environ['NOTIFY_SOCKET']\n\
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
    s.connect('\\0' + name[1:] if name.startswith('@') else name)\n";

/// A Python command that sends `message` to its NOTIFY_SOCKET, prints
/// "sent" and runs until its input closes.
fn notifying_command(message: &str) -> String {
    format!(
        "{NOTIFY_SOCKET_PYTHON}\
         s.send({message:?}.encode())\n\
         print('sent', os.getpid(), flush=True)\n\
         sys.stdin.read()\n"
    )
}

/// Under systemd's Type=notify with NotifyAccess=main, the command's own
/// READY=1 reaches systemd from pidfile, the main process, once the lock is
/// held and the file names the command.
#[test]
fn the_command_s_notifications_reach_systemd_from_pidfile() {
    let dir = TempDir::new();
    let systemd = FakeSystemd::new(&dir);
    let mut command = pidfile(
        &[
            "run",
            "--name",
            "job",
            "--",
            "python3",
            "-c",
            &notifying_command("READY=1\nSTATUS=up"),
        ],
        &dir,
    );
    command.env("NOTIFY_SOCKET", &systemd.path);
    let run = Running::start(command);
    let (message, sender, _) = systemd.receive();
    assert_eq!(message, "READY=1\nSTATUS=up");
    assert_eq!(sender, run.pid(), "sent by pidfile, the main process");
    let said = run.line();
    let child = said.strip_prefix("sent ").expect("the command's pid");
    assert_eq!(
        std::fs::read_to_string(dir.join("job.pid")).unwrap(),
        format!("{child}\n")
    );
    assert_eq!(run.finish().code(), Some(0));
}

/// `--ready started`: pidfile says READY=1 for a command that speaks no
/// protocol, once it holds the lock and the command runs.
#[test]
fn ready_started_tells_systemd_once_the_command_runs() {
    let dir = TempDir::new();
    let systemd = FakeSystemd::new(&dir);
    let mut command = pidfile(
        &[
            "run", "--name", "job", "--ready", "started", "--", "sh", "-c", UNTIL_EOF,
        ],
        &dir,
    );
    command.env("NOTIFY_SOCKET", &systemd.path);
    let run = Running::start(command);
    let (message, sender, _) = systemd.receive();
    assert_eq!(message, "READY=1");
    assert_eq!(sender, run.pid());
    let child = run.ready();
    assert_eq!(
        std::fs::read_to_string(dir.join("job.pid")).unwrap(),
        format!("{child}\n")
    );
    assert_eq!(run.finish().code(), Some(0));
}

/// `sd_notify_barrier`: the command passes a pipe with BARRIER=1 and waits
/// until systemd closes it; the relay passes the pipe on and keeps no copy,
/// so the command goes on only once the fake systemd closes its own.
#[test]
fn a_notify_barrier_holds_until_systemd_closes_its_descriptor() {
    let dir = TempDir::new();
    let systemd = FakeSystemd::new(&dir);
    let script = format!(
        "{NOTIFY_SOCKET_PYTHON}\
                  r, w = os.pipe()\n\
                  socket.send_fds(s, [b'BARRIER=1'], [w])\n\
                  os.close(w)\n\
                  ready, _, _ = select.select([r], [], [], 60)\n\
                  print('barrier passed' if ready and os.read(r, 1) == b'' else 'barrier timed out', flush=True)\n\
                  sys.stdin.read()\n"
    );
    let mut command = pidfile(
        &["run", "--name", "job", "--", "python3", "-c", &script],
        &dir,
    );
    command.env("NOTIFY_SOCKET", &systemd.path);
    let run = Running::start(command);
    let (message, sender, fds) = systemd.receive();
    assert_eq!(
        (message.as_str(), sender, fds.len()),
        ("BARRIER=1", run.pid(), 1)
    );
    assert!(
        run.lines.try_recv().is_err(),
        "the barrier passed before systemd closed it"
    );
    drop(fds);
    assert_eq!(run.line(), "barrier passed");
    assert_eq!(run.finish().code(), Some(0));
}

/// s6's notification-fd and OpenRC's notify=fd:N: the command inherits the
/// descriptor and writes its newline, or with `--ready started` pidfile
/// writes it and closes it, and the command does not inherit it.
#[test]
fn the_notification_descriptor_gets_one_newline() {
    for (ready, script) in [
        (
            "notify",
            "echo >&3; exec 3>&-; echo ready $$; while read line; do :; done",
        ),
        (
            "started",
            "[ -e /dev/fd/3 ] && echo leaked; echo ready $$; while read line; do :; done",
        ),
    ] {
        let dir = TempDir::new();
        let (reader, writer) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let writer_fd = writer.as_raw_fd();
        let mut command = pidfile(
            &[
                "run",
                "--name",
                "job",
                "--notify-fd",
                "3",
                "--ready",
                ready,
                "--",
                "sh",
                "-c",
                script,
            ],
            &dir,
        );
        // SAFETY: dup2 is async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                nix::libc::dup2(writer_fd, 3);
                Ok(())
            });
        }
        let run = Running::start(command);
        drop(writer);
        let mut said = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(reader), &mut said).unwrap();
        assert_eq!(said, "\n", "{ready}");
        run.ready();
        assert_eq!(run.finish().code(), Some(0), "{ready}");
    }
}

/// `pidfile run --daemon`: the starter exits 0 once the file names the
/// daemon, which runs the command and passes signals on; `pidfile stop`
/// then ends both and the file goes.
#[test]
fn run_as_a_daemon_then_stop_it() {
    let dir = TempDir::new();
    let marker = dir.join("command-ran");
    let script = format!("touch {}; while :; do sleep 1; done", marker.display());
    let status = pidfile(
        &[
            "run", "--name", "job", "--daemon", "--", "sh", "-c", &script,
        ],
        &dir,
    )
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .status()
    .unwrap();
    assert_eq!(status.code(), Some(0));
    let content = std::fs::read_to_string(dir.join("job.pid")).unwrap();
    let daemon: i32 = content.trim().parse().unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{daemon}/comm")).unwrap();
    assert_eq!(comm.trim(), "pidfile", "the file names the daemon");
    let out = output(pidfile(&["check", "--name", "job"], &dir));
    assert_eq!(out.status.code(), Some(0));
    let out = output(pidfile(&["stop", "--name", "job"], &dir));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!dir.join("job.pid").exists());
    assert!(marker.exists(), "the command ran");
}

/// Every systemd unit in README.md passes `systemd-analyze verify`, with
/// this `pidfile` and a program that exists in place of the worker. Skipped
/// with a message where the tool is not installed.
#[test]
fn the_readme_s_systemd_units_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let units: Vec<&str> = readme
        .split("```ini\n")
        .skip(1)
        .filter_map(|block| block.split("\n```").next())
        .collect();
    assert!(units.len() >= 3, "the README has {} units", units.len());
    let dir = TempDir::new();
    for (n, unit) in units.iter().enumerate() {
        let unit = unit
            .replace("/usr/local/bin/pidfile", env!("CARGO_BIN_EXE_pidfile"))
            .replace("/usr/local/bin/worker", "/bin/sleep");
        let path = dir.join(&format!("readme-{n}.service"));
        std::fs::write(
            &path,
            format!("[Unit]\nDescription=README unit {n}\n\n{unit}\n"),
        )
        .unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert!(
            out.status.success() && !said.contains("readme-"),
            "unit {n}:\n{unit}\n{said}"
        );
    }
}

/// Built without the `etcd` feature (as `cargo install pid-cli` is), a run
/// with `--cluster` says what it needs before it takes anything: held by
/// another run, the pidfile would otherwise answer first, as busy.
#[test]
#[cfg(not(feature = "etcd"))]
fn a_cluster_lock_without_the_feature_is_refused_before_the_pidfile_is_taken() {
    let dir = TempDir::new();
    let (holder, _) = holding_job(&dir);
    let args = [
        "run",
        "--name",
        "job",
        "--cluster",
        "etcd://127.0.0.1:2379",
        "--",
        "echo",
        "ran",
    ];
    let refused = output(pidfile(&args, &dir));
    assert_eq!(refused.status.code(), Some(125), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("--cluster needs pidfile built with the `etcd` feature"),
        "{}",
        stderr(&refused)
    );
    assert!(refused.stdout.is_empty(), "the command ran");
    assert!(holder.finish().success());
}
