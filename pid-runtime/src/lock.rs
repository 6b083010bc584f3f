//! Opening a pidfile without following, blocking or adopting anything, and
//! taking the `flock(2)` lock that other pidfile tools take.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::unistd::Pid;

use crate::content::{self, Content, HEAD_LEN};
use crate::{Error, FileKind};

/// Never follow a symlink, never block on a FIFO, never adopt a terminal.
const SAFE_FLAGS: OFlag = OFlag::O_NOFOLLOW
    .union(OFlag::O_NOCTTY)
    .union(OFlag::O_CLOEXEC)
    .union(OFlag::O_NONBLOCK);

/// How long a lock held only shared (someone's `check()` looking) may keep
/// an acquisition waiting. A loaded machine can stretch a look to milliseconds.
const SHARED_HOLDER_PATIENCE: Duration = Duration::from_millis(500);

/// Pauses between reads of a file whose holder has locked it but not yet
/// written its pid: about 16 ms in all.
const UNWRITTEN_PID_PAUSES_US: [u64; 8] = [50, 100, 200, 500, 1_000, 2_000, 4_000, 8_000];

/// Opens `path` read-write, creating it with `mode` and its directory if
/// missing.
pub(crate) fn open_for_acquire(path: &Path, mode: u32) -> Result<OwnedFd, Error> {
    let flags = OFlag::O_RDWR | OFlag::O_CREAT | SAFE_FLAGS;
    let mode = Mode::from_bits_truncate(mode as libc::mode_t);
    match nix::fcntl::open(path, flags, mode) {
        Err(Errno::ENOENT) => {
            let dir = path.parent().unwrap_or(Path::new("/"));
            create_dir(dir)?;
            nix::fcntl::open(path, flags, mode).map_err(|error| open_error(path, error))
        }
        result => result.map_err(|error| open_error(path, error)),
    }
}

/// Opens `path` read-only, never creating it; `None` when there is no file.
pub(crate) fn open_for_check(path: &Path) -> Result<Option<OwnedFd>, Error> {
    match nix::fcntl::open(path, OFlag::O_RDONLY | SAFE_FLAGS, Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(error) => Err(open_error(path, error)),
    }
}

fn create_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|error| match error.raw_os_error() {
            Some(libc::ENOTDIR) | Some(libc::EEXIST) => not_a_directory(dir),
            _ => Error::Io {
                path: dir.to_path_buf(),
                operation: "create directory",
                error,
            },
        })
}

/// The deepest ancestor of `dir` (or `dir` itself) that exists and is not a
/// directory, for an error that points at the right place.
fn not_a_directory(dir: &Path) -> Error {
    let culprit = dir
        .ancestors()
        .find(|ancestor| {
            nix::sys::stat::stat(*ancestor).is_ok_and(|stat| file_type(&stat) != SFlag::S_IFDIR)
        })
        .unwrap_or(dir);
    Error::NotADirectory {
        path: culprit.to_path_buf(),
    }
}

/// Explains a refused open: a symlink, directory, socket or device in the
/// way is `NotARegularFile`, a file in place of a directory `NotADirectory`.
fn open_error(path: &Path, error: Errno) -> Error {
    match error {
        Errno::ENOTDIR => not_a_directory(path.parent().unwrap_or(path)),
        // ELOOP for O_NOFOLLOW on a symlink (EMLINK on FreeBSD, EFTYPE on
        // NetBSD), EISDIR, ENXIO for a socket, ENODEV, EOPNOTSUPP, ...:
        // whatever the system says, lstat tells what is there.
        _ => match nix::sys::stat::lstat(path) {
            Ok(stat) => match kind_of(&stat) {
                Some(kind) if !matches!(kind, FileKind::HardLink { .. }) => {
                    Error::NotARegularFile {
                        path: path.to_path_buf(),
                        kind,
                    }
                }
                _ => Error::io(path, "open", error),
            },
            Err(_) => Error::io(path, "open", error),
        },
    }
}

fn file_type(stat: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT
}

/// What a file that is not a usable pidfile is; `None` for a regular file
/// with at most one link.
pub(crate) fn kind_of(stat: &FileStat) -> Option<FileKind> {
    let kind = match file_type(stat) {
        SFlag::S_IFREG if stat.st_nlink > 1 => FileKind::HardLink {
            // nlink_t is 16, 32 or 64 bits wide depending on the system.
            #[allow(clippy::unnecessary_cast)]
            links: stat.st_nlink as u64,
        },
        SFlag::S_IFREG => return None,
        SFlag::S_IFLNK => FileKind::Symlink,
        SFlag::S_IFDIR => FileKind::Directory,
        SFlag::S_IFIFO => FileKind::Fifo,
        SFlag::S_IFSOCK => FileKind::Socket,
        SFlag::S_IFCHR => FileKind::CharDevice,
        SFlag::S_IFBLK => FileKind::BlockDevice,
        _ => FileKind::Other,
    };
    Some(kind)
}

/// Whether two stats describe the same inode.
pub(crate) fn same_file(a: &FileStat, b: &FileStat) -> bool {
    a.st_dev == b.st_dev && a.st_ino == b.st_ino
}

fn flock(fd: BorrowedFd<'_>, operation: libc::c_int) -> Result<(), Errno> {
    loop {
        // SAFETY: flock on a descriptor that stays open for the call.
        match Errno::result(unsafe { libc::flock(fd.as_raw_fd(), operation) }) {
            Err(Errno::EINTR) => continue,
            result => return result.map(drop),
        }
    }
}

/// How an attempt at the exclusive lock ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exclusive {
    Taken,
    /// Another descriptor holds the lock exclusively: a real holder.
    Held,
    /// Only shared holders were in the way, and they stayed too long.
    SharedTooLong,
}

/// Takes `LOCK_EX` without waiting for a holder.
///
/// A refusal is probed with `LOCK_SH`: when that is granted too, only someone
/// looking (`check()`) was in the way, so the probe is dropped and the
/// exclusive lock tried again; when it is refused, a real holder exists.
pub(crate) fn lock_exclusive(fd: BorrowedFd<'_>) -> Result<Exclusive, Errno> {
    let mut started: Option<Instant> = None;
    let mut pause = Duration::from_micros(20);
    loop {
        match flock(fd, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(()) => return Ok(Exclusive::Taken),
            Err(Errno::EWOULDBLOCK) => {}
            Err(error) => return Err(error),
        }
        match flock(fd, libc::LOCK_SH | libc::LOCK_NB) {
            Ok(()) => flock(fd, libc::LOCK_UN)?,
            Err(Errno::EWOULDBLOCK) => return Ok(Exclusive::Held),
            Err(error) => return Err(error),
        }
        let started = *started.get_or_insert_with(Instant::now);
        if started.elapsed() > SHARED_HOLDER_PATIENCE {
            return Ok(Exclusive::SharedTooLong);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(2));
    }
}

/// Takes `LOCK_SH` without waiting; false when an exclusive holder exists.
pub(crate) fn lock_shared(fd: BorrowedFd<'_>) -> Result<bool, Errno> {
    match flock(fd, libc::LOCK_SH | libc::LOCK_NB) {
        Ok(()) => Ok(true),
        Err(Errno::EWOULDBLOCK) => Ok(false),
        Err(error) => Err(error),
    }
}

/// The first bytes of the file and whether they are all of it.
pub(crate) struct Head {
    bytes: [u8; HEAD_LEN + 1],
    len: usize,
}

impl Head {
    pub(crate) fn read(fd: BorrowedFd<'_>) -> Result<Head, Errno> {
        let mut head = Head {
            bytes: [0; HEAD_LEN + 1],
            len: 0,
        };
        // One byte more than is judged tells whether the file goes on.
        while head.len < head.bytes.len() {
            match nix::sys::uio::pread(fd, &mut head.bytes[head.len..], head.len as libc::off_t) {
                Ok(0) => break,
                Ok(read) => head.len += read,
                Err(Errno::EINTR) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(head)
    }

    pub(crate) fn content(&self) -> Content {
        content::parse(self.bytes(), self.len <= HEAD_LEN)
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len.min(HEAD_LEN)]
    }
}

/// The pid written by whoever holds the lock on `fd`. A holder that has
/// locked but not yet written leaves the file empty for a moment, so an
/// empty file is read again a few times before the answer is `None`.
pub(crate) fn holder_pid(fd: BorrowedFd<'_>) -> Option<Pid> {
    for pause in UNWRITTEN_PID_PAUSES_US
        .iter()
        .map(|&us| Some(Duration::from_micros(us)))
        .chain([None])
    {
        match Head::read(fd).ok()?.content() {
            Content::Pid(pid) => return Some(pid),
            Content::Invalid => return None,
            Content::Empty => std::thread::sleep(pause?),
        }
    }
    None
}
