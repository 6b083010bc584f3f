//! The signals `pidfile run` owns: blocked from the start, then taken one at
//! a time with `sigtimedwait`, so none is lost or handled mid-operation.

use std::time::Duration;

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};

/// Passed on to the command.
pub(crate) const FORWARDED: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

/// A signal taken from the queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Received {
    pub(crate) signal: Signal,
    /// Sent by the kernel, as a terminal's Ctrl-C and hang-up are, to a whole
    /// process group; not by a process with kill(2).
    pub(crate) from_kernel: bool,
}

/// The forwarded signals and SIGCHLD, blocked in this thread, which is the
/// only one; they are taken with [`Blocked::next`].
pub(crate) struct Blocked {
    set: SigSet,
    /// The mask before: what the command must start with.
    before: SigSet,
}

impl Blocked {
    pub(crate) fn block() -> Result<Blocked, Errno> {
        let mut set = SigSet::empty();
        for signal in FORWARDED {
            set.add(signal);
        }
        set.add(Signal::SIGCHLD);
        let mut before = SigSet::empty();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut before))?;
        Ok(Blocked { set, before })
    }

    /// Makes `command` start with the signal mask pidfile started with, less
    /// the signals pidfile passes on, which it must be able to receive. A
    /// child inherits the mask, and the standard library leaves it as is.
    pub(crate) fn unblock_in(&self, command: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;

        let mut before = self.before;
        for signal in FORWARDED {
            before.remove(signal);
        }
        // SAFETY: sigprocmask is async-signal-safe, as code between fork and
        // exec must be, and touches nothing but the child's own mask.
        unsafe {
            command.pre_exec(move || {
                nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&before), None)
                    .map_err(std::io::Error::from)
            });
        }
    }

    /// The next signal, waiting at most `timeout` (for ever when `None`).
    pub(crate) fn next(&self, timeout: Option<Duration>) -> Result<Option<Received>, Errno> {
        next(&self.set, timeout)
    }
}

#[cfg(not(target_vendor = "apple"))]
fn next(set: &SigSet, timeout: Option<Duration>) -> Result<Option<Received>, Errno> {
    let timeout = timeout.map(|timeout| libc::timespec {
        tv_sec: timeout.as_secs().try_into().unwrap_or(libc::time_t::MAX),
        tv_nsec: timeout.subsec_nanos().into(),
    });
    loop {
        // SAFETY: a valid set and a zeroed siginfo for the kernel to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let signal = unsafe {
            match &timeout {
                Some(timeout) => libc::sigtimedwait(set.as_ref(), &mut info, timeout),
                None => libc::sigwaitinfo(set.as_ref(), &mut info),
            }
        };
        match Errno::result(signal) {
            Ok(signal) => {
                return Ok(Some(Received {
                    signal: Signal::try_from(signal)?,
                    from_kernel: info.si_code > 0,
                }))
            }
            Err(Errno::EAGAIN) => return Ok(None),
            Err(Errno::EINTR) => {}
            Err(error) => return Err(error),
        }
    }
}

/// macOS has neither `sigtimedwait` nor `sigwaitinfo`: look at the pending
/// set between short sleeps, and take what is there with `sigwait`. Who sent
/// a signal is unknown, so every one counts as sent by a process.
#[cfg(target_vendor = "apple")]
fn next(set: &SigSet, timeout: Option<Duration>) -> Result<Option<Received>, Errno> {
    use std::time::Instant;

    let deadline = timeout.map(|timeout| Instant::now() + timeout);
    loop {
        let mut pending: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: a valid set for the kernel to fill.
        Errno::result(unsafe { libc::sigpending(&mut pending) })?;
        let pending = SigSet::from(pending);
        if set.iter().any(|signal| pending.contains(signal)) {
            let signal = set.wait()?;
            return Ok(Some(Received {
                signal,
                from_kernel: false,
            }));
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
