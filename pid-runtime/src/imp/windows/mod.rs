//! Windows: `LockFileEx` on a byte far past the content, so the pid stays
//! readable; liveness from the process's creation time; cleanup on drop, at
//! exit and on console events.

mod acquire;
mod cleanup;
mod file;
mod liveness;

use std::path::PathBuf;

pub(crate) use acquire::{acquire, check};
pub(crate) use cleanup::Held;

use crate::path::DefaultDir;

/// What is learnt once per [`PidFile`](crate::PidFile): nothing on Windows,
/// where directory rights are access control lists, not owners and modes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Known {}

/// The directory used when none is given: the user's application data
/// (`%APPDATA%`), as Python `pid` has it, or the user's own temporary
/// directory (`%TEMP%`, under the user's profile) when asked or when there
/// is none. Both belong to the user alone.
pub(crate) fn default_dir(force_tmpdir: bool) -> DefaultDir {
    let app_data = || {
        std::env::var_os("APPDATA")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("USERPROFILE")
                    .map(|profile| PathBuf::from(profile).join("AppData").join("Roaming"))
            })
            .filter(|dir| dir.is_absolute() && dir.is_dir())
    };
    let dir = if force_tmpdir { None } else { app_data() };
    DefaultDir::Run(dir.unwrap_or_else(std::env::temp_dir))
}
