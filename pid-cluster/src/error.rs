//! What a cluster lock answers when it does not give a guard, and why a
//! guard was lost.

use std::fmt;
use std::time::Duration;

/// The order of holdings of one name: every holder's token is greater than
/// every earlier holder's, whichever tool took the lock.
///
/// On etcd it is the store's revision at which the holding began, which is
/// what `etcdctl lock` exports as `ETCD_LOCK_REV`. A resource that keeps the
/// greatest token it has seen and refuses writes carrying a smaller one
/// cannot be written by a holder that lost the lock without noticing.
///
/// ```
/// use pid_cluster::FencingToken;
///
/// assert!(FencingToken::new(1893) > FencingToken::new(64));
/// assert_eq!(FencingToken::new(1893).to_string(), "1893");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FencingToken(u64);

impl FencingToken {
    /// The token with this value, as read back from a resource.
    pub const fn new(value: u64) -> FencingToken {
        FencingToken(value)
    }

    /// This token's value.
    pub const fn get(self) -> u64 {
        self.0
    }

    pub(crate) fn from_revision(revision: i64) -> FencingToken {
        FencingToken(u64::try_from(revision).unwrap_or(0))
    }
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Who holds a name, as far as its holder said: a holder that is not this
/// library (`etcdctl lock`) says nothing, and only its key is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The host it runs on.
    pub host: Option<String>,
    /// Its process id there.
    pub pid: Option<u32>,
    /// Its key in the store.
    pub key: String,
}

impl Holder {
    /// Reads the value a holder wrote: `host=<host> pid=<pid>`.
    pub(crate) fn parse(key: &[u8], value: &[u8]) -> Holder {
        let mut holder = Holder {
            host: None,
            pid: None,
            key: String::from_utf8_lossy(key).into_owned(),
        };
        for field in String::from_utf8_lossy(value).split_whitespace() {
            match field.split_once('=') {
                Some(("host", host)) => holder.host = Some(host.to_string()),
                Some(("pid", pid)) => holder.pid = pid.parse().ok(),
                _ => {}
            }
        }
        holder
    }

    pub(crate) fn value(host: &str, pid: u32) -> String {
        format!("host={host} pid={pid}")
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.pid, &self.host) {
            (Some(pid), Some(host)) => write!(f, "as pid {pid} on {host}"),
            (Some(pid), None) => write!(f, "as pid {pid}"),
            (None, _) => write!(f, "as {}", self.key),
        }
    }
}

/// Why a guard no longer holds its lock.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LossReason {
    /// No renewal was acknowledged in time: the server may have expired the
    /// lease, so the guard gave it up at its deadline. `last_ack_sent` is how
    /// long before the loss the last acknowledged renewal was sent.
    NoRenewalBeforeDeadline {
        /// How long before the loss the last acknowledged renewal was sent.
        last_ack_sent: Duration,
    },
    /// The server answered a renewal saying the lease is gone.
    LeaseExpired,
    /// The guard's key was deleted (by an operator, or a revoke of its lease).
    KeyDeleted,
    /// PostgreSQL: the session that held the lock ended (an administrator's
    /// `pg_terminate_backend`, a restart or failover, `idle_session_timeout`
    /// after a pause, a broken connection).
    SessionTerminated,
    /// PostgreSQL: the server says the guard's session no longer holds the
    /// lock for this guard, as when a pooler gave the connection another
    /// server session.
    NotHeldBySession,
    /// This is a forked child's copy of a guard: only the parent holds.
    Forked,
}

impl fmt::Display for LossReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LossReason::NoRenewalBeforeDeadline { last_ack_sent } => write!(
                f,
                "no renewal acknowledged for {:.1} s",
                last_ack_sent.as_secs_f64()
            ),
            LossReason::LeaseExpired => f.write_str("the server says the lease expired"),
            LossReason::KeyDeleted => f.write_str("its key was deleted"),
            LossReason::SessionTerminated => f.write_str("the server ended the lock's session"),
            LossReason::NotHeldBySession => {
                f.write_str("the server says the session no longer holds the lock")
            }
            LossReason::Forked => f.write_str("this is a forked child's copy of the guard"),
        }
    }
}

/// A guard that lost its lock: whatever it guards must stop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lost cluster lock '{name}' (token {token}): {reason}")]
pub struct Lost {
    /// The lock's name.
    pub name: String,
    /// The token the guard had.
    pub token: FencingToken,
    /// Why it was lost.
    pub reason: LossReason,
}

/// Why a cluster lock gave no guard, or failed to report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another process holds the lock.
    #[error("already running {holder} (cluster lock '{name}', token {token}{})", TtlLeft(*.ttl_left))]
    AlreadyHeld {
        /// The lock's name.
        name: String,
        /// Who holds it.
        holder: Holder,
        /// The holder's token.
        token: FencingToken,
        /// How long its lease lasts if the holder stops renewing it.
        ttl_left: Option<Duration>,
    },
    /// No server could be reached: nothing is held, and nothing is assumed.
    #[error("cluster lock '{name}': no server answers at {endpoints}: {source}")]
    Unavailable {
        /// The lock's name.
        name: String,
        /// The servers tried.
        endpoints: String,
        /// The client's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The lock was still held when the time to wait for it was up.
    #[error("cluster lock '{name}': still held after {:.1} s of waiting", .waited.as_secs_f64())]
    Timeout {
        /// The lock's name.
        name: String,
        /// How long it waited.
        waited: Duration,
    },
    /// The lock was granted too late to be of use: its lease was lost while
    /// waiting in the queue, or before the acquisition returned.
    #[error("cluster lock '{name}' was lost before it could be used: {reason}")]
    LostBeforeUse {
        /// The lock's name.
        name: String,
        /// Why.
        reason: LossReason,
    },
    /// The name cannot name a lock.
    #[error("invalid cluster lock name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The time to live and margin leave no time to hold the lock.
    #[error("cluster lock '{name}': a margin of {:.1} s leaves nothing of a {:.1} s lease", .margin.as_secs_f64(), .ttl.as_secs_f64())]
    InvalidTiming {
        /// The lock's name.
        name: String,
        /// The time to live the server granted (or was asked for).
        ttl: Duration,
        /// The margin asked for.
        margin: Duration,
    },
    /// PostgreSQL: the connection's server session is shared with other
    /// clients (a pooler in transaction mode), where a session lock could
    /// have two holders at once; connect to the server, or to a pool in
    /// session mode.
    #[error("cluster lock '{name}': the server session at {server} is shared with other clients (a pooler in transaction mode?), where a session lock could have two holders: connect to the server itself or a session-mode pool")]
    SharedSession {
        /// The lock's name.
        name: String,
        /// The server, without its password.
        server: String,
    },
    /// The server refused a request.
    #[error("cluster lock '{name}': {operation} failed: {source}")]
    Backend {
        /// The lock's name.
        name: String,
        /// What was asked.
        operation: &'static str,
        /// The server's or the client's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// Whether another process holds the lock, as
    /// `pid_runtime::Error::is_already_running` says for a pidfile.
    pub fn is_already_running(&self) -> bool {
        matches!(self, Error::AlreadyHeld { .. } | Error::Timeout { .. })
    }
}

/// Converts into an [`io::Error`](std::io::Error) with this error's
/// message: `ResourceBusy` for a holder, `TimedOut`, `ConnectionRefused`
/// when no server answers, `InvalidInput` for a bad name or timing, `Other`
/// otherwise; for functions that return `io::Result`, as under
/// `#[pidfile(cluster = ..)]`.
impl From<Error> for std::io::Error {
    fn from(error: Error) -> std::io::Error {
        use std::io::ErrorKind;
        let kind = match &error {
            Error::AlreadyHeld { .. } => ErrorKind::ResourceBusy,
            Error::Timeout { .. } => ErrorKind::TimedOut,
            Error::Unavailable { .. } => ErrorKind::ConnectionRefused,
            Error::InvalidName { .. } | Error::InvalidTiming { .. } => ErrorKind::InvalidInput,
            _ => ErrorKind::Other,
        };
        std::io::Error::new(kind, error)
    }
}

/// Converts into an [`io::Error`](std::io::Error) of kind
/// `ConnectionAborted` with the loss's message.
impl From<Lost> for std::io::Error {
    fn from(lost: Lost) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::ConnectionAborted, lost)
    }
}

struct TtlLeft(Option<Duration>);

impl fmt::Display for TtlLeft {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(left) => write!(
                f,
                ", expires in ≤ {} s if that process is gone",
                left.as_secs()
            ),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_holder_its_token_and_time_left() {
        let error = Error::AlreadyHeld {
            name: "nightly-report".into(),
            holder: Holder::parse(b"nightly-report/694d", b"host=build-7 pid=4242"),
            token: FencingToken::new(1893),
            ttl_left: Some(Duration::from_secs(7)),
        };
        assert_eq!(
            error.to_string(),
            "already running as pid 4242 on build-7 (cluster lock 'nightly-report', token 1893, expires in ≤ 7 s if that process is gone)"
        );
        assert!(error.is_already_running());
    }

    #[test]
    fn a_holder_that_wrote_nothing_is_named_by_its_key() {
        let holder = Holder::parse(b"job/694d", b"");
        assert_eq!(holder.to_string(), "as job/694d");
    }
}
