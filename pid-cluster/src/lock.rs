//! The lock: etcd's own mutex recipe (`client/v3/concurrency/mutex.go`),
//! key `<namespace><name>/<lease id in hex>`, so that `etcdctl lock` and Go's
//! `concurrency.Mutex` on the same name exclude us and we them.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions, SortOrder,
    SortTarget, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::OnceCell;

use crate::clock;
use crate::error::{Error, FencingToken, Holder, LossReason};
use crate::guard::{self, ClusterGuard, Held};
use crate::runtime;

/// The environment variable [`Etcd::from_env`] reads: endpoints separated by
/// commas.
pub const ETCD_ENDPOINTS_ENV: &str = "PIDFILE_ETCD_ENDPOINTS";

const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:2379";
const DEFAULT_TTL: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request may take before the servers count as unreachable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// An etcd cluster, by its client endpoints.
///
/// ```
/// use pid_cluster::Etcd;
///
/// let etcd = Etcd::endpoints(["http://10.0.0.5:2379", "http://10.0.0.6:2379"]);
/// assert_eq!(etcd.to_string(), "http://10.0.0.5:2379,http://10.0.0.6:2379");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Etcd {
    endpoints: Vec<String>,
}

impl Etcd {
    /// The cluster at these endpoints (`http://host:port` or `host:port`).
    pub fn endpoints<I, S>(endpoints: I) -> Etcd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Etcd {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
        }
    }

    /// The cluster named by `PIDFILE_ETCD_ENDPOINTS` (comma-separated), or
    /// `http://127.0.0.1:2379` when it is unset or empty.
    pub fn from_env() -> Etcd {
        let endpoints = std::env::var(ETCD_ENDPOINTS_ENV).unwrap_or_default();
        let endpoints: Vec<String> = endpoints
            .split(',')
            .map(str::trim)
            .filter(|endpoint| !endpoint.is_empty())
            .map(String::from)
            .collect();
        if endpoints.is_empty() {
            Etcd::endpoints([DEFAULT_ENDPOINT])
        } else {
            Etcd { endpoints }
        }
    }
}

impl std::fmt::Display for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.endpoints.join(","))
    }
}

/// The servers that keep a cluster lock: etcd, or with feature `postgres`,
/// PostgreSQL. What [`ClusterLock::backend`] and `#[pidfile(cluster = ..)]`
/// take, from an [`Etcd`] or a `Postgres`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// An etcd cluster.
    Etcd(Etcd),
    /// A PostgreSQL server.
    #[cfg(feature = "postgres")]
    Postgres(crate::Postgres),
}

impl From<Etcd> for Backend {
    fn from(etcd: Etcd) -> Backend {
        Backend::Etcd(etcd)
    }
}

impl From<&Etcd> for Backend {
    fn from(etcd: &Etcd) -> Backend {
        Backend::Etcd(etcd.clone())
    }
}

#[cfg(feature = "postgres")]
impl From<crate::Postgres> for Backend {
    fn from(server: crate::Postgres) -> Backend {
        Backend::Postgres(server)
    }
}

#[cfg(feature = "postgres")]
impl From<&crate::Postgres> for Backend {
    fn from(server: &crate::Postgres) -> Backend {
        Backend::Postgres(server.clone())
    }
}

impl From<&Backend> for Backend {
    fn from(backend: &Backend) -> Backend {
        backend.clone()
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Etcd(etcd) => etcd.fmt(f),
            #[cfg(feature = "postgres")]
            Backend::Postgres(server) => server.fmt(f),
        }
    }
}

/// What the holder of a name is, as [`ClusterLock::check`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterStatus {
    /// No one holds the lock.
    Free,
    /// Someone holds it.
    Held {
        /// Who.
        holder: Holder,
        /// Its token.
        token: FencingToken,
        /// How long its lease lasts if it stops renewing.
        ttl_left: Option<Duration>,
    },
}

/// A lock that at most one process holds across every host that uses the
/// same etcd cluster and name.
///
/// ```no_run
/// use std::time::Duration;
/// use pid_cluster::{ClusterLock, Etcd};
///
/// # fn store(_: u32, _: pid_cluster::FencingToken) -> Result<(), Box<dyn std::error::Error>> { Ok(()) }
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let lock = ClusterLock::new("nightly-report")
///     .backend(Etcd::from_env())
///     .ttl(Duration::from_secs(10));
/// let guard = lock.acquire()?; // Error::AlreadyHeld names the holder
/// for batch in 0..10 {
///     guard.check()?; // no I/O: a clock and a flag
///     store(batch, guard.fencing_token())?; // the store refuses older tokens
/// }
/// guard.release()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use = "a ClusterLock does nothing until it is acquired or checked"]
pub struct ClusterLock {
    name: String,
    namespace: String,
    ttl: Duration,
    margin: Option<Duration>,
    backend: Backend,
    /// Made on the lease thread at first use, and shared by clones.
    client: Arc<OnceCell<Client>>,
}

impl ClusterLock {
    /// The lock named `name`, on the etcd cluster of
    /// [`Etcd::from_env`] until [`backend`](Self::backend) says otherwise.
    /// A name is not empty and has no `/` (which would put one lock's keys
    /// under another's prefix) and no control character.
    pub fn new(name: impl Into<String>) -> ClusterLock {
        ClusterLock {
            name: name.into(),
            namespace: String::new(),
            ttl: DEFAULT_TTL,
            margin: None,
            backend: Backend::Etcd(Etcd::from_env()),
            client: Arc::new(OnceCell::new()),
        }
    }

    /// The servers that keep the lock: an [`Etcd`], or a `Postgres`.
    pub fn backend(mut self, backend: impl Into<Backend>) -> ClusterLock {
        self.backend = backend.into();
        self.client = Arc::new(OnceCell::new());
        self
    }

    /// Shorthand for [`backend`](Self::backend)`(Etcd::endpoints(..))`.
    pub fn endpoints<I, S>(self, endpoints: I) -> ClusterLock
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.backend(Etcd::endpoints(endpoints))
    }

    /// A prefix for the lock's keys (default: none, so that `etcdctl lock
    /// <name>` takes the same lock). With a namespace `jobs/`, the keys are
    /// `jobs/<name>/<lease>`, the lock `etcdctl lock jobs/<name>` takes.
    pub fn namespace(mut self, namespace: impl Into<String>) -> ClusterLock {
        self.namespace = namespace.into();
        self
    }

    /// The lease's time to live asked for (default 10 s, whole seconds,
    /// rounded up). The server may grant more (etcd's least is 2 s by
    /// default): the granted one rules.
    pub fn ttl(mut self, ttl: Duration) -> ClusterLock {
        self.ttl = ttl;
        self
    }

    /// How long before the server could expire the lease the guard gives it
    /// up (default: a fifth of the granted time to live, at least 1 s).
    ///
    /// The guarantee that a holder stops believing before a successor
    /// starts holds as long as this host's clock runs no slower than real
    /// time by more than `margin / ttl`.
    pub fn margin(mut self, margin: Duration) -> ClusterLock {
        self.margin = Some(margin);
        self
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes the lock if no one holds it, without waiting.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyHeld`] naming the holder; [`Error::Unavailable`] when
    /// no server answers (never a local fallback); [`Error::LostBeforeUse`],
    /// [`Error::InvalidName`], [`Error::InvalidTiming`], [`Error::Backend`].
    pub fn acquire(&self) -> Result<ClusterGuard, Error> {
        let lock = self.clone();
        runtime::block_on(async move { lock.take(None).await })
    }

    /// Takes the lock, waiting in etcd's queue for at most `timeout` while
    /// someone holds it; first come, first served.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire), and [`Error::Timeout`] when the time
    /// is up.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<ClusterGuard, Error> {
        let lock = self.clone();
        runtime::block_on(async move { lock.take(Some(timeout)).await })
    }

    /// [`acquire`](Self::acquire) for async callers, from any runtime.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    pub async fn acquire_async(&self) -> Result<ClusterGuard, Error> {
        let lock = self.clone();
        runtime::run(async move { lock.take(None).await }).await
    }

    /// [`acquire_timeout`](Self::acquire_timeout) for async callers.
    ///
    /// # Errors
    ///
    /// As [`acquire_timeout`](Self::acquire_timeout).
    pub async fn acquire_timeout_async(&self, timeout: Duration) -> Result<ClusterGuard, Error> {
        let lock = self.clone();
        runtime::run(async move { lock.take(Some(timeout)).await }).await
    }

    /// Who holds the lock, without taking it.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`], [`Error::InvalidName`], [`Error::Backend`].
    pub fn check(&self) -> Result<ClusterStatus, Error> {
        let lock = self.clone();
        runtime::block_on(async move { lock.status().await })
    }

    fn prefix(&self) -> String {
        format!("{}{}/", self.namespace, self.name)
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        let reason = if self.name.is_empty() {
            Some("it is empty")
        } else if self.name.contains('/') {
            Some("it contains '/'")
        } else if self.name.chars().any(char::is_control) {
            Some("it contains a control character")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(Error::InvalidName {
                name: self.name.clone(),
                reason,
            }),
            None => Ok(()),
        }
    }

    pub(crate) fn margin_for(&self, granted: Duration) -> Duration {
        self.margin
            .unwrap_or_else(|| (granted / 5).max(Duration::from_secs(1)))
    }

    async fn client(&self) -> Result<Client, Error> {
        let endpoints = match &self.backend {
            Backend::Etcd(etcd) => etcd.endpoints.clone(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => Vec::new(),
        };
        let client = self
            .client
            .get_or_try_init(|| async move {
                let options = ConnectOptions::new()
                    .with_connect_timeout(CONNECT_TIMEOUT)
                    .with_keep_alive(Duration::from_secs(2), Duration::from_secs(1))
                    .with_require_leader(true);
                Client::connect(endpoints, Some(options)).await
            })
            .await
            .map_err(|error| self.unavailable(error))?;
        Ok(client.clone())
    }

    fn unavailable(&self, error: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Unavailable {
            name: self.name.clone(),
            endpoints: self.backend.to_string(),
            source: Box::new(error),
        }
    }

    /// One request, bounded in time, its failure classified.
    async fn ask<T>(
        &self,
        operation: &'static str,
        request: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) if is_unreachable(&error) => Err(self.unavailable(error)),
            Ok(Err(error)) => Err(Error::Backend {
                name: self.name.clone(),
                operation,
                source: Box::new(error),
            }),
            Err(elapsed) => Err(self.unavailable(elapsed)),
        }
    }

    async fn status(&self) -> Result<ClusterStatus, Error> {
        #[cfg(feature = "postgres")]
        if let Backend::Postgres(server) = &self.backend {
            return self.pg_status(server).await;
        }
        self.validate()?;
        let mut client = self.client().await?;
        let owner = self
            .ask("get", client.get(self.prefix(), Some(first_created())))
            .await?;
        let Some(owner) = owner.kvs().first() else {
            return Ok(ClusterStatus::Free);
        };
        let ttl_left = self.ttl_left(&mut client, owner.lease()).await;
        Ok(ClusterStatus::Held {
            holder: Holder::parse(owner.key(), owner.value()),
            token: FencingToken::from_revision(owner.create_revision()),
            ttl_left,
        })
    }

    async fn ttl_left(&self, client: &mut Client, lease: i64) -> Option<Duration> {
        let answer = self
            .ask("lease time-to-live", client.lease_time_to_live(lease, None))
            .await
            .ok()?;
        u64::try_from(answer.ttl()).ok().map(Duration::from_secs)
    }

    async fn take(self, wait: Option<Duration>) -> Result<ClusterGuard, Error> {
        #[cfg(feature = "postgres")]
        if let Backend::Postgres(server) = &self.backend {
            return self.pg_take(server, self.ttl, wait).await;
        }
        self.validate()?;
        let started = clock::now();
        let mut client = self.client().await?;
        let ttl_secs = i64::try_from(self.ttl.as_secs() + u64::from(self.ttl.subsec_nanos() > 0))
            .unwrap_or(i64::MAX)
            .max(1);
        let sent = clock::now();
        let grant = self
            .ask("lease grant", client.lease_grant(ttl_secs, None))
            .await?;
        let lease = grant.id();
        let granted = Duration::from_secs(u64::try_from(grant.ttl()).unwrap_or(0));
        let margin = self.margin_for(granted);
        if margin >= granted {
            revoke_quietly(&mut client, lease).await;
            return Err(Error::InvalidTiming {
                name: self.name.clone(),
                ttl: granted,
                margin,
            });
        }
        let prefix = self.prefix();
        let key = format!("{prefix}{lease:x}");
        let held = Held::new(guard::Lease {
            name: self.name.clone(),
            key: key.clone(),
            id: lease,
            granted,
            margin,
            valid_until: sent + granted - margin,
        });
        // Renewals run from now on, while this waits in the queue too.
        let renewing = guard::start_renewing(client.clone(), held.clone());

        let outcome = self
            .take_with_lease(&mut client, &held, &prefix, &key, lease, wait, started)
            .await;
        match outcome {
            Ok(token) => Ok(ClusterGuard::new(held, token, renewing, client)),
            Err(error) => {
                renewing.stop();
                let _ = client.delete(key, None).await;
                revoke_quietly(&mut client, lease).await;
                Err(error)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn take_with_lease(
        &self,
        client: &mut Client,
        held: &Held,
        prefix: &str,
        key: &str,
        lease: i64,
        wait: Option<Duration>,
        started: Duration,
    ) -> Result<(FencingToken, i64), Error> {
        let value = Holder::value(&host_name(), std::process::id());
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([
                TxnOp::put(key, value, Some(PutOptions::new().with_lease(lease))),
                TxnOp::get(prefix, Some(first_created())),
            ])
            .or_else([
                TxnOp::get(key, None),
                TxnOp::get(prefix, Some(first_created())),
            ]);
        let answer = self.ask("take", client.txn(txn)).await?;
        let revision = answer.header().map_or(0, |header| header.revision());
        let responses = answer.op_responses();
        let mine = if answer.succeeded() {
            revision
        } else {
            ranged(&responses, 0)
                .first()
                .map_or(revision, |kv| kv.create_revision())
        };
        let owner = ranged(&responses, 1).first().cloned();
        match owner {
            None => return self.usable(held, FencingToken::from_revision(revision), mine),
            Some(owner) if owner.create_revision() == mine => {
                return self.usable(held, FencingToken::from_revision(revision), mine)
            }
            Some(owner) => {
                let Some(wait) = wait else {
                    let ttl_left = self.ttl_left(client, owner.lease()).await;
                    return Err(Error::AlreadyHeld {
                        name: self.name.clone(),
                        holder: Holder::parse(owner.key(), owner.value()),
                        token: FencingToken::from_revision(owner.create_revision()),
                        ttl_left,
                    });
                };
                let waited = self.wait_for_turn(client, held, prefix, mine, wait, started);
                match waited.await? {
                    Turn::Came => {}
                    Turn::TimeUp => {
                        return Err(Error::Timeout {
                            name: self.name.clone(),
                            waited: clock::now().saturating_sub(started),
                        })
                    }
                }
            }
        }
        // etcd 3.4's own Lock lacks this (etcd#9921): the key may have gone
        // with its lease while it waited.
        let txn = Txn::new().and_then([
            TxnOp::get(key, None),
            TxnOp::get(prefix, Some(first_created())),
        ]);
        let answer = self.ask("confirm", client.txn(txn)).await?;
        let revision = answer.header().map_or(0, |header| header.revision());
        let responses = answer.op_responses();
        let still_mine = ranged(&responses, 0)
            .first()
            .is_some_and(|kv| kv.lease() == lease && kv.create_revision() == mine);
        let first = ranged(&responses, 1).first().map(|kv| kv.create_revision());
        if !still_mine || first != Some(mine) {
            return Err(Error::LostBeforeUse {
                name: self.name.clone(),
                reason: held.loss().unwrap_or(LossReason::KeyDeleted),
            });
        }
        self.usable(held, FencingToken::from_revision(revision), mine)
    }

    /// A token for a holding whose lease may have run out meanwhile.
    fn usable(
        &self,
        held: &Held,
        token: FencingToken,
        created: i64,
    ) -> Result<(FencingToken, i64), Error> {
        match held.check_deadline() {
            Some(reason) => Err(Error::LostBeforeUse {
                name: self.name.clone(),
                reason,
            }),
            None => Ok((token, created)),
        }
    }

    /// Go's `waitDeletes`: waits until every key created before ours is gone.
    async fn wait_for_turn(
        &self,
        client: &mut Client,
        held: &Held,
        prefix: &str,
        mine: i64,
        wait: Duration,
        started: Duration,
    ) -> Result<Turn, Error> {
        loop {
            if let Some(reason) = held.loss() {
                return Err(Error::LostBeforeUse {
                    name: self.name.clone(),
                    reason,
                });
            }
            let options = GetOptions::new()
                .with_prefix()
                .with_sort(SortTarget::Create, SortOrder::Descend)
                .with_max_create_revision(mine - 1)
                .with_limit(1);
            let before = match self.ask("get", client.get(prefix, Some(options))).await {
                Ok(before) => before,
                // A leader change, say: the lease outlives it or is lost.
                Err(Error::Unavailable { .. }) if wait_left(wait, started).is_some() => {
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                }
                Err(error) => return Err(error),
            };
            let Some(ahead) = before.kvs().first() else {
                return Ok(Turn::Came);
            };
            let from = before.header().map_or(0, |header| header.revision()) + 1;
            let ahead = ahead.key().to_vec();
            let Some(left) = wait_left(wait, started) else {
                return Ok(Turn::TimeUp);
            };
            let watched = self.watch_until_deleted(client, ahead, from, held);
            match tokio::time::timeout(left, watched).await {
                Ok(Ok(())) => {}
                Ok(Err(Error::Unavailable { .. })) => tokio::time::sleep(RETRY_PAUSE).await,
                Ok(Err(error)) => return Err(error),
                Err(_) => return Ok(Turn::TimeUp),
            }
        }
    }

    async fn watch_until_deleted(
        &self,
        client: &mut Client,
        key: Vec<u8>,
        from: i64,
        held: &Held,
    ) -> Result<(), Error> {
        let mut stream = self
            .ask(
                "watch",
                client.watch(key, Some(WatchOptions::new().with_start_revision(from))),
            )
            .await?;
        let lost = held.lost_token();
        loop {
            let message = tokio::select! {
                message = stream.message() => message,
                () = lost.cancelled() => return Ok(()),
            };
            match message {
                Ok(Some(answer)) => {
                    if answer
                        .events()
                        .iter()
                        .any(|event| event.event_type() == EventType::Delete)
                    {
                        return Ok(());
                    }
                }
                // The stream ended: look again.
                Ok(None) | Err(_) => return Ok(()),
            }
        }
    }
}

impl std::fmt::Debug for ClusterLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterLock")
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("ttl", &self.ttl)
            .field("margin", &self.margin)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl From<&Etcd> for Etcd {
    fn from(etcd: &Etcd) -> Etcd {
        etcd.clone()
    }
}

enum Turn {
    Came,
    TimeUp,
}

/// Pause before a waiter asks again servers that could not answer.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// What is left of a wait of `wait` from `started`, if anything.
fn wait_left(wait: Duration, started: Duration) -> Option<Duration> {
    wait.checked_sub(clock::now().saturating_sub(started))
        .filter(|left| !left.is_zero())
}

/// The first key created under a prefix: the holder.
fn first_created() -> GetOptions {
    GetOptions::new()
        .with_prefix()
        .with_sort(SortTarget::Create, SortOrder::Ascend)
        .with_limit(1)
}

fn ranged(responses: &[TxnOpResponse], index: usize) -> Vec<etcd_client::KeyValue> {
    match responses.get(index) {
        Some(TxnOpResponse::Get(get)) => get.kvs().to_vec(),
        _ => Vec::new(),
    }
}

pub(crate) async fn revoke_quietly(client: &mut Client, lease: i64) {
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, client.lease_revoke(lease)).await;
}

/// Whether a client error means no server could be reached.
fn is_unreachable(error: &etcd_client::Error) -> bool {
    // gRPC codes: 4 DeadlineExceeded, 14 Unavailable.
    match error {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(status) => matches!(status.code() as i32, 4 | 14),
        _ => false,
    }
}

pub(crate) fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty() && !name.contains(char::is_whitespace))
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_share_a_prefix_are_refused() {
        for name in ["", "a/b", "tab\there"] {
            let error = ClusterLock::new(name).validate().unwrap_err();
            assert!(matches!(error, Error::InvalidName { .. }), "{name:?}");
        }
        assert!(ClusterLock::new("nightly-report").validate().is_ok());
    }

    #[test]
    fn the_keys_are_etcdctl_s() {
        let lock = ClusterLock::new("job").namespace("jobs/");
        assert_eq!(lock.prefix(), "jobs/job/");
    }

    #[test]
    fn the_default_margin_is_a_fifth_of_the_ttl_and_at_least_a_second() {
        let lock = ClusterLock::new("job");
        assert_eq!(
            lock.margin_for(Duration::from_secs(10)),
            Duration::from_secs(2)
        );
        assert_eq!(
            lock.margin_for(Duration::from_secs(2)),
            Duration::from_secs(1)
        );
    }
}
