//! Taking and judging a pidfile on Unix: open without following, lock with
//! `flock(2)`, judge what the file held, write this process's id.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::libc;
use nix::sys::stat::{FileStat, Mode};
use nix::unistd::{Gid, Uid};

use super::cleanup::{self, Critical, Entry};
use super::file::{self, Head, Opened};
use super::lock::{self, Exclusive};
use super::process::current_pid;
use super::trust::{self, Judged};
use super::verdict::{self, Seen, Verdict};
use super::Held;
use crate::pidfile::Resolved;
use crate::{Error, Pid, PidFile, PidFileGuard, Status};

/// How long one acquisition or check may spend on what others do to the
/// file: waiting out readers' shared locks, and opening again a file that
/// was replaced between open and lock. Each retry means another process
/// released or replaced the file in that instant.
const PATIENCE: Duration = Duration::from_secs(1);

/// [`PidFile::acquire`] here.
pub(crate) fn acquire(pidfile: &PidFile) -> Result<PidFileGuard, Error> {
    if pidfile.mode & !0o7777 != 0 {
        return Err(Error::InvalidMode { mode: pidfile.mode });
    }
    let resolved = pidfile.resolved()?;
    pidfile.trusted_dir(resolved, true)?;
    let path = &resolved.path;
    let me = current_pid();
    let deadline = Instant::now() + PATIENCE;
    let _critical = Critical::enter();
    loop {
        if let Some(guard) = pidfile.try_acquire(resolved, me, deadline)? {
            return Ok(guard);
        }
        if Instant::now() >= deadline {
            return Err(Error::KeptChanging { path: path.clone() });
        }
    }
}

/// [`PidFile::check`] here.
pub(crate) fn check(pidfile: &PidFile) -> Result<Status, Error> {
    let resolved = pidfile.resolved()?;
    if !pidfile.trusted_dir(resolved, false)? {
        return Ok(Status::NotRunning);
    }
    let path = &resolved.path;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let Some((fd, seen)) = file::open_for_check(path, &resolved.known.real)? else {
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

impl PidFile {
    /// Judges the way to the directory once per `PidFile`, creating the
    /// directory when `create` says so. False when it does not exist.
    pub(crate) fn trusted_dir(&self, resolved: &Resolved, create: bool) -> Result<bool, Error> {
        if resolved.known.trusted.get().is_some() {
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
            let _ = resolved.known.trusted.set(());
        }
        Ok(judged == Judged::Whole)
    }

    /// Whether a file owned by `uid` may be taken over: it is the effective
    /// user's, or the owner this `PidFile` gives its files.
    fn may_own(&self, uid: u32) -> bool {
        uid == nix::unistd::geteuid().as_raw() || self.owner.0 == Some(uid)
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
        let opened = file::open_for_acquire(
            path,
            self.mode,
            |uid| self.may_own(uid),
            &resolved.known.real,
        )?;
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
        PidFileGuard::owning(
            path.to_path_buf(),
            me,
            Held {
                file,
                registration,
                len,
            },
        )
    }
}

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
