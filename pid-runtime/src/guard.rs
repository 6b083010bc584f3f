use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::unistd::Pid;

use crate::cleanup::{self, Critical, Registration};
use crate::file::write_pid;
use crate::process::current_pid;
use crate::Error;

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
/// A child made with `fork` inherits the descriptor, and with it the lock:
/// the lock is only dropped when both processes have closed it. The child
/// never removes the file, whether it drops the guard, calls `exit` or is sent
/// SIGTERM. Programs started with `exec` do not inherit the descriptor.
#[must_use = "the pidfile is released as soon as the guard is dropped"]
pub struct PidFileGuard {
    path: PathBuf,
    pid: Pid,
    held: Option<Held>,
}

/// The lock and the table entry of a guard that owns its file.
struct Held {
    file: OwnedFd,
    registration: Registration,
    /// How many bytes the file holds: what was last written to it.
    len: u64,
}

impl PidFileGuard {
    pub(crate) fn owning(
        path: PathBuf,
        pid: Pid,
        file: OwnedFd,
        registration: Registration,
        len: u64,
    ) -> PidFileGuard {
        PidFileGuard {
            path,
            pid,
            held: Some(Held {
                file,
                registration,
                len,
            }),
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
    /// let child_pid = pid_runtime::Pid::from_raw(child.id() as i32);
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
    /// the guard that owns it must record the id. A pid that is not positive
    /// is [`Error::InvalidPid`].
    pub fn set_pid(&mut self, pid: Pid) -> Result<(), Error> {
        if pid.as_raw() <= 0 {
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
        held.len = write_pid(&self.path, held.file.as_fd(), held.len, pid)?;
        self.pid = pid;
        Ok(())
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

impl Held {
    fn release(self, path: &Path) -> Result<(), Error> {
        let _critical = Critical::enter();
        let Some(entry) = self.registration.unregister() else {
            // A handler at process end took the entry and removes the file:
            // closing now could let the inode be reused under it.
            std::mem::forget(self.file);
            return Ok(());
        };
        // Unlink before close: while the lock is held, no one else can have
        // created a file at this path, so it is ours to remove.
        let removed = if entry.pid == current_pid().as_raw() {
            cleanup::remove_if_same(&entry).map_err(|error| Error::io(path, "remove", error))
        } else {
            Ok(false)
        };
        drop(self.file);
        removed.map(drop)
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
