//! `pid-cluster` on PostgreSQL, against servers these tests start (and
//! PgBouncer in front of one): exclusion across processes with tokens only
//! growing, a killed, stopped or terminated holder, a server restart, a
//! pooler in transaction mode, the documented key shared with other
//! clients, and the fenced write of a holder that lost.

mod common;
#[allow(dead_code)] // the tests use a part of it
mod postgres;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Holder, TempDir};
use nix::sys::signal::Signal;
use pid_cluster::{ClusterLock, ClusterStatus, Error, FencingToken, Postgres, LOCK_KEY_SQL};

const TTL: Duration = Duration::from_secs(2);

fn holder(url: &str, name: &str) -> Holder {
    Holder::spawn_program(Path::new(env!("CARGO_BIN_EXE_cluster-holder")), |command| {
        command.args([url, name, "2"]);
    })
}

fn lock(server: &postgres::Postgres, name: &str) -> ClusterLock {
    ClusterLock::new(name)
        .backend(Postgres::url(server.url()))
        .ttl(TTL)
}

fn token_of(answer: &str) -> FencingToken {
    let token = answer
        .strip_prefix("ok ")
        .unwrap_or_else(|| panic!("not a holding: {answer}"));
    FencingToken::new(token.parse().expect("a token"))
}

/// The documented key expression with the name in place of `$1`.
fn key_sql(name: &str) -> String {
    LOCK_KEY_SQL.replace("$1::text", &format!("'{name}'::text"))
}

/// Boot-clock nanoseconds, as the holder reports its losses.
fn boot_nanos() -> u128 {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).expect("a clock");
    Duration::new(now.tv_sec() as u64, now.tv_nsec() as u32).as_nanos()
}

/// `PIDFILE_PG_STRESS` is `PROCESSES x CYCLES` (default `4x50`).
#[test]
fn processes_contending_never_overlap_and_tokens_only_grow() {
    let server = postgres_or_skip!();
    let (processes, cycles) = common::stress_scale("PIDFILE_PG_STRESS", (4, 50));
    let dir = TempDir::new();
    let log = dir.join("log");
    let mut holders: Vec<Holder> = (0..processes)
        .map(|_| holder(&server.url(), "stress"))
        .collect();
    for holder in &mut holders {
        holder.send_line(&format!("cycles {cycles} {} 120", log.display()));
    }
    for holder in &mut holders {
        assert_eq!(holder.read_line(), format!("done {cycles}"));
    }
    common::assert_holdings_in_turn(&log, processes * cycles);
}

#[test]
fn a_refusal_names_the_holder_and_a_client_with_the_documented_key_is_excluded() {
    let server = postgres_or_skip!();
    let mut first = holder(&server.url(), "report");
    let token = token_of(&first.ask("acquire"));
    let lock = lock(&server, "report");
    match lock.acquire().unwrap_err() {
        Error::AlreadyHeld {
            holder,
            token: held,
            ..
        } => {
            assert_eq!(holder.pid, Some(first.pid.as_raw() as u32));
            assert!(holder.host.is_some());
            assert_eq!(held, token);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        lock.check().unwrap(),
        ClusterStatus::Held { token: held, .. } if held == token
    ));
    let other_client = format!("SELECT pg_try_advisory_lock({})", key_sql("report"));
    assert_eq!(server.sql(&other_client), "f");
    assert_eq!(first.ask("release"), "released");
    assert_eq!(lock.check().unwrap(), ClusterStatus::Free);
    let next = lock.acquire().unwrap();
    assert!(next.fencing_token() > token);
}

#[test]
fn a_killed_holder_is_succeeded_within_its_ttl_with_a_greater_token() {
    let server = postgres_or_skip!();
    let mut first = holder(&server.url(), "job");
    let token = token_of(&first.ask("acquire"));
    first.kill_and_wait(Signal::SIGKILL);
    let killed = Instant::now();
    let next = lock(&server, "job")
        .acquire_timeout(TTL + Duration::from_secs(10))
        .unwrap();
    assert!(
        killed.elapsed() < TTL + Duration::from_secs(1),
        "{:?}",
        killed.elapsed()
    );
    assert!(next.fencing_token() > token);
}

/// A holder stopped past its TTL: the server ends its idle session, a
/// successor takes over at about the TTL, the holder's first check after it
/// resumes says it lost, and its fenced write is refused.
#[test]
fn a_stopped_holder_is_succeeded_at_its_ttl_and_its_fenced_write_is_refused() {
    let server = postgres_or_skip!();
    server.sql("CREATE TABLE store (value text)");
    let mut first = holder(&server.url(), "job");
    let old = token_of(&first.ask("acquire"));
    assert_eq!(
        first.ask(&format!("fenced-write {} store old-before", server.url())),
        "wrote 1"
    );
    first.signal(Signal::SIGSTOP);
    let stopped = Instant::now();
    let next = lock(&server, "job")
        .acquire_timeout(Duration::from_secs(30))
        .unwrap();
    let waited = stopped.elapsed();
    // The server ends the session a TTL after its last probe, which came at
    // most a third of the TTL before the stop.
    assert!(
        waited >= TTL / 2 && waited < TTL + Duration::from_millis(1500),
        "the successor waited {waited:?}"
    );
    assert!(next.fencing_token() > old);
    first.signal(Signal::SIGCONT);
    let check = first.ask("check");
    assert!(check.starts_with("lost "), "{check}");
    assert_eq!(
        first.ask(&format!("fenced-write {} store old-after", server.url())),
        "wrote 0",
        "the fence let a holder that lost write"
    );
    assert_eq!(
        server.sql("SELECT string_agg(value, ',') FROM store"),
        "old-before"
    );
}

#[test]
fn an_administrator_s_pg_terminate_backend_is_a_loss_within_100_ms() {
    let server = postgres_or_skip!();
    let mut first = holder(&server.url(), "job");
    token_of(&first.ask("acquire"));
    first.send_line("wait-lost-at 10");
    let terminated = server.sql(&format!(
        "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l, (SELECT {} AS key) k \
         WHERE l.locktype = 'advisory' AND l.objsubid = 1 \
         AND l.classid::bigint = ((k.key >> 32) & 4294967295) \
         AND l.objid::bigint = (k.key & 4294967295)",
        key_sql("job")
    ));
    let done = boot_nanos();
    assert_eq!(terminated, "1");
    let answer = first.read_line();
    let words: Vec<&str> = answer.split(' ').collect();
    assert_eq!(words[..2], ["lost", "SessionTerminated"], "{answer}");
    let lost_at: u128 = words[2].parse().unwrap();
    let late = Duration::from_nanos(lost_at.saturating_sub(done) as u64);
    assert!(late < Duration::from_millis(100), "seen {late:?} after");
}

#[test]
fn a_server_restart_is_a_loss_and_a_successor_holds_after_it() {
    let mut server = postgres_or_skip!();
    let mut first = holder(&server.url(), "job");
    let old = token_of(&first.ask("acquire"));
    server.restart();
    assert_eq!(first.ask("wait-lost 10"), "lost SessionTerminated");
    let next = lock(&server, "job")
        .acquire_timeout(Duration::from_secs(10))
        .unwrap();
    assert!(next.fencing_token() > old);
    // The guard never comes back.
    assert_eq!(first.ask("check"), "lost SessionTerminated");
}

/// Through PgBouncer in transaction mode, where clients share one server
/// session: a second client is refused as a shared session, never a second
/// holder, and a client of the server itself is refused while it holds.
#[test]
fn a_pooler_in_transaction_mode_never_gives_two_holders() {
    let server = postgres_or_skip!();
    let Some(bouncer) = postgres::Bouncer::start(&server) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "PgBouncer is not installed"
        );
        eprintln!("skipped: PgBouncer is not installed");
        return;
    };
    let mut first = holder(&bouncer.url(), "pooled");
    let mut second = holder(&bouncer.url(), "pooled");
    let answers = [first.ask("acquire"), second.ask("acquire")];
    let holding: Vec<&String> = answers.iter().filter(|a| a.starts_with("ok ")).collect();
    assert!(holding.len() <= 1, "{answers:?}");
    for answer in &answers {
        assert!(
            answer.starts_with("ok ")
                || answer.starts_with("err SharedSession")
                || answer.starts_with("err AlreadyHeld"),
            "{answer}"
        );
    }
    assert!(
        answers.iter().any(|a| a.starts_with("err SharedSession")),
        "{answers:?}"
    );
    if !holding.is_empty() {
        // Whoever believes it holds does: the server itself refuses others.
        assert!(matches!(
            lock(&server, "pooled").acquire().unwrap_err(),
            Error::AlreadyHeld { .. }
        ));
    }
}

/// A waiter waits in the server's queue, and gives up with `Timeout` when
/// its time is up; the holder's release hands the lock to the next waiter.
#[test]
fn a_waiter_out_of_time_says_so_and_a_release_hands_the_lock_on() {
    let server = postgres_or_skip!();
    let mut first = holder(&server.url(), "queue");
    let token = token_of(&first.ask("acquire"));
    let waited = Instant::now();
    match lock(&server, "queue").acquire_timeout(Duration::from_millis(300)) {
        Err(Error::Timeout { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(waited.elapsed() >= Duration::from_millis(300));
    let mut second = holder(&server.url(), "queue");
    second.send_line("acquire-wait 30");
    // Queued: its session waits on the advisory lock.
    let queued = Instant::now();
    while server.sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        != "1"
    {
        assert!(queued.elapsed() < Duration::from_secs(30), "never queued");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(first.ask("release"), "released");
    assert!(token_of(&second.read_line()) > token);
}
