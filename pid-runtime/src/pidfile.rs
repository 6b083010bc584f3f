use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::imp;
use crate::path::{self, DefaultDir};
use crate::term_signal::TermSignal;
use crate::wait::Watch;
use crate::{Error, Pid, PidFileGuard};

/// The mode a new pidfile gets, whatever the umask.
pub(crate) const DEFAULT_MODE: u32 = 0o644;

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
#[must_use = "a PidFile does nothing until it is acquired or checked"]
pub struct PidFile {
    pub(crate) name: OsString,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) enforce_pid_suffix: bool,
    pub(crate) mode: u32,
    pub(crate) owner: (Option<u32>, Option<u32>),
    pub(crate) allow_same_pid: bool,
    pub(crate) term_signal: TermSignal,
    pub(crate) force_tmpdir: bool,
    pub(crate) allow_insecure_dir: bool,
    pub(crate) resolved: OnceLock<Resolved>,
}

/// Where a [`PidFile`] is, found once.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) path: PathBuf,
    /// The user's private directory in the temporary directory.
    #[cfg_attr(windows, allow(dead_code))]
    pub(crate) private_dir: bool,
    /// What this system learnt of the way to it.
    #[cfg_attr(windows, allow(dead_code))]
    pub(crate) known: imp::Known,
}

impl Resolved {
    pub(crate) fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("/"))
    }

    #[cfg_attr(windows, allow(dead_code))]
    pub(crate) fn dir_mode(&self) -> u32 {
        if self.private_dir {
            0o700
        } else {
            0o755
        }
    }
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

    /// The process id the file names, running or stale; `None` when there
    /// is no file or it names none.
    ///
    /// ```
    /// use pid_runtime::{Pid, Status};
    ///
    /// assert_eq!(Status::Running { pid: Some(Pid::from_raw(42)) }.pid(), Some(Pid::from_raw(42)));
    /// assert_eq!(Status::NotRunning.pid(), None);
    /// ```
    #[must_use]
    pub fn pid(&self) -> Option<Pid> {
        match self {
            Status::NotRunning => None,
            Status::Stale { pid } | Status::Running { pid } => *pid,
        }
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
            allow_insecure_dir: false,
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
    /// needs the path, once per `PidFile` value (clones made after that
    /// keep it).
    ///
    /// Without one, the first of `/run/user/<euid>`, `/var/run/user/<euid>`,
    /// `/run` and `/var/run` that the effective user can write is used, else
    /// `pidfile-<euid>` in the temporary directory: a directory of the user's
    /// own, made `0700`, refused when it is a symbolic link or belongs to
    /// someone else, since in the shared temporary directory itself any
    /// other user could take the name first. A set-user-id or set-group-id
    /// program ignores `TMPDIR` there and uses `/tmp`.
    ///
    /// On Windows the default is the user's application data (`%APPDATA%`),
    /// as Python `pid` has it, or the user's own temporary directory with
    /// [`force_tmpdir`](Self::force_tmpdir).
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
    ///
    /// Unix only: on Windows, any other mode than the default gives
    /// [`Error::Unsupported`], as Python `pid` raises
    /// `PidFileConfigurationError` there.
    pub fn mode(self, mode: u32) -> PidFile {
        self.reconfigured(|pidfile| pidfile.mode = mode)
    }

    /// Changes the file's owner and group, by user and group id, at
    /// acquisition (default: leave them as created). Changing the owner
    /// usually needs privilege.
    ///
    /// Unix only: on Windows, setting either gives [`Error::Unsupported`].
    pub fn owner(self, uid: Option<u32>, gid: Option<u32>) -> PidFile {
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

    /// Whether to skip the run directories and use this user's private
    /// directory in the temporary directory when no directory is given
    /// (default: false). See [`dir`](Self::dir).
    pub fn force_tmpdir(self, yes: bool) -> PidFile {
        self.reconfigured(|pidfile| pidfile.force_tmpdir = yes)
    }

    /// Whether to use a directory that someone other than root and this user
    /// could change (default: false): a directory they own or may write
    /// without the sticky bit, or a symbolic link of theirs on the way. Such
    /// a user can then replace, forge or delete the pidfile, or point it at
    /// a file of this user's choosing, so that two instances run, or a root
    /// daemon writes where it should not.
    ///
    /// # Security
    ///
    /// By default every directory and symbolic link from `/` to the pidfile's
    /// directory must belong to root or to the effective user, and none may
    /// be writable by others (or by a group other than root's and the
    /// effective one) unless it has the sticky bit, as `/tmp` has. Otherwise
    /// [`acquire`](Self::acquire) and [`check`](Self::check) give
    /// [`Error::InsecureDirectory`] naming the culprit. The check runs once
    /// per `PidFile`, at its first acquisition or check.
    ///
    /// On Windows, where rights are access control lists, there is no such
    /// check and this option changes nothing: keep pidfiles in a directory
    /// of the user's own, as the default one is.
    pub fn allow_insecure_dir(self, yes: bool) -> PidFile {
        self.reconfigured(|pidfile| pidfile.allow_insecure_dir = yes)
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
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a name that cannot be a file name, and
    /// [`Error::Io`] when a relative directory cannot be made absolute.
    pub fn path(&self) -> Result<PathBuf, Error> {
        self.resolved().map(|resolved| resolved.path.clone())
    }

    pub(crate) fn resolved(&self) -> Result<&Resolved, Error> {
        if let Some(resolved) = self.resolved.get() {
            return Ok(resolved);
        }
        let file_name = path::file_name(&self.name, self.enforce_pid_suffix)?;
        let (dir, private_dir) = match &self.dir {
            Some(dir) => {
                let dir = std::path::absolute(dir).map_err(|error| Error::Io {
                    path: dir.clone(),
                    operation: "resolve",
                    error,
                })?;
                (dir, false)
            }
            None => match imp::default_dir(self.force_tmpdir) {
                DefaultDir::Run(dir) => (dir, false),
                DefaultDir::Private(dir) => (dir, true),
            },
        };
        Ok(self.resolved.get_or_init(|| Resolved {
            path: dir.join(file_name),
            private_dir,
            known: imp::Known::default(),
        }))
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
    /// - [`Error::HeldForReading`]: only shared locks were in the way, for
    ///   longer than an acquisition waits (about a second).
    /// - [`Error::CannotTakeOver`]: a stale file that belongs to another user,
    ///   or that this user may not write; left untouched.
    /// - [`Error::Unreadable`]: the file holds something other than a process
    ///   id; it is left untouched.
    /// - [`Error::NotARegularFile`], [`Error::PseudoFileSystem`]: the path is
    ///   a symlink, directory, FIFO, socket, device, a file with several
    ///   links, or a kernel's setting; never opened, left untouched.
    /// - [`Error::InsecureDirectory`]: see [`allow_insecure_dir`](Self::allow_insecure_dir).
    /// - [`Error::KeptChanging`]: the file kept being replaced.
    /// - [`Error::InvalidName`], [`Error::InvalidMode`],
    ///   [`Error::NotADirectory`], [`Error::Io`].
    ///
    /// A file whose process is gone, is a zombie, or whose id now belongs to a
    /// process that started after the file was written, is stale: it is taken
    /// over. An acquisition that fails removes the file it created, and
    /// leaves a file it did not create as it found it.
    pub fn acquire(&self) -> Result<PidFileGuard, Error> {
        imp::acquire(self)
    }

    /// Takes the pidfile as [`acquire`](Self::acquire) does, waiting for at
    /// most `timeout` while another process holds it.
    ///
    /// The wait does not poll: on Linux an inotify watch on the directory
    /// wakes it when the holder removes the file or closes it (as a holder
    /// that dies does), so it takes over within a millisecond or so; where
    /// there is no inotify, it looks again after pauses of 1 ms growing to
    /// 25 ms. It runs in the calling thread and leaves nothing behind: no
    /// signal handler, no thread.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pid_runtime::PidFile;
    ///
    /// # fn main() -> Result<(), pid_runtime::Error> {
    /// # let dir = std::env::temp_dir().join(format!("pid-doc-timeout-{}", std::process::id()));
    /// let pidfile = PidFile::new("nightly").dir(&dir);
    /// let first = pidfile.acquire()?;
    /// let releasing = std::thread::spawn(move || first.release());
    /// let second = pidfile.acquire_timeout(Duration::from_secs(30))?; // once `first` is released
    /// releasing.join().unwrap()?;
    /// # drop(second);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire); when the time is up, the refusal of the
    /// last attempt ([`Error::AlreadyLocked`], [`Error::AlreadyRunning`],
    /// [`Error::HeldForReading`], [`Error::KeptChanging`]).
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<PidFileGuard, Error> {
        let deadline = Instant::now().checked_add(timeout);
        self.until(deadline, || match self.acquire() {
            Ok(guard) => Ok(guard),
            Err(error) if error.is_busy() => Err(Busy(error)),
            Err(error) => Err(Done(error)),
        })
        .and_then(|waited| waited)
    }

    /// Waits until no process holds or runs the pidfile ([`check`](Self::check)
    /// no longer says [`Status::Running`]), for at most `timeout` (for ever
    /// when `None`), without taking it; true once it is free, false when the
    /// time is up. It wakes as [`acquire_timeout`](Self::acquire_timeout) does.
    ///
    /// # Errors
    ///
    /// As [`check`](Self::check).
    pub fn wait_until_free(&self, timeout: Option<Duration>) -> Result<bool, Error> {
        let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
        let waited = self.until(deadline, || match self.check() {
            Ok(Status::Running { .. }) => Err(Busy(())),
            Ok(_) => Ok(()),
            Err(error) => Err(Done(error)),
        })?;
        Ok(waited.is_ok())
    }

    /// Runs `attempt` until it gives a value or a final error, waiting for a
    /// change at the path between attempts, until `deadline`; `Ok(Err(busy))`
    /// with the last attempt's answer when the time is up.
    fn until<T, B>(
        &self,
        deadline: Option<Instant>,
        mut attempt: impl FnMut() -> Result<T, Attempt<B>>,
    ) -> Result<Result<T, B>, Error> {
        let mut watch: Option<Watch> = None;
        loop {
            let busy = match attempt() {
                Ok(value) => return Ok(Ok(value)),
                Err(Done(error)) => return Err(error),
                Err(Busy(busy)) => busy,
            };
            match &mut watch {
                // Look once more now that changes are watched, in case the
                // holder left in between.
                None => watch = Some(Watch::new(&self.resolved()?.path)),
                Some(watch) => {
                    watch.forget();
                    if !watch.wait(deadline) {
                        return Ok(Err(busy));
                    }
                }
            }
        }
    }

    /// Looks at the pidfile and says what [`acquire`](Self::acquire) would
    /// meet, without taking, writing, truncating or removing anything.
    ///
    /// It opens the file read-only and takes no lock that a peer could meet:
    /// a file naming a live process is asked with a non-blocking shared lock
    /// whether it is held (refused, nothing was taken), and a file that is
    /// empty or names a process that is gone is looked up in `/proc/locks`
    /// on Linux. A peer that does not wait for the lock (`flock -n`, Python
    /// `pid`) can meet a shared lock, for an instant, only on a file that
    /// nobody holds and that names a live process, or in a container or on
    /// another system, where `/proc/locks` cannot tell.
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
    /// [`Error::Unreadable`], [`Error::NotARegularFile`],
    /// [`Error::PseudoFileSystem`], [`Error::InsecureDirectory`],
    /// [`Error::KeptChanging`], and the errors of name, directory and
    /// system calls.
    pub fn check(&self) -> Result<Status, Error> {
        imp::check(self)
    }
}

/// How one attempt of a wait ended, when it gave no value.
enum Attempt<B> {
    /// Someone else has the file: wait and try again.
    Busy(B),
    /// A final error.
    Done(Error),
}
use Attempt::{Busy, Done};
