//! The file itself on Windows: opening without following reparse points,
//! what it is, its byte-range locks, reading, writing and removing it.
//!
//! Every handle shares reading, writing and deletion, and none asks for the
//! right to delete, so that any reader (`type`, Python's `open`) can open
//! the file while it is held, and the holder can remove it while they do.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::windows::fs::{FileExt, OpenOptionsExt};
use std::os::windows::io::AsRawHandle;
use std::path::Path;

use windows_sys::Win32::Foundation::{ERROR_LOCK_VIOLATION, GENERIC_READ, HANDLE};
use windows_sys::Win32::Storage::FileSystem::{
    FileDispositionInfo, FileDispositionInfoEx, FileRenameInfo, GetFileInformationByHandle,
    GetFileType, LockFileEx, SetFileInformationByHandle, UnlockFileEx, BY_HANDLE_FILE_INFORMATION,
    DELETE, FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_REPARSE_POINT, FILE_DISPOSITION_FLAG_DELETE,
    FILE_DISPOSITION_FLAG_POSIX_SEMANTICS, FILE_DISPOSITION_INFO, FILE_DISPOSITION_INFO_EX,
    FILE_FLAG_OPEN_REPARSE_POINT, FILE_INFO_BY_HANDLE_CLASS, FILE_READ_ATTRIBUTES,
    FILE_RENAME_INFO, FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_TYPE_DISK,
    LOCKFILE_EXCLUSIVE_LOCK, LOCKFILE_FAIL_IMMEDIATELY,
};
use windows_sys::Win32::System::IO::OVERLAPPED;

use super::liveness::filetime;
use crate::content::{self, Content, Text, HEAD_LEN};
use crate::{Error, FileKind, Pid};

const SHARE_ALL: u32 = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;

/// The byte whose exclusive lock says "held". It lies far past any content:
/// a lock taken by `LockFileEx` is mandatory for its range, so a lock over
/// the pid would keep every reader from it.
pub(crate) const HOLDER_BYTE: u64 = 1 << 62;

/// The first byte, locked while the file is being written, which is also
/// the byte Python `pid` locks when it creates a pidfile: a Python newcomer
/// that opens the file while it is still empty meets this lock, and a
/// Python holder's lock makes the content unreadable, which reads as held.
pub(crate) const FIRST_BYTE: u64 = 0;

/// Identity, kind and last write of an open file.
pub(crate) struct Info {
    volume: u32,
    index: u64,
    attributes: u32,
    links: u32,
    pub(crate) written: u64,
}

impl Info {
    pub(crate) fn of(file: &File) -> io::Result<Info> {
        // SAFETY: all-zero is a valid BY_HANDLE_FILE_INFORMATION.
        let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
        // SAFETY: a valid handle and a struct to fill.
        if unsafe { GetFileInformationByHandle(handle(file), &mut info) } == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Info {
            volume: info.dwVolumeSerialNumber,
            index: (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow),
            attributes: info.dwFileAttributes,
            links: info.nNumberOfLinks,
            written: filetime(&info.ftLastWriteTime),
        })
    }

    pub(crate) fn same_file(&self, other: &Info) -> bool {
        (self.volume, self.index) == (other.volume, other.index)
    }

    /// What the file is when it is not a pidfile: a reparse point (a
    /// symbolic link or junction, never followed), a directory, a device or
    /// pipe, or a file with several names.
    pub(crate) fn kind(&self, file: &File) -> Option<FileKind> {
        if self.attributes & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
            Some(FileKind::Symlink)
        } else if self.attributes & FILE_ATTRIBUTE_DIRECTORY != 0 {
            Some(FileKind::Directory)
        // SAFETY: a valid handle.
        } else if unsafe { GetFileType(handle(file)) } != FILE_TYPE_DISK {
            Some(FileKind::CharDevice)
        } else if self.links > 1 {
            Some(FileKind::HardLink {
                links: u64::from(self.links),
            })
        } else {
            None
        }
    }
}

fn handle(file: &File) -> HANDLE {
    file.as_raw_handle() as HANDLE
}

/// Opens `path` to hold it: created when missing (`Ok((file, true))`).
/// Reparse points are opened as themselves, never followed, so they can be
/// refused.
pub(crate) fn open_for_acquire(path: &Path) -> io::Result<(File, bool)> {
    let open = |create_new| {
        let mut options = OpenOptions::new();
        options
            .read(true)
            .write(true)
            .share_mode(SHARE_ALL)
            .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT);
        if create_new {
            options.create_new(true);
        }
        options.open(path)
    };
    loop {
        match open(true) {
            Ok(file) => return Ok((file, true)),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error),
        }
        match open(false) {
            Ok(file) => return Ok((file, false)),
            // Removed in between: create it.
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
}

/// Opens `path` to look at it; `None` when there is no such file.
pub(crate) fn open_for_check(path: &Path) -> io::Result<Option<File>> {
    open_existing(path, GENERIC_READ)
}

/// Whether `path` still names `info`'s file.
pub(crate) fn still_at_path(path: &Path, info: &Info) -> io::Result<bool> {
    match open_existing(path, FILE_READ_ATTRIBUTES)? {
        Some(file) => Ok(Info::of(&file)?.same_file(info)),
        None => Ok(false),
    }
}

/// Opens the file at `path` with `access`, sharing everything and never
/// following a reparse point; `None` when there is no such file.
fn open_existing(path: &Path, access: u32) -> io::Result<Option<File>> {
    match OpenOptions::new()
        .access_mode(access)
        .share_mode(SHARE_ALL)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)
    {
        Ok(file) => Ok(Some(file)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

fn overlapped_at(offset: u64) -> OVERLAPPED {
    // SAFETY: all-zero is a valid OVERLAPPED.
    let mut overlapped: OVERLAPPED = unsafe { std::mem::zeroed() };
    overlapped.Anonymous.Anonymous.Offset = offset as u32;
    overlapped.Anonymous.Anonymous.OffsetHigh = (offset >> 32) as u32;
    overlapped
}

/// Locks one byte without waiting: false when someone else holds it.
pub(crate) fn try_lock(file: &File, byte: u64, exclusive: bool) -> io::Result<bool> {
    let mut overlapped = overlapped_at(byte);
    let flags = LOCKFILE_FAIL_IMMEDIATELY
        | if exclusive {
            LOCKFILE_EXCLUSIVE_LOCK
        } else {
            0
        };
    // SAFETY: a valid handle, a synchronous handle's OVERLAPPED for the offset.
    if unsafe { LockFileEx(handle(file), flags, 0, 1, 0, &mut overlapped) } != 0 {
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() == Some(ERROR_LOCK_VIOLATION as i32) {
        Ok(false)
    } else {
        Err(error)
    }
}

pub(crate) fn unlock(file: &File, byte: u64) {
    let mut overlapped = overlapped_at(byte);
    // SAFETY: as in `try_lock`. Failing, the lock goes with the handle.
    unsafe { UnlockFileEx(handle(file), 0, 1, 0, &mut overlapped) };
}

/// What a read of the file found.
pub(crate) enum Read {
    Content(Content, Vec<u8>),
    /// Someone holds the first byte: a holder writing it, or a Python `pid`
    /// holder.
    Locked,
}

pub(crate) fn read(file: &File) -> io::Result<Read> {
    let mut head = vec![0_u8; HEAD_LEN + 1];
    let mut len = 0;
    while len < head.len() {
        match file.seek_read(&mut head[len..], len as u64) {
            Ok(0) => break,
            Ok(read) => len += read,
            Err(error) if error.raw_os_error() == Some(ERROR_LOCK_VIOLATION as i32) => {
                return Ok(Read::Locked)
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            // Reading at the end of the file.
            Err(error) if error.raw_os_error() == Some(38) => break,
            Err(error) => return Err(error),
        }
    }
    head.truncate(len);
    let whole = len <= HEAD_LEN;
    Ok(Read::Content(content::parse(&head, whole), head))
}

/// The pid in a file's content, or the error for one that has none.
pub(crate) fn pid_of(path: &Path, content: Content, bytes: &[u8]) -> Result<Option<Pid>, Error> {
    match content {
        Content::Empty => Ok(None),
        Content::Pid(pid) => Ok(Some(pid)),
        Content::Invalid => Err(Error::Unreadable {
            path: path.to_path_buf(),
            content: content::excerpt(bytes),
        }),
    }
}

/// Empties the file, then writes `"<pid>\n"`, under the first byte's lock so
/// that a reader sees the old id, the new one, or a locked byte.
pub(crate) fn write_pid(file: &File, pid: Pid) -> io::Result<()> {
    let locked = try_lock(file, FIRST_BYTE, true)?;
    let written = write_pid_locked(file, pid);
    if locked {
        unlock(file, FIRST_BYTE);
    }
    written
}

/// [`write_pid`] for a caller that holds the first byte's lock already.
pub(crate) fn write_pid_locked(file: &File, pid: Pid) -> io::Result<()> {
    write_at_start(file, Text::of(pid).as_bytes())
}

/// Makes `bytes` the whole content of the file.
pub(crate) fn write_at_start(file: &File, bytes: &[u8]) -> io::Result<()> {
    file.set_len(0)?;
    let mut done = 0;
    while done < bytes.len() {
        done += file.seek_write(&bytes[done..], done as u64)?;
    }
    Ok(())
}

/// Removes the held file from its directory, and only that file: a new
/// handle with the right to delete is opened by path and checked to be the
/// same file. It is marked for deletion with POSIX semantics, which frees
/// the name at once even while readers have the file open; where those are
/// not supported (before Windows 10 1709, on FAT, under Wine), it is first
/// renamed to a hidden name beside it, so the name is free at once all the
/// same, and the file itself goes when its last reader closes it.
pub(crate) fn remove(path: &Path, held: &File) -> io::Result<bool> {
    let Ok(info) = Info::of(held) else {
        return Ok(false);
    };
    let Some(doomed) = open_existing(path, DELETE | FILE_READ_ATTRIBUTES)? else {
        return Ok(false);
    };
    if !Info::of(&doomed)?.same_file(&info) {
        return Ok(false);
    }
    let posix = FILE_DISPOSITION_INFO_EX {
        Flags: FILE_DISPOSITION_FLAG_DELETE | FILE_DISPOSITION_FLAG_POSIX_SEMANTICS,
    };
    if set_information(&doomed, FileDispositionInfoEx, &posix).is_ok() {
        return Ok(true);
    }
    // Best effort: without it the name stays until the last reader closes.
    let _ = rename_aside(path, &doomed);
    set_information(
        &doomed,
        FileDispositionInfo,
        &FILE_DISPOSITION_INFO { DeleteFile: true },
    )?;
    Ok(true)
}

/// Renames the file `doomed` has open to `.<name>.<pid>.<n>.removed` in
/// its directory.
fn rename_aside(path: &Path, doomed: &File) -> io::Result<()> {
    use std::os::windows::ffi::OsStrExt;
    use std::sync::atomic::{AtomicU64, Ordering};

    static RENAMED: AtomicU64 = AtomicU64::new(0);
    let mut aside = path.parent().unwrap_or(path).as_os_str().to_owned();
    aside.push(format!(
        "\\.{}.{}.{}.removed",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id(),
        RENAMED.fetch_add(1, Ordering::Relaxed)
    ));
    let name: Vec<u16> = aside.encode_wide().collect();
    let header = std::mem::offset_of!(FILE_RENAME_INFO, FileName);
    let size = header + std::mem::size_of_val(&name[..]) + 2;
    // u64 words keep the buffer aligned for the struct.
    let mut buffer = vec![0_u64; size.div_ceil(8)];
    let info = buffer.as_mut_ptr().cast::<FILE_RENAME_INFO>();
    // SAFETY: the buffer is zeroed, aligned and long enough for the header,
    // the name and a final NUL.
    unsafe {
        (*info).FileNameLength = std::mem::size_of_val(&name[..]) as u32;
        std::ptr::copy_nonoverlapping(
            name.as_ptr(),
            std::ptr::addr_of_mut!((*info).FileName).cast::<u16>(),
            name.len(),
        );
    }
    // SAFETY: a valid handle with the right to delete, and the buffer above.
    if unsafe {
        SetFileInformationByHandle(handle(doomed), FileRenameInfo, info.cast(), size as u32)
    } != 0
    {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn set_information<T>(file: &File, class: FILE_INFO_BY_HANDLE_CLASS, value: &T) -> io::Result<()> {
    // SAFETY: a valid handle, and `value` is the struct `class` names.
    let done = unsafe {
        SetFileInformationByHandle(
            handle(file),
            class,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as u32,
        )
    };
    if done != 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
