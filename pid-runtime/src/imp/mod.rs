//! What differs between systems: opening, locking, judging liveness and
//! cleaning up. Everything above this module is the same everywhere.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;
