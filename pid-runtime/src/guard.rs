use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::Pid;

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
        held.len = write_pid(&self.path, held.file.as_fd(), held.len, pid)?;
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
    pub unsafe fn daemonize(mut self) -> Result<PidFileGuard, Error> {
        use std::io::{Read, Write};
        if self.held.is_none() {
            return Err(Error::NotOwningGuard {
                path: self.path.clone(),
            });
        }
        let failed = |path: &Path, error: nix::Error| Error::io(path, "hand to a daemon", error);
        // Output buffered now would be written twice, by two processes.
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        let (ready_r, ready_w) = close_on_exec_pipe().map_err(|error| failed(&self.path, error))?;
        // SAFETY: the caller promises a single thread.
        match unsafe { nix::unistd::fork() }.map_err(|error| failed(&self.path, error))? {
            nix::unistd::ForkResult::Parent { child } => {
                drop(ready_w);
                let mut said = [0_u8; 1];
                let ready = std::fs::File::from(ready_r)
                    .read(&mut said)
                    .is_ok_and(|len| len == 1);
                let _ = nix::sys::wait::waitpid(child, None);
                if !ready {
                    return Err(failed(&self.path, nix::Error::ECHILD));
                }
                // The daemon holds the lock and the file names it: leave
                // both to it, running no destructor and no exit handler.
                std::mem::forget(self);
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
        let held = self.held.take().expect("checked above");
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
        held.len = match write_pid(&self.path, held.file.as_fd(), held.len, me) {
            Ok(len) => len,
            // SAFETY: the daemon cannot tell the waiting process; it ends.
            Err(_) => unsafe { nix::libc::_exit(1) },
        };
        self.held = Some(held);
        self.pid = me;
        let _ = std::fs::File::from(ready_w).write_all(b"1");
        Ok(self)
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
        let removed = if entry.pid == current_pid() {
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
