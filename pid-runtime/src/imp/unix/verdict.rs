//! One verdict on what a pidfile says, for `acquire` and `check` alike.

use std::os::fd::BorrowedFd;
use std::path::Path;

use crate::Pid;
use nix::sys::stat::FileStat;

use crate::imp::file::Head;
use crate::imp::liveness::{self, Liveness};
use crate::imp::lock;
use crate::Error;

/// What the content of a file that nobody else holds says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nobody has a claim on it: it is empty, or the process it names is
    /// gone, a zombie, or a younger process that reused the id.
    Stale { pid: Option<Pid> },
    /// It names a live process that may have written it.
    Alive { pid: Pid },
}

/// Judges `head`, read from the file described by `stat`.
///
/// # Errors
///
/// [`Error::Unreadable`] for content that is not a pidfile's.
pub(crate) fn judge(path: &Path, head: &Head, stat: &FileStat) -> Result<Verdict, Error> {
    let Some(pid) = head.pid(path)? else {
        return Ok(Verdict::Stale { pid: None });
    };
    Ok(match liveness::judge(pid, modified(stat)) {
        Liveness::Dead | Liveness::Reused => Verdict::Stale { pid: Some(pid) },
        Liveness::Alive => Verdict::Alive { pid },
    })
}

/// What someone who does not take the lock learns of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Locked by a holder, who wrote `pid` (or nothing yet).
    Held { pid: Option<Pid> },
    /// Not locked, and names a live process that may have written it: a
    /// program that writes its pidfile without a lock.
    Alive { pid: Pid },
    /// Stale, and nobody holds the lock.
    Stale { pid: Option<Pid> },
}

/// Judges an open file without holding its lock, so that a peer that does
/// not wait for the lock (`flock -n`, Python `pid`) is never refused because
/// someone looked.
///
/// - A file naming a live process is probed with a non-blocking `LOCK_SH`.
///   Refused, the file is held, and nothing was taken. Granted, the file was
///   free, and the shared lock is dropped at once; only then is the process's
///   start time read, to tell its writer from a reuse of the id. This is the
///   one case in which a shared lock is held for an instant: a free file that
///   names a live process (left by a program that writes without a lock, or
///   naming a reused id), where a peer is refused anyway or is about to take
///   over a file someone else still names.
/// - A file that is empty or names no live process, which a new holder may
///   be taking over at this very moment, is looked up in `/proc/locks`
///   where it lists every lock (see [`lock::is_locked`]), taking none.
pub(crate) fn look(path: &Path, fd: BorrowedFd<'_>, stat: &FileStat) -> Result<Seen, Error> {
    let lock_error = |error| Error::io(path, "lock", error);
    let head = Head::read(fd).map_err(|error| Error::io(path, "read", error))?;
    let pid = head.pid(path)?;
    if let Some(pid) = pid.filter(|&pid| liveness::exists(pid)) {
        if lock::is_held_exclusively(fd).map_err(lock_error)? {
            return Ok(Seen::Held { pid: Some(pid) });
        }
        return Ok(match liveness::judge(pid, modified(stat)) {
            Liveness::Alive => Seen::Alive { pid },
            Liveness::Dead | Liveness::Reused => Seen::Stale { pid: Some(pid) },
        });
    }
    if lock::is_locked(fd, stat).map_err(lock_error)? {
        Ok(Seen::Held {
            pid: lock::holder_pid(fd),
        })
    } else {
        Ok(Seen::Stale { pid })
    }
}

/// The file's modification time in seconds since the epoch.
fn modified(stat: &FileStat) -> f64 {
    #[cfg(not(target_os = "netbsd"))]
    let nanoseconds = stat.st_mtime_nsec;
    #[cfg(target_os = "netbsd")]
    let nanoseconds = stat.st_mtimensec;
    stat.st_mtime as f64 + nanoseconds as f64 / 1e9
}
