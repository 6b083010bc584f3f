//! Pidfiles that lock, detect stale owners honestly, and clean up after
//! themselves.
//!
//! A [`PidFile`] names a file; [`PidFile::acquire`] takes it and returns a
//! [`PidFileGuard`] that removes it when dropped. While the guard lives, no
//! other process can take the same file: not another copy of this program,
//! and not a program using Python `pid`, util-linux `flock(1)` or BSD
//! `pidfile(3)`, which take the same `flock(2)` lock.
//!
//! ```
//! use pid_runtime::PidFile;
//!
//! # fn main() -> Result<(), pid_runtime::Error> {
//! # let dir = std::env::temp_dir().join(format!("pid-doc-lib-{}", std::process::id()));
//! let pidfile = PidFile::new("worker").dir(&dir);
//! let guard = pidfile.acquire()?;
//! println!("holding {} as pid {}", guard.path().display(), guard.pid());
//!
//! // Anyone else is told who holds it.
//! let refused = pidfile.acquire().unwrap_err();
//! assert_eq!(refused.pid(), Some(guard.pid()));
//! eprintln!("{refused}"); // already running as pid 4242 (/tmp/.../worker.pid)
//! # Ok(()) }
//! ```
//!
//! # Stale files
//!
//! A pidfile left by a process that died without cleaning up (SIGKILL, a
//! crash, a power cut) is not locked. [`PidFile::acquire`] takes it over when
//! the process it names is gone or a zombie, and also when that process id now
//! belongs to a process that started after the file was written: after a
//! reboot or a container restart, ids are reused, and a pidfile naming a
//! stranger is stale all the same. (Start times are read from `/proc` on
//! Linux; elsewhere a live id is taken at its word.)
//!
//! # Safety with hostile files
//!
//! The pidfile is opened with `O_NOFOLLOW | O_NONBLOCK | O_NOCTTY`, then
//! checked to be a regular file with one link, on the very descriptor that was
//! locked. A symlink, directory, FIFO, socket, device, hard link, or a file
//! holding anything but a process id is reported as an error and never
//! followed, waited on, truncated, rewritten or removed.
//!
//! # Cleanup
//!
//! The file is removed when the guard drops (also while a panic unwinds),
//! when the process calls [`std::process::exit`], and on SIGTERM (see
//! [`TermSignal`]). See [`PidFileGuard`] for what happens on SIGKILL, `abort`
//! and `fork`.
//!
//! # Network file systems
//!
//! `flock(2)` on NFS is emulated with byte-range locks by Linux, and not at
//! all by some servers and clients. Keep pidfiles on a local file system;
//! the run directories chosen by default always are.
#![deny(missing_docs)]
#![warn(unsafe_op_in_unsafe_fn)]

mod cleanup;
mod content;
mod error;
mod guard;
mod liveness;
mod lock;
mod path;
mod pidfile;
mod process;

pub use error::{Error, FileKind};
pub use guard::PidFileGuard;
pub use nix::unistd::{Gid, Pid, Uid};
pub use pidfile::{PidFile, Status, TermSignal};

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;
