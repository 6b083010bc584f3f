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
//! # The attribute, and asking without taking
//!
//! [`#[pidfile]`](macro@pidfile) holds a pidfile for the length of a
//! function: the program's `main`, which then exits with a message naming
//! the holder when it is refused, or any worker returning a `Result`.
//! [`PidFile::check`] tells who runs, without taking anything:
//!
//! ```
//! use pid_runtime::{PidFile, Status};
//!
//! #[pid_runtime::pidfile(name = "importer", force_tmpdir = true)]
//! fn import() -> std::io::Result<()> {
//!     // Runs only while this process holds $TMPDIR/pidfile-<euid>/importer.pid,
//!     // so another process asking is told this one runs.
//!     let status = PidFile::new("importer").force_tmpdir(true).check()?;
//!     assert_eq!(status, Status::Running { pid: Some(pid_runtime::Pid::current()) });
//!     Ok(())
//! }
//!
//! # fn main() -> std::io::Result<()> {
//! import()?;
//! assert_eq!(PidFile::new("importer").force_tmpdir(true).check()?, Status::NotRunning);
//! # Ok(()) }
//! ```
//!
//! From a shell, cron or a service manager, the `pidfile` command of the
//! `pid-cli` package does the same for any program: `pidfile run --name
//! backup -- /usr/local/bin/backup`, `pidfile check`, `pidfile wait`,
//! `pidfile stop`.
//!
//! # Features
//!
//! - `macros` (default): the [`#[pidfile]`](macro@pidfile) attribute. Without
//!   it the crate depends on `thiserror` and `nix` (Unix) or `windows-sys`
//!   (Windows) only.
//! - `etcd`: `pid_runtime::cluster`, a lock that one process holds across
//!   every host sharing an etcd cluster (the `pid-cluster` crate; Rust 1.88).
//! - `postgres`: the same lock on a PostgreSQL server (14 or later),
//!   `cluster::Postgres`; implies `etcd`.
//!
//! # Platforms
//!
//! Linux is the reference: everything below holds there, and the test suite
//! runs on x86_64 and, under emulation, aarch64. On macOS, FreeBSD, NetBSD,
//! OpenBSD, DragonFly, illumos and Android the crate builds (checked in CI,
//! not run) with these differences:
//!
//! - Process start times, which detect a reused pid, are read on Linux,
//!   Android, macOS and FreeBSD only; elsewhere a live pid is taken at its
//!   word, so a file naming a reused pid is refused rather than taken over.
//! - Pseudo file systems are recognised by `statfs` on Linux and Android
//!   only.
//! - [`PidFile::acquire_timeout`] and [`PidFile::wait_until_free`] wake on
//!   inotify on Linux and Android, and look again after short pauses
//!   elsewhere.
//!
//! ## Windows
//!
//! The same API, on another lock: `LockFileEx`, exclusive, on one byte far
//! past the content, since such a lock is mandatory for its range and one
//! over the pid would keep every reader from it. The pid stays readable to
//! `type`, PowerShell and Python; `flock(1)` and `fcntl` locks do not exist
//! there. The differences:
//!
//! - Python `pid` locks the first byte (`msvcrt.locking`) and reads it to
//!   tell whether a file is held. A holder here locks that byte too while
//!   it writes, so a Python newcomer meets a lock or a live pid, and a
//!   Python holder's lock reads here as held: they exclude each other.
//! - A reused pid is told by the process's creation time against the file's
//!   last write.
//! - The file is removed on drop, on console events (see [`TermSignal`]) and
//!   at [`std::process::exit`]; `taskkill /F` leaves it stale.
//! - [`PidFile::mode`] and [`PidFile::owner`] give [`Error::Unsupported`];
//!   directories are not judged ([`PidFile::allow_insecure_dir`]);
//!   [`PidFileGuard::daemonize`](PidFileGuard#method.daemonize) does not
//!   exist.
//! - The default directory is `%APPDATA%`, as Python `pid` 3.0.4 has it.
//! - Names that Windows reserves (`NUL`, `CON.pid`, `COM1`, `<>:"|?*`) are
//!   refused as [`Error::InvalidName`].
//!
//! The Windows tests run under Wine in CI.
//!
//! Other targets do not build.
//!
//! # Stale files
//!
//! A pidfile left by a process that died without cleaning up (SIGKILL, a
//! crash, a power cut) is not locked. [`PidFile::acquire`] takes it over when
//! the process it names is gone or a zombie, and also when that process id now
//! belongs to a process that started after the file was written: after a
//! reboot or a container restart, ids are reused, and a pidfile naming a
//! stranger is stale all the same. (Start times are read from `/proc` on
//! Linux, with `proc_pidinfo` on macOS and `sysctl kern.proc` on FreeBSD;
//! elsewhere a live id is taken at its word.)
//!
//! # Safety with hostile files
//!
//! A new pidfile is created with `O_CREAT | O_EXCL`; a path that already
//! exists is looked at with `lstat` first and opened, with `O_NOFOLLOW |
//! O_NONBLOCK | O_NOCTTY`, only when it is a regular file with one link that
//! is not on a kernel's pseudo file system. A symlink, directory, FIFO,
//! socket, device, hard link, sysctl, or a file holding anything but a
//! process id is reported as an error and never followed, opened, waited on,
//! truncated, rewritten or removed. Another user's file is judged without
//! being opened for writing, and is never taken over. A failed acquisition
//! removes the file it created and restores the one it found.
//!
//! Every directory and symbolic link from `/` to the pidfile's directory must
//! belong to root or to the effective user, and none may be writable by
//! others without the sticky bit: see [`PidFile::allow_insecure_dir`].
//!
//! # What is not guaranteed
//!
//! - Deleting or replacing a held file (by hand, a temporary-file cleaner, a
//!   deploy script) lets a second instance start; keep pidfiles in `/run`,
//!   which cleaners leave alone.
//! - `fcntl` and `lockf` locks are a different lock: they do not exclude us.
//! - A file written from another pid namespace names a pid that means
//!   something else here: share run directories across containers only for
//!   the lock.
//! - With `/proc` mounted `hidepid=2`, start times of other users' processes
//!   cannot be read, so an unlocked file naming a reused pid is refused.
//! - A pid is judged reused by comparing its process's start time with the
//!   file's modification time, both by the wall clock as it stands now: a
//!   clock step between the write and now moves one against the other. This
//!   concerns only files written without a lock.
//! - A relative [`dir`](PidFile::dir) is resolved once per `PidFile` value,
//!   clones included.
//!
//! # Network file systems
//!
//! `flock(2)` on NFS is emulated with byte-range locks by Linux, and not at
//! all by some servers and clients. Keep pidfiles on a local file system;
//! the run directories chosen by default always are.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(unsafe_op_in_unsafe_fn)]

#[cfg(not(any(unix, windows)))]
compile_error!(
    "pid-runtime builds on Unix systems (Linux, macOS, the BSDs, illumos, Android) and on \
     Windows only: it has no backend for this target"
);

mod content;
mod error;
mod guard;
mod imp;
mod path;
mod pid;
mod pidfile;
mod term_signal;
mod wait;

pub use error::{Error, FileKind};
pub use guard::PidFileGuard;
pub use pid::Pid;
pub use pidfile::{PidFile, Status};
pub use term_signal::TermSignal;

/// Holds a pidfile while the function runs: the guard is acquired before the
/// first statement of the body and released after its value is computed.
///
/// ```
/// #[pid_runtime::pidfile(name = "indexer", force_tmpdir = true)]
/// fn main() {
///     // Runs only while this process holds $TMPDIR/pidfile-<euid>/indexer.pid.
/// }
/// ```
///
/// # Arguments
///
/// All are optional, in any order.
///
/// | argument | takes | default |
/// | --- | --- | --- |
/// | `name` | any expression that gives a string | the program's name ([`PidFile::for_program`]) |
/// | `dir` | any expression that gives a path | a run directory ([`PidFile::dir`]) |
/// | `mode` | octal integer literal, at most `0o7777` | `0o644` |
/// | `uid`, `gid` | integer literal | leave as created |
/// | `allow_same_pid`, `force_tmpdir`, `enforce_pid_suffix` | `true` or `false` | as [`PidFile`] |
/// | `term_signal` | `"auto"`, `"always"` or `"never"` | `"auto"` ([`TermSignal`]) |
/// | `exit_code` | 0 to 255, on the program's `main` only | 1 |
/// | `entry` | `true` or `false` | whether it is the program's `main`, as below |
/// | `daemonize` | `true` or `false`, on a plain (not async) program's `main` | `false`: see [`PidFileGuard::daemonize`](crate::PidFileGuard#method.daemonize) (Unix only) |
/// | `crate` | the path of this crate as a string, if renamed | `"::pid_runtime"` |
///
/// A string literal given as `name` or `dir` is checked at compile time: an
/// empty name, or one with `/` or NUL, does not compile.
///
/// A `mode` written in decimal (`mode = 644`, which is `0o1204`) does not
/// compile: write it in octal.
///
/// # When the pidfile is held by someone else
///
/// - The program's `main`, whatever it returns, prints one line to standard error,
///   `<program>: already running as pid 4242 (/run/user/1000/indexer.pid)`
///   (or the error), and exits with `exit_code`.
/// - Any other function must return a `Result` whose error type converts from
///   [`Error`] (`std::io::Error`, `Box<dyn std::error::Error>`,
///   `anyhow::Error`, ...). It returns the error, and acquires again at its
///   next call, so a scheduler can call it in a loop:
///
/// ```
/// use std::io;
///
/// #[pid_runtime::pidfile(name = "nightly-report", force_tmpdir = true)]
/// fn nightly_report() -> io::Result<u32> {
///     Ok(42) // runs only while this process holds the pidfile
/// }
///
/// fn main() -> io::Result<()> {
///     assert_eq!(nightly_report()?, 42);
///     assert_eq!(nightly_report()?, 42); // released in between
///
///     let _held = pid_runtime::PidFile::new("nightly-report").force_tmpdir(true).acquire()?;
///     let refused = nightly_report().unwrap_err();
///     assert_eq!(refused.kind(), io::ErrorKind::ResourceBusy);
///     Ok(())
/// }
/// ```
///
/// The program's `main` is a free `fn main` without receiver, parameters or
/// generics. A method or associated function named `main` that takes `self`
/// or parameters is a function like any other; a `main` in a module, or an
/// associated `fn main()` without parameters, says so with `entry = false`.
///
/// `async fn` works too, with the guard held across the body's `.await`s,
/// under `#[tokio::main]` in either order. Methods, generics and `unsafe fn`
/// keep their signatures. A `const fn`, or a function other than `main` that
/// does not return a `Result`, is a compile error.
///
/// # One instance across hosts (feature `etcd`)
///
/// `cluster = <expr>` adds a [cluster lock](crate::cluster) named as the
/// pidfile is, on the servers `<expr>` gives (a `cluster::Etcd`, such as
/// `Etcd::from_env()`, a `cluster::Postgres` with feature `postgres`, or a
/// `cluster::Backend`): one instance per host by the
/// pidfile, then one across hosts by the lock. The order is local pidfile,
/// cluster lock, body, cluster release, local release.
///
/// | argument | value | default |
/// |---|---|---|
/// | `cluster` | the lock's servers | none: no cluster lock |
/// | `ttl` | the lease's time to live, a string checked at compile time: `"10s"`, `"1500ms"`, `"2m"` | `"10s"` |
/// | `bind` | a name for the `&ClusterGuard` in the body, for `check()` and `fencing_token()` | unreachable |
/// | `on_lost` | `"exit"` or `"cancel"` | `"exit"` on `main`, `"cancel"` elsewhere |
/// | `lost_exit_code` | the status of `"exit"`, not 0 | 75 (`EX_TEMPFAIL`) |
/// | `local` | `false` to take no local pidfile | `true` |
///
/// - A refusal is handled as the pidfile's is: `main` prints
///   `<program>: already running as pid 4242 on build-7 (cluster lock ..)`
///   and exits with `exit_code`; another function returns it as its error,
///   which must convert from `cluster::Error` and `cluster::Lost`.
/// - `on_lost = "exit"`: at the guard's deadline, from a thread of its own,
///   the process prints `<program>: lost cluster lock 'name' (token N):
///   <reason>` and exits with `lost_exit_code`, removing its pidfile on the
///   way out; and if the body returns after the lock was lost, it exits so
///   too, whatever the body returned.
/// - `on_lost = "cancel"`: an `async fn` body is dropped at its next
///   `.await` once the lock is lost, and the function returns `Err(Lost)`;
///   any body that returns after the lock was lost at any time returns
///   `Err(Lost)`, even if it succeeded, so a scheduler never records a run
///   as exclusive when it was not.
///
/// The body sees the lock as `bind` names it; it should call `check()`
/// before each side effect, and hand `fencing_token()` to what it writes:
///
#[cfg_attr(
    feature = "etcd",
    doc = r#"
```no_run
use pid_runtime::cluster::Etcd;

# fn batches() -> std::io::Result<Vec<u32>> { Ok(vec![]) }
# fn store(_: u32, _: pid_runtime::cluster::FencingToken) -> std::io::Result<()> { Ok(()) }
#[pid_runtime::pidfile(name = "nightly-report", cluster = Etcd::from_env(), ttl = "10s", bind = lease)]
fn main() -> std::io::Result<()> {
    for batch in batches()? {
        lease.check()?; // no I/O: a clock and a flag
        store(batch, lease.fencing_token())?; // the store refuses older tokens
    }
    Ok(())
}
```
"#
)]
#[cfg_attr(
    not(feature = "etcd"),
    doc = "(The example is built with the `etcd` feature.)"
)]
///
///
/// The body runs in a closure (an async block for an `async fn`), so that
/// its `return`s and `?`s are checked against the lock too; a return type
/// written as `impl Trait` cannot be named there and does not compile.
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use pid_macros::pidfile;

/// One holder across hosts, on etcd or PostgreSQL: the `pid-cluster` crate.
#[cfg(feature = "etcd")]
#[cfg_attr(docsrs, doc(cfg(feature = "etcd")))]
pub use pid_cluster as cluster;

/// What the `#[pidfile]` expansion uses; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::{Error, PidFile, PidFileGuard, TermSignal};

    /// What a function under `#[pidfile]` returns as its error when the
    /// pidfile is refused: any error type that converts from [`Error`].
    #[diagnostic::on_unimplemented(
        message = "`#[pidfile]` returns a refused pidfile as the error, but `{Self}` cannot hold a `pid_runtime::Error`",
        label = "this error type does not convert from `pid_runtime::Error`",
        note = "return `std::io::Result<_>`, `Result<_, Box<dyn std::error::Error>>` or `anyhow::Result<_>`, or implement `From<pid_runtime::Error>` for `{Self}`"
    )]
    pub trait IntoRefusal {
        /// The refusal as this error type.
        fn into_refusal(error: Error) -> Self;
    }

    impl<E: From<Error>> IntoRefusal for E {
        fn into_refusal(error: Error) -> E {
            E::from(error)
        }
    }

    /// `#[pidfile(daemonize = true)]`: hands the guard to a daemon as the
    /// first thing `main` does, when no thread but the main one runs.
    pub fn daemonize_at_start_of_main(guard: PidFileGuard) -> Result<PidFileGuard, Error> {
        #[cfg(unix)]
        // SAFETY: the attribute calls this only at the start of a plain
        // (not async) `main`, before the program can have started a thread.
        return unsafe { guard.daemonize() };
        #[cfg(not(unix))]
        {
            drop(guard);
            Err(Error::Unsupported {
                option: "daemonize",
                system: "Windows",
            })
        }
    }

    /// Tells the user why `main` will not run, and exits.
    pub fn exit_refused(error: &dyn std::fmt::Display, exit_code: i32) -> ! {
        eprintln!("{}: {error}", program());
        std::process::exit(exit_code)
    }

    fn program() -> String {
        crate::path::program_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pidfile".to_string())
    }

    /// Passes a function's statements on when the `etcd` feature gives
    /// `#[pidfile(cluster = ..)]` a cluster lock to take, and says which
    /// feature is missing otherwise.
    #[cfg(feature = "etcd")]
    pub use crate::__pidfile_cluster_body as cluster_body;
    #[cfg(not(feature = "etcd"))]
    pub use crate::__pidfile_no_cluster_body as cluster_body;

    /// What `#[pidfile(cluster = ..)]` expands to calls.
    #[cfg(feature = "etcd")]
    pub mod cluster {
        use std::ffi::OsString;
        use std::future::Future;
        use std::time::Duration;

        use pid_cluster::ClusterLock;
        pub use pid_cluster::{ClusterGuard, Error, Lost};

        /// What `cluster = <expr>` takes: anything that converts into a
        /// backend, such as `Etcd::from_env()`.
        #[diagnostic::on_unimplemented(
            message = "`cluster = ..` takes the servers of a cluster lock, such as `Etcd::from_env()`, but got `{Self}`",
            label = "not a cluster backend",
            note = "write `cluster = pid_runtime::cluster::Etcd::from_env()`, `Etcd::endpoints([\"http://10.0.0.5:2379\"])` or, with feature `postgres`, `Postgres::from_env()`"
        )]
        pub trait Backend {
            /// The servers.
            fn into_backend(self) -> pid_cluster::Backend;
        }

        // One impl a type, not a blanket one over `Into`, so that anything
        // else gets the message above rather than one about `From`.
        macro_rules! backends {
            ($($backend:ty),*) => {$(
                impl Backend for $backend {
                    fn into_backend(self) -> pid_cluster::Backend {
                        self.into()
                    }
                }
            )*};
        }
        backends!(
            pid_cluster::Backend,
            &pid_cluster::Backend,
            pid_cluster::Etcd,
            &pid_cluster::Etcd
        );
        #[cfg(feature = "postgres")]
        backends!(pid_cluster::Postgres, &pid_cluster::Postgres);

        /// What a function under `#[pidfile(cluster = ..)]` returns as its
        /// error when the cluster lock is refused or lost.
        #[diagnostic::on_unimplemented(
            message = "`#[pidfile(cluster = ..)]` returns a refused or lost cluster lock as the error, but `{Self}` cannot hold a `pid_cluster::Error` and a `pid_cluster::Lost`",
            label = "this error type does not convert from `pid_cluster::Error` and `pid_cluster::Lost`",
            note = "return `std::io::Result<_>`, `Result<_, Box<dyn std::error::Error>>` or `anyhow::Result<_>`, or implement `From<pid_cluster::Error>` and `From<pid_cluster::Lost>` for `{Self}`"
        )]
        pub trait IntoClusterError {
            /// A refusal as this error type.
            fn from_refusal(error: Error) -> Self;
            /// A loss as this error type.
            fn from_lost(lost: Lost) -> Self;
        }

        impl<E: From<Error> + From<Lost>> IntoClusterError for E {
            fn from_refusal(error: Error) -> E {
                E::from(error)
            }
            fn from_lost(lost: Lost) -> E {
                E::from(lost)
            }
        }

        /// The lock named as the pidfile is: `name`, else the program's
        /// name.
        pub fn lock(
            name: Option<OsString>,
            backend: impl Backend,
            ttl: Option<Duration>,
        ) -> ClusterLock {
            let name = name
                .or_else(crate::path::program_name)
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let lock = ClusterLock::new(name).backend(backend.into_backend());
            match ttl {
                Some(ttl) => lock.ttl(ttl),
                None => lock,
            }
        }

        /// Takes the lock; with `exit_code`, the process exits with it when
        /// the lock is lost (`on_lost = "exit"`).
        pub fn acquire(lock: &ClusterLock, exit_code: Option<i32>) -> Result<ClusterGuard, Error> {
            watched(lock, lock.acquire()?, exit_code)
        }

        /// [`acquire`] for an `async fn`.
        pub async fn acquire_async(
            lock: &ClusterLock,
            exit_code: Option<i32>,
        ) -> Result<ClusterGuard, Error> {
            watched(lock, lock.acquire_async().await?, exit_code)
        }

        fn watched(
            lock: &ClusterLock,
            guard: ClusterGuard,
            exit_code: Option<i32>,
        ) -> Result<ClusterGuard, Error> {
            if let Some(exit_code) = exit_code {
                if let Err(error) = guard.exit_when_lost(exit_code) {
                    return Err(Error::Backend {
                        name: lock.name().to_string(),
                        operation: "watch for a loss",
                        source: error.into(),
                    });
                }
            }
            Ok(guard)
        }

        /// Runs an async body until it ends or the lock is lost, when it
        /// is dropped at its next `.await`.
        pub async fn until_lost<F: Future>(
            guard: &ClusterGuard,
            body: F,
        ) -> Result<F::Output, Lost> {
            match guard.lost().run_until_cancelled(body).await {
                Some(output) => Ok(output),
                None => guard
                    .check()
                    .map(|()| unreachable!("cancelled only when lost")),
            }
        }

        /// After the body: the lock was held all along, or why not.
        pub fn held_throughout(guard: &ClusterGuard) -> Result<(), Lost> {
            guard.check()
        }

        /// After the body, `on_lost = "exit"`: exits with `exit_code` if the
        /// lock was lost at any time, even if the body succeeded.
        pub fn exit_if_lost(guard: &ClusterGuard, exit_code: i32) {
            if let Err(lost) = guard.check() {
                super::exit_refused(&lost, exit_code);
            }
        }
    }
}

#[doc(hidden)]
#[macro_export]
macro_rules! __pidfile_cluster_body {
    ($($statements:tt)*) => { $($statements)* };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __pidfile_no_cluster_body {
    ($($statements:tt)*) => {
        ::core::compile_error!(
            "`#[pidfile(cluster = ..)]` needs the `etcd` feature of pid-runtime: \
             pid-runtime = { version = \"0.1\", features = [\"etcd\"] }"
        )
    };
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
