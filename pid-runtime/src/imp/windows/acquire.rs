//! Taking and judging a pidfile on Windows.
//!
//! A holder keeps an exclusive `LockFileEx` lock on [`HOLDER_BYTE`], far
//! past the content, so the pid stays readable to anyone. While it writes,
//! it also locks the first byte, the one Python `pid` locks: a Python
//! newcomer then finds the file locked or naming a live process, and a
//! Python holder's lock on it reads here as held.

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use super::cleanup::{self, Table};
use super::file::{self, Info, Read, FIRST_BYTE, HOLDER_BYTE};
use super::liveness::{self, Liveness};
use crate::content::Content;
use crate::pidfile::DEFAULT_MODE;
use crate::{Error, FileKind, Pid, PidFile, PidFileGuard, Status};

/// How long one acquisition may meet a lock held with no live process named
/// in the file: a `check` that probes the lock for an instant.
const PATIENCE: Duration = Duration::from_secs(1);

/// What an attempt that took nothing found.
enum Refused {
    /// Try again: the file changed hands, or a look was under way.
    Again(Option<Error>),
    Final(Error),
}

impl From<Error> for Refused {
    fn from(error: Error) -> Refused {
        Refused::Final(error)
    }
}

/// [`PidFile::acquire`] here.
pub(crate) fn acquire(pidfile: &PidFile) -> Result<PidFileGuard, Error> {
    refuse_unix_options(pidfile)?;
    let resolved = pidfile.resolved()?;
    let path = &resolved.path;
    create_dir(resolved.dir())?;
    let me = Pid::current();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut table = cleanup::table();
        let last = match try_acquire(pidfile, path, me, &mut table) {
            Ok(guard) => return Ok(guard),
            Err(Refused::Final(error)) => return Err(error),
            Err(Refused::Again(last)) => last,
        };
        drop(table);
        if Instant::now() >= deadline {
            return Err(last.unwrap_or_else(|| Error::KeptChanging { path: path.clone() }));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn try_acquire(
    pidfile: &PidFile,
    path: &Path,
    me: Pid,
    table: &mut Table,
) -> Result<PidFileGuard, Refused> {
    refuse_what_is_no_file(path)?;
    let (file, created) = match file::open_for_acquire(path) {
        Ok(opened) => opened,
        // The directory went away in between.
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            create_dir(path.parent().unwrap_or(path))?;
            return Err(Refused::Again(None));
        }
        Err(error) => return Err(Error::io(path, "open", error).into()),
    };
    let info = identify(path, &file)?;
    if !file::try_lock(&file, HOLDER_BYTE, true).map_err(|error| Error::io(path, "lock", error))? {
        if pidfile.allow_same_pid && table.holds(&info) {
            return Ok(PidFileGuard::sharing(path.to_path_buf(), me));
        }
        return Err(refuse_held(path, &file));
    }
    if !file::still_at_path(path, &info).map_err(|error| Error::io(path, "inspect", error))? {
        return Err(Refused::Again(None));
    }
    if !file::try_lock(&file, FIRST_BYTE, true).map_err(|error| Error::io(path, "lock", error))? {
        // Only a Python `pid` holder locks the first byte alone, or, for an
        // instant and only on an empty file, a `check`.
        let refusal = Error::AlreadyLocked {
            path: path.to_path_buf(),
            pid: None,
        };
        let empty = file.metadata().is_ok_and(|metadata| metadata.len() == 0);
        return Err(if empty {
            Refused::Again(Some(refusal))
        } else {
            Refused::Final(refusal)
        });
    }
    let taken = take(pidfile, path, &file, &info, created, me);
    file::unlock(&file, FIRST_BYTE);
    match taken {
        Ok(()) => {
            let held = table.register(path, file, pidfile.term_signal);
            Ok(PidFileGuard::owning(path.to_path_buf(), me, held))
        }
        Err(error) => {
            if created {
                let _ = file::remove(path, &file);
            }
            Err(error.into())
        }
    }
}

/// Judges what a file locked by this attempt holds, then writes this
/// process's id; a file that was there before is put back on failure.
fn take(
    pidfile: &PidFile,
    path: &Path,
    file: &File,
    info: &Info,
    created: bool,
    me: Pid,
) -> Result<(), Error> {
    let Read::Content(content, old) =
        file::read(file).map_err(|error| Error::io(path, "read", error))?
    else {
        unreachable!("the first byte is locked by this attempt");
    };
    if let Some(pid) = file::pid_of(path, content, &old)? {
        let alive = liveness::judge(pid, info.written) == Liveness::Alive;
        if alive && !(pid == me && pidfile.allow_same_pid) {
            return Err(Error::AlreadyRunning {
                path: path.to_path_buf(),
                pid,
            });
        }
    }
    file::write_pid_locked(file, me).map_err(|error| {
        if !created {
            let _ = file::write_at_start(file, &old);
        }
        Error::io(path, "write", error)
    })
}

/// Answers a holder byte that someone else holds.
fn refuse_held(path: &Path, file: &File) -> Refused {
    let refusal = |pid| Error::AlreadyLocked {
        path: path.to_path_buf(),
        pid,
    };
    match file::read(file) {
        // Being written by its holder, or held by Python `pid`.
        Ok(Read::Locked) => Refused::Final(refusal(None)),
        Ok(Read::Content(Content::Pid(pid), _)) => {
            let error = refusal(Some(pid));
            // A holder names itself or a live child. A file naming nobody
            // alive is being taken over or looked at by `check`: look again.
            if liveness::judge(pid, u64::MAX) == Liveness::Alive {
                Refused::Final(error)
            } else {
                Refused::Again(Some(error))
            }
        }
        Ok(Read::Content(..)) | Err(_) => Refused::Again(Some(refusal(None))),
    }
}

/// [`PidFile::check`] here.
pub(crate) fn check(pidfile: &PidFile) -> Result<Status, Error> {
    refuse_unix_options(pidfile)?;
    let path = &pidfile.resolved()?.path;
    refuse_what_is_no_file(path)?;
    let Some(file) = file::open_for_check(path).map_err(|error| Error::io(path, "open", error))?
    else {
        return Ok(Status::NotRunning);
    };
    let info = identify(path, &file)?;
    let free = probe(&file, HOLDER_BYTE, path)?;
    let (content, bytes) =
        match file::read(&file).map_err(|error| Error::io(path, "read", error))? {
            Read::Locked => return Ok(Status::Running { pid: None }),
            Read::Content(content, bytes) => (content, bytes),
        };
    if !free {
        let pid = match content {
            Content::Pid(pid) => Some(pid),
            _ => None,
        };
        return Ok(Status::Running { pid });
    }
    Ok(match file::pid_of(path, content, &bytes)? {
        // An empty file reads as empty even while its first byte is locked,
        // as a Python `pid` holder that just created it keeps it.
        None if bytes.is_empty() && !probe(&file, FIRST_BYTE, path)? => {
            Status::Running { pid: None }
        }
        None => Status::Stale { pid: None },
        Some(pid) => match liveness::judge(pid, info.written) {
            Liveness::Alive => Status::Running { pid: Some(pid) },
            Liveness::Dead | Liveness::Reused => Status::Stale { pid: Some(pid) },
        },
    })
}

/// Whether nobody else locks `byte`, asked with a shared lock held for an
/// instant.
fn probe(file: &File, byte: u64, path: &Path) -> Result<bool, Error> {
    let free = file::try_lock(file, byte, false).map_err(|error| Error::io(path, "lock", error))?;
    if free {
        file::unlock(file, byte);
    }
    Ok(free)
}

/// The error for something at the path that is not a pidfile, looked at
/// without opening it; nothing there is no error.
fn refuse_what_is_no_file(path: &Path) -> Result<(), Error> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(Error::io(path, "inspect", error)),
    };
    let kind = if metadata.is_symlink() {
        FileKind::Symlink
    } else if metadata.is_dir() {
        FileKind::Directory
    } else {
        return Ok(());
    };
    Err(Error::NotARegularFile {
        path: path.to_path_buf(),
        kind,
    })
}

/// The open file's identity, or the error for one that is not a pidfile.
fn identify(path: &Path, file: &File) -> Result<Info, Error> {
    let info = Info::of(file).map_err(|error| Error::io(path, "inspect", error))?;
    match info.kind(file) {
        Some(kind) => Err(Error::NotARegularFile {
            path: path.to_path_buf(),
            kind,
        }),
        None => Ok(info),
    }
}

fn create_dir(dir: &Path) -> Result<(), Error> {
    match std::fs::create_dir_all(dir) {
        Ok(()) if dir.is_dir() => Ok(()),
        Ok(()) => Err(Error::NotADirectory {
            path: dir.to_path_buf(),
        }),
        Err(_) if dir.exists() && !dir.is_dir() => Err(Error::NotADirectory {
            path: dir.to_path_buf(),
        }),
        Err(error) => Err(Error::io(dir, "create", error)),
    }
}

/// Python `pid` raises `PidFileConfigurationError` for these on Windows.
fn refuse_unix_options(pidfile: &PidFile) -> Result<(), Error> {
    let unsupported = |option| Error::Unsupported {
        option,
        system: "Windows",
    };
    if pidfile.mode != DEFAULT_MODE {
        return Err(unsupported("mode"));
    }
    if pidfile.owner != (None, None) {
        return Err(unsupported("owner"));
    }
    Ok(())
}
