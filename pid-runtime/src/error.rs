use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::Pid;

/// Why a pidfile could not be taken or judged.
///
/// Every message names the path and, where one is known, the other process's
/// id. The message of [`Error::Io`] includes the operating system's error, so
/// printing an `Error` with `{}` tells the whole story on one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another process holds the lock on the pidfile.
    ///
    /// `pid` is the process id the holder wrote, or `None` when it has not
    /// written one (yet) or wrote something that is not a process id.
    #[error("already running{} ({})", HolderPid(*.pid), .path.display())]
    #[non_exhaustive]
    AlreadyLocked {
        /// The pidfile.
        path: PathBuf,
        /// The holder's process id, when the file names one.
        pid: Option<Pid>,
    },

    /// Nobody holds the lock, but the file names a live process that started
    /// before the file was written: a program that writes its pidfile without
    /// locking it is running.
    #[error("already running as pid {pid} ({}, written without a lock)", .path.display())]
    #[non_exhaustive]
    AlreadyRunning {
        /// The pidfile.
        path: PathBuf,
        /// The live process the file names.
        pid: Pid,
    },

    /// The file holds something other than a process id. It may not be a
    /// pidfile at all, so it is left untouched.
    #[error("{} does not hold a process id (it starts with {content:?}); left untouched", .path.display())]
    #[non_exhaustive]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The start of its first line, lossily decoded.
        content: String,
    },

    /// The name cannot be used as a file name in the pidfile directory.
    #[error("invalid pidfile name {name:?}: {reason}")]
    #[non_exhaustive]
    InvalidName {
        /// The name as given.
        name: OsString,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// An option this system has no counterpart for, such as
    /// [`mode`](crate::PidFile::mode) and [`owner`](crate::PidFile::owner) on
    /// Windows, where files have access control lists instead.
    #[error("the pidfile option `{option}` is not supported on {system}")]
    #[non_exhaustive]
    Unsupported {
        /// The option, as the builder method is named.
        option: &'static str,
        /// This system.
        system: &'static str,
    },

    /// The mode has bits beyond the permission bits `0o7777`.
    #[error("invalid pidfile mode {mode:#o}: only the bits of 0o7777 may be set")]
    #[non_exhaustive]
    InvalidMode {
        /// The mode as given.
        mode: u32,
    },

    /// The path names something other than a regular file with one link: a
    /// symbolic link, a directory, a FIFO, a socket, a device or a hard link.
    /// It is never followed, waited on, truncated or removed.
    #[error("{} is {kind}, not a pidfile; left untouched", .path.display())]
    #[non_exhaustive]
    NotARegularFile {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: FileKind,
    },

    /// [`PidFileGuard::set_pid`](crate::PidFileGuard::set_pid) was given an id
    /// that is not positive: zero and negative ids name process groups.
    #[error("cannot record pid {pid} in {}: only a positive id names one process", .path.display())]
    #[non_exhaustive]
    InvalidPid {
        /// The pidfile.
        path: PathBuf,
        /// The id as given.
        pid: Pid,
    },

    /// The path is on a kernel's pseudo file system (procfs, sysfs, cgroupfs,
    /// debugfs, ...), where a file is a setting or a control, not data: it is
    /// never opened or written.
    #[error("{} is on {file_system}, where files are the kernel's settings, not pidfiles; left untouched", .path.display())]
    #[non_exhaustive]
    PseudoFileSystem {
        /// The path.
        path: PathBuf,
        /// The kind of file system, such as `"procfs"`.
        file_system: &'static str,
    },

    /// A directory or symbolic link on the way to the pidfile can be changed
    /// by someone other than root and this user, who could then replace,
    /// forge or delete the pidfile, or point it elsewhere. See
    /// [`PidFile::allow_insecure_dir`](crate::PidFile::allow_insecure_dir).
    #[error("{} is unsafe for a pidfile: {reason} (owner uid {owner}, mode {mode:#o})", .path.display())]
    #[non_exhaustive]
    InsecureDirectory {
        /// The directory or symbolic link at fault.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// Its permission bits.
        mode: u32,
        /// What makes it unsafe.
        reason: &'static str,
    },

    /// A stale pidfile that this user may not take over: it belongs to
    /// someone else, or refuses to be opened for writing. It is left as it
    /// is, for its owner or root to remove.
    #[error("{} is stale{}, but {reason}, so it cannot be taken over (owner uid {owner}); left untouched", .path.display(), StalePid(*.pid))]
    #[non_exhaustive]
    CannotTakeOver {
        /// The pidfile.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The process id in it, which no longer runs; `None` when empty.
        pid: Option<Pid>,
        /// Why it cannot be taken: `"it belongs to another user"`, ...
        reason: &'static str,
    },

    /// Only shared locks (such as `flock -s` takes) kept the pidfile from
    /// being taken, for longer than an acquisition waits: a reader holds it,
    /// not a running instance.
    #[error("{} is locked for reading by another process (a shared lock, as `flock -s` takes), not held by a running instance; gave up waiting", .path.display())]
    #[non_exhaustive]
    HeldForReading {
        /// The pidfile.
        path: PathBuf,
    },

    /// The file at the path kept being replaced while it was being locked,
    /// for longer than an acquisition waits.
    #[error("{} kept being replaced while it was being locked; gave up", .path.display())]
    #[non_exhaustive]
    KeptChanging {
        /// The pidfile.
        path: PathBuf,
    },

    /// [`PidFileGuard::set_pid`](crate::PidFileGuard::set_pid) was called on
    /// a guard that does not own its file (see
    /// [`PidFileGuard::owns_file`](crate::PidFileGuard::owns_file)): the
    /// guard that owns it must record the id.
    #[error("cannot record a pid in {}: another guard of this process owns the file", .path.display())]
    #[non_exhaustive]
    NotOwningGuard {
        /// The pidfile.
        path: PathBuf,
    },

    /// The pidfile's directory exists but is not a directory.
    #[error("{} is not a directory", .path.display())]
    #[non_exhaustive]
    NotADirectory {
        /// The path that should have been a directory.
        path: PathBuf,
    },

    /// A system call failed.
    #[error("cannot {operation} {}: {error}", .path.display())]
    #[non_exhaustive]
    Io {
        /// The path it was working on.
        path: PathBuf,
        /// What it was doing, as a verb: "open", "lock", "create directory", ...
        operation: &'static str,
        /// The operating system's error.
        error: io::Error,
    },
}

impl Error {
    /// True when another process holds or owns the pidfile
    /// ([`AlreadyLocked`](Error::AlreadyLocked) or
    /// [`AlreadyRunning`](Error::AlreadyRunning)).
    ///
    /// ```
    /// # fn main() -> Result<(), pid_runtime::Error> {
    /// let dir = std::env::temp_dir().join(format!("pid-doc-busy-{}", std::process::id()));
    /// let pidfile = pid_runtime::PidFile::new("busy").dir(&dir);
    /// let _guard = pidfile.acquire()?;
    /// let second = pidfile.acquire().unwrap_err();
    /// assert!(second.is_already_running());
    /// assert_eq!(second.pid(), Some(pid_runtime::Pid::current()));
    /// # Ok(()) }
    /// ```
    pub fn is_already_running(&self) -> bool {
        matches!(
            self,
            Error::AlreadyLocked { .. } | Error::AlreadyRunning { .. }
        )
    }

    /// True when other processes keep the pidfile from being taken for now:
    /// it is held or running ([`is_already_running`](Self::is_already_running)),
    /// locked for reading ([`HeldForReading`](Error::HeldForReading)), or
    /// kept being replaced ([`KeptChanging`](Error::KeptChanging)). Waiting
    /// and trying again may succeed; for any other error it will not.
    pub fn is_busy(&self) -> bool {
        self.is_already_running()
            || matches!(
                self,
                Error::HeldForReading { .. } | Error::KeptChanging { .. }
            )
    }

    /// The other process's id, where the error names one.
    pub fn pid(&self) -> Option<Pid> {
        match self {
            Error::AlreadyLocked { pid, .. } => *pid,
            Error::AlreadyRunning { pid, .. } => Some(*pid),
            _ => None,
        }
    }

    /// The path the error is about, where it is about one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::AlreadyLocked { path, .. }
            | Error::AlreadyRunning { path, .. }
            | Error::Unreadable { path, .. }
            | Error::NotARegularFile { path, .. }
            | Error::NotADirectory { path }
            | Error::InvalidPid { path, .. }
            | Error::PseudoFileSystem { path, .. }
            | Error::InsecureDirectory { path, .. }
            | Error::CannotTakeOver { path, .. }
            | Error::HeldForReading { path }
            | Error::KeptChanging { path }
            | Error::NotOwningGuard { path }
            | Error::Io { path, .. } => Some(path),
            Error::InvalidName { .. } | Error::InvalidMode { .. } | Error::Unsupported { .. } => {
                None
            }
        }
    }

    pub(crate) fn io(path: &Path, operation: &'static str, error: impl Into<io::Error>) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            operation,
            error: error.into(),
        }
    }
}

/// Converts into an [`io::Error`] whose message is this error's and whose kind
/// says what went wrong: `ResourceBusy` for a running holder, `InvalidInput` for
/// a bad name, mode or pid, `InvalidData` for a file that is not a pidfile,
/// `PermissionDenied` for an unsafe directory or a file that is not ours,
/// `WouldBlock` for a file others kept busy, `NotADirectory`, or the kind of
/// the underlying system error.
impl From<Error> for io::Error {
    fn from(error: Error) -> io::Error {
        let kind = match &error {
            Error::AlreadyLocked { .. } | Error::AlreadyRunning { .. } => {
                io::ErrorKind::ResourceBusy
            }
            Error::InvalidName { .. } | Error::InvalidMode { .. } | Error::InvalidPid { .. } => {
                io::ErrorKind::InvalidInput
            }
            Error::Unreadable { .. }
            | Error::NotARegularFile { .. }
            | Error::PseudoFileSystem { .. } => io::ErrorKind::InvalidData,
            Error::InsecureDirectory { .. } | Error::CannotTakeOver { .. } => {
                io::ErrorKind::PermissionDenied
            }
            Error::HeldForReading { .. } | Error::KeptChanging { .. } => io::ErrorKind::WouldBlock,
            Error::NotOwningGuard { .. } | Error::Unsupported { .. } => io::ErrorKind::Unsupported,
            Error::NotADirectory { .. } => io::ErrorKind::NotADirectory,
            Error::Io { error, .. } => error.kind(),
        };
        io::Error::new(kind, error)
    }
}

/// What a path that should have been a pidfile turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// A symbolic link (never followed).
    Symlink,
    /// A directory.
    Directory,
    /// A named pipe (never waited on).
    Fifo,
    /// A Unix domain socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A regular file with more than one name: removing or rewriting it
    /// would change the other names too.
    HardLink {
        /// How many names the file has.
        links: u64,
    },
    /// Something the operating system did not describe.
    Other,
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileKind::Symlink => f.write_str("a symbolic link"),
            FileKind::Directory => f.write_str("a directory"),
            FileKind::Fifo => f.write_str("a named pipe"),
            FileKind::Socket => f.write_str("a socket"),
            FileKind::CharDevice => f.write_str("a character device"),
            FileKind::BlockDevice => f.write_str("a block device"),
            FileKind::HardLink { links } => write!(f, "a file with {links} hard links"),
            FileKind::Other => f.write_str("not a regular file"),
        }
    }
}

struct StalePid(Option<Pid>);

impl fmt::Display for StalePid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(pid) => write!(f, " (pid {pid} is gone or reused)"),
            None => f.write_str(" (empty)"),
        }
    }
}

struct HolderPid(Option<Pid>);

impl fmt::Display for HolderPid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(pid) => write!(f, " as pid {pid}"),
            None => f.write_str(", pid unknown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_path_and_the_pid() {
        let path = PathBuf::from("/run/user/1000/worker.pid");
        let locked = Error::AlreadyLocked {
            path: path.clone(),
            pid: Some(Pid::from_raw(4242)),
        };
        assert_eq!(
            locked.to_string(),
            "already running as pid 4242 (/run/user/1000/worker.pid)"
        );
        let unknown = Error::AlreadyLocked {
            path: path.clone(),
            pid: None,
        };
        assert_eq!(
            unknown.to_string(),
            "already running, pid unknown (/run/user/1000/worker.pid)"
        );
        // The system's own text for EACCES.
        #[cfg(unix)]
        assert_eq!(
            Error::io(&path, "open", nix::Error::EACCES).to_string(),
            "cannot open /run/user/1000/worker.pid: Permission denied (os error 13)"
        );
    }

    #[test]
    fn io_error_conversion_keeps_message_and_kind() {
        let error = Error::AlreadyRunning {
            path: PathBuf::from("/tmp/x.pid"),
            pid: Pid::from_raw(7),
        };
        let message = error.to_string();
        let io: io::Error = error.into();
        assert_eq!(io.kind(), io::ErrorKind::ResourceBusy);
        assert_eq!(io.to_string(), message);
    }
}
