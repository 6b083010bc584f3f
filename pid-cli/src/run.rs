//! `pidfile run`: take the pidfile, run the command, record its pid, pass
//! signals on, and remove the file when it ends.

use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, ExitCode, ExitStatus};
use std::time::Instant;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pid_runtime::{Error, PidFile, PidFileGuard, TermSignal};

use crate::args::Run;
use crate::say;
use crate::signals::{Blocked, Received};
use crate::status::Backoff;

/// A command that was found but cannot be run, as shells report it.
const NOT_EXECUTABLE: u8 = 126;
/// A command that was not found.
const NOT_FOUND: u8 = 127;
/// An error of pidfile's own, as env(1) and timeout(1) report theirs.
const OWN_ERROR: u8 = 125;

/// Why no guard was taken.
enum NotTaken {
    Busy(Error),
    Failed(Error),
    Signaled(Signal),
}

pub(crate) fn run(args: Run) -> ExitCode {
    let (program, program_args) = args
        .command
        .split_first()
        .expect("the command line requires a command");
    let Some(name) = args
        .name
        .as_deref()
        .or_else(|| Path::new(program).file_name())
    else {
        say(format_args!(
            "cannot name the pidfile after {}: give --name",
            program.to_string_lossy()
        ));
        return ExitCode::from(OWN_ERROR);
    };
    let pidfile = crate::pidfile(name, args.dir.as_deref())
        .mode(args.mode)
        .term_signal(TermSignal::Never);
    // Blocked before the file exists: a signal that comes while the file
    // still names pidfile waits in the queue until the command can have it.
    let signals = match Blocked::block() {
        Ok(signals) => signals,
        Err(error) => {
            say(format_args!("cannot block signals: {error}"));
            return ExitCode::from(OWN_ERROR);
        }
    };
    let mut guard = match acquire(&pidfile, args.wait, &signals) {
        Ok(guard) => guard,
        Err(NotTaken::Busy(error)) => return crate::fail(&error, args.exit_code),
        Err(NotTaken::Failed(error)) => return crate::fail(&error, OWN_ERROR),
        Err(NotTaken::Signaled(signal)) => return died_of(signal as i32),
    };
    let mut command = std::process::Command::new(program);
    command.args(program_args);
    signals.unblock_in(&mut command);
    let child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            say(format_args!(
                "cannot run {}: {error}",
                program.to_string_lossy()
            ));
            release(guard);
            return ExitCode::from(match error.kind() {
                std::io::ErrorKind::NotFound => NOT_FOUND,
                _ => NOT_EXECUTABLE,
            });
        }
    };
    let child_pid = Pid::from_raw(child.id() as i32);
    if let Err(error) = guard.set_pid(child_pid) {
        say(format_args!("{error}; the file names pidfile itself"));
    }
    let status = supervise(child, child_pid, &signals, program);
    release(guard);
    status
}

/// Takes the pidfile, waiting for it when `wait` says so: `Some(None)` for
/// ever, `Some(Some(timeout))` for at most that long.
fn acquire(
    pidfile: &PidFile,
    wait: Option<Option<std::time::Duration>>,
    signals: &Blocked,
) -> Result<PidFileGuard, NotTaken> {
    let deadline = wait.map(|timeout| timeout.map(|timeout| Instant::now() + timeout));
    let mut backoff = Backoff::default();
    loop {
        let busy = match pidfile.acquire() {
            Ok(guard) => return Ok(guard),
            Err(error) if error.is_already_running() => error,
            Err(error) => return Err(NotTaken::Failed(error)),
        };
        let Some(deadline) = deadline else {
            return Err(NotTaken::Busy(busy));
        };
        let Some(pause) = backoff.next_until(deadline) else {
            return Err(NotTaken::Busy(busy));
        };
        // The pause is spent listening, so a Ctrl-C ends the wait at once.
        match signals.next(Some(pause)) {
            Ok(Some(Received { signal, .. })) if signal != Signal::SIGCHLD => {
                return Err(NotTaken::Signaled(signal))
            }
            Ok(_) => {}
            Err(error) => {
                say(format_args!("cannot wait for signals: {error}"));
                return Err(NotTaken::Busy(busy));
            }
        }
    }
}

/// Passes signals on to the child until it ends; returns its status as a
/// shell reports it.
fn supervise(mut child: Child, pid: Pid, signals: &Blocked, program: &OsStr) -> ExitCode {
    loop {
        // The child is reaped only here, so `pid` is its own while signals
        // are passed on.
        match child.try_wait() {
            Ok(Some(status)) => return status_of(status),
            Ok(None) => {}
            Err(error) => {
                say(format_args!(
                    "cannot wait for {}: {error}",
                    program.to_string_lossy()
                ));
                return ExitCode::from(OWN_ERROR);
            }
        }
        match signals.next(None) {
            // A terminal's signal went to the whole process group, the
            // child included: passing it on would deliver it twice.
            Ok(Some(Received {
                signal,
                from_kernel: false,
            })) if signal != Signal::SIGCHLD => {
                let _ = kill(pid, signal);
            }
            Ok(_) => {}
            Err(error) => {
                say(format_args!("cannot wait for signals: {error}"));
                return match child.wait() {
                    Ok(status) => status_of(status),
                    Err(_) => ExitCode::from(OWN_ERROR),
                };
            }
        }
    }
}

fn status_of(status: ExitStatus) -> ExitCode {
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(code as u8),
        (None, Some(signal)) => died_of(signal),
        (None, None) => ExitCode::from(OWN_ERROR),
    }
}

/// The status a shell reports for a process that died of `signal`.
fn died_of(signal: i32) -> ExitCode {
    ExitCode::from(128_u8.wrapping_add(signal as u8))
}

fn release(guard: PidFileGuard) {
    if let Err(error) = guard.release() {
        say(format_args!("{error}"));
    }
}
