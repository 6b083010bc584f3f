//! A holding: its validity deadline, its renewals on the lease thread, and
//! the one-shot loss that ends it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, EventType, WatchOptions};
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::error::{Error, FencingToken, LossReason, Lost};
use crate::runtime;

/// How long [`Drop`] waits for the lease to be revoked; `release` waits
/// [`RELEASE_BOUND`].
const DROP_BOUND: Duration = Duration::from_millis(500);
const RELEASE_BOUND: Duration = Duration::from_secs(2);
/// Pause before a broken renewal stream or watch is opened again.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// What a lease was granted.
pub(crate) struct Lease {
    pub(crate) name: String,
    pub(crate) key: String,
    pub(crate) id: i64,
    pub(crate) granted: Duration,
    pub(crate) margin: Duration,
    /// The first deadline: the grant's send time + granted TTL − margin.
    pub(crate) valid_until: Duration,
}

/// The state a guard and its renewals share.
#[derive(Clone)]
pub(crate) struct Held(Arc<State>);

struct State {
    lease: Lease,
    /// This process, which alone holds; a forked child's copy does not.
    owner_pid: u32,
    /// Nanoseconds on [`clock::now`].
    valid_until: AtomicU64,
    last_ack_sent: AtomicU64,
    renewals: AtomicU64,
    last_rtt_micros: AtomicU64,
    is_lost: AtomicBool,
    /// Set when the guard is released or dropped: nothing waits for a loss
    /// after that.
    released: AtomicBool,
    loss: Mutex<Option<LossReason>>,
    loss_seen: Condvar,
    lost: CancellationToken,
}

fn nanos(time: Duration) -> u64 {
    u64::try_from(time.as_nanos()).unwrap_or(u64::MAX)
}

impl Held {
    pub(crate) fn new(lease: Lease) -> Held {
        let valid_until = nanos(lease.valid_until);
        let sent = nanos(lease.valid_until + lease.margin).saturating_sub(nanos(lease.granted));
        Held(Arc::new(State {
            lease,
            owner_pid: std::process::id(),
            valid_until: AtomicU64::new(valid_until),
            last_ack_sent: AtomicU64::new(sent),
            renewals: AtomicU64::new(0),
            last_rtt_micros: AtomicU64::new(0),
            is_lost: AtomicBool::new(false),
            released: AtomicBool::new(false),
            loss: Mutex::new(None),
            loss_seen: Condvar::new(),
            lost: CancellationToken::new(),
        }))
    }

    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn lease(&self) -> &Lease {
        &self.0.lease
    }

    pub(crate) fn valid_until(&self) -> Duration {
        Duration::from_nanos(self.0.valid_until.load(Ordering::Acquire))
    }

    pub(crate) fn lost_token(&self) -> CancellationToken {
        self.0.lost.clone()
    }

    /// Why the holding ended, if it did.
    pub(crate) fn loss(&self) -> Option<LossReason> {
        if std::process::id() != self.0.owner_pid {
            return Some(LossReason::Forked);
        }
        if !self.0.is_lost.load(Ordering::Acquire) {
            return None;
        }
        self.0
            .loss
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// Ends the holding when its deadline has passed; why it ended, if it
    /// did. A clock read and two atomic loads while it holds.
    pub(crate) fn check_deadline(&self) -> Option<LossReason> {
        if let Some(reason) = self.loss() {
            return Some(reason);
        }
        let now = clock::now();
        if now < self.valid_until() {
            return None;
        }
        let sent = Duration::from_nanos(self.0.last_ack_sent.load(Ordering::Acquire));
        self.lose_if(
            |held| clock::now() >= held.valid_until(),
            LossReason::NoRenewalBeforeDeadline {
                last_ack_sent: now.saturating_sub(sent),
            },
        );
        self.loss()
    }

    pub(crate) fn lose(&self, reason: LossReason) {
        self.lose_if(|_| true, reason);
    }

    /// Loss is final: the first reason stays.
    fn lose_if(&self, still: impl Fn(&Held) -> bool, reason: LossReason) {
        let mut loss = self
            .0
            .loss
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if loss.is_some() || !still(self) {
            return;
        }
        *loss = Some(reason);
        self.0.is_lost.store(true, Ordering::Release);
        self.0.lost.cancel();
        self.0.loss_seen.notify_all();
    }

    /// A renewal sent at `sent` was acknowledged with `ttl`: the server
    /// keeps the lease until at least `sent + ttl`.
    pub(crate) fn acknowledged(&self, sent: Duration, ttl: Duration, rtt: Duration) {
        let loss = self
            .0
            .loss
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if loss.is_some() {
            return;
        }
        let until = nanos((sent + ttl).saturating_sub(self.0.lease.margin));
        self.0.valid_until.fetch_max(until, Ordering::AcqRel);
        self.0
            .last_ack_sent
            .fetch_max(nanos(sent), Ordering::AcqRel);
        self.0.renewals.fetch_add(1, Ordering::Relaxed);
        self.0.last_rtt_micros.store(
            u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Waits until the holding ends, `give_up` (on [`clock::now`]) passes,
    /// or the guard is released; why it ended, if it did. Wakes at the
    /// deadline by itself, even if the lease thread cannot run.
    fn wait_loss(&self, give_up: Option<Duration>) -> Option<LossReason> {
        let mut loss = self
            .0
            .loss
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        loop {
            drop(loss);
            if let Some(reason) = self.check_deadline() {
                return Some(reason);
            }
            let now = clock::now();
            if self.0.released.load(Ordering::Acquire)
                || give_up.is_some_and(|give_up| now >= give_up)
            {
                return None;
            }
            let until_deadline = self.valid_until().saturating_sub(now);
            let nap = give_up.map_or(until_deadline, |give_up| {
                until_deadline.min(give_up.saturating_sub(now))
            });
            loss = self
                .0
                .loss
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            if loss.is_some() || self.0.released.load(Ordering::Acquire) {
                continue;
            }
            loss = self
                .0
                .loss_seen
                .wait_timeout(loss, nap.max(Duration::from_millis(1)))
                .unwrap_or_else(|poison| poison.into_inner())
                .0;
        }
    }

    /// Wakes whatever waits for a loss: the guard is done with.
    fn release_waiters(&self) {
        let _loss = self
            .0
            .loss
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        self.0.released.store(true, Ordering::Release);
        self.0.loss_seen.notify_all();
    }

    fn lost_error(&self, token: FencingToken, reason: LossReason) -> Lost {
        Lost {
            name: self.0.lease.name.clone(),
            token,
            reason,
        }
    }
}

/// Stops a holding's background work.
pub(crate) struct Renewing(pub(crate) CancellationToken);

impl Renewing {
    pub(crate) fn stop(&self) {
        self.0.cancel();
    }
}

/// Renews the lease every third of its time to live, on the lease thread,
/// until stopped or lost; ends the holding at its deadline.
pub(crate) fn start_renewing(client: Client, held: Held) -> Renewing {
    let stop = CancellationToken::new();
    runtime::handle().spawn(renew(client, held, stop.clone()));
    Renewing(stop)
}

enum Step {
    Stop,
    Nap,
    Answer(Option<i64>),
    Broken,
}

async fn renew(mut client: Client, held: Held, stop: CancellationToken) {
    let lease = held.0.lease.id;
    let interval = held.0.lease.granted / 3;
    let mut next_renewal = clock::now() + interval;
    // Answers come in order on one stream: each is for the oldest request.
    let mut sent: VecDeque<Duration> = VecDeque::new();
    let mut channel = None;
    while held.check_deadline().is_none() && !stop.is_cancelled() {
        let now = clock::now();
        let until_deadline = held.valid_until().saturating_sub(now);
        let Some((keeper, stream)) = channel.as_mut() else {
            let opened = tokio::time::timeout(until_deadline, client.lease_keep_alive(lease));
            match opened.await {
                Ok(Ok(opened)) => {
                    channel = Some(opened);
                    sent.clear();
                    next_renewal = clock::now();
                }
                _ => tokio::time::sleep(RECONNECT_PAUSE.min(until_deadline)).await,
            }
            continue;
        };
        let nap = next_renewal.saturating_sub(now).min(until_deadline);
        let step = tokio::select! {
            () = stop.cancelled() => Step::Stop,
            () = tokio::time::sleep(nap) => Step::Nap,
            answer = stream.message() => match answer {
                Ok(Some(answer)) => Step::Answer(Some(answer.ttl())),
                Ok(None) | Err(_) => Step::Broken,
            },
        };
        match step {
            Step::Stop => break,
            Step::Nap if clock::now() >= next_renewal => {
                let at = clock::now();
                // A member answers renewals on a stream one at a time, and
                // one that forwards to a leader that is gone holds the
                // stream for its request timeout (7 s by default): a fresh
                // stream reaches the new leader.
                if sent.front().is_some_and(|&oldest| at - oldest >= interval) {
                    channel = None;
                    continue;
                }
                if keeper.keep_alive().await.is_ok() {
                    sent.push_back(at);
                    next_renewal = at + interval;
                } else {
                    channel = None;
                }
            }
            Step::Nap | Step::Answer(None) => {}
            Step::Answer(Some(ttl)) => {
                let Some(at) = sent.pop_front() else {
                    continue;
                };
                match u64::try_from(ttl) {
                    Ok(ttl) if ttl > 0 => {
                        held.acknowledged(at, Duration::from_secs(ttl), clock::now() - at)
                    }
                    _ => held.lose(LossReason::LeaseExpired),
                }
            }
            Step::Broken => {
                channel = None;
                tokio::time::sleep(RECONNECT_PAUSE.min(until_deadline)).await;
            }
        }
    }
}

/// Ends the holding when its key is deleted (an operator's `etcdctl del`,
/// a revoke of its lease).
fn start_watching(mut client: Client, held: Held, created: i64, stop: CancellationToken) {
    runtime::handle().spawn(async move {
        let key = held.0.lease.key.clone();
        let mut from = created + 1;
        while !stop.is_cancelled() && held.loss().is_none() {
            let options = WatchOptions::new().with_start_revision(from);
            let Ok(mut stream) = client.watch(key.as_str(), Some(options)).await else {
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            };
            loop {
                let message = tokio::select! {
                    () = stop.cancelled() => return,
                    () = held.0.lost.cancelled() => return,
                    message = stream.message() => message,
                };
                let Ok(Some(answer)) = message else {
                    break;
                };
                if let Some(header) = answer.header() {
                    from = from.max(header.revision() + 1);
                }
                if answer
                    .events()
                    .iter()
                    .any(|event| event.event_type() == EventType::Delete)
                {
                    held.lose(LossReason::KeyDeleted);
                    return;
                }
            }
            tokio::time::sleep(RECONNECT_PAUSE).await;
        }
    });
}

/// What a guard is, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GuardInfo {
    /// The lock's name.
    pub name: String,
    /// The guard's key in the store.
    pub key: String,
    /// Its token.
    pub token: FencingToken,
    /// Its lease.
    pub lease_id: i64,
    /// The time to live the server granted.
    pub granted_ttl: Duration,
    /// How many renewals were acknowledged.
    pub renewals: u64,
    /// The round trip of the last acknowledged renewal.
    pub last_rtt: Option<Duration>,
    /// How long it stays valid without another renewal; `None` once lost.
    pub valid_for: Option<Duration>,
    /// How long before the server could expire the lease the guard gives
    /// it up: a successor can take the lock no sooner than this long after
    /// the guard's deadline.
    pub margin: Duration,
}

/// A held cluster lock. `Send + Sync`: share it by reference or in an `Arc`
/// with the threads and tasks that do the guarded work.
///
/// It holds until its deadline, which each acknowledged renewal moves to the
/// renewal's send time + the granted time to live − the margin, and stops
/// holding for good at that deadline, or when the server says the lease is
/// gone, or when its key is deleted. [`check`](Self::check) reads a clock and
/// a flag, no I/O, so it is right even straight after the process was
/// stopped and resumed.
///
/// Dropping it revokes the lease (waiting at most 500 ms), so the next waiter
/// takes over at once; a forked child's copy never does.
#[must_use = "the cluster lock is released as soon as the guard is dropped"]
pub struct ClusterGuard {
    held: Held,
    token: FencingToken,
    renewing: Renewing,
    session: Session,
    finished: bool,
}

/// What a guard holds its lock through, on each kind of server.
pub(crate) enum Session {
    /// The lease and its key, created at revision `created`; `watching`
    /// stops the watch on the key.
    Etcd {
        client: Box<Client>,
        created: i64,
        watching: CancellationToken,
    },
    /// A connection of the guard's own, whose session holds the lock.
    #[cfg(feature = "postgres")]
    Postgres(crate::postgres::Session),
}

impl std::fmt::Debug for ClusterGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterGuard")
            .field("name", &self.held.0.lease.name)
            .field("key", &self.held.0.lease.key)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl ClusterGuard {
    pub(crate) fn new(
        held: Held,
        (token, created): (FencingToken, i64),
        renewing: Renewing,
        client: Client,
    ) -> ClusterGuard {
        let watching = CancellationToken::new();
        start_watching(client.clone(), held.clone(), created, watching.clone());
        ClusterGuard::with_session(
            held,
            token,
            renewing,
            Session::Etcd {
                client: Box::new(client),
                created,
                watching,
            },
        )
    }

    pub(crate) fn with_session(
        held: Held,
        token: FencingToken,
        renewing: Renewing,
        session: Session,
    ) -> ClusterGuard {
        ClusterGuard {
            held,
            token,
            renewing,
            session,
            finished: false,
        }
    }

    /// The token that orders this holding after every earlier one.
    pub fn fencing_token(&self) -> FencingToken {
        self.token
    }

    /// Whether the guard still holds: a clock read, no I/O. Call it before
    /// each side effect.
    ///
    /// # Errors
    ///
    /// [`Lost`], with the reason, once it stopped holding: for good.
    pub fn check(&self) -> Result<(), Lost> {
        match self.held.check_deadline() {
            None => Ok(()),
            Some(reason) => Err(self.held.lost_error(self.token, reason)),
        }
    }

    /// How long it holds without another renewal; `None` once lost. Refuse
    /// work that cannot finish in that time.
    pub fn valid_for(&self) -> Option<Duration> {
        if self.held.check_deadline().is_some() {
            return None;
        }
        Some(self.held.valid_until().saturating_sub(clock::now()))
    }

    /// A token cancelled when the guard stops holding, at its deadline at the
    /// latest: `guard.lost().run_until_cancelled(work).await` drops the work
    /// at its next `.await` then.
    pub fn lost(&self) -> CancellationToken {
        self.held.0.lost.child_token()
    }

    /// Waits, in a plain thread, until the guard stops holding or `timeout`
    /// passes (for ever when `None`); why it was lost, or `None` if it still
    /// holds.
    pub fn wait_lost(&self, timeout: Option<Duration>) -> Option<Lost> {
        let give_up = timeout.map(|timeout| clock::now() + timeout);
        self.held
            .wait_loss(give_up)
            .map(|reason| self.held.lost_error(self.token, reason))
    }

    /// Ends the process when the guard stops holding, unless it was
    /// released or dropped first: prints `<program>: lost cluster lock
    /// '<name>' (token N): <reason>` on standard error and calls
    /// [`std::process::exit`] with `exit_code`, so `atexit` cleanup (a
    /// pidfile's removal) runs.
    ///
    /// A thread of its own waits for the loss and wakes at the deadline by
    /// itself, so a program that is busy, blocked or was paused cannot go
    /// on past the moment a successor may start. What the program's other
    /// threads do between that moment and the exit is what
    /// [`check`](Self::check) before each side effect, and fencing, are
    /// for. `#[pidfile(cluster = ..)]` on `main` does this with exit
    /// code 75 (`EX_TEMPFAIL`).
    ///
    /// # Errors
    ///
    /// The system's error when it cannot start the thread; then nothing
    /// watches, and the caller should not go on holding.
    pub fn exit_when_lost(&self, exit_code: i32) -> std::io::Result<()> {
        self.call_when_lost(move |lost| exit_lost(&lost, exit_code))
    }

    /// Calls `on_lost` on a thread of its own when the guard stops holding,
    /// unless it was released or dropped first.
    ///
    /// The thread wakes at the deadline by itself, so `on_lost` runs then
    /// even when the program is busy or blocked: `pidfile run --cluster`
    /// stops its command from there.
    ///
    /// # Errors
    ///
    /// The system's error when it cannot start the thread; then nothing
    /// watches.
    pub fn call_when_lost<F>(&self, on_lost: F) -> std::io::Result<()>
    where
        F: FnOnce(Lost) + Send + 'static,
    {
        let held = self.held.clone();
        let token = self.token;
        std::thread::Builder::new()
            .name("pid-cluster-loss".into())
            .spawn(move || {
                if let Some(reason) = held.wait_loss(None) {
                    on_lost(held.lost_error(token, reason));
                }
            })
            .map(drop)
    }

    /// What this guard is.
    pub fn info(&self) -> GuardInfo {
        let state = &self.held.0;
        let rtt = state.last_rtt_micros.load(Ordering::Relaxed);
        GuardInfo {
            name: state.lease.name.clone(),
            key: state.lease.key.clone(),
            token: self.token,
            lease_id: state.lease.id,
            granted_ttl: state.lease.granted,
            renewals: state.renewals.load(Ordering::Relaxed),
            last_rtt: (state.renewals.load(Ordering::Relaxed) > 0)
                .then(|| Duration::from_micros(rtt)),
            valid_for: self.valid_for(),
            margin: state.lease.margin,
        }
    }

    /// The comparison that holds while this guard's key is the one it
    /// created: `Txn::new().when([guard.owner_compare()?])` commits the
    /// user's own etcd writes only while the lock is theirs. `None` for a
    /// lock on PostgreSQL, whose fence is `sql_fence` (feature `postgres`).
    pub fn owner_compare(&self) -> Option<Compare> {
        match &self.session {
            Session::Etcd { created, .. } => Some(Compare::create_revision(
                self.held.0.lease.key.as_str(),
                CompareOp::Equal,
                *created,
            )),
            #[cfg(feature = "postgres")]
            Session::Postgres(_) => None,
        }
    }

    /// The predicate that holds while this guard's token is the lock's
    /// latest, for the program's own PostgreSQL transactions; `None` for a
    /// lock on etcd. See [`SqlFence`](crate::SqlFence).
    #[cfg(feature = "postgres")]
    pub fn sql_fence(&self) -> Option<crate::SqlFence> {
        match &self.session {
            Session::Etcd { .. } => None,
            Session::Postgres(_) => Some(crate::SqlFence::new(&self.held.0.lease.name, self.token)),
        }
    }

    /// Stops renewing and revokes the lease, which deletes the key: the next
    /// waiter takes over within a round trip. Waits at most 2 s.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] or [`Error::Unavailable`] when the revoke was not
    /// acknowledged in time; the lease then expires by itself, and a lost
    /// guard's lease goes on being revoked in the background.
    pub fn release(mut self) -> Result<(), Error> {
        match self.finish() {
            None => Ok(()),
            Some(revoked) => revoked
                .recv_timeout(RELEASE_BOUND)
                .unwrap_or_else(|_| Err(self.no_answer())),
        }
    }

    /// [`release`](Self::release) for async callers.
    ///
    /// # Errors
    ///
    /// As [`release`](Self::release).
    pub async fn release_async(mut self) -> Result<(), Error> {
        let Some(revoked) = self.finish() else {
            return Ok(());
        };
        let waited = tokio::task::spawn_blocking(move || revoked.recv_timeout(RELEASE_BOUND));
        match waited.await {
            Ok(Ok(result)) => result,
            _ => Err(self.no_answer()),
        }
    }

    fn no_answer(&self) -> Error {
        Error::Backend {
            name: self.held.0.lease.name.clone(),
            operation: "revoke",
            source: "no answer in time; the lease expires by itself".into(),
        }
    }

    /// Stops the background work and starts the revoke, unless this is a
    /// forked child's copy or it was done already.
    fn finish(&mut self) -> Option<std::sync::mpsc::Receiver<Result<(), Error>>> {
        if std::mem::replace(&mut self.finished, true)
            || std::process::id() != self.held.0.owner_pid
        {
            return None;
        }
        self.renewing.stop();
        self.held.release_waiters();
        let (send, receive) = std::sync::mpsc::channel();
        let held = self.held.clone();
        match &self.session {
            Session::Etcd {
                client, watching, ..
            } => {
                watching.cancel();
                let mut client = Client::clone(client);
                runtime::handle().spawn(async move {
                    let _ = send.send(revoke_until_done(&mut client, &held).await);
                });
            }
            #[cfg(feature = "postgres")]
            Session::Postgres(session) => {
                let session = session.clone();
                runtime::handle().spawn(async move {
                    let _ = send.send(session.release(&held.lease().name).await);
                });
            }
        }
        Some(receive)
    }
}

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        if let Some(revoked) = self.finish() {
            let _ = revoked.recv_timeout(DROP_BOUND);
        }
    }
}

/// Prints why the lock was lost, as `<program>: <loss>`, and exits.
fn exit_lost(lost: &Lost, exit_code: i32) -> ! {
    let program = std::env::args_os()
        .next()
        .and_then(|arg0| {
            std::path::Path::new(&arg0)
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "pid-cluster".to_string());
    eprintln!("{program}: {lost}");
    std::process::exit(exit_code)
}

/// Revokes a lease until the server answers, or until it must have expired.
async fn revoke_until_done(client: &mut Client, held: &Held) -> Result<(), Error> {
    let state = &held.0;
    loop {
        let answer = tokio::time::timeout(RELEASE_BOUND, client.lease_revoke(state.lease.id));
        let error: Box<dyn std::error::Error + Send + Sync> = match answer.await {
            Ok(Ok(_)) => return Ok(()),
            // gRPC NotFound: the lease is gone already.
            Ok(Err(etcd_client::Error::GRpcStatus(status))) if status.code() as i32 == 5 => {
                return Ok(())
            }
            Ok(Err(error)) => Box::new(error),
            Err(elapsed) => Box::new(elapsed),
        };
        let sent = Duration::from_nanos(state.last_ack_sent.load(Ordering::Acquire));
        if clock::now() > sent + state.lease.granted + Duration::from_secs(1) {
            return Err(Error::Backend {
                name: state.lease.name.clone(),
                operation: "revoke",
                source: error,
            });
        }
        tokio::time::sleep(RECONNECT_PAUSE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(valid_for: Duration) -> Held {
        Held::new(Lease {
            name: "job".into(),
            key: "job/1".into(),
            id: 1,
            granted: Duration::from_secs(10),
            margin: Duration::from_secs(2),
            valid_until: clock::now() + valid_for,
        })
    }

    #[test]
    fn a_holding_past_its_deadline_is_lost_for_good() {
        let held = held(Duration::ZERO);
        let reason = held.check_deadline().expect("lost at the deadline");
        assert!(matches!(reason, LossReason::NoRenewalBeforeDeadline { .. }));
        assert!(held.lost_token().is_cancelled());
        // A late acknowledgment does not bring it back.
        held.acknowledged(clock::now(), Duration::from_secs(10), Duration::ZERO);
        assert_eq!(held.check_deadline(), Some(reason));
    }

    #[test]
    fn an_acknowledgment_moves_the_deadline_from_its_send_time() {
        let held = held(Duration::from_secs(1));
        let sent = clock::now();
        held.acknowledged(sent, Duration::from_secs(10), Duration::from_millis(3));
        assert_eq!(held.valid_until(), sent + Duration::from_secs(8));
        // An older acknowledgment never moves it back.
        held.acknowledged(
            sent - Duration::from_secs(5),
            Duration::from_secs(10),
            Duration::ZERO,
        );
        assert_eq!(held.valid_until(), sent + Duration::from_secs(8));
        assert_eq!(held.check_deadline(), None);
    }

    #[test]
    fn the_first_reason_stays() {
        let held = held(Duration::from_secs(5));
        held.lose(LossReason::KeyDeleted);
        held.lose(LossReason::LeaseExpired);
        assert_eq!(held.loss(), Some(LossReason::KeyDeleted));
    }
}
