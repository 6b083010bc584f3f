use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::libc;
use nix::sys::stat::{FileStat, Mode};
use nix::unistd::{Gid, Uid};

use crate::cleanup::{self, Critical, Entry, TermSignal};
use crate::file::{self, Head, Opened};
use crate::lock::{self, Exclusive};
use crate::path::{self, DefaultDir};
use crate::process::current_pid;
use crate::trust::{self, Judged};
use crate::verdict::{self, Seen, Verdict};
use crate::wait::Watch;
use crate::{Error, Pid, PidFileGuard};

/// The mode a new pidfile gets, whatever the umask.
const DEFAULT_MODE: u32 = 0o644;

/// How long one acquisition or check may spend on what others do to the
/// file: waiting out readers' shared locks, and opening again a file that
/// was replaced between open and lock. Each retry means another process
/// released or replaced the file in that instant.
const PATIENCE: Duration = Duration::from_secs(1);

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
    name: OsString,
    dir: Option<PathBuf>,
    enforce_pid_suffix: bool,
    mode: u32,
    owner: (Option<u32>, Option<u32>),
    allow_same_pid: bool,
    term_signal: TermSignal,
    force_tmpdir: bool,
    allow_insecure_dir: bool,
    resolved: OnceLock<Resolved>,
}

/// Where a [`PidFile`] is, found once.
#[derive(Debug, Clone)]
struct Resolved {
    path: PathBuf,
    /// The user's private directory in the temporary directory.
    private_dir: bool,
    /// Set once the way to the directory was judged safe.
    trusted: OnceLock<()>,
    real: file::RealFileSystem,
}

impl Resolved {
    fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("/"))
    }

    fn dir_mode(&self) -> u32 {
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

    /// Changes the file's owner and group, by user and group id, at
    /// acquisition (default: leave them as created). Changing the owner
    /// usually needs privilege.
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

    fn resolved(&self) -> Result<&Resolved, Error> {
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
            None => match path::default_dir(self.force_tmpdir) {
                DefaultDir::Run(dir) => (dir, false),
                DefaultDir::Private(dir) => (dir, true),
            },
        };
        Ok(self.resolved.get_or_init(|| Resolved {
            path: dir.join(file_name),
            private_dir,
            trusted: OnceLock::new(),
            real: file::RealFileSystem::default(),
        }))
    }

    /// Judges the way to the directory once per `PidFile`, creating the
    /// directory when `create` says so. False when it does not exist.
    fn trusted_dir(&self, resolved: &Resolved, create: bool) -> Result<bool, Error> {
        if resolved.trusted.get().is_some() {
            return Ok(true);
        }
        let dir = resolved.dir();
        let judge = || -> Result<Judged, Error> {
            if resolved.private_dir {
                trust::judge_private_dir(dir)?;
            }
            if self.allow_insecure_dir {
                return Ok(if dir.is_dir() {
                    Judged::Whole
                } else {
                    Judged::UpToMissing
                });
            }
            trust::judge_dir(dir)
        };
        let mut judged = judge()?;
        if judged == Judged::UpToMissing && create {
            file::create_dir(dir, resolved.dir_mode())?;
            // Judged again: someone may have made the missing part first.
            judged = judge()?;
        }
        if judged == Judged::Whole {
            let _ = resolved.trusted.set(());
        }
        Ok(judged == Judged::Whole)
    }

    /// Whether a file owned by `uid` may be taken over: it is the effective
    /// user's, or the owner this `PidFile` gives its files.
    fn may_own(&self, uid: u32) -> bool {
        uid == nix::unistd::geteuid().as_raw() || self.owner.0 == Some(uid)
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
        if self.mode & !0o7777 != 0 {
            return Err(Error::InvalidMode { mode: self.mode });
        }
        let resolved = self.resolved()?;
        self.trusted_dir(resolved, true)?;
        let path = &resolved.path;
        let me = current_pid();
        let deadline = Instant::now() + PATIENCE;
        let _critical = Critical::enter();
        loop {
            if let Some(guard) = self.try_acquire(resolved, me, deadline)? {
                return Ok(guard);
            }
            if Instant::now() >= deadline {
                return Err(Error::KeptChanging { path: path.clone() });
            }
        }
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

    /// One attempt; `None` when the file changed under it and the path must
    /// be opened again.
    fn try_acquire(
        &self,
        resolved: &Resolved,
        me: Pid,
        deadline: Instant,
    ) -> Result<Option<PidFileGuard>, Error> {
        let path = &resolved.path;
        let opened =
            file::open_for_acquire(path, self.mode, |uid| self.may_own(uid), &resolved.real)?;
        let (fd, seen) = match opened {
            Opened::Created(fd) => (fd, None),
            Opened::Existing { fd, seen } => (fd, Some(seen)),
            Opened::NotOurs { fd, seen, reason } => {
                return refuse_not_ours(path, fd.as_fd(), &seen, reason)
            }
            Opened::Vanished => return Ok(None),
            Opened::NoDirectory => {
                file::create_dir(resolved.dir(), resolved.dir_mode())?;
                return Ok(None);
            }
        };
        match lock::lock_exclusive(fd.as_fd(), deadline)
            .map_err(|error| Error::io(path, "lock", error))?
        {
            Exclusive::Taken => {}
            Exclusive::Held => return self.refuse_held(path, fd.as_fd(), me),
            Exclusive::Shared => return Err(Error::HeldForReading { path: path.clone() }),
        }
        match self.take_locked(path, fd.as_fd(), seen, me) {
            Ok(Some((stat, len))) => Ok(Some(self.hold(path, me, fd, &stat, len))),
            other => {
                // Not just close: a process another thread forked meanwhile
                // holds a copy of the descriptor until its exec, and with it
                // the lock, which belongs to the open file.
                lock::unlock(fd.as_fd());
                other.map(|_| None)
            }
        }
    }

    /// Makes a file this attempt has locked this process's: its identity and
    /// the length written, or `None` when the path names another file now.
    fn take_locked(
        &self,
        path: &Path,
        fd: BorrowedFd<'_>,
        seen: Option<FileStat>,
        me: Pid,
    ) -> Result<Option<(FileStat, u64)>, Error> {
        let Some(stat) = file::linked_stat(path, fd)? else {
            return Ok(None);
        };
        if seen.is_some_and(|seen| !file::same_file(&seen, &stat))
            || !file::still_at_path(path, &stat)?
        {
            return Ok(None);
        }
        let created = seen.is_none();
        match self.take(path, fd, &stat, created, me) {
            Ok(len) => Ok(Some((stat, len))),
            Err(error) => {
                if created {
                    // Still locked by us, so still ours: nobody else wrote it.
                    let _ = cleanup::remove_if_same(&entry(path, &stat, me));
                }
                Err(error)
            }
        }
    }

    /// Answers a lock held by another descriptor.
    fn refuse_held(
        &self,
        path: &Path,
        fd: BorrowedFd<'_>,
        me: Pid,
    ) -> Result<Option<PidFileGuard>, Error> {
        if self.allow_same_pid {
            let stat =
                nix::sys::stat::fstat(fd).map_err(|error| Error::io(path, "inspect", error))?;
            if cleanup::holds(stat.st_dev, stat.st_ino, me) {
                return Ok(Some(PidFileGuard::sharing(path.to_path_buf(), me)));
            }
        }
        Err(Error::AlreadyLocked {
            path: path.to_path_buf(),
            pid: lock::holder_pid(fd),
        })
    }

    /// Judges the old content of a locked file, then makes it this
    /// process's; returns the length written. On failure a file that was
    /// there before is put back as it was.
    fn take(
        &self,
        path: &Path,
        fd: BorrowedFd<'_>,
        stat: &FileStat,
        created: bool,
        me: Pid,
    ) -> Result<u64, Error> {
        let old = if created && stat.st_size == 0 {
            None
        } else {
            let head = Head::read(fd).map_err(|error| Error::io(path, "read", error))?;
            match verdict::judge(path, &head, stat)? {
                Verdict::Stale { .. } => {}
                Verdict::Alive { pid } if pid == me && self.allow_same_pid => {}
                Verdict::Alive { pid } => {
                    return Err(Error::AlreadyRunning {
                        path: path.to_path_buf(),
                        pid,
                    })
                }
            }
            Some(head)
        };
        let restore = Restore {
            fd,
            stat,
            old: old.as_ref(),
        };
        self.set_owner_and_mode(path, fd, stat)
            .inspect_err(|_| restore.owner_and_mode())?;
        let old_len = old.as_ref().map_or(0, |head| head.bytes().len() as u64);
        file::write_pid(path, fd, old_len, me).inspect_err(|_| {
            restore.content();
            restore.owner_and_mode();
        })
    }

    /// Gives the file the owner and mode asked for, changing only what
    /// differs.
    fn set_owner_and_mode(
        &self,
        path: &Path,
        fd: BorrowedFd<'_>,
        stat: &FileStat,
    ) -> Result<(), Error> {
        let (uid, gid) = self.owner;
        let uid = uid.filter(|&uid| uid != stat.st_uid).map(Uid::from_raw);
        let gid = gid.filter(|&gid| gid != stat.st_gid).map(Gid::from_raw);
        if uid.is_some() || gid.is_some() {
            nix::unistd::fchown(fd, uid, gid).map_err(|error| Error::io(path, "chown", error))?;
        }
        // After chown, which may clear the set-id bits. mode_t is 16 bits
        // wide on some systems.
        #[allow(clippy::unnecessary_cast)]
        if stat.st_mode as u32 & 0o7777 != self.mode || uid.is_some() || gid.is_some() {
            let mode = Mode::from_bits_retain(self.mode as libc::mode_t);
            nix::sys::stat::fchmod(fd, mode).map_err(|error| Error::io(path, "chmod", error))?;
        }
        Ok(())
    }

    fn hold(&self, path: &Path, me: Pid, file: OwnedFd, stat: &FileStat, len: u64) -> PidFileGuard {
        let registration = cleanup::register(entry(path, stat, me), self.term_signal);
        PidFileGuard::owning(path.to_path_buf(), me, file, registration, len)
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
        let resolved = self.resolved()?;
        if !self.trusted_dir(resolved, false)? {
            return Ok(Status::NotRunning);
        }
        let path = &resolved.path;
        let deadline = Instant::now() + PATIENCE;
        loop {
            let Some((fd, seen)) = file::open_for_check(path, &resolved.real)? else {
                return Ok(Status::NotRunning);
            };
            if let Some(stat) = file::linked_stat(path, fd.as_fd())? {
                if file::same_file(&seen, &stat) {
                    return Ok(match verdict::look(path, fd.as_fd(), &stat)? {
                        Seen::Held { pid } => Status::Running { pid },
                        Seen::Alive { pid } => Status::Running { pid: Some(pid) },
                        Seen::Stale { pid } => Status::Stale { pid },
                    });
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::KeptChanging { path: path.clone() });
            }
        }
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

/// Answers a file that this user may not take over, judged without its lock.
fn refuse_not_ours(
    path: &Path,
    fd: BorrowedFd<'_>,
    seen: &FileStat,
    reason: &'static str,
) -> Result<Option<PidFileGuard>, Error> {
    let Some(stat) = file::linked_stat(path, fd)? else {
        return Ok(None);
    };
    if !file::same_file(seen, &stat) {
        return Ok(None);
    }
    let path = path.to_path_buf();
    Err(match verdict::look(&path, fd, &stat)? {
        Seen::Held { pid } => Error::AlreadyLocked { path, pid },
        Seen::Alive { pid } => Error::AlreadyRunning { path, pid },
        Seen::Stale { pid } => Error::CannotTakeOver {
            path,
            owner: stat.st_uid,
            pid,
            reason,
        },
    })
}

fn entry(path: &Path, stat: &FileStat, me: Pid) -> Entry {
    Entry {
        // The name was checked for NUL; a directory given with one could
        // not have been opened.
        path: CString::new(path.as_os_str().as_bytes()).expect("an opened path has no NUL"),
        dev: stat.st_dev,
        ino: stat.st_ino,
        pid: me,
    }
}

/// How to put back a file that was there before a failed acquisition:
/// its content, owner and mode.
struct Restore<'a> {
    fd: BorrowedFd<'a>,
    stat: &'a FileStat,
    old: Option<&'a Head>,
}

impl Restore<'_> {
    // Best effort: the acquisition's own error is what the caller reports.
    // A fresh file has nothing to restore: it is removed.

    fn content(&self) {
        if let Some(old) = self.old {
            let _ = nix::unistd::ftruncate(self.fd, 0);
            let _ = nix::sys::uio::pwrite(self.fd, old.bytes(), 0);
        }
    }

    fn owner_and_mode(&self) {
        if self.old.is_none() {
            return;
        }
        let _ = nix::unistd::fchown(
            self.fd,
            Some(Uid::from_raw(self.stat.st_uid)),
            Some(Gid::from_raw(self.stat.st_gid)),
        );
        // mode_t is 16 bits wide on some systems.
        #[allow(clippy::unnecessary_cast)]
        let _ = nix::sys::stat::fchmod(
            self.fd,
            Mode::from_bits_retain(self.stat.st_mode as libc::mode_t & 0o7777),
        );
    }
}
