//! Where a pidfile lives: its file name and its directory.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::Error;

const SUFFIX: &str = ".pid";

/// The file name for `name`: refused when it could name another directory or
/// none, given the `.pid` suffix when `enforce_suffix` asks for one.
pub(crate) fn file_name(name: &OsStr, enforce_suffix: bool) -> Result<OsString, Error> {
    let invalid = |reason| Error::InvalidName {
        name: name.to_os_string(),
        reason,
    };
    let bytes = name.as_encoded_bytes();
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
    #[cfg(windows)]
    windows_rules(bytes).map_err(invalid)?;
    let mut file_name = name.to_os_string();
    if enforce_suffix && !bytes.ends_with(SUFFIX.as_bytes()) {
        file_name.push(SUFFIX);
    }
    Ok(file_name)
}

/// What else Windows refuses in a file name: its other separators and
/// reserved characters, and the names of devices (`NUL`, `CON.pid`), which
/// open the device wherever they are.
#[cfg(windows)]
fn windows_rules(bytes: &[u8]) -> Result<(), &'static str> {
    if bytes.contains(&b'\\') {
        return Err("it contains '\\'");
    }
    if bytes
        .iter()
        .any(|byte| b"<>:\"|?*".contains(byte) || *byte < 0x20)
    {
        return Err("it contains a character Windows reserves (<>:\"|?* or a control character)");
    }
    if bytes.ends_with(b".") || bytes.ends_with(b" ") {
        return Err("it ends with '.' or a space, which Windows drops");
    }
    let stem = bytes.split(|byte| *byte == b'.').next().unwrap_or(bytes);
    let stem = stem.trim_ascii_end().to_ascii_uppercase();
    let numbered = |prefix: &[u8]| {
        stem.strip_prefix(prefix)
            .is_some_and(|number| matches!(number, [b'1'..=b'9'] | [0xc2, 0xb9 | 0xb2 | 0xb3]))
    };
    let device = matches!(
        &stem[..],
        b"CON" | b"PRN" | b"AUX" | b"NUL" | b"CONIN$" | b"CONOUT$"
    ) || numbered(b"COM")
        || numbered(b"LPT");
    if device {
        return Err("it names a Windows device");
    }
    Ok(())
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
    /// any other user take the name first. Unix only: Windows gives each
    /// user a temporary directory of their own.
    #[cfg_attr(windows, allow(dead_code))]
    Private(PathBuf),
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
}
