//! The `flock(2)` lock that Python `pid`, util-linux `flock(1)` and BSD
//! `pidfile(3)` take, and ways to learn whether someone holds it.
//!
//! The calls are made on the raw descriptor rather than through nix's
//! `Flock`: its `Drop` unlocks, and in a forked child that would release the
//! lock the parent still relies on.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use crate::Pid;
use nix::errno::Errno;
use nix::libc;
use nix::sys::stat::FileStat;

use crate::content::Content;
use crate::imp::file::Head;

/// Pauses between reads of a file whose holder has locked it but not yet
/// written its pid: about 16 ms in all.
const UNWRITTEN_PID_PAUSES_US: [u64; 8] = [50, 100, 200, 500, 1_000, 2_000, 4_000, 8_000];

fn flock(fd: BorrowedFd<'_>, operation: libc::c_int) -> Result<(), Errno> {
    loop {
        // SAFETY: flock on a descriptor that stays open for the call.
        match Errno::result(unsafe { libc::flock(fd.as_raw_fd(), operation) }) {
            Err(Errno::EINTR) => continue,
            result => return result.map(drop),
        }
    }
}

/// Drops this open file's lock, for every descriptor that shares it.
pub(crate) fn unlock(fd: BorrowedFd<'_>) {
    // Fails only for a bad descriptor, which a BorrowedFd is not.
    let _ = flock(fd, libc::LOCK_UN);
}

/// How an attempt at the exclusive lock ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exclusive {
    Taken,
    /// Another descriptor holds the lock exclusively: a real holder.
    Held,
    /// Only shared holders were in the way, until the deadline.
    Shared,
}

/// Takes `LOCK_EX` without waiting for a holder.
///
/// A refusal is probed with `LOCK_SH`: when that is granted too, only
/// readers (`flock -s`, an older `check()`) were in the way, so the probe is
/// dropped and the exclusive lock tried again until `deadline`; when it is
/// refused, a real holder exists.
pub(crate) fn lock_exclusive(fd: BorrowedFd<'_>, deadline: Instant) -> Result<Exclusive, Errno> {
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
        let now = Instant::now();
        if now >= deadline {
            return Ok(Exclusive::Shared);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(2));
    }
}

/// Whether another descriptor holds the file exclusively, asked with a
/// non-blocking `LOCK_SH`: refused, nothing was taken; granted, it is
/// dropped at once.
pub(crate) fn is_held_exclusively(fd: BorrowedFd<'_>) -> Result<bool, Errno> {
    match flock(fd, libc::LOCK_SH | libc::LOCK_NB) {
        Ok(()) => flock(fd, libc::LOCK_UN).map(|()| false),
        Err(Errno::EWOULDBLOCK) => Ok(true),
        Err(error) => Err(error),
    }
}

/// Whether another descriptor holds a lock on the file, learned without
/// taking one where the system allows, so that a peer that does not wait
/// for the lock (`flock -n`, Python `pid`) is never refused because of us.
///
/// On Linux, in the initial pid namespace, `/proc/locks` lists every flock
/// lock by device and inode; read in one piece (a page of the kernel's, some
/// 80 locks on the machine), it is a snapshot. In a container it omits the
/// locks of processes outside it and of takers that have died while a child
/// holds on; longer, a line can go missing between pieces. There, and on
/// other systems, a `LOCK_SH` is taken and dropped at once.
pub(crate) fn is_locked(fd: BorrowedFd<'_>, stat: &FileStat) -> Result<bool, Errno> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(locked) = proc_locks::lists(stat) {
        return Ok(locked);
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = stat;
    is_held_exclusively(fd)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod proc_locks {
    use std::sync::OnceLock;

    use nix::libc;
    use nix::sys::stat::FileStat;

    /// The inode of the initial pid namespace, fixed by the kernel
    /// (`PROC_PID_INIT_INO`).
    const INITIAL_PID_NAMESPACE: libc::ino_t = 0xEFFF_FFFC;

    /// Whether `/proc/locks` lists a flock lock on the file; `None` when its
    /// answer cannot be trusted here or it cannot be read.
    pub(super) fn lists(stat: &FileStat) -> Option<bool> {
        static COMPLETE: OnceLock<bool> = OnceLock::new();
        let complete = *COMPLETE.get_or_init(|| {
            nix::sys::stat::stat("/proc/self/ns/pid")
                .is_ok_and(|ns| ns.st_ino == INITIAL_PID_NAMESPACE)
        });
        if !complete {
            return None;
        }
        let (table, whole) = read_at_once()?;
        // ino_t is narrower than u64 on some 32-bit systems.
        #[allow(clippy::unnecessary_cast)]
        let (dev, ino) = (stat.st_dev as u64, stat.st_ino as u64);
        match table_lists(&table, dev, ino) {
            true => Some(true),
            false if whole => Some(false),
            false => None,
        }
    }

    /// The start of the table, and whether it is all of it, as one snapshot.
    ///
    /// The kernel makes each read of the table under its lock, from a line
    /// number on, into a buffer of one page; a table read in several reads
    /// can miss a line that was there all along, when lines before it went
    /// meanwhile. So only the first read is used, and it is the whole table
    /// only when it ended well short of a page.
    fn read_at_once() -> Option<(Vec<u8>, bool)> {
        use std::io::Read;
        static PAGE: OnceLock<usize> = OnceLock::new();
        let page = *PAGE.get_or_init(|| {
            nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
                .ok()
                .flatten()
                .and_then(|page| usize::try_from(page).ok())
                .unwrap_or(4096)
        });
        let mut file = std::fs::File::open("/proc/locks").ok()?;
        let mut table = vec![0_u8; page * 2];
        let len = loop {
            match file.read(&mut table) {
                Ok(len) => break len,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        };
        table.truncate(len);
        // A line is under 128 bytes: a read that ended farther than that
        // from the end of a page ended with the table.
        Some((table, len + 128 < page))
    }

    /// Whether a line of the table is a granted flock lock on the inode:
    /// `1: FLOCK  ADVISORY  WRITE 4242 00:1c:123456 0 EOF`, with major and
    /// minor in hex. Waiters (`1: -> FLOCK ...`) hold nothing.
    pub(super) fn table_lists(table: &[u8], dev: u64, ino: u64) -> bool {
        let (major, minor) = (
            libc::major(dev as libc::dev_t),
            libc::minor(dev as libc::dev_t),
        );
        let wanted = format!("{major:02x}:{minor:02x}:{ino}");
        table.split(|&byte| byte == b'\n').any(|line| {
            let mut fields = line
                .split(u8::is_ascii_whitespace)
                .filter(|field| !field.is_empty())
                .skip(1);
            fields.next() == Some(b"FLOCK") && fields.nth(3) == Some(wanted.as_bytes())
        })
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

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::proc_locks::table_lists;

    #[test]
    fn proc_locks_lines_are_matched_by_device_and_inode() {
        let dev = nix::libc::makedev(0, 0x1c);
        let table = b"1: POSIX  ADVISORY  WRITE 11 00:1c:77 0 EOF\n\
                      2: FLOCK  ADVISORY  WRITE 12 00:1c:123456 0 EOF\n\
                      2: -> FLOCK  ADVISORY  WRITE 13 00:1c:99 0 EOF\n\
                      3: FLOCK  ADVISORY  READ 14 103:02:5 0 EOF\n";
        assert!(table_lists(table, dev, 123456));
        assert!(!table_lists(table, dev, 77), "a POSIX lock is another lock");
        assert!(!table_lists(table, dev, 99), "a waiter holds nothing");
        assert!(!table_lists(table, dev, 1234567));
        assert!(table_lists(table, nix::libc::makedev(0x103, 2), 5));
    }
}
