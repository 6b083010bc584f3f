//! One holder across hosts: a lock that at most one process holds among all
//! the hosts that share an etcd cluster, with a fencing token on every
//! holding and a validity deadline that a paused or partitioned holder reads
//! for itself.
//!
//! The lock is etcd's own recipe (`client/v3/concurrency/mutex.go`), with the
//! keys `etcdctl lock` and Go's `concurrency.Mutex` use, so each of them and
//! this crate exclude the others. What it adds is how a holder learns it
//! lost: each renewal of the lease is timed from when it was *sent*, on a
//! clock that counts through suspend, and the guard stops holding at the
//! moment the server could expire the lease, minus a margin, rather than
//! when a background task gets round to noticing.
//!
//! ```no_run
//! use std::time::Duration;
//! use pid_cluster::{ClusterLock, Etcd};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let lock = ClusterLock::new("nightly-report")
//!     .backend(Etcd::endpoints(["http://10.0.0.5:2379", "http://10.0.0.6:2379"]))
//!     .ttl(Duration::from_secs(10));
//! match lock.acquire() {
//!     Ok(guard) => {
//!         guard.check()?; // before each side effect
//!         println!("holding with token {}", guard.fencing_token());
//!     }
//!     Err(error) if error.is_already_running() => eprintln!("{error}"),
//!     Err(error) => return Err(error.into()),
//! }
//! # Ok(()) }
//! ```
//!
//! # What is guaranteed
//!
//! A holder stops believing it holds before a successor can start holding,
//! as long as its clock runs no slower than real time by more than
//! `margin / ttl` (20 % by default) and no operator revokes the lease or
//! deletes the key by hand: then the guard learns within a round trip, and
//! only fencing covers that round trip. No lease can stop a paused process
//! from acting once it resumes; [`ClusterGuard::check`] tells it at once, and
//! a resource that refuses older [`FencingToken`]s refuses what it did not
//! check.
//!
//! # On PostgreSQL (feature `postgres`)
//!
//! `Postgres` is a backend beside [`Etcd`]: each guard holds a
//! session-level advisory lock (key `LOCK_KEY_SQL`) on a connection of its
//! own, whose `idle_session_timeout` is the time to live, probed every third
//! of it; the end of the session is a loss at once. Its token is a counter
//! in `pid_runtime.fence`, and `SqlFence` is the predicate that fences the
//! program's own statements. A session that a transaction pooler shares is
//! refused ([`Error::SharedSession`]). PostgreSQL 14 or later; the lock does
//! not survive a failover, after which an asynchronous standby may repeat a
//! token.
//!
//! # Processes
//!
//! Renewals run on one thread per process, started at the first use, so a
//! blocked runtime of the program's cannot starve them. A forked child's copy
//! of a guard is lost ([`LossReason::Forked`]) and never revokes the parent's
//! lease.
#![deny(missing_docs)]

mod clock;
mod error;
mod guard;
mod lock;
#[cfg(feature = "postgres")]
mod postgres;
mod runtime;

pub use error::{Error, FencingToken, Holder, LossReason, Lost};
/// The etcd client this crate uses, for transactions that take
/// [`ClusterGuard::owner_compare`].
pub use etcd_client;
pub use guard::{ClusterGuard, GuardInfo};
pub use lock::{Backend, ClusterLock, ClusterStatus, Etcd, ETCD_ENDPOINTS_ENV};
#[cfg(feature = "postgres")]
pub use postgres::{Postgres, SqlFence, LOCK_KEY_SQL, POSTGRES_URL_ENV};
/// The PostgreSQL client this crate uses, for statements that take a
/// [`SqlFence`].
#[cfg(feature = "postgres")]
pub use tokio_postgres;
