//! `pidfile run` on Unix: signals are passed on to the command, job
//! control sees one job, and readiness goes to the service manager.

use std::ffi::OsStr;
use std::process::ExitCode;
use std::time::Instant;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use pid_runtime::{Error, PidFile, PidFileGuard, TermSignal};

use super::{command_and_name, not_started, release, OWN_ERROR};
use crate::args::{Ready, Run};
use crate::cluster::{Holding, NotHeld};
use crate::notify::Relay;
use crate::say;
use crate::signals::{die_of, ends_a_process, is_stop, Blocked, Received};

/// Why no guard was taken.
enum NotTaken {
    Busy(Error),
    Failed(Error),
    Signaled(Signal),
}

pub(crate) fn run(args: Run) -> ExitCode {
    let (program, program_args, name) = match command_and_name(&args) {
        Ok(found) => found,
        Err(status) => return status,
    };
    if let Some(message) = args.cluster.as_ref().and_then(crate::cluster::unsupported) {
        say(format_args!("{message}"));
        return ExitCode::from(OWN_ERROR);
    }
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
    let started = Instant::now();
    let mut guard = match acquire(&pidfile, args.wait, &signals) {
        Ok(guard) => guard,
        Err(NotTaken::Busy(_)) if args.quiet => return ExitCode::from(args.exit_code),
        Err(NotTaken::Busy(error)) => return crate::fail(&error, args.exit_code),
        Err(NotTaken::Failed(error)) => return crate::fail(&error, OWN_ERROR),
        Err(NotTaken::Signaled(signal)) => return died_of(signal),
    };
    if args.daemon {
        // SAFETY: pidfile has one thread until the command has started.
        guard = match unsafe { guard.daemonize() } {
            Ok(guard) => guard,
            Err(error) => return crate::fail(&error, OWN_ERROR),
        };
    }
    let holding = match &args.cluster {
        None => None,
        Some(cluster) => {
            // One wait in all: the cluster's gets what the pidfile's left.
            let wait = args
                .wait
                .map(|timeout| timeout.map(|timeout| timeout.saturating_sub(started.elapsed())));
            match crate::cluster::acquire(cluster, name, args.ttl, wait, &signals) {
                Ok(holding) => Some(holding),
                Err(not_held) => {
                    release(guard);
                    return match not_held {
                        NotHeld::Busy(_) if args.quiet => ExitCode::from(args.exit_code),
                        NotHeld::Busy(message) => {
                            say(format_args!("{message}"));
                            ExitCode::from(args.exit_code)
                        }
                        NotHeld::Failed(message) => {
                            say(format_args!("{message}"));
                            ExitCode::from(OWN_ERROR)
                        }
                        NotHeld::Signaled(signal) => died_of(signal),
                    };
                }
            }
        }
    };
    let relay = match Relay::from_env(args.ready == Ready::Notify) {
        Ok(relay) => relay,
        Err(error) => {
            say(format_args!("cannot speak to the service manager: {error}"));
            release(guard);
            return ExitCode::from(OWN_ERROR);
        }
    };
    let mut command = std::process::Command::new(program);
    command.args(program_args);
    signals.restore_in(&mut command);
    if let Some(holding) = &holding {
        holding.export_to(&mut command);
        // Watched from before the command starts: a loss meanwhile stops
        // it as soon as it runs.
        if let Err(error) = holding.watch() {
            say(format_args!("cannot watch the cluster lock: {error}"));
            release(guard);
            return ExitCode::from(OWN_ERROR);
        }
    }
    match relay.as_ref().map(Relay::command_socket) {
        Some(Some(ours)) => {
            command.env("NOTIFY_SOCKET", ours);
        }
        Some(None) => {
            command.env_remove("NOTIFY_SOCKET");
        }
        None => {}
    }
    if let (Some(fd), Ready::Started) = (args.notify_fd, args.ready) {
        if let Err(error) = crate::notify::keep_from_command(fd) {
            say(format_args!(
                "cannot use descriptor {fd} of --notify-fd: {error}"
            ));
            release(guard);
            return ExitCode::from(OWN_ERROR);
        }
    }
    let child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            say(format_args!(
                "cannot run {}: {error}",
                program.to_string_lossy()
            ));
            release(guard);
            return ExitCode::from(not_started(&error));
        }
    };
    let child_pid = Pid::from_raw(child.id() as i32);
    // A daemon's file names pidfile, the process its starter's manager now
    // watches, which passes signals on.
    if !args.daemon {
        if let Err(error) = guard.set_pid(pid_runtime::Pid::from_raw(child.id())) {
            say(format_args!("{error}; the file names pidfile itself"));
        }
    }
    // Ready only now: the lock is held and the file names the command.
    if args.ready == Ready::Started {
        if let Some(relay) = &relay {
            if let Err(error) = relay.say(b"READY=1") {
                say(format_args!(
                    "cannot tell systemd the service is ready: {error}"
                ));
            }
        }
        if let Some(fd) = args.notify_fd {
            if let Err(error) = crate::notify::write_ready_to_fd(fd) {
                say(format_args!(
                    "cannot write readiness to descriptor {fd}: {error}"
                ));
            }
        }
    }
    if let (Some(fd), Ready::Notify) = (args.notify_fd, args.ready) {
        // The command has its copy: pidfile keeps none of the manager's.
        // SAFETY: closes a descriptor pidfile inherited and does not use.
        unsafe { nix::libc::close(fd) };
    }
    if let Some(relay) = relay {
        relay.relay_in_background();
    }
    let ended = supervise(child_pid, &signals, program, holding.as_ref());
    drop(child); // reaped by supervise; the handle has nothing left to do
                 // Released before the pidfile, as it was taken after it.
    if let Some(Err(lost)) = holding.map(Holding::finish) {
        say(format_args!("{lost}"));
        release(guard);
        return ExitCode::from(crate::cluster::LOST);
    }
    release(guard);
    match ended {
        Ended::Exited(code) => ExitCode::from(code),
        Ended::Killed(signal) => died_of(signal),
        Ended::Failed => ExitCode::from(OWN_ERROR),
    }
}

/// How the command ended.
enum Ended {
    Exited(u8),
    Killed(Signal),
    /// pidfile could no longer wait for it.
    Failed,
}

/// How often a wait for the pidfile looks at the signals that came: the
/// wait itself wakes at the holder's release.
const SIGNAL_SLICE: std::time::Duration = std::time::Duration::from_millis(50);

/// Takes the pidfile, waiting for it when `wait` says so: `Some(None)` for
/// ever, `Some(Some(timeout))` for at most that long.
fn acquire(
    pidfile: &PidFile,
    wait: Option<Option<std::time::Duration>>,
    signals: &Blocked,
) -> Result<PidFileGuard, NotTaken> {
    let Some(wait) = wait else {
        return pidfile.acquire().map_err(refused);
    };
    let deadline = wait.map(|timeout| Instant::now() + timeout);
    loop {
        let slice = deadline.map_or(SIGNAL_SLICE, |deadline| {
            deadline
                .saturating_duration_since(Instant::now())
                .min(SIGNAL_SLICE)
        });
        let busy = match pidfile.acquire_timeout(slice).map_err(refused) {
            Err(NotTaken::Busy(error)) => error,
            taken_or_failed => return taken_or_failed,
        };
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err(NotTaken::Busy(busy));
        }
        // Between slices, the signals that came: a Ctrl-C ends the wait,
        // a Ctrl-Z stops it.
        match signals.next(Some(std::time::Duration::ZERO)) {
            Ok(Some(Received { signal, .. })) if is_stop(signal) => {
                let _ = signals.stop_with(signal);
            }
            Ok(Some(Received { signal, .. })) if ends_a_process(signal) => {
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

/// A refusal because another process has the file, or another error.
fn refused(error: Error) -> NotTaken {
    if error.is_busy() {
        NotTaken::Busy(error)
    } else {
        NotTaken::Failed(error)
    }
}

/// Passes signals on to the child until it ends, and stops when it stops,
/// so that a shell's job control sees one job; once the cluster lock is
/// lost, sends it SIGTERM, then SIGKILL when its time is up.
///
/// A signal sent by a process is passed on once; one the kernel sent (a
/// terminal's Ctrl-C, Ctrl-Z, hang-up or resize) went to the whole process
/// group, the child included, and passing it on would deliver it twice.
fn supervise(child: Pid, signals: &Blocked, program: &OsStr, holding: Option<&Holding>) -> Ended {
    let flags = WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED | WaitPidFlag::WCONTINUED;
    let (mut terminated, mut killed) = (false, false);
    loop {
        // The child is reaped only here, so `child` is its own while
        // signals are passed on.
        match waitpid(child, Some(flags)) {
            Ok(WaitStatus::Exited(_, code)) => return Ended::Exited(code as u8),
            Ok(WaitStatus::Signaled(_, signal, _)) => return Ended::Killed(signal),
            Ok(WaitStatus::Stopped(_, signal)) => {
                match signals.stop_with(signal) {
                    // Whoever continued pidfile may have continued it alone.
                    Ok(()) => {
                        let _ = kill(child, Signal::SIGCONT);
                    }
                    Err(error) => say(format_args!("cannot stop with the command: {error}")),
                }
                continue;
            }
            Ok(_) => {}
            Err(error) => {
                say(format_args!(
                    "cannot wait for {}: {error}",
                    program.to_string_lossy()
                ));
                return Ended::Failed;
            }
        }
        let mut wake = None;
        if let Some(kill_at) = holding.and_then(Holding::kill_at) {
            if !terminated {
                let _ = kill(child, Signal::SIGTERM);
                terminated = true;
            }
            let now = Instant::now();
            if now < kill_at {
                wake = Some(kill_at - now);
            } else if !killed {
                let _ = kill(child, Signal::SIGKILL);
                killed = true;
            }
        }
        match signals.next(wake) {
            Ok(Some(Received {
                signal,
                from_kernel: false,
            })) if signal != Signal::SIGCHLD => {
                let _ = kill(child, signal);
            }
            Ok(_) => {}
            Err(error) => {
                say(format_args!("cannot wait for signals: {error}"));
                return match waitpid(child, None) {
                    Ok(WaitStatus::Exited(_, code)) => Ended::Exited(code as u8),
                    Ok(WaitStatus::Signaled(_, signal, _)) => Ended::Killed(signal),
                    _ => Ended::Failed,
                };
            }
        }
    }
}

/// Dies of `signal`, as the command did; when its default action does not
/// end a process, exits with the status a shell reports, 128+N.
fn died_of(signal: Signal) -> ExitCode {
    die_of(signal);
    ExitCode::from(128_u8.wrapping_add(signal as u8))
}
