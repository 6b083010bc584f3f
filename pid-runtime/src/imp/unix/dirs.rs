//! The directory a pidfile goes in when none is given.

use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, AT_FDCWD};
use nix::sys::stat::SFlag;
use nix::unistd::{faccessat, geteuid, AccessFlags};

use crate::path::DefaultDir;

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
