use std::fmt;
use std::path::{Path, PathBuf};

use crate::imp::Held;
use crate::{Error, Pid};

/// Proof that this process holds a pidfile. Dropping it removes the file and
/// releases the lock.
///
/// The guard is returned by [`PidFile::acquire`](crate::PidFile::acquire).
/// Keep it alive for as long as the program should be the only one running:
/// binding it to `_` drops it at once.
///
/// # Resource leaking
///
/// The file is removed when the guard is dropped or [released](Self::release),
/// when the process calls [`std::process::exit`] while holding it, and, unless
/// [`TermSignal::Never`](crate::TermSignal::Never) was chosen, when the process
/// receives SIGTERM. The lock itself belongs to the open file, so the kernel
/// drops it whenever the process ends, however it ends.
///
/// On SIGKILL, on [`std::process::abort`], or on another signal whose default
/// action kills the process, the file stays behind. It is not locked, and it
/// names a process that no longer runs, so the next
/// [`acquire`](crate::PidFile::acquire) takes it over as stale.
///
/// On Windows the lock is `LockFileEx`'s, on one byte past the content, and
/// Windows drops it when the process ends, however it ends. The file is
/// removed on drop and release, on console events (see
/// [`TermSignal`](crate::TermSignal)), and at [`std::process::exit`] by a
/// TLS callback, which Windows runs as the process ends (Wine 8 does not:
/// there the file stays, and is taken over as stale). A process ended with
/// `TerminateProcess` (`taskkill /F`) leaves it behind, stale. Handles are
/// not inherited by spawned processes.
///
/// A child made with `fork` inherits the descriptor, and with it the lock:
/// the lock is only dropped when both processes have closed it. The child
/// never removes the file, whether it drops the guard, calls `exit` or is sent
/// SIGTERM. Programs started with `exec` do not inherit the descriptor.
///
/// Spawning from another thread is safe. A process spawned (by
/// [`std::process::Command`] or otherwise) while this thread acquires or
/// holds the pidfile has a copy of the descriptor between its fork and its
/// exec. An acquisition that is refused or fails unlocks before it closes,
/// which frees the lock in such copies too, so nothing is left locked. After
/// a release, such a copy can hold the lock on the removed file until its
/// exec, which does not stand in the way of the next acquisition: that one
/// creates a new file.
#[must_use = "the pidfile is released as soon as the guard is dropped"]
pub struct PidFileGuard {
    pub(crate) path: PathBuf,
    pub(crate) pid: Pid,
    /// What this system needs to hold and remove the file; `None` for a
    /// guard that shares another guard's file.
    pub(crate) held: Option<Held>,
}

impl PidFileGuard {
    pub(crate) fn owning(path: PathBuf, pid: Pid, held: Held) -> PidFileGuard {
        PidFileGuard {
            path,
            pid,
            held: Some(held),
        }
    }

    /// A guard for a file that this process already holds through another
    /// guard: it removes nothing.
    pub(crate) fn sharing(path: PathBuf, pid: Pid) -> PidFileGuard {
        PidFileGuard {
            path,
            pid,
            held: None,
        }
    }

    /// The pidfile's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The process id written in the file: this process's, unless
    /// [`set_pid`](Self::set_pid) recorded another.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Records another process's id in the held file, such as a child that
    /// this process started and supervises: the process that
    /// `kill $(cat file)` or a service manager must reach.
    ///
    /// The write follows the rules of [`acquire`](crate::PidFile::acquire):
    /// the file is emptied, then `"<pid>\n"` is written in one write, so a
    /// reader sees the old id, nothing, or the new id, never a piece of one
    /// over the other. The lock and the duty to remove the file stay
    /// with this process and this guard.
    ///
    /// While the file names a process other than its holder, a holder that dies
    /// without removing it leaves a file that names a live process as long as
    /// that process lives: [`acquire`](crate::PidFile::acquire) refuses it with
    /// [`Error::AlreadyRunning`], which is what a supervised child that
    /// outlived its supervisor calls for.
    ///
    /// ```
    /// use pid_runtime::{PidFile, Status};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("pid-doc-set-pid-{}", std::process::id()));
    /// let pidfile = PidFile::new("job").dir(&dir);
    /// let mut guard = pidfile.acquire()?;
    /// let child = std::process::Command::new("sleep").arg("10").spawn()?;
    /// let child_pid = pid_runtime::Pid::from_raw(child.id());
    /// guard.set_pid(child_pid)?;
    /// assert_eq!(std::fs::read_to_string(guard.path())?, format!("{child_pid}\n"));
    /// assert_eq!(pidfile.check()?, Status::Running { pid: Some(child_pid) });
    /// # let mut child = child; child.kill()?; child.wait()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the write fails; [`Error::NotOwningGuard`] when
    /// this guard does not own the file (see [`owns_file`](Self::owns_file)):
    /// the guard that owns it must record the id. A pid no process can have
    /// (`0`, or above `i32::MAX` on Unix) is [`Error::InvalidPid`].
    pub fn set_pid(&mut self, pid: Pid) -> Result<(), Error> {
        if !pid.is_possible() {
            return Err(Error::InvalidPid {
                path: self.path.clone(),
                pid,
            });
        }
        let Some(held) = self.held.as_mut() else {
            return Err(Error::NotOwningGuard {
                path: self.path.clone(),
            });
        };
        held.write_pid(&self.path, pid)?;
        self.pid = pid;
        Ok(())
    }

    /// Hands the pidfile to a daemon: forks twice with `setsid` between, so
    /// the daemon leads no session and has no terminal, makes the file name
    /// the daemon, and only then lets the calling process exit with status
    /// 0, without removing the file. Returns in the daemon alone, with the
    /// guard it now owns.
    ///
    /// Acquire first, then daemonize: a refusal still reaches the terminal
    /// the program was started from, and the file never goes unheld. A
    /// service manager that reads the pidfile when the started process
    /// exits (systemd `Type=forking` with `PIDFile=`, SysV scripts) finds
    /// the daemon's pid there.
    ///
    /// In the daemon, standard input, output and error that are a terminal
    /// are replaced by `/dev/null`; those redirected to a file or a pipe are
    /// kept. The working directory and umask are left as they are. No
    /// descriptor of this library's leaks into the daemon's own children:
    /// they are all close-on-exec.
    ///
    /// This replaces the `daemonize` crate's `Daemonize::start`: where that
    /// writes the pidfile after the parent has gone, and locks it in a way a
    /// second daemon does not see, here the lock is never dropped:
    ///
    /// ```no_run
    /// # fn main() -> Result<(), pid_runtime::Error> {
    /// let guard = pid_runtime::PidFile::new("mydaemon").dir("/run").acquire()?;
    /// // SAFETY: no thread has been started yet.
    /// let guard = unsafe { guard.daemonize() }?;
    /// // ... the daemon's work, holding `guard` ...
    /// # drop(guard); Ok(()) }
    /// ```
    ///
    /// # Safety
    ///
    /// The process must have only one thread: a child made by `fork` in a
    /// process with other threads may run only async-signal-safe code, and
    /// the daemon goes on to run the whole program.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwningGuard`] for a guard that does not own its file;
    /// [`Error::Io`] when a fork or the handover fails, in which case the
    /// calling process keeps the guard and goes on.
    #[cfg(unix)]
    #[cfg_attr(docsrs, doc(cfg(unix)))]
    pub unsafe fn daemonize(self) -> Result<PidFileGuard, Error> {
        // SAFETY: the caller's promise, passed on.
        unsafe { crate::imp::daemonize(self) }
    }

    /// Whether this guard removes the file when released. False for the extra
    /// guards that [`allow_same_pid`](crate::PidFile::allow_same_pid) hands out
    /// while another guard of this process holds the file.
    pub fn owns_file(&self) -> bool {
        self.held.is_some()
    }

    /// Removes the file and releases the lock, as dropping the guard does, but
    /// reports a file that could not be removed.
    ///
    /// The file is removed only while its path still names the file that was
    /// locked, and only by the process that acquired it: a forked child just
    /// closes its copy of the descriptor.
    ///
    /// ```
    /// # fn main() -> Result<(), pid_runtime::Error> {
    /// # let dir = std::env::temp_dir().join(format!("pid-doc-release-{}", std::process::id()));
    /// let guard = pid_runtime::PidFile::new("job").dir(&dir).acquire()?;
    /// let path = guard.path().to_path_buf();
    /// guard.release()?;
    /// assert!(!path.exists());
    /// # Ok(()) }
    /// ```
    pub fn release(mut self) -> Result<(), Error> {
        match self.held.take() {
            Some(held) => held.release(&self.path),
            None => Ok(()),
        }
    }
}

impl Drop for PidFileGuard {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            let _ = held.release(&self.path);
        }
    }
}

impl fmt::Debug for PidFileGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PidFileGuard")
            .field("path", &self.path)
            .field("pid", &self.pid)
            .field("owns_file", &self.owns_file())
            .finish()
    }
}
