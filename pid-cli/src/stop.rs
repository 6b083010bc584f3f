//! `stop`: signal the process a pidfile names (on Windows, terminate it),
//! and wait until it is gone, with the statuses of start-stop-daemon
//! `--stop --retry`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

#[cfg(unix)]
use nix::sys::signal::Signal;
use pid_runtime::{Pid, PidFile, Status};

use crate::args::Stop;
use crate::say;

const STOPPED: u8 = 0;
const NOTHING_RUNNING: u8 = 1;
const STILL_RUNNING: u8 = 2;
const ERROR: u8 = 3;

pub(crate) fn stop(pidfile: &PidFile, args: &Stop) -> ExitCode {
    let target = match Target::find(pidfile) {
        Ok(target) => target,
        Err(status) => return ExitCode::from(status),
    };
    #[cfg(unix)]
    if let Err(error) = target.signal(args.signal) {
        say(format_args!(
            "cannot send {} to pid {}: {error}",
            args.signal, target.pid
        ));
        return ExitCode::from(ERROR);
    }
    #[cfg(windows)]
    if let Err(error) = target.terminate() {
        say(format_args!("cannot terminate pid {}: {error}", target.pid));
        return ExitCode::from(ERROR);
    }
    let started = Instant::now();
    #[cfg_attr(windows, allow(unused_mut))]
    let mut deadline = started + args.timeout;
    #[cfg(unix)]
    if let Some(kill_after) = args
        .kill_after
        .filter(|kill_after| *kill_after < args.timeout)
    {
        match wait(pidfile, kill_after) {
            Ok(true) => return ExitCode::from(STOPPED),
            Ok(false) => {}
            Err(status) => return ExitCode::from(status),
        }
        if let Err(error) = target.signal(Signal::SIGKILL) {
            say(format_args!("cannot kill pid {}: {error}", target.pid));
            return ExitCode::from(ERROR);
        }
        deadline = deadline.max(Instant::now());
    }
    match wait(pidfile, deadline.saturating_duration_since(Instant::now())) {
        Ok(true) => ExitCode::from(STOPPED),
        Ok(false) => {
            say(format_args!(
                "pid {} still runs after {:.1} s",
                target.pid,
                started.elapsed().as_secs_f64()
            ));
            ExitCode::from(STILL_RUNNING)
        }
        Err(status) => ExitCode::from(status),
    }
}

fn wait(pidfile: &PidFile, timeout: Duration) -> Result<bool, u8> {
    pidfile.wait_until_free(Some(timeout)).map_err(|error| {
        say(format_args!("{error}"));
        ERROR
    })
}

/// The process to stop, held on to so that its pid cannot be reused under
/// us: on Linux a pidfd, on Windows a process handle, taken while the file
/// still names it.
struct Target {
    pid: Pid,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pidfd: Option<std::os::fd::OwnedFd>,
    #[cfg(windows)]
    process: std::os::windows::io::OwnedHandle,
}

#[cfg(windows)]
impl Target {
    /// The live process the pidfile names, or the status to exit with.
    fn find(pidfile: &PidFile) -> Result<Target, u8> {
        use std::os::windows::io::FromRawHandle;
        use windows_sys::Win32::System::Threading::{
            OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SYNCHRONIZE, PROCESS_TERMINATE,
        };
        let pid = running_pid(pidfile)?;
        let access = PROCESS_TERMINATE | PROCESS_SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION;
        // SAFETY: a plain call; the handle is owned below.
        let raw = unsafe { OpenProcess(access, 0, pid.as_raw()) };
        if raw.is_null() {
            say(format_args!(
                "cannot open pid {pid}: {}",
                std::io::Error::last_os_error()
            ));
            return Err(ERROR);
        }
        // SAFETY: a handle OpenProcess just gave us alone.
        let process = unsafe { std::os::windows::io::OwnedHandle::from_raw_handle(raw) };
        // Named by the file still, now that the handle holds the process.
        if running_pid(pidfile)? != pid {
            say(format_args!(
                "the pidfile changed while being read; nothing terminated"
            ));
            return Err(ERROR);
        }
        Ok(Target { pid, process })
    }

    fn terminate(&self) -> std::io::Result<()> {
        use std::os::windows::io::AsRawHandle;
        use windows_sys::Win32::System::Threading::TerminateProcess;
        // SAFETY: a process handle this value owns, with the right to end it.
        if unsafe { TerminateProcess(self.process.as_raw_handle(), 1) } != 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

#[cfg(unix)]
impl Target {
    /// The live process the pidfile names, or the status to exit with.
    fn find(pidfile: &PidFile) -> Result<Target, u8> {
        let pid = running_pid(pidfile)?;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let pidfd = pidfd_open(pid);
            // Named by the file still, now that the pidfd holds the process:
            // the pid cannot have been reused since.
            if pidfd.is_some() && running_pid(pidfile)? != pid {
                say(format_args!(
                    "the pidfile changed while being read; nothing signalled"
                ));
                return Err(ERROR);
            }
            Ok(Target { pid, pidfd })
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        Ok(Target { pid })
    }

    fn signal(&self, signal: Signal) -> Result<(), nix::Error> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(pidfd) = &self.pidfd {
            use std::os::fd::AsRawFd;
            // SAFETY: a pidfd this value owns, a valid signal, no siginfo.
            let sent = unsafe {
                nix::libc::syscall(
                    nix::libc::SYS_pidfd_send_signal,
                    pidfd.as_raw_fd(),
                    signal as nix::libc::c_int,
                    std::ptr::null::<nix::libc::siginfo_t>(),
                    0,
                )
            };
            return match nix::errno::Errno::result(sent) {
                // Gone already: that is what was asked.
                Ok(_) | Err(nix::errno::Errno::ESRCH) => Ok(()),
                Err(error) => Err(error),
            };
        }
        // A pid read from a pidfile fits a pid_t; one that did not would be no process.
        let Ok(pid) = i32::try_from(self.pid.as_raw()) else {
            return Ok(());
        };
        match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

/// The pid of the process running the pidfile, or the status to exit with.
fn running_pid(pidfile: &PidFile) -> Result<Pid, u8> {
    match pidfile.check() {
        Ok(Status::Running { pid: Some(pid) }) => Ok(pid),
        Ok(Status::Running { pid: None }) => {
            say(format_args!(
                "the pidfile is held, but its holder has written no pid; nothing signalled"
            ));
            Err(ERROR)
        }
        Ok(Status::Stale { pid }) => {
            match pid {
                Some(pid) => say(format_args!(
                    "not running: the stale pidfile names pid {pid}, which is not signalled"
                )),
                None => say(format_args!("not running: the pidfile is stale")),
            }
            Err(NOTHING_RUNNING)
        }
        Ok(Status::NotRunning) => {
            say(format_args!("not running"));
            Err(NOTHING_RUNNING)
        }
        Err(error) => {
            say(format_args!("{error}"));
            Err(ERROR)
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn pidfd_open(pid: Pid) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid.as_raw(), 0) };
    // SAFETY: a descriptor the kernel just made for us alone.
    (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}
