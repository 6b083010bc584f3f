use std::ffi::{CString, OsString};
use std::io::Write as _;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::libc;
use nix::sys::stat::{fstat, FileStat, Mode};
use nix::unistd::{Gid, Pid, Uid};

use crate::cleanup::{self, Entry};
use crate::content::{self, Content};
use crate::liveness::{self, Liveness};
use crate::lock::{self, Exclusive, Head};
use crate::process::current_pid;
use crate::{path, Error, PidFileGuard};

/// The mode a new pidfile gets, whatever the umask.
const DEFAULT_MODE: u32 = 0o644;

/// How many times a file replaced between open and lock is opened again. Each
/// retry means another process released the file in that instant, so this
/// is only reached if something deletes locked files in a loop.
const MAX_REOPENS: usize = 1_000;

/// A pidfile: where it lives and how to take it.
///
/// Building one touches nothing on disk; [`acquire`](Self::acquire) takes the
/// file, [`check`](Self::check) looks at it.
///
/// ```
/// use pid_runtime::PidFile;
///
/// # fn main() -> Result<(), pid_runtime::Error> {
/// # let dir = std::env::temp_dir().join(format!("pid-doc-{}", std::process::id()));
/// let pidfile = PidFile::new("indexer").dir(&dir).mode(0o600);
/// let guard = pidfile.acquire()?;
/// assert_eq!(std::fs::read_to_string(guard.path()).unwrap(), format!("{}\n", std::process::id()));
///
/// // A second acquisition is refused with the holder's pid, even in-process.
/// let refused = pidfile.acquire().unwrap_err();
/// assert!(refused.is_already_running());
///
/// drop(guard); // removes the file
/// assert!(!dir.join("indexer.pid").exists());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PidFile {
    name: OsString,
    dir: Option<PathBuf>,
    enforce_pid_suffix: bool,
    mode: u32,
    owner: (Option<Uid>, Option<Gid>),
    allow_same_pid: bool,
    term_signal: TermSignal,
    force_tmpdir: bool,
    resolved: OnceLock<PathBuf>,
}

/// Whether a SIGTERM handler removes held pidfiles before the process dies.
///
/// The handler removes the files this process holds, restores SIGTERM's
/// default action and raises it again, so the process still dies of SIGTERM
/// as its parent expects. It is installed once per process, at the first
/// acquisition that asks for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TermSignal {
    /// Install the handler only when SIGTERM has its default action, so a
    /// program (or runtime) that handles SIGTERM itself keeps its handler.
    #[default]
    Auto,
    /// Install the handler in place of any other.
    Always,
    /// Leave SIGTERM alone.
    Never,
}

/// What [`PidFile::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// There is no pidfile.
    NotRunning,
    /// A pidfile nobody holds, whose process is gone or whose id now belongs
    /// to a younger process; `None` when the file is empty. An acquisition
    /// would take it over.
    Stale {
        /// The process id in the file.
        pid: Option<Pid>,
    },
    /// Someone holds the lock, or the file is not locked but names a live
    /// process that may have written it. An acquisition would be refused.
    Running {
        /// The process id in the file; `None` when the holder has not written
        /// one or wrote something else.
        pid: Option<Pid>,
    },
}

impl Status {
    /// True for [`Status::Running`].
    pub fn is_running(&self) -> bool {
        matches!(self, Status::Running { .. })
    }
}

impl PidFile {
    /// A pidfile called `name`, with `.pid` added unless it ends so already.
    ///
    /// The name is checked when the path is first needed: one that is empty,
    /// `.` or `..`, or holds `/` or NUL gives [`Error::InvalidName`].
    pub fn new(name: impl Into<OsString>) -> PidFile {
        PidFile {
            name: name.into(),
            dir: None,
            enforce_pid_suffix: true,
            mode: DEFAULT_MODE,
            owner: (None, None),
            allow_same_pid: false,
            term_signal: TermSignal::Auto,
            force_tmpdir: false,
            resolved: OnceLock::new(),
        }
    }

    /// A pidfile named after this program: the file name of `argv[0]`, as
    /// Python `pid` does.
    pub fn for_program() -> PidFile {
        PidFile::new(path::program_name().unwrap_or_default())
    }

    /// The directory to keep the file in; created when missing. A relative
    /// directory is taken from the working directory of the first call that
    /// needs the path.
    ///
    /// Without one, the first of `/run/user/<euid>`, `/var/run/user/<euid>`,
    /// `/run` and `/var/run` that the effective user can write is used, else
    /// the temporary directory.
    pub fn dir(self, dir: impl Into<PathBuf>) -> PidFile {
        self.reconfigured(|pidfile| pidfile.dir = Some(dir.into()))
    }

    /// Whether `.pid` is added to a name that lacks it (default: true).
    pub fn enforce_pid_suffix(self, yes: bool) -> PidFile {
        self.reconfigured(|pidfile| pidfile.enforce_pid_suffix = yes)
    }

    /// The file's permission bits (default `0o644`), applied exactly: the
    /// umask does not mask them. Bits beyond `0o7777` give
    /// [`Error::InvalidMode`] at acquisition.
    pub fn mode(self, mode: u32) -> PidFile {
        self.reconfigured(|pidfile| pidfile.mode = mode)
    }

    /// Changes the file's owner and group at acquisition (default: leave them
    /// as created). Changing the owner usually needs privilege.
    pub fn owner(self, uid: Option<Uid>, gid: Option<Gid>) -> PidFile {
        self.reconfigured(|pidfile| pidfile.owner = (uid, gid))
    }

    /// Whether a file that names this very process may be taken (default:
    /// false). While another guard of this process holds the file, a second
    /// acquisition then succeeds with a guard that does not own the file and
    /// will not remove it.
    pub fn allow_same_pid(self, yes: bool) -> PidFile {
        self.reconfigured(|pidfile| pidfile.allow_same_pid = yes)
    }

    /// Whether a SIGTERM handler removes the file (default
    /// [`TermSignal::Auto`]).
    pub fn term_signal(self, policy: TermSignal) -> PidFile {
        self.reconfigured(|pidfile| pidfile.term_signal = policy)
    }

    /// Whether to skip the run directories and use the temporary directory
    /// when no directory is given (default: false).
    pub fn force_tmpdir(self, yes: bool) -> PidFile {
        self.reconfigured(|pidfile| pidfile.force_tmpdir = yes)
    }

    fn reconfigured(mut self, change: impl FnOnce(&mut PidFile)) -> PidFile {
        change(&mut self);
        self.resolved = OnceLock::new();
        self
    }

    /// Where the file is, or would be. Looks for a writable run directory when
    /// none was given, but creates nothing.
    ///
    /// ```
    /// let path = pid_runtime::PidFile::new("worker").dir("/srv/run").path().unwrap();
    /// assert_eq!(path, std::path::Path::new("/srv/run/worker.pid"));
    /// ```
    pub fn path(&self) -> Result<PathBuf, Error> {
        self.resolved_path().cloned()
    }

    fn resolved_path(&self) -> Result<&PathBuf, Error> {
        if let Some(path) = self.resolved.get() {
            return Ok(path);
        }
        let file_name = path::file_name(&self.name, self.enforce_pid_suffix)?;
        let dir = match &self.dir {
            Some(dir) => std::path::absolute(dir).map_err(|error| Error::Io {
                path: dir.clone(),
                operation: "resolve",
                error,
            })?,
            None => path::default_dir(self.force_tmpdir),
        };
        Ok(self.resolved.get_or_init(|| dir.join(file_name)))
    }

    /// Takes the pidfile: locks it, judges what it held, and writes this
    /// process's id.
    ///
    /// The process id is read now, so a program that forks or daemonizes
    /// first records the right process.
    ///
    /// # Errors
    ///
    /// - [`Error::AlreadyLocked`]: another process (or another guard of this
    ///   one) holds the lock; it names the holder's pid when the file has one.
    /// - [`Error::AlreadyRunning`]: nobody holds the lock, but the file names
    ///   a live process that started before the file was last written.
    /// - [`Error::Unreadable`]: the file holds something other than a process
    ///   id; it is left untouched.
    /// - [`Error::NotARegularFile`]: the path is a symlink, directory, FIFO,
    ///   socket, device or a file with several links; left untouched.
    /// - [`Error::InvalidName`], [`Error::InvalidMode`],
    ///   [`Error::NotADirectory`], [`Error::Io`].
    ///
    /// A file whose process is gone, is a zombie, or whose id now belongs to a
    /// process that started after the file was written, is stale: it is taken
    /// over.
    pub fn acquire(&self) -> Result<PidFileGuard, Error> {
        if self.mode & !0o7777 != 0 {
            return Err(Error::InvalidMode { mode: self.mode });
        }
        let path = self.resolved_path()?;
        let me = current_pid();
        for _ in 0..MAX_REOPENS {
            let file = lock::open_for_acquire(path, self.mode)?;
            match lock::lock_exclusive(file.as_fd()) {
                Ok(Exclusive::Taken) => {}
                Ok(Exclusive::Held | Exclusive::SharedTooLong) => {
                    let holder = lock::holder_pid(file.as_fd());
                    if self.allow_same_pid && holder == Some(me) {
                        return Ok(PidFileGuard::sharing(path.clone(), me));
                    }
                    return Err(Error::AlreadyLocked {
                        path: path.clone(),
                        pid: holder,
                    });
                }
                Err(error) => return Err(Error::io(path, "lock", error)),
            }
            let Some(stat) = locked_file_stat(path, file.as_fd())? else {
                continue;
            };
            if !still_at_path(path, &stat)? {
                continue;
            }
            if stat.st_size > 0 {
                self.judge_old_content(path, file.as_fd(), &stat, me)?;
            }
            let len = self.write_pid(path, file.as_fd(), &stat, me)?;
            return Ok(self.hold(path, me, file, &stat, len));
        }
        Err(Error::Io {
            path: path.clone(),
            operation: "lock",
            error: std::io::Error::other("the file kept being replaced while it was being locked"),
        })
    }

    /// Refuses a file whose content says another process may own it.
    fn judge_old_content(
        &self,
        path: &Path,
        file: BorrowedFd<'_>,
        stat: &FileStat,
        me: Pid,
    ) -> Result<(), Error> {
        match recorded_pid(path, file)? {
            None => Ok(()),
            Some(pid) if pid == me && self.allow_same_pid => Ok(()),
            Some(pid) => match liveness::judge(pid, modified(stat)) {
                Liveness::Dead | Liveness::Reused => Ok(()),
                Liveness::Alive => Err(Error::AlreadyRunning {
                    path: path.to_path_buf(),
                    pid,
                }),
            },
        }
    }

    /// Sets mode and owner on the descriptor, then writes `"<pid>\n"`;
    /// returns the length written.
    fn write_pid(
        &self,
        path: &Path,
        file: BorrowedFd<'_>,
        stat: &FileStat,
        pid: Pid,
    ) -> Result<u64, Error> {
        // mode_t is 16 bits wide on some systems.
        #[allow(clippy::unnecessary_cast)]
        let current_mode = stat.st_mode as u32 & 0o7777;
        if current_mode != self.mode {
            let mode = Mode::from_bits_retain(self.mode as libc::mode_t);
            nix::sys::stat::fchmod(file, mode).map_err(|error| Error::io(path, "chmod", error))?;
        }
        let (uid, gid) = self.owner;
        let uid = uid.filter(|uid| uid.as_raw() != stat.st_uid);
        let gid = gid.filter(|gid| gid.as_raw() != stat.st_gid);
        if uid.is_some() || gid.is_some() {
            nix::unistd::fchown(file, uid, gid).map_err(|error| Error::io(path, "chown", error))?;
        }
        // st_size is never negative.
        write_pid_at_start(path, file, stat.st_size.max(0) as u64, pid)
    }

    fn hold(&self, path: &Path, me: Pid, file: OwnedFd, stat: &FileStat, len: u64) -> PidFileGuard {
        let entry = Entry {
            // The name was checked for NUL; a directory given with one could
            // not have been opened.
            path: CString::new(path.as_os_str().as_bytes()).expect("an opened path has no NUL"),
            dev: stat.st_dev,
            ino: stat.st_ino,
            pid: me.as_raw(),
        };
        let registration = cleanup::register(entry, self.term_signal);
        PidFileGuard::owning(path.to_path_buf(), me, file, registration, len)
    }

    /// Looks at the pidfile and says what [`acquire`](Self::acquire) would
    /// meet, without taking, writing, truncating or removing anything.
    ///
    /// It opens the file read-only and may hold a shared lock on it for an
    /// instant; an acquisition that meets that lock waits for it to go.
    ///
    /// ```
    /// use pid_runtime::{PidFile, Status};
    ///
    /// # fn main() -> Result<(), pid_runtime::Error> {
    /// # let dir = std::env::temp_dir().join(format!("pid-doc-check-{}", std::process::id()));
    /// let pidfile = PidFile::new("report").dir(&dir);
    /// assert_eq!(pidfile.check()?, Status::NotRunning);
    /// let guard = pidfile.acquire()?;
    /// assert_eq!(pidfile.check()?, Status::Running { pid: Some(guard.pid()) });
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The same as [`acquire`](Self::acquire) for a file it cannot judge:
    /// [`Error::Unreadable`], [`Error::NotARegularFile`], and the errors of
    /// name, directory and system calls.
    pub fn check(&self) -> Result<Status, Error> {
        let path = self.resolved_path()?;
        for _ in 0..MAX_REOPENS {
            let Some(file) = lock::open_for_check(path)? else {
                return Ok(Status::NotRunning);
            };
            if !lock::lock_shared(file.as_fd()).map_err(|error| Error::io(path, "lock", error))? {
                return Ok(Status::Running {
                    pid: lock::holder_pid(file.as_fd()),
                });
            }
            let Some(stat) = locked_file_stat(path, file.as_fd())? else {
                continue;
            };
            let Some(pid) = recorded_pid(path, file.as_fd())? else {
                return Ok(Status::Stale { pid: None });
            };
            if pid == current_pid() && self.allow_same_pid {
                return Ok(Status::Running { pid: Some(pid) });
            }
            return Ok(match liveness::judge(pid, modified(&stat)) {
                Liveness::Dead | Liveness::Reused => Status::Stale { pid: Some(pid) },
                Liveness::Alive => Status::Running { pid: Some(pid) },
            });
        }
        Ok(Status::Running { pid: None })
    }
}

/// The stat of a locked file; `None` when it was unlinked before the lock was
/// taken (its holder released it), so the path must be opened again.
fn locked_file_stat(path: &Path, file: BorrowedFd<'_>) -> Result<Option<FileStat>, Error> {
    let stat = fstat(file).map_err(|error| Error::io(path, "inspect", error))?;
    if stat.st_nlink == 0 {
        return Ok(None);
    }
    match lock::kind_of(&stat) {
        None => Ok(Some(stat)),
        Some(kind) => Err(Error::NotARegularFile {
            path: path.to_path_buf(),
            kind,
        }),
    }
}

/// Whether `path` still names the locked file: the previous holder may have
/// unlinked it and another process created a new one between our open and
/// our lock. Without this, two processes could each hold a file at the path.
fn still_at_path(path: &Path, stat: &FileStat) -> Result<bool, Error> {
    match nix::sys::stat::lstat(path) {
        Ok(now) => Ok(lock::same_file(&now, stat)),
        Err(nix::Error::ENOENT) => Ok(false),
        Err(error) => Err(Error::io(path, "inspect", error)),
    }
}

/// The process id the file records; `None` when it is blank, and
/// [`Error::Unreadable`] when it holds anything but a process id.
fn recorded_pid(path: &Path, file: BorrowedFd<'_>) -> Result<Option<Pid>, Error> {
    let head = Head::read(file).map_err(|error| Error::io(path, "read", error))?;
    match head.content() {
        Content::Empty => Ok(None),
        Content::Pid(pid) => Ok(Some(pid)),
        Content::Invalid => Err(Error::Unreadable {
            path: path.to_path_buf(),
            content: content::excerpt(head.bytes()),
        }),
    }
}

/// Writes `"<pid>\n"` at offset 0 in one write, then cuts off the rest when
/// the old content was longer than `old_len` bytes. Returns the new length.
///
/// The file is not emptied first: truncating to zero makes some file systems
/// flush on close, and a reader of the first line sees either the old pid or
/// the new one, never a mix (a shorter pid ends with its own newline).
pub(crate) fn write_pid_at_start(
    path: &Path,
    file: BorrowedFd<'_>,
    old_len: u64,
    pid: Pid,
) -> Result<u64, Error> {
    let mut text = [0_u8; 16];
    let len = {
        let mut cursor = &mut text[..];
        writeln!(cursor, "{pid}").expect("a pid fits in 16 bytes");
        16 - cursor.len()
    };
    let written = nix::sys::uio::pwrite(file, &text[..len], 0)
        .map_err(|error| Error::io(path, "write", error))?;
    if written != len {
        return Err(Error::io(path, "write", nix::Error::EIO));
    }
    let len = len as u64;
    if old_len > len {
        nix::unistd::ftruncate(file, len as libc::off_t)
            .map_err(|error| Error::io(path, "truncate", error))?;
    }
    Ok(len)
}

/// The file's modification time in seconds since the epoch.
fn modified(stat: &FileStat) -> f64 {
    stat.st_mtime as f64 + stat.st_mtime_nsec as f64 / 1e9
}
