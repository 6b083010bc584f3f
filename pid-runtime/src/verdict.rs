//! One verdict on what a pidfile says, for `acquire` and `check` alike.

use std::os::fd::BorrowedFd;
use std::path::Path;

use nix::sys::stat::FileStat;
use nix::unistd::Pid;

use crate::file::Head;
use crate::liveness::{self, Liveness};
use crate::{lock, Error};

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
    /// Names a live process that may have written it; whether it is locked
    /// was not asked, since that is enough to know it is running.
    Alive { pid: Pid },
    /// Stale, and nobody holds the lock.
    Stale { pid: Option<Pid> },
}

/// Judges an open file without taking its lock. The lock is looked for only
/// when the content cannot tell: an empty file, or a dead or reused pid that
/// a new holder may be overwriting at this very moment.
pub(crate) fn look(path: &Path, fd: BorrowedFd<'_>, stat: &FileStat) -> Result<Seen, Error> {
    let head = Head::read(fd).map_err(|error| Error::io(path, "read", error))?;
    match judge(path, &head, stat)? {
        Verdict::Alive { pid } => Ok(Seen::Alive { pid }),
        Verdict::Stale { pid } => {
            if lock::is_locked(fd, stat).map_err(|error| Error::io(path, "lock", error))? {
                Ok(Seen::Held {
                    pid: lock::holder_pid(fd),
                })
            } else {
                Ok(Seen::Stale { pid })
            }
        }
    }
}

/// The file's modification time in seconds since the epoch.
fn modified(stat: &FileStat) -> f64 {
    stat.st_mtime as f64 + stat.st_mtime_nsec as f64 / 1e9
}
