//! The signals `pidfile run` owns: blocked from the start, then taken one at
//! a time with `sigtimedwait`, so none is lost or handled mid-operation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};

/// Signals that are not taken and passed on: SIGKILL and SIGSTOP cannot
/// be, and SIGPIPE is one the standard library ignores in pidfile itself,
/// for its own writes.
const NOT_TAKEN: [Signal; 3] = [Signal::SIGKILL, Signal::SIGSTOP, Signal::SIGPIPE];

/// Every signal `pidfile run` takes: all but [`NOT_TAKEN`].
fn taken() -> impl Iterator<Item = Signal> {
    Signal::iterator().filter(|signal| !NOT_TAKEN.contains(signal))
}

/// A signal taken from the queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Received {
    pub(crate) signal: Signal,
    /// Sent by the kernel, as a terminal's Ctrl-C, Ctrl-Z, hang-up and
    /// resize are, to a whole process group; not by a process with kill(2).
    pub(crate) from_kernel: bool,
}

/// Every signal pidfile passes on, and SIGCHLD, blocked before pidfile
/// starts any thread (the notification relay), so that every thread blocks
/// them; they are taken with [`Blocked::next`].
pub(crate) struct Blocked {
    set: SigSet,
    /// The mask before: what the command must start with.
    before: SigSet,
    /// The signals pidfile found ignored when it started, which the command
    /// inherits ignored (`nohup` leaves SIGHUP so).
    ignored: Vec<Signal>,
}

impl Blocked {
    /// Blocks the signals pidfile takes, and gives SIGCHLD its default
    /// action: a parent that ignores it would otherwise leave pidfile unable
    /// to learn that its command ended.
    pub(crate) fn block() -> Result<Blocked, Errno> {
        let mut set = SigSet::empty();
        let mut ignored = Vec::new();
        for signal in taken() {
            set.add(signal);
            if is_ignored(signal)? {
                ignored.push(signal);
            }
        }
        if ignored.contains(&Signal::SIGCHLD) {
            // SAFETY: SIG_DFL is not a handler; nothing runs on delivery.
            unsafe { nix::sys::signal::signal(Signal::SIGCHLD, SigHandler::SigDfl) }?;
        }
        let mut before = SigSet::empty();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut before))?;
        Ok(Blocked {
            set,
            before,
            ignored,
        })
    }

    /// Makes `command` start with the signal mask pidfile started with, less
    /// the signals pidfile passes on, which it must be able to receive, and
    /// with the signals pidfile found ignored ignored again. A child inherits
    /// the mask and ignored signals, and the standard library leaves them.
    pub(crate) fn restore_in(&self, command: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;

        let mut before = self.before;
        for signal in taken() {
            before.remove(signal);
        }
        let ignored = self.ignored.clone();
        // SAFETY: signal and sigprocmask are async-signal-safe, as code
        // between fork and exec must be, and touch nothing but the child's
        // own dispositions and mask; `ignored` was allocated before the fork.
        unsafe {
            command.pre_exec(move || {
                for &signal in &ignored {
                    nix::sys::signal::signal(signal, SigHandler::SigIgn)
                        .map_err(std::io::Error::from)?;
                }
                nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&before), None)
                    .map_err(std::io::Error::from)
            });
        }
    }

    /// The next signal, waiting at most `timeout` (for ever when `None`).
    pub(crate) fn next(&self, timeout: Option<Duration>) -> Result<Option<Received>, Errno> {
        next(&self.set, timeout)
    }

    /// Stops pidfile with `signal`, as its command was stopped, so that a
    /// shell sees the whole job stopped; returns once it is continued (or
    /// was continued before it could stop).
    ///
    /// The stop signal stays blocked but within one `sigsuspend`, so
    /// pidfile stops once however many copies came before. SIGCONT has a
    /// handler meanwhile, which ends the wait, and whose mask blocks the
    /// stop signals from the moment the kernel takes SIGCONT. Before that
    /// moment, from the continue until the system runs pidfile again, a
    /// stop signal sent to pidfile alone stops it alone: a stop signal
    /// discards a SIGCONT still waiting, and stopping with the command's own
    /// signal, so that the parent sees what it would without pidfile, needs
    /// that signal unblocked. SIGSTOP would have no such moment, but the
    /// parent would see SIGSTOP.
    pub(crate) fn stop_with(&self, signal: Signal) -> Result<(), Errno> {
        if signal == Signal::SIGSTOP {
            // It cannot be blocked or caught: it stops pidfile here and now.
            return nix::sys::signal::raise(signal);
        }
        let mut stops = SigSet::empty();
        for stop in [Signal::SIGTSTP, Signal::SIGTTIN, Signal::SIGTTOU] {
            stops.add(stop);
        }
        let until_run_again =
            SigAction::new(SigHandler::Handler(on_continue), SaFlags::empty(), stops);
        CONTINUED.store(false, Ordering::SeqCst);
        // SAFETY: the handler only stores to an atomic.
        let continue_before = unsafe { sigaction(Signal::SIGCONT, &until_run_again) }?;
        // SAFETY: SIG_DFL is not a handler; the stop signals' default action
        // stops the process, which is what is wanted here.
        let before = unsafe { nix::sys::signal::signal(signal, SigHandler::SigDfl) };
        let stopped = before.and_then(|_| {
            // A terminal's Ctrl-Z sent pidfile the same signal it sent the
            // command: it may still wait in the queue, and one more of the
            // same signal joins it rather than stopping pidfile twice.
            if !is_pending(signal)? {
                nix::sys::signal::raise(signal)?;
            }
            let mut waiting = SigSet::thread_get_mask()?;
            waiting.remove(signal);
            waiting.remove(Signal::SIGCONT);
            // Not pending any more without a stop: a SIGCONT came first and
            // discarded it. Still pending after the wait: another signal's
            // handler ended it before the stop.
            while !CONTINUED.load(Ordering::SeqCst) && is_pending(signal)? {
                match waiting.suspend() {
                    Ok(()) | Err(Errno::EINTR) => {}
                    Err(error) => return Err(error),
                }
            }
            Ok(())
        });
        // SAFETY: puts back what was there, which is not a handler of ours.
        unsafe {
            if let Ok(before) = before {
                nix::sys::signal::signal(signal, before)?;
            }
            sigaction(Signal::SIGCONT, &continue_before)?;
        }
        stopped
    }
}

/// Set when pidfile, stopped by [`Blocked::stop_with`], is continued.
static CONTINUED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_continue(_: libc::c_int) {
    CONTINUED.store(true, Ordering::SeqCst);
}

/// Whether `signal` waits in this thread's or the process's queue.
fn is_pending(signal: Signal) -> Result<bool, Errno> {
    // SAFETY: a zeroed set for the kernel to fill.
    let mut pending: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    Errno::result(unsafe { libc::sigpending(&mut pending) })?;
    // SAFETY: a set the kernel filled and a valid signal number.
    Ok(unsafe { libc::sigismember(&pending, signal as libc::c_int) } == 1)
}

fn is_ignored(signal: Signal) -> Result<bool, Errno> {
    // SAFETY: sigaction with a null new action only reads the disposition.
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: as above, into a zeroed struct of the right type.
    Errno::result(unsafe {
        libc::sigaction(signal as libc::c_int, std::ptr::null(), &mut current)
    })?;
    Ok(current.sa_sigaction == libc::SIG_IGN)
}

/// Dies of `signal` with its default action, as the command did, so that
/// the parent (systemd, a shell loop) sees what it would have seen without
/// pidfile in between. Without a core dump of pidfile itself. Returns only
/// when the signal's default action does not end a process.
pub(crate) fn die_of(signal: Signal) {
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
    // SAFETY: SIG_DFL is not a handler.
    let _ = unsafe { nix::sys::signal::signal(signal, SigHandler::SigDfl) };
    let mut only = SigSet::empty();
    only.add(signal);
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&only), None);
    let _ = nix::sys::signal::raise(signal);
}

/// Systems whose C library has `sigtimedwait`, which tells who sent each
/// signal.
#[cfg(not(any(target_vendor = "apple", target_os = "openbsd", target_os = "illumos")))]
fn next(set: &SigSet, timeout: Option<Duration>) -> Result<Option<Received>, Errno> {
    // TimeSpec spells the fields for each system (time_t and c_long widths).
    let timeout = timeout.map(nix::sys::time::TimeSpec::from_duration);
    loop {
        // SAFETY: a zeroed siginfo for the kernel to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: a valid set, siginfo and timeout.
        let signal = unsafe {
            match &timeout {
                Some(timeout) => libc::sigtimedwait(set.as_ref(), &mut info, timeout.as_ref()),
                // No timeout is a wait for ever (Android has no sigwaitinfo).
                None => libc::sigtimedwait(set.as_ref(), &mut info, std::ptr::null()),
            }
        };
        match Errno::result(signal) {
            Ok(signal) => {
                return Ok(Some(Received {
                    signal: Signal::try_from(signal)?,
                    from_kernel: !sent_by_a_process(info.si_code),
                }))
            }
            Err(Errno::EAGAIN) => return Ok(None),
            Err(Errno::EINTR) => {}
            Err(error) => return Err(error),
        }
    }
}

/// Whether a signal's `si_code` says a process sent it (kill, sigqueue, a
/// thread kill), rather than the kernel (a terminal's keys, a hang-up).
/// Linux, Android and NetBSD give processes' signals codes of 0 or less;
/// FreeBSD and DragonFly number every code above 0x10000, `SI_USER` too.
#[cfg(not(any(target_vendor = "apple", target_os = "openbsd", target_os = "illumos")))]
fn sent_by_a_process(code: libc::c_int) -> bool {
    #[cfg(any(target_os = "freebsd", target_os = "dragonfly"))]
    {
        // SI_USER, SI_QUEUE and SI_LWP of <sys/signal.h>, which the libc
        // crate does not bind there.
        matches!(code, 0x10001 | 0x10002 | 0x10007)
    }
    #[cfg(not(any(target_os = "freebsd", target_os = "dragonfly")))]
    {
        code <= 0
    }
}

/// macOS and OpenBSD have neither `sigtimedwait` nor `sigwaitinfo` (and the
/// libc crate binds neither for illumos): look at the pending set between
/// short sleeps, and take what is there with `sigwait`. Who sent a signal is
/// unknown, so every one counts as sent by a process: there, a terminal's
/// Ctrl-C reaches the command twice, from the terminal and from pidfile.
#[cfg(any(target_vendor = "apple", target_os = "openbsd", target_os = "illumos"))]
fn next(set: &SigSet, timeout: Option<Duration>) -> Result<Option<Received>, Errno> {
    use std::time::Instant;

    let deadline = timeout.map(|timeout| Instant::now() + timeout);
    loop {
        let mut pending: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: a valid set for the kernel to fill.
        Errno::result(unsafe { libc::sigpending(&mut pending) })?;
        // SAFETY: a set the kernel filled.
        let pending = unsafe { SigSet::from_sigset_t_unchecked(pending) };
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

/// The signals whose default action stops a process.
pub(crate) fn is_stop(signal: Signal) -> bool {
    matches!(
        signal,
        Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU | Signal::SIGSTOP
    )
}

/// Whether `signal`'s default action ends a process (rather than ignoring
/// it, stopping it or continuing it).
pub(crate) fn ends_a_process(signal: Signal) -> bool {
    !is_stop(signal)
        && !matches!(
            signal,
            Signal::SIGCHLD | Signal::SIGCONT | Signal::SIGURG | Signal::SIGWINCH
        )
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;

    #[test]
    fn codes_of_signals_processes_send_are_told_from_the_kernel_s() {
        for sent in [libc::SI_USER, libc::SI_QUEUE, libc::SI_TKILL] {
            assert!(sent_by_a_process(sent), "{sent}");
        }
        for kernel in [libc::SI_KERNEL, libc::CLD_EXITED] {
            assert!(!sent_by_a_process(kernel), "{kernel}");
        }
    }
}
