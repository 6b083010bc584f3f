//! What a guard holds on Unix: the locked descriptor and the cleanup entry,
//! and the handover to a daemon.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use super::cleanup::{self, Critical, Registration};
use super::file::write_pid;
use super::process::current_pid;
use crate::{Error, Pid, PidFileGuard};

/// The lock and the table entry of a guard that owns its file.
pub(crate) struct Held {
    pub(crate) file: OwnedFd,
    pub(crate) registration: Registration,
    /// How many bytes the file holds: what was last written to it.
    pub(crate) len: u64,
}

impl Held {
    /// Records `pid` in the file.
    pub(crate) fn write_pid(&mut self, path: &Path, pid: Pid) -> Result<(), Error> {
        self.len = write_pid(path, self.file.as_fd(), self.len, pid)?;
        Ok(())
    }
}

/// [`PidFileGuard::daemonize`] here.
///
/// # Safety
///
/// As [`PidFileGuard::daemonize`].
pub(crate) unsafe fn daemonize(mut guard: PidFileGuard) -> Result<PidFileGuard, Error> {
    use std::io::{Read, Write};
    if guard.held.is_none() {
        return Err(Error::NotOwningGuard {
            path: guard.path.clone(),
        });
    }
    let failed = |path: &Path, error: nix::Error| Error::io(path, "hand to a daemon", error);
    // Output buffered now would be written twice, by two processes.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let (ready_r, ready_w) = close_on_exec_pipe().map_err(|error| failed(&guard.path, error))?;
    // SAFETY: the caller promises a single thread.
    match unsafe { nix::unistd::fork() }.map_err(|error| failed(&guard.path, error))? {
        nix::unistd::ForkResult::Parent { child } => {
            drop(ready_w);
            let mut said = [0_u8; 1];
            let ready = std::fs::File::from(ready_r)
                .read(&mut said)
                .is_ok_and(|len| len == 1);
            let _ = nix::sys::wait::waitpid(child, None);
            if !ready {
                return Err(failed(&guard.path, nix::Error::ECHILD));
            }
            // The daemon holds the lock and the file names it: leave
            // both to it, running no destructor and no exit handler.
            std::mem::forget(guard);
            // SAFETY: ends this process at once.
            unsafe { nix::libc::_exit(0) }
        }
        nix::unistd::ForkResult::Child => {}
    }
    drop(ready_r);
    let _ = nix::unistd::setsid();
    // SAFETY: still one thread, in the first child.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {}
        // SAFETY: the first child ends at once; the daemon goes on.
        _ => unsafe { nix::libc::_exit(0) },
    }
    quiet_terminal_streams();
    let me = current_pid();
    let held = guard.held.take().expect("checked above");
    let Some(mut entry) = held.registration.unregister() else {
        // SAFETY: a handler at exit took the entry: nothing to hand over.
        unsafe { nix::libc::_exit(1) }
    };
    entry.pid = me;
    let registration = cleanup::register(*entry, crate::TermSignal::Never);
    let mut held = Held {
        file: held.file,
        registration,
        len: held.len,
    };
    held.len = match write_pid(&guard.path, held.file.as_fd(), held.len, me) {
        Ok(len) => len,
        // SAFETY: the daemon cannot tell the waiting process; it ends.
        Err(_) => unsafe { nix::libc::_exit(1) },
    };
    guard.held = Some(held);
    guard.pid = me;
    let _ = std::fs::File::from(ready_w).write_all(b"1");
    Ok(guard)
}

/// A pipe whose ends the daemon's own children do not inherit. macOS has
/// no `pipe2`; the fork that follows is in a single thread, so setting the
/// flag after `pipe` leaves no window for another exec.
fn close_on_exec_pipe() -> nix::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = nix::unistd::pipe()?;
    for end in [&read, &write] {
        nix::fcntl::fcntl(
            end,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )?;
    }
    Ok((read, write))
}

/// Replaces standard streams that are a terminal with `/dev/null`.
fn quiet_terminal_streams() {
    use std::os::fd::AsRawFd;
    let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    else {
        return;
    };
    for stream in 0..=2 {
        // SAFETY: isatty and dup2 on standard descriptor numbers.
        unsafe {
            if nix::libc::isatty(stream) == 1 {
                nix::libc::dup2(null.as_raw_fd(), stream);
            }
        }
    }
}

impl Held {
    /// Removes the file, then closes it.
    pub(crate) fn release(self, path: &Path) -> Result<(), Error> {
        let _critical = Critical::enter();
        let Some(entry) = self.registration.unregister() else {
            // A handler at process end took the entry and removes the file:
            // closing now could let the inode be reused under it.
            std::mem::forget(self.file);
            return Ok(());
        };
        // Unlink before close: while the lock is held, no one else can have
        // created a file at this path, so it is ours to remove.
        let removed = if entry.pid == current_pid() {
            cleanup::remove_if_same(&entry).map_err(|error| Error::io(path, "remove", error))
        } else {
            Ok(false)
        };
        drop(self.file);
        removed.map(drop)
    }
}
