//! Whether a directory is a safe place for a pidfile: nobody but root and
//! the effective user can change the way to it, as systemd judges `PIDFile=`
//! and start-stop-daemon judges its pidfiles.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::{FileStat, SFlag};
use nix::unistd::{getegid, geteuid};

use crate::Error;

/// More symbolic links than this on the way is a loop, as for the kernel.
const MAX_LINKS: usize = 40;

/// How far the way to a directory was judged.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Judged {
    /// Every directory and link up to the directory itself is safe.
    Whole,
    /// Safe as far as it exists; the rest is missing.
    UpToMissing,
}

/// Walks from `/` to `dir` as the kernel resolves it, following symbolic
/// links, and refuses the first directory or link that someone other than
/// root and the effective user could change:
///
/// - each must belong to root or to the effective user;
/// - a directory must not be writable by others, unless it has the sticky
///   bit (as `/tmp` does), which keeps others from renaming or removing
///   what is not theirs;
/// - nor by its group, unless it has the sticky bit or the group is root's
///   or the effective group (a user's own directory under a umask of 002).
pub(crate) fn judge_dir(dir: &Path) -> Result<Judged, Error> {
    let ids = Ids::default();
    let mut pending: Vec<OsString> = components(dir);
    let mut current = PathBuf::from("/");
    let root = lstat_existing(&current)?.expect("/ exists");
    judge_entry(&current, &root, &ids)?;
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            current.pop();
            continue;
        }
        let next = current.join(&part);
        let Some(stat) = lstat_existing(&next)? else {
            return Ok(Judged::UpToMissing);
        };
        judge_entry(&next, &stat, &ids)?;
        if file_type(&stat) == SFlag::S_IFLNK {
            links += 1;
            if links > MAX_LINKS {
                return Err(Error::io(&next, "resolve", Errno::ELOOP));
            }
            let target = std::fs::read_link(&next).map_err(|error| Error::Io {
                path: next.clone(),
                operation: "resolve",
                error,
            })?;
            if target.is_absolute() {
                current = PathBuf::from("/");
            }
            pending.extend(components(&target));
        } else if file_type(&stat) == SFlag::S_IFDIR {
            current = next;
        } else {
            return Err(Error::NotADirectory { path: next });
        }
    }
    Ok(Judged::Whole)
}

/// The parts of `path` to walk, last first, without `/` and `.`.
fn components(path: &Path) -> Vec<OsString> {
    let mut parts: Vec<OsString> = path
        .components()
        .filter_map(|component| match component {
            Component::Normal(part) => Some(part.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    parts.reverse();
    parts
}

fn lstat_existing(path: &Path) -> Result<Option<FileStat>, Error> {
    match nix::sys::stat::lstat(path) {
        Ok(stat) => Ok(Some(stat)),
        Err(Errno::ENOENT) => Ok(None),
        Err(error) => Err(Error::io(path, "inspect", error)),
    }
}

fn file_type(stat: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT
}

/// The effective ids, asked for only when an owner is not root.
#[derive(Default)]
struct Ids {
    euid: std::cell::OnceCell<u32>,
    egid: std::cell::OnceCell<u32>,
}

impl Ids {
    fn euid(&self) -> u32 {
        *self.euid.get_or_init(|| geteuid().as_raw())
    }

    fn egid(&self) -> u32 {
        *self.egid.get_or_init(|| getegid().as_raw())
    }
}

/// The permission bits; mode_t is 16 bits wide on some systems.
#[allow(clippy::unnecessary_cast)]
fn permissions(stat: &FileStat) -> u32 {
    stat.st_mode as u32 & 0o7777
}

/// The refusal of `path`, described by `stat`, for `reason`.
fn insecure(path: &Path, stat: &FileStat, reason: &'static str) -> Error {
    Error::InsecureDirectory {
        path: path.to_path_buf(),
        owner: stat.st_uid,
        mode: permissions(stat),
        reason,
    }
}

fn judge_entry(path: &Path, stat: &FileStat, ids: &Ids) -> Result<(), Error> {
    let mode = permissions(stat);
    let insecure = |reason| insecure(path, stat, reason);
    if stat.st_uid != 0 && stat.st_uid != ids.euid() {
        return Err(insecure(if file_type(stat) == SFlag::S_IFLNK {
            "a symbolic link on the way belongs to a user other than root and this one"
        } else {
            "it belongs to a user other than root and this one"
        }));
    }
    if file_type(stat) != SFlag::S_IFDIR {
        return Ok(());
    }
    let sticky = mode & 0o1000 != 0;
    if mode & 0o002 != 0 && !sticky {
        return Err(insecure(
            "anyone may replace what is in it (writable by others, without the sticky bit)",
        ));
    }
    if mode & 0o020 != 0 && !sticky && stat.st_gid != 0 && stat.st_gid != ids.egid() {
        return Err(insecure(
            "members of its group may replace what is in it (group-writable, without the sticky bit)",
        ));
    }
    Ok(())
}

/// Whether `dir`, as the private directory of the effective user, is what it
/// should be: a real directory (not a symbolic link) that belongs to them.
pub(crate) fn judge_private_dir(dir: &Path) -> Result<(), Error> {
    let Some(stat) = lstat_existing(dir)? else {
        return Ok(());
    };
    let insecure = |reason| insecure(dir, &stat, reason);
    if file_type(&stat) != SFlag::S_IFDIR {
        return Err(insecure("this user's private directory is not a directory"));
    }
    if stat.st_uid != geteuid().as_raw() {
        return Err(insecure(
            "this user's private directory belongs to someone else",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    #[test]
    fn walk_parts_keep_parent_steps() {
        let parts = components(Path::new("/a/./b/../c"));
        let walked: Vec<&[u8]> = parts.iter().rev().map(|part| part.as_bytes()).collect();
        assert_eq!(walked, [&b"a"[..], b"b", b"..", b"c"]);
    }

    #[test]
    fn the_root_and_the_temporary_directory_are_safe() {
        assert_eq!(judge_dir(Path::new("/")).unwrap(), Judged::Whole);
        assert_eq!(judge_dir(Path::new("/tmp")).unwrap(), Judged::Whole);
        assert_eq!(
            judge_dir(Path::new("/tmp/surely/missing/here")).unwrap(),
            Judged::UpToMissing
        );
    }
}
