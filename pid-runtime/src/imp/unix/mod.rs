//! Unix: `flock(2)` on a file opened without following links, liveness
//! from the process table, cleanup at `exit` and on SIGTERM.

mod acquire;
pub(crate) mod cleanup;
mod dirs;
pub(crate) mod file;
mod held;
pub(crate) mod liveness;
pub(crate) mod lock;
pub(crate) mod process;
pub(crate) mod trust;
pub(crate) mod verdict;

use std::sync::OnceLock;

pub(crate) use acquire::{acquire, check};
pub(crate) use dirs::default_dir;
pub(crate) use held::{daemonize, Held};

/// What is learnt once per [`PidFile`](crate::PidFile) about the way to its
/// directory.
#[derive(Debug, Clone, Default)]
pub(crate) struct Known {
    /// Set once the way to the directory was judged safe.
    pub(crate) trusted: OnceLock<()>,
    pub(crate) real: file::RealFileSystem,
}
