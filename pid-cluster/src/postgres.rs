//! The lock on PostgreSQL: a session-level advisory lock on a connection of
//! the guard's own, made a lease by the server's `idle_session_timeout`, a
//! probe every third of the time to live, and a connection task that reads
//! the socket all the time, so that a terminated session is seen at once.
//!
//! Every statement goes as one unnamed Parse/Bind/Execute/Sync, one
//! transaction to a pooler: what decides whether the lock is taken runs in
//! one statement on one server session.

use std::time::Duration;

use tokio_postgres::types::Type;
use tokio_postgres::{Client, Config, NoTls};
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::error::{Error, FencingToken, Holder, LossReason};
use crate::guard::{ClusterGuard, Held, Lease, Renewing, Session as GuardSession};
use crate::lock::{ClusterLock, ClusterStatus};
use crate::runtime;

/// The environment variable [`Postgres::from_env`] reads: a connection URL.
pub const POSTGRES_URL_ENV: &str = "PIDFILE_POSTGRES_URL";

const DEFAULT_URL: &str = "postgres://localhost/postgres";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a release waits for the unlock before it closes the session,
/// which releases the lock as well.
const UNLOCK_BOUND: Duration = Duration::from_secs(1);

/// The lock's key, from its name: the first 8 bytes of SHA-256 of
/// `pid-runtime:` and the name, as a signed big-endian `bigint`. Any client
/// takes the same lock with
/// `SELECT pg_try_advisory_lock(<this expression with $1 = the name>)`.
pub const LOCK_KEY_SQL: &str =
    "('x' || left(encode(sha256(convert_to('pid-runtime:' || $1::text, 'UTF8')), 'hex'), 16))::bit(64)::bigint";

/// Whether this session holds the advisory lock `$1` (a `bigint`).
const THIS_SESSION_HOLDS: &str = "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
     AND granted AND pid = pg_backend_pid() AND objsubid = 1 \
     AND classid::bigint = (($1::bigint >> 32) & 4294967295) \
     AND objid::bigint = ($1::bigint & 4294967295))";

/// A PostgreSQL server, by its connection URL
/// (`postgres://user:password@host:port/database`, or libpq's `key=value`
/// form). TLS is not supported: use a local socket, loopback, or a tunnel.
///
/// ```
/// use pid_cluster::Postgres;
///
/// let server = Postgres::url("postgres://jobs:secret@10.0.0.5:5432/ops");
/// // The password is never shown.
/// assert_eq!(server.to_string(), "postgres://jobs@10.0.0.5:5432/ops");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Postgres {
    url: String,
}

impl Postgres {
    /// The server at this URL.
    pub fn url(url: impl Into<String>) -> Postgres {
        Postgres { url: url.into() }
    }

    /// The server named by `PIDFILE_POSTGRES_URL`, or
    /// `postgres://localhost/postgres` when it is unset or empty.
    pub fn from_env() -> Postgres {
        match std::env::var(POSTGRES_URL_ENV) {
            Ok(url) if !url.trim().is_empty() => Postgres::url(url.trim()),
            _ => Postgres::url(DEFAULT_URL),
        }
    }

    fn config(&self) -> Result<Config, tokio_postgres::Error> {
        self.url.parse()
    }
}

impl std::fmt::Display for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Ok(config) = self.config() else {
            return f.write_str("postgres://(a URL that does not parse)");
        };
        f.write_str("postgres://")?;
        if let Some(user) = config.get_user() {
            write!(f, "{user}@")?;
        }
        let ports = config.get_ports();
        for (n, host) in config.get_hosts().iter().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            match host {
                tokio_postgres::config::Host::Tcp(host) => f.write_str(host)?,
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(path) => {
                    write!(f, "{}", path.display().to_string().replace('/', "%2F"))?
                }
            }
            if let Some(port) = ports.get(n).or(ports.first()) {
                write!(f, ":{port}")?;
            }
        }
        if let Some(dbname) = config.get_dbname() {
            write!(f, "/{dbname}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Postgres").field(&self.to_string()).finish()
    }
}

impl From<&Postgres> for Postgres {
    fn from(server: &Postgres) -> Postgres {
        server.clone()
    }
}

/// The predicate a program's own PostgreSQL statements include so that they
/// take effect only while its guard's token is the lock's latest.
///
/// Each holder, once it holds, bumps the lock's row in
/// `pid_runtime.fence(name text primary key, token bigint)` in a committed
/// transaction; that number is its [`FencingToken`]. The predicate reads
/// the row `FOR SHARE`, so a takeover's bump waits until the statement's
/// transaction ends, and once it has bumped, the predicate is false for
/// every earlier holder.
///
/// ```no_run
/// # async fn f(guard: &pid_cluster::ClusterGuard, client: &tokio_postgres::Client) -> Result<(), Box<dyn std::error::Error>> {
/// let fence = guard.sql_fence().expect("a lock on PostgreSQL");
/// let sql = format!("UPDATE report SET done = true WHERE day = $1 AND {}", fence.predicate(2));
/// let updated = client
///     .execute(sql.as_str(), &[&"2026-12-06", &fence.name(), &fence.token()])
///     .await?;
/// if updated == 0 {
///     // Not ours any more: another holder took over.
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlFence {
    name: String,
    token: i64,
}

impl SqlFence {
    /// The fence of the holding of lock `name` with `token`: what
    /// [`ClusterGuard::sql_fence`] gives, or what a command run by `pidfile
    /// run --cluster` makes of `PIDFILE_CLUSTER_LOCK` and
    /// `PIDFILE_FENCING_TOKEN`.
    pub fn new(name: &str, token: FencingToken) -> SqlFence {
        SqlFence {
            name: name.to_string(),
            token: i64::try_from(token.get()).unwrap_or(i64::MAX),
        }
    }

    /// The predicate, its parameters numbered from `first`: the lock's
    /// name (`text`) is `$first`, the token (`bigint`) `$first+1`.
    ///
    /// ```
    /// use pid_cluster::{FencingToken, SqlFence};
    ///
    /// let fence = SqlFence::new("nightly-report", FencingToken::new(1893));
    /// assert_eq!(
    ///     fence.predicate(2),
    ///     "(SELECT token FROM pid_runtime.fence WHERE name = $2::text FOR SHARE) = $3::bigint"
    /// );
    /// assert_eq!((fence.name(), fence.token()), ("nightly-report", 1893));
    /// ```
    pub fn predicate(&self, first: usize) -> String {
        format!(
            "(SELECT token FROM pid_runtime.fence WHERE name = ${first}::text FOR SHARE) = ${}::bigint",
            first + 1
        )
    }

    /// The lock's name, the predicate's first parameter.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The guard's token, the predicate's second parameter.
    pub fn token(&self) -> i64 {
        self.token
    }
}

/// The guard's connection: its client, the lock's key, and a token
/// cancelled when the connection ends.
#[derive(Clone)]
pub(crate) struct Session {
    client: std::sync::Arc<Client>,
    key: i64,
    closed: CancellationToken,
}

impl Session {
    /// Unlocks, then closes the session (which would release the lock too).
    pub(crate) async fn release(self, name: &str) -> Result<(), Error> {
        let unlocked = tokio::time::timeout(
            UNLOCK_BOUND,
            self.client.query_typed(
                // A session-mode pool hands the session on: nothing of the
                // holding stays on it.
                "SELECT pg_advisory_unlock($1::bigint), set_config('pid_runtime.owner', '', false)",
                &[(&self.key, Type::INT8)],
            ),
        )
        .await;
        drop(self.client);
        match unlocked {
            Ok(Ok(_)) => Ok(()),
            // A session that ended has released it.
            _ if self.closed.is_cancelled() => Ok(()),
            Ok(Err(error)) => Err(Error::Backend {
                name: name.to_string(),
                operation: "unlock",
                source: Box::new(error),
            }),
            Err(elapsed) => Err(Error::Backend {
                name: name.to_string(),
                operation: "unlock",
                source: Box::new(elapsed),
            }),
        }
    }
}

/// The application name a holder's session gives, which `check` and a
/// refusal read back: `host=<host> pid=<pid>`, within PostgreSQL's 63 bytes.
fn identity() -> String {
    let mut identity = Holder::value(&crate::lock::host_name(), std::process::id());
    while identity.len() > 63 {
        identity.pop();
    }
    identity
}

impl ClusterLock {
    fn pg_unavailable(
        &self,
        server: &Postgres,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        // The client's own message ("error connecting to server") says
        // little without its cause.
        let mut message = error.to_string();
        let mut cause = error.source();
        while let Some(error) = cause {
            message = format!("{message}: {error}");
            cause = error.source();
        }
        Error::Unavailable {
            name: self.name().to_string(),
            endpoints: server.to_string(),
            source: message.into(),
        }
    }

    fn pg_failed(&self, operation: &'static str, error: tokio_postgres::Error) -> Error {
        Error::Backend {
            name: self.name().to_string(),
            operation,
            source: Box::new(error),
        }
    }

    /// A connection of its own, its connection task on the lease thread.
    async fn pg_connect(&self, server: &Postgres, ttl: Option<Duration>) -> Result<Session, Error> {
        let mut config = server
            .config()
            .map_err(|error| self.pg_failed("parse the URL", error))?;
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .application_name(identity());
        if let Some(ttl) = ttl {
            // Whole seconds: the system refuses an idle time of none.
            let idle = Duration::from_secs((ttl.as_secs() / 3).max(1));
            config
                .tcp_user_timeout(ttl)
                .keepalives(true)
                .keepalives_idle(idle);
        }
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(NoTls)).await;
        let (client, connection) = match connected {
            Ok(Ok(connected)) => connected,
            Ok(Err(error)) if error.as_db_error().is_some() => {
                return Err(self.pg_failed("connect", error))
            }
            Ok(Err(error)) => return Err(self.pg_unavailable(server, error)),
            Err(elapsed) => return Err(self.pg_unavailable(server, elapsed)),
        };
        let closed = CancellationToken::new();
        let ended = closed.clone();
        runtime::handle().spawn(async move {
            let _ = connection.await;
            ended.cancel();
        });
        Ok(Session {
            client: std::sync::Arc::new(client),
            key: 0,
            closed,
        })
    }

    /// One statement, bounded in time, its failure classified.
    async fn pg_ask(
        &self,
        server: &Postgres,
        session: &Session,
        operation: &'static str,
        sql: &str,
        params: &[(&(dyn tokio_postgres::types::ToSql + Sync), Type)],
    ) -> Result<Vec<tokio_postgres::Row>, Error> {
        self.pg_ask_within(REQUEST_TIMEOUT, server, session, operation, sql, params)
            .await
    }

    async fn pg_ask_within(
        &self,
        limit: Duration,
        server: &Postgres,
        session: &Session,
        operation: &'static str,
        sql: &str,
        params: &[(&(dyn tokio_postgres::types::ToSql + Sync), Type)],
    ) -> Result<Vec<tokio_postgres::Row>, Error> {
        match tokio::time::timeout(limit, session.client.query_typed(sql, params)).await {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(error)) if error.as_db_error().is_some() => {
                Err(self.pg_failed(operation, error))
            }
            Ok(Err(error)) => Err(self.pg_unavailable(server, error)),
            Err(elapsed) => Err(self.pg_unavailable(server, elapsed)),
        }
    }

    pub(crate) async fn pg_take(
        &self,
        server: &Postgres,
        ttl: Duration,
        wait: Option<Duration>,
    ) -> Result<ClusterGuard, Error> {
        self.validate()?;
        let started = clock::now();
        let ttl = Duration::from_secs(ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0))
            .max(Duration::from_secs(1));
        let margin = self.margin_for(ttl);
        if margin >= ttl {
            return Err(Error::InvalidTiming {
                name: self.name().to_string(),
                ttl,
                margin,
            });
        }
        let mut session = self.pg_connect(server, Some(ttl)).await?;
        let name = self.name().to_string();
        let version = self
            .pg_ask(
                server,
                &session,
                "read the server version",
                "SELECT current_setting('server_version_num')::int",
                &[],
            )
            .await?;
        let version: i32 = version.first().map_or(0, |row| row.get(0));
        if version < 140_000 {
            return Err(Error::Backend {
                name,
                operation: "check the server version",
                source: format!("PostgreSQL 14 or later is needed (idle_session_timeout); the server is {version}").into(),
            });
        }
        let ttl_ms = ttl.as_millis().to_string();
        let key = self
            .pg_ask(
                server,
                &session,
                "set up the session",
                &format!(
                    "SELECT {LOCK_KEY_SQL}, pg_backend_pid(), \
                     set_config('idle_session_timeout', $2::text, false), \
                     set_config('tcp_user_timeout', $2::text, false)"
                ),
                &[(&name, Type::TEXT), (&ttl_ms, Type::TEXT)],
            )
            .await?;
        let (key, backend) = key
            .first()
            .map_or((0, 0), |row| (row.get(0), row.get::<_, i32>(1)));
        session.key = key;
        let nonce = format!(
            "{}-{}-{:x}",
            std::process::id(),
            identity(),
            clock::now().as_nanos()
        );
        if let Some(wait) = wait {
            // The server ends the wait: a lock timeout of the time given.
            let wait_ms = wait.as_millis().clamp(1, i32::MAX as u128).to_string();
            self.pg_ask(
                server,
                &session,
                "set the wait",
                "SELECT set_config('lock_timeout', $1::text, false)",
                &[(&wait_ms, Type::TEXT)],
            )
            .await?;
        }
        let outcome = match self.pg_try(server, &session, &nonce, wait).await {
            Err(Error::Backend { source, .. })
                if has_code(
                    &*source,
                    &tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE,
                ) =>
            {
                return Err(Error::Timeout {
                    name,
                    waited: clock::now().saturating_sub(started),
                })
            }
            outcome => outcome?,
        };
        match outcome.as_str() {
            "shared" => {
                return Err(Error::SharedSession {
                    name,
                    server: server.to_string(),
                })
            }
            "busy" => return Err(self.pg_refusal(server, &session).await),
            taken if taken == nonce => {}
            other => {
                return Err(Error::Backend {
                    name,
                    operation: "take",
                    source: format!("unexpected answer {other:?}").into(),
                })
            }
        }
        if wait.is_some() {
            // Not for the fencing token's row, which may wait for a
            // predecessor's fenced transaction.
            let ended = self
                .pg_ask(
                    server,
                    &session,
                    "end the wait",
                    "SELECT set_config('lock_timeout', '0', false)",
                    &[],
                )
                .await;
            if let Err(error) = ended {
                let _ = session.release(&name).await;
                return Err(error);
            }
        }
        // The server's idle timer runs from the end of the bump at the
        // earliest, which is after it was sent.
        let sent = clock::now();
        let token = match self.pg_bump(server, &session).await {
            Ok(token) => token,
            Err(error) => {
                let _ = session.release(&name).await;
                return Err(error);
            }
        };
        let held = Held::new(Lease {
            name: name.clone(),
            key: session.key.to_string(),
            id: i64::from(backend),
            granted: ttl,
            margin,
            valid_until: sent + ttl - margin,
        });
        if let Some(reason) = held.check_deadline() {
            let _ = session.release(&name).await;
            return Err(Error::LostBeforeUse { name, reason });
        }
        let stop = CancellationToken::new();
        runtime::handle().spawn(probe(session.clone(), held.clone(), nonce, stop.clone()));
        Ok(ClusterGuard::with_session(
            held,
            token,
            Renewing(stop),
            GuardSession::Postgres(session),
        ))
    }

    /// Takes the lock in one statement, so that a pooler cannot put another
    /// client's statement between the test for a shared session and the
    /// lock: `shared`, `busy`, or the nonce now set on the session. With
    /// `wait`, it waits in the server's queue for the lock (the session's
    /// lock timeout ends the wait); the server evaluates the `CASE` in
    /// order, so a shared session never waits.
    async fn pg_try(
        &self,
        server: &Postgres,
        session: &Session,
        nonce: &str,
        wait: Option<Duration>,
    ) -> Result<String, Error> {
        const SHARED: &str =
            "WHEN coalesce(current_setting('pid_runtime.owner', true), '') <> '' THEN 'shared'";
        let sql = match wait {
            None => format!(
                "SELECT CASE {SHARED} WHEN {THIS_SESSION_HOLDS} THEN 'shared' \
                 WHEN pg_try_advisory_lock($1::bigint) \
                 THEN set_config('pid_runtime.owner', $2::text, false) ELSE 'busy' END"
            ),
            Some(_) => format!(
                "SELECT CASE {SHARED} WHEN {THIS_SESSION_HOLDS} THEN 'shared' \
                 ELSE (SELECT set_config('pid_runtime.owner', $2::text, false) \
                 FROM (SELECT pg_advisory_lock($1::bigint)) AS locked) END"
            ),
        };
        let limit = wait.map_or(REQUEST_TIMEOUT, |wait| wait + REQUEST_TIMEOUT);
        let nonce = nonce.to_string();
        let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 2] =
            [(&session.key, Type::INT8), (&nonce, Type::TEXT)];
        let rows = self
            .pg_ask_within(limit, server, session, "take", &sql, &params)
            .await?;
        Ok(rows
            .first()
            .map(|row| row.get::<_, String>(0))
            .unwrap_or_default())
    }

    /// Bumps the lock's row in `pid_runtime.fence`, creating the table the
    /// first time: the new holder's token.
    async fn pg_bump(&self, server: &Postgres, session: &Session) -> Result<FencingToken, Error> {
        const BUMP: &str =
            "INSERT INTO pid_runtime.fence AS fence (name, token) VALUES ($1::text, 1) \
             ON CONFLICT (name) DO UPDATE SET token = fence.token + 1 RETURNING token";
        const CREATE: &str = "CREATE SCHEMA IF NOT EXISTS pid_runtime; \
             CREATE TABLE IF NOT EXISTS pid_runtime.fence (name text PRIMARY KEY, token bigint NOT NULL)";
        let name = self.name().to_string();
        // Two first holders of a server may create it at once: one of them
        // fails, and finds the other's once it has committed.
        let mut creations_left = 2;
        loop {
            match self
                .pg_ask(
                    server,
                    session,
                    "bump the fencing token",
                    BUMP,
                    &[(&name, Type::TEXT)],
                )
                .await
            {
                Ok(rows) => {
                    let token: i64 = rows.first().map_or(0, |row| row.get(0));
                    return Ok(FencingToken::new(u64::try_from(token).unwrap_or(0)));
                }
                Err(Error::Backend { source, .. })
                    if creations_left > 0 && is_missing_table(&*source) =>
                {
                    creations_left -= 1;
                    let _ = session.client.batch_execute(CREATE).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// An `AlreadyHeld` naming the session that holds the lock.
    async fn pg_refusal(&self, server: &Postgres, session: &Session) -> Error {
        match self.pg_holder(server, session).await {
            Ok(ClusterStatus::Held {
                holder,
                token,
                ttl_left,
            }) => Error::AlreadyHeld {
                name: self.name().to_string(),
                holder,
                token,
                ttl_left,
            },
            // Released meanwhile: still a refusal, of a holder now gone.
            Ok(ClusterStatus::Free) => Error::AlreadyHeld {
                name: self.name().to_string(),
                holder: Holder::parse(self.name().as_bytes(), b""),
                token: FencingToken::new(0),
                ttl_left: None,
            },
            Err(error) => error,
        }
    }

    async fn pg_holder(
        &self,
        server: &Postgres,
        session: &Session,
    ) -> Result<ClusterStatus, Error> {
        let name = self.name().to_string();
        let rows = self
            .pg_ask(
                server,
                session,
                "find the holder",
                &format!(
                    "SELECT l.pid, coalesce(a.application_name, '') \
                     FROM (SELECT {LOCK_KEY_SQL} AS key) k \
                     JOIN pg_locks l ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
                     AND l.classid::bigint = ((k.key >> 32) & 4294967295) \
                     AND l.objid::bigint = (k.key & 4294967295) \
                     LEFT JOIN pg_stat_activity a ON a.pid = l.pid LIMIT 1"
                ),
                &[(&name, Type::TEXT)],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(ClusterStatus::Free);
        };
        let backend: i32 = row.get(0);
        let application: String = row.get(1);
        let token = match self
            .pg_ask(
                server,
                session,
                "read the fencing token",
                "SELECT token FROM pid_runtime.fence WHERE name = $1::text",
                &[(&name, Type::TEXT)],
            )
            .await
        {
            Ok(rows) => rows.first().map_or(0, |row| row.get::<_, i64>(0)),
            Err(Error::Backend { source, .. }) if is_missing_table(&*source) => 0,
            Err(error) => return Err(error),
        };
        let key = format!("{name} (server process {backend})");
        Ok(ClusterStatus::Held {
            holder: Holder::parse(key.as_bytes(), application.as_bytes()),
            token: FencingToken::new(u64::try_from(token).unwrap_or(0)),
            ttl_left: None,
        })
    }

    pub(crate) async fn pg_status(&self, server: &Postgres) -> Result<ClusterStatus, Error> {
        self.validate()?;
        let session = self.pg_connect(server, None).await?;
        self.pg_holder(server, &session).await
    }
}

fn is_missing_table(error: &(dyn std::error::Error + 'static)) -> bool {
    use tokio_postgres::error::SqlState;
    has_code(error, &SqlState::UNDEFINED_TABLE) || has_code(error, &SqlState::INVALID_SCHEMA_NAME)
}

fn has_code(
    error: &(dyn std::error::Error + 'static),
    code: &tokio_postgres::error::SqlState,
) -> bool {
    error
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(tokio_postgres::Error::code)
        .is_some_and(|found| found == code)
}

/// Every third of the time to live, asks whether this session still holds
/// the lock for this guard; each yes moves the deadline to its send time +
/// the time to live − the margin, as the server's idle timer runs from the
/// end of that statement at the earliest. The end of the connection is a
/// loss at once.
async fn probe(session: Session, held: Held, nonce: String, stop: CancellationToken) {
    let sql = format!(
        "SELECT coalesce(current_setting('pid_runtime.owner', true) = $2::text, false) AND {THIS_SESSION_HOLDS}"
    );
    let granted = held.lease().granted;
    let interval = granted / 3;
    let mut next_probe = clock::now() + interval;
    while held.check_deadline().is_none() {
        let now = clock::now();
        let nap = next_probe
            .saturating_sub(now)
            .min(held.valid_until().saturating_sub(now));
        tokio::select! {
            () = stop.cancelled() => return,
            () = session.closed.cancelled() => {
                held.lose(LossReason::SessionTerminated);
                return;
            }
            () = tokio::time::sleep(nap) => {}
        }
        let sent = clock::now();
        if sent < next_probe {
            continue;
        }
        next_probe = sent + interval;
        let until_deadline = held.valid_until().saturating_sub(sent);
        let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 2] =
            [(&session.key, Type::INT8), (&nonce, Type::TEXT)];
        let asked = session.client.query_typed(&sql, &params);
        let answer = tokio::select! {
            () = stop.cancelled() => return,
            answer = tokio::time::timeout(until_deadline, asked) => answer,
        };
        match answer {
            Ok(Ok(rows)) if rows.first().is_some_and(|row| row.get::<_, bool>(0)) => {
                held.acknowledged(sent, granted, clock::now().saturating_sub(sent));
            }
            Ok(Ok(_)) => {
                held.lose(LossReason::NotHeldBySession);
                return;
            }
            // The connection's end is seen by the select above; anything
            // else leaves the deadline where it is.
            Ok(Err(_)) | Err(_) => {}
        }
    }
}
