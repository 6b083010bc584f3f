//! The descriptor protocol: opening a pidfile without following, blocking on,
//! or opening for its side effects anything that is not a regular file;
//! telling what is at the path; reading and writing the content.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use crate::Pid;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::sys::stat::{FileStat, Mode, SFlag};

use crate::content::{self, Content, Text, HEAD_LEN};
use crate::{Error, FileKind};

/// Never follow a symlink, never block on a FIFO, never adopt a terminal.
const SAFE_FLAGS: OFlag = OFlag::O_NOFOLLOW
    .union(OFlag::O_NOCTTY)
    .union(OFlag::O_CLOEXEC)
    .union(OFlag::O_NONBLOCK);

/// How an open for acquisition went.
pub(crate) enum Opened {
    /// This call created the file: it is empty and nobody else wrote it.
    Created(OwnedFd),
    /// The file was there before, a regular file with one link, ours to
    /// write. `seen` is its `lstat` before the open.
    Existing { fd: OwnedFd, seen: FileStat },
    /// A file that this user may not take over: owned by someone else, or
    /// refusing a read-write open. It is open read-only, to be judged.
    NotOurs {
        fd: OwnedFd,
        seen: FileStat,
        reason: &'static str,
    },
    /// The file went away between looking and opening: look again.
    Vanished,
    /// The directory is missing: make it, then open again.
    NoDirectory,
}

/// Opens `path` read-write for taking it, creating it with `mode` when there
/// is none. `may_own` says whether a file of the given owner may be taken.
///
/// A new file is made with `O_CREAT | O_EXCL`, which opens nothing that is
/// already there. Only when a file exists is it looked at with `lstat`, and
/// opened, without `O_CREAT`, only when it is a regular file with one link on
/// a real file system: opening a FIFO completes a blocked peer's open, and
/// opening a device (`/dev/ptmx`, `/dev/watchdog`) acts on it.
pub(crate) fn open_for_acquire(
    path: &Path,
    mode: u32,
    may_own: impl Fn(u32) -> bool,
    real: &RealFileSystem,
) -> Result<Opened, Error> {
    let create = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | SAFE_FLAGS;
    match nix::fcntl::open(path, create, Mode::from_bits_truncate(mode as libc::mode_t)) {
        Ok(fd) => return Ok(Opened::Created(fd)),
        Err(Errno::EEXIST) => {}
        Err(Errno::ENOENT) => return Ok(Opened::NoDirectory),
        Err(error) => return Err(open_error(path, error)),
    }
    let Some(seen) = inspect(path, real)? else {
        return Ok(Opened::Vanished);
    };
    if !may_own(seen.st_uid) {
        return Ok(match open_existing(path, OFlag::O_RDONLY)? {
            Some(fd) => Opened::NotOurs {
                fd,
                seen,
                reason: "it belongs to another user",
            },
            None => Opened::Vanished,
        });
    }
    match open_existing(path, OFlag::O_RDWR) {
        Ok(Some(fd)) => Ok(Opened::Existing { fd, seen }),
        Ok(None) => Ok(Opened::Vanished),
        Err(Error::Io { error, .. }) if error.raw_os_error() == Some(libc::EACCES) => {
            Ok(match open_existing(path, OFlag::O_RDONLY)? {
                Some(fd) => Opened::NotOurs {
                    fd,
                    seen,
                    reason: "this user may not write it",
                },
                None => Opened::Vanished,
            })
        }
        Err(error) => Err(error),
    }
}

/// Opens an existing pidfile read-only for judging it; `None` when there is
/// none. Like [`open_for_acquire`], it opens only a regular file.
pub(crate) fn open_for_check(
    path: &Path,
    real: &RealFileSystem,
) -> Result<Option<(OwnedFd, FileStat)>, Error> {
    let Some(seen) = inspect(path, real)? else {
        return Ok(None);
    };
    Ok(open_existing(path, OFlag::O_RDONLY)?.map(|fd| (fd, seen)))
}

/// The `lstat` of what is at `path`, refused unless it is a regular file
/// with one link on a real file system; `None` when nothing is there.
fn inspect(path: &Path, real: &RealFileSystem) -> Result<Option<FileStat>, Error> {
    let seen = match nix::sys::stat::lstat(path) {
        Ok(seen) => seen,
        Err(Errno::ENOENT) => return Ok(None),
        Err(Errno::ENOTDIR) => return Err(not_a_directory(path.parent().unwrap_or(path))),
        Err(error) => return Err(Error::io(path, "inspect", error)),
    };
    if let Some(kind) = kind_of(&seen) {
        return Err(Error::NotARegularFile {
            path: path.to_path_buf(),
            kind,
        });
    }
    if !real.known(seen.st_dev) {
        refuse_pseudo_file_system(path)?;
        real.remember(seen.st_dev);
    }
    Ok(Some(seen))
}

/// The device of the last file found on a real file system, so that the
/// file system is asked once, not at every look: the device number names
/// a mounted file system while it stays mounted, and a file bound over the
/// path from elsewhere has the device of where it came from.
#[derive(Debug, Default)]
pub(crate) struct RealFileSystem(std::sync::atomic::AtomicU64);

impl RealFileSystem {
    fn known(&self, dev: libc::dev_t) -> bool {
        let known = self.0.load(std::sync::atomic::Ordering::Relaxed);
        known != 0 && known == dev_bits(dev)
    }

    fn remember(&self, dev: libc::dev_t) {
        self.0
            .store(dev_bits(dev), std::sync::atomic::Ordering::Relaxed);
    }
}

/// dev_t is 32 bits, signed or not, on some systems and 64 on others.
#[allow(clippy::unnecessary_cast)]
fn dev_bits(dev: libc::dev_t) -> u64 {
    dev as u64
}

impl Clone for RealFileSystem {
    fn clone(&self) -> RealFileSystem {
        RealFileSystem(self.0.load(std::sync::atomic::Ordering::Relaxed).into())
    }
}

fn open_existing(path: &Path, access: OFlag) -> Result<Option<OwnedFd>, Error> {
    match nix::fcntl::open(path, access | SAFE_FLAGS, Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(error) => Err(open_error(path, error)),
    }
}

/// Refuses a path on a kernel's pseudo file system, where a "file" is a
/// setting or a control: writing a pid into `/proc/sys/...` changes the
/// system.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn refuse_pseudo_file_system(path: &Path) -> Result<(), Error> {
    /// `f_type` of the file systems whose files are the kernel's, not data.
    const PSEUDO: [(i64, &str); 24] = [
        (0x9fa0, "procfs"),
        (0x6265_6572, "sysfs"),
        (0x0027_e0eb, "cgroupfs"),
        (0x6367_7270, "cgroup2fs"),
        (0x6462_6720, "debugfs"),
        (0x7363_6673, "securityfs"),
        (0x6265_6570, "configfs"),
        (0x7472_6163, "tracefs"),
        (0xcafe_4a11, "bpffs"),
        (0xf97c_ff8c, "selinuxfs"),
        (0x4341_5d53, "smackfs"),
        (0x1cd1, "devpts"),
        (0x6e73_6673, "nsfs"),
        (0xde5e_81e4, "efivarfs"),
        (0x6165_676c, "pstore"),
        (0x6573_5543, "fusectl"),
        (0x4249_4e4d, "binfmt_misc"),
        (0x0765_5821, "rdtgroup"),
        (0x9fa2, "usbdevfs"),
        (0xabba_1974, "xenfs"),
        (0x9fa1, "openpromfs"),
        (0x0bad_1dea, "futexfs"),
        (0x6269_6e64, "binderfs"),
        (0x5346_4846, "hypfs"),
    ];
    let stat = match nix::sys::statfs::statfs(path) {
        Ok(stat) => stat,
        Err(Errno::ENOENT) => return Ok(()),
        Err(error) => return Err(Error::io(path, "inspect the file system of", error)),
    };
    // f_type is signed on some targets and unsigned on others.
    #[allow(clippy::unnecessary_cast)]
    let magic = stat.filesystem_type().0 as i64 & 0xffff_ffff;
    match PSEUDO.iter().find(|(known, _)| *known == magic) {
        Some(&(_, file_system)) => Err(Error::PseudoFileSystem {
            path: path.to_path_buf(),
            file_system,
        }),
        None => Ok(()),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn refuse_pseudo_file_system(_path: &Path) -> Result<(), Error> {
    Ok(())
}

/// Creates `dir` and its missing parents with `mode`.
pub(crate) fn create_dir(dir: &Path, mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
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
pub(crate) fn not_a_directory(dir: &Path) -> Error {
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

/// Explains a refused open: a file in place of a directory is
/// `NotADirectory`, something that appeared in place of the file is named
/// by its kind, anything else is the system's error.
fn open_error(path: &Path, error: Errno) -> Error {
    match error {
        Errno::ENOTDIR => not_a_directory(path.parent().unwrap_or(path)),
        // ELOOP for O_NOFOLLOW on a symlink (EMLINK on FreeBSD, EFTYPE on
        // NetBSD), EISDIR, ENXIO, ...: whatever the system says, lstat tells
        // what is there.
        _ => match nix::sys::stat::lstat(path)
            .ok()
            .and_then(|stat| kind_of(&stat))
        {
            Some(kind) if !matches!(kind, FileKind::HardLink { .. }) => Error::NotARegularFile {
                path: path.to_path_buf(),
                kind,
            },
            _ => Error::io(path, "open", error),
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

/// The stat of an open file; `None` when it was unlinked since it was
/// opened (its holder released it), so the path must be opened again.
pub(crate) fn linked_stat(path: &Path, fd: BorrowedFd<'_>) -> Result<Option<FileStat>, Error> {
    let stat = nix::sys::stat::fstat(fd).map_err(|error| Error::io(path, "inspect", error))?;
    if stat.st_nlink == 0 {
        return Ok(None);
    }
    match kind_of(&stat) {
        None => Ok(Some(stat)),
        Some(kind) => Err(Error::NotARegularFile {
            path: path.to_path_buf(),
            kind,
        }),
    }
}

/// Whether `path` still names the file described by `stat`: its holder may
/// have unlinked it, and another process created a new one, since it was
/// opened. Without this, two processes could each hold a file at the path.
pub(crate) fn still_at_path(path: &Path, stat: &FileStat) -> Result<bool, Error> {
    match nix::sys::stat::lstat(path) {
        Ok(now) => Ok(same_file(&now, stat)),
        Err(Errno::ENOENT) => Ok(false),
        Err(error) => Err(Error::io(path, "inspect", error)),
    }
}

/// The first bytes of a file and whether they are all of it.
pub(crate) struct Head {
    bytes: [u8; HEAD_LEN + 1],
    len: usize,
}

impl Head {
    /// Reads from offset 0, whatever size the file reports: files on some
    /// file systems say 0 and still have content.
    ///
    /// One `pread`: two would see two moments of a file being rewritten and
    /// join them. A holder empties a file before writing its pid, and the
    /// kernel makes new bytes visible only with the new size, so one read
    /// sees the old content, nothing, or the new content.
    pub(crate) fn read(fd: BorrowedFd<'_>) -> Result<Head, Errno> {
        // One byte more than is judged tells whether the file goes on.
        let mut head = Head {
            bytes: [0; HEAD_LEN + 1],
            len: 0,
        };
        loop {
            match nix::sys::uio::pread(fd, &mut head.bytes, 0) {
                Ok(read) => {
                    head.len = read;
                    return Ok(head);
                }
                Err(Errno::EINTR) => {}
                Err(error) => return Err(error),
            }
        }
    }

    pub(crate) fn content(&self) -> Content {
        content::parse(self.bytes(), self.len <= HEAD_LEN)
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len.min(HEAD_LEN)]
    }

    /// The process id recorded; `None` when there is none, and
    /// [`Error::Unreadable`] when the file holds anything but a process id.
    pub(crate) fn pid(&self, path: &Path) -> Result<Option<Pid>, Error> {
        match self.content() {
            Content::Empty => Ok(None),
            Content::Pid(pid) => Ok(Some(pid)),
            Content::Invalid => Err(Error::Unreadable {
                path: path.to_path_buf(),
                content: content::excerpt(self.bytes()),
            }),
        }
    }
}

/// Makes the file say `"<pid>\n"`, when it held `old_len` bytes.
///
/// A non-empty file is emptied first and then written in one `pwrite`:
/// a reader sees the old content, nothing, or the new content, never a
/// piece of the new pid over the old one (the kernel grows a file only
/// once its new bytes are in place), and a writer killed half-way leaves an
/// empty file, which is stale. Written in place instead, a reader can see
/// `12` while `7` becomes `1234567890`, and any other order of writes
/// leaves a non-pidfile when the writer dies in the middle. The price is
/// ext4's flush of a file emptied and rewritten, at close: about 250 µs,
/// on this rare path alone (taking over a stale file, `set_pid`). A fresh
/// file is written at once.
pub(crate) fn write_pid(
    path: &Path,
    fd: BorrowedFd<'_>,
    old_len: u64,
    pid: Pid,
) -> Result<u64, Error> {
    if old_len > 0 {
        nix::unistd::ftruncate(fd, 0).map_err(|error| Error::io(path, "truncate", error))?;
    }
    let text = Text::of(pid);
    let written = nix::sys::uio::pwrite(fd, text.as_bytes(), 0)
        .map_err(|error| Error::io(path, "write", error))?;
    if written != text.as_bytes().len() {
        return Err(Error::io(path, "write", Errno::ENOSPC));
    }
    Ok(written as u64)
}
