//! Cluster lock timings against a running etcd or PostgreSQL server (an
//! ENDPOINT that starts with `postgres://`), in microseconds:
//!
//! - `cluster ENDPOINT cycles N`: N uncontended acquire + release;
//! - `cluster ENDPOINT handoff N`: N times, a holder releases while a
//!   waiter queues in `acquire_timeout`: from the start of the release to
//!   the waiter holding;
//! - `cluster URL floor N` (PostgreSQL): N times what a bare client of
//!   `pg_try_advisory_lock` does for a lock of its own connection: connect,
//!   lock, unlock, close;
//! - `cluster URL floor-session N`: N lock + unlock on one connection;
//! - `cluster URL pair N`: N rounds of one `cycles` and one `floor`, in
//!   turn, so that both meet the same machine; prints both.
//!
//! Prints `median P99` of the rounds.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use pid_runtime::cluster::tokio_postgres::{self, NoTls};
use pid_runtime::cluster::{ClusterLock, Postgres};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, endpoint, mode, n] = args.as_slice() else {
        panic!("usage: cluster ENDPOINT cycles|handoff N");
    };
    let n: usize = n.parse().expect("a count");
    let name = format!("bench-{}", std::process::id());
    let lock = ClusterLock::new(name).ttl(Duration::from_secs(10));
    let lock = if endpoint.starts_with("postgres://") {
        lock.backend(Postgres::url(endpoint.as_str()))
    } else {
        lock.endpoints([endpoint.as_str()])
    };
    if mode == "pair" {
        let (mut ours, mut bare) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for round in 0..n {
            if round % 2 == 0 {
                ours.extend(cycles(&lock, 1));
                bare.extend(floor(endpoint, 1, true));
            } else {
                bare.extend(floor(endpoint, 1, true));
                ours.extend(cycles(&lock, 1));
            }
        }
        println!("{} {}", summary(ours), summary(bare));
        return;
    }
    let times = match mode.as_str() {
        "cycles" => cycles(&lock, n),
        "handoff" => handoff(&lock, n),
        "floor" => floor(endpoint, n, true),
        "floor-session" => floor(endpoint, n, false),
        _ => panic!("unknown mode {mode}"),
    };
    println!("{}", summary(times));
}

/// `median P99` in microseconds.
fn summary(mut times: Vec<Duration>) -> String {
    times.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize].as_micros();
    format!("{} {}", at(0.5), at(0.99))
}

fn cycles(lock: &ClusterLock, n: usize) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let started = Instant::now();
            lock.acquire().expect("acquire").release().expect("release");
            started.elapsed()
        })
        .collect()
}

fn handoff(lock: &ClusterLock, n: usize) -> Vec<Duration> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let holder = lock.acquire().expect("acquire");
        // The last round's waiter is gone: only the holder is there.
        while queued(lock) != 1 {
            std::thread::yield_now();
        }
        let (held, holding) = mpsc::channel();
        let waiter = {
            let lock = lock.clone();
            std::thread::spawn(move || {
                let guard = lock.acquire_timeout(Duration::from_secs(30)).expect("wait");
                let now = Instant::now();
                held.send(()).expect("report");
                drop(guard);
                now
            })
        };
        // The waiter has queued once its key stands behind the holder's.
        while queued(lock) < 2 {
            std::thread::yield_now();
        }
        let released = Instant::now();
        holder.release().expect("release");
        holding.recv().expect("the waiter holds");
        times.push(waiter.join().expect("waiter") - released);
    }
    times
}

/// A bare client's lock and unlock of key 42, connecting each time when
/// `connect_each` (as a guard's own connection does).
fn floor(url: &str, n: usize, connect_each: bool) -> Vec<Duration> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let connect = || async {
            let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connect");
            tokio::spawn(connection);
            client
        };
        let mut kept = if connect_each {
            None
        } else {
            Some(connect().await)
        };
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let started = Instant::now();
            let client = match kept.take() {
                Some(client) => client,
                None => connect().await,
            };
            let taken: bool = client
                .query_one("SELECT pg_try_advisory_lock(42)", &[])
                .await
                .expect("lock")
                .get(0);
            assert!(taken, "key 42 is free");
            client
                .execute("SELECT pg_advisory_unlock(42)", &[])
                .await
                .expect("unlock");
            if !connect_each {
                kept = Some(client);
            }
            times.push(started.elapsed());
        }
        times
    })
}

fn queued(lock: &ClusterLock) -> usize {
    let endpoint = std::env::args().nth(1).expect("endpoint");
    if endpoint.starts_with("postgres://") {
        return sessions_of_this_process(&endpoint);
    }
    // Counted with etcd's own client: a check() sees only the first key.
    let output = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args([
            "get",
            "--prefix",
            "--keys-only",
            &format!("{}/", lock.name()),
        ])
        .output()
        .expect("etcdctl");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.is_empty())
        .count()
}

/// How many sessions this process has open on the server: the holder's,
/// and the waiter's once it asks. A PostgreSQL waiter asks every 50 ms, so
/// a handoff there includes half that on average.
fn sessions_of_this_process(url: &str) -> usize {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connect");
        tokio::spawn(connection);
        let pattern = format!("% pid={}", std::process::id());
        let row = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1",
                &[&pattern],
            )
            .await
            .expect("count the sessions");
        usize::try_from(row.get::<_, i64>(0)).unwrap_or(0)
    })
}
