//! A process the cluster tests drive through its standard input, one command
//! a line, answering one line each:
//!
//! - `acquire` / `acquire-wait SECS` → `ok TOKEN` or `err KIND MESSAGE`
//! - `check` → `holding` or `lost KIND`
//! - `wait-lost SECS` → `lost KIND` or `holding`
//! - `wait-lost-at SECS` → `lost KIND NANOS`, NANOS on `CLOCK_BOOTTIME` when
//!   the loss was seen, or `holding`
//! - `release` → `released` or `err KIND MESSAGE`
//! - `cycles N LOG SECS`: N times acquire (waiting up to SECS), append
//!   `start TOKEN PID` and `end TOKEN PID` to LOG, release → `done N`
//! - `wall` → `wall SECS`, the wall clock in seconds since the epoch
//! - `fenced-write URL TABLE VALUE`: inserts VALUE into TABLE on the
//!   PostgreSQL server at URL, fenced with the guard's `sql_fence` →
//!   `wrote N`, N the rows written (0 when the fence refused it)
//! - `exit`
//!
//! Arguments: `ENDPOINTS NAME TTL_SECS`, ENDPOINTS being etcd's, separated
//! by commas, or a `postgres://` URL. It prints `ready PID` first.

use std::io::{BufRead, Write};
use std::time::Duration;

use pid_cluster::{ClusterGuard, ClusterLock, Error, LossReason, Postgres};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, endpoints, name, ttl] = args.as_slice() else {
        panic!("usage: cluster-holder ENDPOINTS NAME TTL_SECS");
    };
    let lock =
        ClusterLock::new(name.as_str()).ttl(Duration::from_secs(ttl.parse().expect("a ttl")));
    let lock = if endpoints.starts_with("postgres://") {
        lock.backend(Postgres::url(endpoints.as_str()))
    } else {
        lock.endpoints(endpoints.split(','))
    };
    let mut guard: Option<ClusterGuard> = None;
    let mut out = std::io::stdout().lock();
    say(&mut out, format!("ready {}", std::process::id()));
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("a command");
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["acquire"] => took(&mut guard, lock.acquire()),
            ["acquire-wait", secs] => took(&mut guard, lock.acquire_timeout(secs_of(secs))),
            ["check"] => match guard.as_ref().map(ClusterGuard::check) {
                Some(Ok(())) => "holding".to_string(),
                Some(Err(lost)) => format!("lost {}", kind(&lost.reason)),
                None => "err None no guard".to_string(),
            },
            ["wait-lost", secs] => match guard.as_ref().map(|g| g.wait_lost(Some(secs_of(secs)))) {
                Some(Some(lost)) => format!("lost {}", kind(&lost.reason)),
                Some(None) => "holding".to_string(),
                None => "err None no guard".to_string(),
            },
            ["wait-lost-at", secs] => {
                match guard.as_ref().map(|g| g.wait_lost(Some(secs_of(secs)))) {
                    Some(Some(lost)) => format!("lost {} {}", kind(&lost.reason), boot_nanos()),
                    Some(None) => "holding".to_string(),
                    None => "err None no guard".to_string(),
                }
            }
            ["release"] => match guard.take().map(ClusterGuard::release) {
                Some(Ok(())) => "released".to_string(),
                Some(Err(error)) => refused(&error),
                None => "err None no guard".to_string(),
            },
            ["cycles", n, log, secs] => {
                cycles(&lock, n.parse().expect("a count"), log, secs_of(secs))
            }
            ["wall"] => format!("wall {}", wall_secs()),
            ["fenced-write", url, table, value] => match &guard {
                Some(guard) => fenced_write(guard, url, table, value),
                None => "err None no guard".to_string(),
            },
            ["exit"] => std::process::exit(0),
            _ => format!("err Usage unknown command {line:?}"),
        };
        say(&mut out, answer);
    }
}

/// A write the way a program fences its own: the predicate in the statement.
fn fenced_write(guard: &ClusterGuard, url: &str, table: &str, value: &str) -> String {
    let Some(fence) = guard.sql_fence() else {
        return "err None not a lock on PostgreSQL".to_string();
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let (client, connection) =
            pid_cluster::tokio_postgres::connect(url, pid_cluster::tokio_postgres::NoTls)
                .await
                .expect("connect");
        tokio::spawn(connection);
        let sql = format!(
            "INSERT INTO {table} (value) SELECT $1::text WHERE {}",
            fence.predicate(2)
        );
        match client
            .execute(sql.as_str(), &[&value, &fence.name(), &fence.token()])
            .await
        {
            Ok(rows) => format!("wrote {rows}"),
            Err(error) => format!("err Backend {error}"),
        }
    })
}

fn wall_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

fn boot_nanos() -> u128 {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).expect("a clock");
    Duration::new(now.tv_sec() as u64, now.tv_nsec() as u32).as_nanos()
}

fn secs_of(secs: &str) -> Duration {
    Duration::from_secs_f64(secs.parse().expect("seconds"))
}

fn took(guard: &mut Option<ClusterGuard>, taken: Result<ClusterGuard, Error>) -> String {
    match taken {
        Ok(taken) => {
            let answer = format!("ok {}", taken.fencing_token());
            *guard = Some(taken);
            answer
        }
        Err(error) => refused(&error),
    }
}

fn cycles(lock: &ClusterLock, n: usize, log: &str, wait: Duration) -> String {
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
        .expect("open the log");
    let me = std::process::id();
    for _ in 0..n {
        let guard = match lock.acquire_timeout(wait) {
            Ok(guard) => guard,
            Err(error) => return refused(&error),
        };
        let token = guard.fencing_token();
        // One write each, so lines of different processes never interleave.
        log.write_all(format!("start {token} {me}\n").as_bytes())
            .expect("log");
        if let Err(lost) = guard.check() {
            return format!("lost {}", kind(&lost.reason));
        }
        log.write_all(format!("end {token} {me}\n").as_bytes())
            .expect("log");
        if let Err(error) = guard.release() {
            return refused(&error);
        }
    }
    format!("done {n}")
}

fn refused(error: &Error) -> String {
    let kind = match error {
        Error::AlreadyHeld { .. } => "AlreadyHeld",
        Error::Unavailable { .. } => "Unavailable",
        Error::Timeout { .. } => "Timeout",
        Error::LostBeforeUse { .. } => "LostBeforeUse",
        Error::Backend { .. } => "Backend",
        Error::SharedSession { .. } => "SharedSession",
        _ => "Other",
    };
    format!("err {kind} {error}")
}

fn kind(reason: &LossReason) -> &'static str {
    match reason {
        LossReason::NoRenewalBeforeDeadline { .. } => "NoRenewalBeforeDeadline",
        LossReason::LeaseExpired => "LeaseExpired",
        LossReason::KeyDeleted => "KeyDeleted",
        LossReason::Forked => "Forked",
        LossReason::SessionTerminated => "SessionTerminated",
        LossReason::NotHeldBySession => "NotHeldBySession",
        _ => "Other",
    }
}

fn say(out: &mut impl Write, line: String) {
    writeln!(out, "{line}").expect("answer");
    out.flush().expect("answer");
}
