//! Where a pidfile lives: its file name and its directory.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, AT_FDCWD};
use nix::sys::stat::SFlag;
use nix::unistd::{faccessat, geteuid, AccessFlags};

use crate::Error;

const SUFFIX: &str = ".pid";

/// The file name for `name`: refused when it could name another directory or
/// none, given the `.pid` suffix when `enforce_suffix` asks for one.
pub(crate) fn file_name(name: &OsStr, enforce_suffix: bool) -> Result<OsString, Error> {
    let invalid = |reason| Error::InvalidName {
        name: name.to_os_string(),
        reason,
    };
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Err(invalid("it is empty"));
    }
    if bytes == b"." || bytes == b".." {
        return Err(invalid("it names a directory"));
    }
    if bytes.contains(&b'/') {
        return Err(invalid("it contains '/'"));
    }
    if bytes.contains(&0) {
        return Err(invalid("it contains a NUL byte"));
    }
    let mut file_name = name.to_os_string();
    if enforce_suffix && !bytes.ends_with(SUFFIX.as_bytes()) {
        file_name.push(SUFFIX);
    }
    Ok(file_name)
}

/// The file name of `argv[0]`: the name a program is known by.
pub(crate) fn program_name() -> Option<OsString> {
    let arg0 = std::env::args_os().next()?;
    Path::new(&arg0).file_name().map(ToOwned::to_owned)
}

/// Where a pidfile's directory came from, which says how to make it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DefaultDir {
    /// A run directory that exists and that the effective user can write.
    Run(PathBuf),
    /// The effective user's own directory in the temporary directory, made
    /// `0700` when missing: the shared temporary directory itself would let
    /// any other user take the name first.
    Private(PathBuf),
}

/// The directory used when none is given: the first of the usual run
/// directories that the effective user can write and search, else that
/// user's private directory in the temporary directory.
pub(crate) fn default_dir(force_tmpdir: bool) -> DefaultDir {
    let private = || DefaultDir::Private(private_dir());
    if force_tmpdir {
        return private();
    }
    let euid = geteuid();
    [
        PathBuf::from(format!("/run/user/{euid}")),
        PathBuf::from(format!("/var/run/user/{euid}")),
        PathBuf::from("/run"),
        PathBuf::from("/var/run"),
    ]
    .into_iter()
    .find(|dir| is_usable_dir(dir))
    .map_or_else(private, DefaultDir::Run)
}

/// `pidfile-<euid>` in the temporary directory.
pub(crate) fn private_dir() -> PathBuf {
    temp_dir().join(format!("pidfile-{}", geteuid()))
}

/// The temporary directory; `/tmp` in a set-user-id or set-group-id
/// process, which must not let the user who runs it choose (as
/// `secure_getenv` ignores `TMPDIR` there).
fn temp_dir() -> PathBuf {
    if runs_with_borrowed_privilege() {
        PathBuf::from("/tmp")
    } else {
        std::env::temp_dir()
    }
}

fn runs_with_borrowed_privilege() -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: getauxval has no preconditions.
        unsafe { nix::libc::getauxval(nix::libc::AT_SECURE) != 0 }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        nix::unistd::getuid() != geteuid() || nix::unistd::getgid() != nix::unistd::getegid()
    }
}

fn is_usable_dir(dir: &Path) -> bool {
    let is_dir = nix::sys::stat::stat(dir)
        .map(|stat| SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
        .unwrap_or(false);
    // AT_EACCESS: a set-user-id program must be judged by who it runs as.
    // Android's bionic has no AT_EACCESS, and no set-user-id programs.
    #[cfg(not(target_os = "android"))]
    let by_whom = AtFlags::AT_EACCESS;
    #[cfg(target_os = "android")]
    let by_whom = AtFlags::empty();
    is_dir
        && faccessat(
            AT_FDCWD,
            dir,
            AccessFlags::W_OK | AccessFlags::X_OK,
            by_whom,
        )
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str, enforce_suffix: bool) -> Result<String, &'static str> {
        match file_name(OsStr::new(text), enforce_suffix) {
            Ok(name) => Ok(name.into_string().unwrap()),
            Err(Error::InvalidName { reason, .. }) => Err(reason),
            Err(other) => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn suffix_is_added_once_when_enforced() {
        assert_eq!(name("worker", true), Ok("worker.pid".into()));
        assert_eq!(name("worker.pid", true), Ok("worker.pid".into()));
        assert_eq!(name("worker", false), Ok("worker".into()));
        assert_eq!(name("worker.lock", false), Ok("worker.lock".into()));
        assert_eq!(name(".hidden", true), Ok(".hidden.pid".into()));
    }

    #[test]
    fn names_that_leave_the_directory_are_refused() {
        assert_eq!(name("", true), Err("it is empty"));
        assert_eq!(name(".", true), Err("it names a directory"));
        assert_eq!(name("..", false), Err("it names a directory"));
        assert_eq!(name("a/b", true), Err("it contains '/'"));
        assert_eq!(name("/etc/passwd", true), Err("it contains '/'"));
        assert_eq!(name("a\0b", true), Err("it contains a NUL byte"));
    }

    #[test]
    fn forced_tmpdir_is_this_user_s_private_directory_in_it() {
        let expected = std::env::temp_dir().join(format!("pidfile-{}", geteuid()));
        assert_eq!(default_dir(true), DefaultDir::Private(expected));
    }

    #[test]
    fn default_dir_is_a_writable_run_directory_or_the_private_one() {
        match default_dir(false) {
            DefaultDir::Run(dir) => assert!(is_usable_dir(&dir), "{dir:?}"),
            DefaultDir::Private(dir) => assert_eq!(dir, private_dir()),
        }
    }
}
