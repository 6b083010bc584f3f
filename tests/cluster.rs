//! `pid-cluster` against real etcd servers that these tests start: exclusion
//! across processes, `etcdctl lock` both ways, a killed or stopped holder, an
//! operator's revoke and delete, a server outage, a lease lost in the queue,
//! and fork. TTL 2 s, etcd's least, keeps each case to seconds.

mod common;
mod etcd;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Holder, TempDir};
use nix::sys::signal::Signal;
use pid_cluster::{ClusterLock, ClusterStatus, Error, FencingToken, LossReason};

const TTL: Duration = Duration::from_secs(2);

fn holder(etcd: &etcd::Etcd, name: &str) -> Holder {
    holder_with(&etcd.endpoint(), name, "2", |_| {})
}

/// A `cluster-holder` on `endpoint` with a lease of `ttl` seconds, its
/// process set up by `configure`.
fn holder_with(
    endpoint: &str,
    name: &str,
    ttl: &str,
    configure: impl FnOnce(&mut std::process::Command),
) -> Holder {
    Holder::spawn_program(Path::new(env!("CARGO_BIN_EXE_cluster-holder")), |command| {
        command.args([endpoint, name, ttl]);
        configure(command);
    })
}

fn lock(etcd: &etcd::Etcd, name: &str) -> ClusterLock {
    ClusterLock::new(name).endpoints([etcd.endpoint()]).ttl(TTL)
}

fn token_of(answer: &str) -> FencingToken {
    let token = answer
        .strip_prefix("ok ")
        .unwrap_or_else(|| panic!("not a holding: {answer}"));
    FencingToken::new(token.parse().expect("a token"))
}

/// `PIDFILE_CLUSTER_STRESS` is `PROCESSES x CYCLES` (default `8x200`).
#[test]
fn processes_contending_never_overlap_and_tokens_only_grow() {
    let etcd = etcd_or_skip!();
    let (processes, cycles) = common::stress_scale("PIDFILE_CLUSTER_STRESS", (8, 200));
    let dir = TempDir::new();
    let log = dir.join("log");
    let mut holders: Vec<Holder> = (0..processes).map(|_| holder(&etcd, "stress")).collect();
    for holder in &mut holders {
        holder.send_line(&format!("cycles {cycles} {} 60", log.display()));
    }
    for holder in &mut holders {
        assert_eq!(holder.read_line(), format!("done {cycles}"));
    }
    common::assert_holdings_in_turn(&log, processes * cycles);
}

#[test]
fn a_refusal_names_the_holder_and_check_agrees() {
    let etcd = etcd_or_skip!();
    let mut first = holder(&etcd, "report");
    let token = token_of(&first.ask("acquire"));
    let lock = lock(&etcd, "report");
    match lock.acquire().unwrap_err() {
        Error::AlreadyHeld {
            holder,
            token: held,
            ttl_left,
            ..
        } => {
            assert_eq!(holder.pid, Some(first.pid.as_raw()));
            assert!(holder.host.is_some());
            assert_eq!(held, token);
            assert!(ttl_left.is_some_and(|left| left <= TTL));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        lock.check().unwrap(),
        ClusterStatus::Held { token: held, .. } if held == token
    ));
    assert_eq!(first.ask("release"), "released");
    assert_eq!(lock.check().unwrap(), ClusterStatus::Free);
    let next = lock.acquire().unwrap();
    assert!(next.fencing_token() > token);
}

/// `etcdctl lock` holds: we are refused; it lets go: we take it, with a
/// token above the revision it exported.
#[test]
fn etcdctl_lock_excludes_us_and_our_token_follows_its_revision() {
    let etcd = etcd_or_skip!();
    // etcdctl gives its command no standard input: it holds until a line
    // comes down a FIFO.
    let dir = TempDir::new();
    let go = dir.join("go");
    nix::unistd::mkfifo(&go, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let script = format!("echo $ETCD_LOCK_REV; read line < {}", go.display());
    let mut etcdctl = etcd
        .etcdctl()
        .args(["lock", "shared", "--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(etcdctl.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let revision: u64 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("ETCD_LOCK_REV: {line:?}"));
    let lock = lock(&etcd, "shared");
    let refused = lock.acquire().unwrap_err();
    assert!(refused.is_already_running(), "{refused}");
    std::fs::write(&go, "go\n").unwrap();
    assert!(etcdctl.wait().unwrap().success());
    let guard = lock.acquire_timeout(Duration::from_secs(10)).unwrap();
    assert!(guard.fencing_token().get() > revision);
}

/// We hold: `etcdctl lock` queues behind us and gets the lock once we
/// release.
#[test]
fn we_exclude_etcdctl_lock_until_we_release() {
    let etcd = etcd_or_skip!();
    let guard = lock(&etcd, "shared").acquire().unwrap();
    let mut etcdctl = etcd
        .etcdctl()
        .args(["lock", "shared", "echo", "got it"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // It has queued once its own key is there, behind ours.
    while etcd.keys("shared/").len() < 2 {
        std::thread::yield_now();
    }
    assert_eq!(
        lock(&etcd, "shared").check().unwrap(),
        ClusterStatus::Held {
            holder: pid_cluster::Holder {
                host: Some(hostname()),
                pid: Some(std::process::id()),
                key: guard.info().key.clone(),
            },
            token: guard.fencing_token(),
            ttl_left: match lock(&etcd, "shared").check().unwrap() {
                ClusterStatus::Held { ttl_left, .. } => ttl_left,
                ClusterStatus::Free => panic!("free while held"),
            },
        }
    );
    guard.release().unwrap();
    let mut line = String::new();
    BufReader::new(etcdctl.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "got it\n");
    assert!(etcdctl.wait().unwrap().success());
}

fn hostname() -> String {
    nix::unistd::gethostname().unwrap().into_string().unwrap()
}

#[test]
fn a_killed_holder_is_succeeded_within_its_ttl_with_a_greater_token() {
    let etcd = etcd_or_skip!();
    let mut first = holder(&etcd, "job");
    let token = token_of(&first.ask("acquire"));
    first.kill_and_wait(Signal::SIGKILL);
    let killed = Instant::now();
    let next = lock(&etcd, "job")
        .acquire_timeout(TTL + Duration::from_secs(10))
        .unwrap();
    // The server's expiry (TTL, plus its revoke tick of up to 0.5 s) bounds
    // the takeover, with a second for this machine.
    assert!(
        killed.elapsed() < TTL + Duration::from_secs(2),
        "{:?}",
        killed.elapsed()
    );
    assert!(next.fencing_token() > token);
}

/// A toy resource that keeps the greatest token it has seen.
struct FencedStore {
    highest: FencingToken,
}

impl FencedStore {
    fn write(&mut self, token: FencingToken) -> Result<(), FencingToken> {
        if token < self.highest {
            return Err(self.highest);
        }
        self.highest = token;
        Ok(())
    }
}

/// A holder stopped past its TTL: a successor takes over, and the holder's
/// first check after it resumes says it lost, from its own clock; a write
/// it made without checking is refused by the fenced store.
#[test]
fn a_stopped_holder_knows_it_lost_as_soon_as_it_resumes() {
    let etcd = etcd_or_skip!();
    let mut first = holder(&etcd, "job");
    let old = token_of(&first.ask("acquire"));
    let mut store = FencedStore {
        highest: FencingToken::new(0),
    };
    store.write(old).unwrap();
    first.signal(Signal::SIGSTOP);
    let next = lock(&etcd, "job")
        .acquire_timeout(Duration::from_secs(30))
        .unwrap();
    store.write(next.fencing_token()).unwrap();
    first.signal(Signal::SIGCONT);
    assert_eq!(first.ask("check"), "lost NoRenewalBeforeDeadline");
    assert_eq!(store.write(old), Err(next.fencing_token()));
}

#[test]
fn an_operator_s_delete_or_revoke_is_seen_by_the_watch_before_the_deadline() {
    let etcd = etcd_or_skip!();
    for action in ["del", "revoke"] {
        let guard = lock(&etcd, "job").acquire().unwrap();
        let info = guard.info();
        match action {
            "del" => etcd.ctl(&["del", &info.key]),
            _ => etcd.ctl(&["lease", "revoke", &format!("{:x}", info.lease_id)]),
        };
        let lost = guard
            .wait_lost(Some(TTL))
            .unwrap_or_else(|| panic!("{action}: still holding"));
        assert!(
            matches!(
                lost.reason,
                LossReason::KeyDeleted | LossReason::LeaseExpired
            ),
            "{action}: {lost}"
        );
        assert!(guard.check().is_err());
        assert!(guard.valid_for().is_none());
        assert!(guard.lost().is_cancelled());
    }
}

/// The server is gone: the holder loses at its deadline, no one acquires
/// meanwhile (no local fallback), and after the restart the next holder
/// gets the lock once the lost guard is dropped and its lease revoked.
#[test]
fn an_outage_loses_the_lock_at_the_deadline_and_never_gives_a_second_holder() {
    let mut etcd = etcd_or_skip!();
    let guard = lock(&etcd, "job").acquire().unwrap();
    let token = guard.fencing_token();
    etcd.kill();
    let lost = guard.wait_lost(None).expect("lost");
    assert!(
        matches!(lost.reason, LossReason::NoRenewalBeforeDeadline { .. }),
        "{lost}"
    );
    assert!(matches!(
        lock(&etcd, "job").acquire(),
        Err(Error::Unavailable { .. })
    ));
    etcd.restart();
    drop(guard);
    let next = lock(&etcd, "job")
        .acquire_timeout(Duration::from_secs(30))
        .unwrap();
    assert!(next.fencing_token() > token);
}

/// etcd#9921: a waiter whose lease ends while it queues must not be handed
/// the lock when its turn comes.
#[test]
fn a_waiter_whose_lease_ended_in_the_queue_gets_no_guard() {
    let etcd = etcd_or_skip!();
    let mut first = holder(&etcd, "job");
    token_of(&first.ask("acquire"));
    let mut waiter = holder(&etcd, "job");
    waiter.send_line("acquire-wait 30");
    while etcd.keys("job/").len() < 2 {
        std::thread::yield_now();
    }
    let queued = etcd.keys("job/").pop().unwrap();
    let lease = queued.rsplit('/').next().unwrap().to_string();
    etcd.ctl(&["lease", "revoke", &lease]);
    assert_eq!(first.ask("release"), "released");
    let answer = waiter.read_line();
    assert!(answer.starts_with("err LostBeforeUse "), "{answer}");
}

/// A forked child's copy of a guard is lost and revokes nothing: the
/// parent still holds once the child has exited.
#[test]
fn a_forked_child_s_guard_is_lost_and_leaves_the_parent_holding() {
    let etcd = etcd_or_skip!();
    let guard = lock(&etcd, "job").acquire().unwrap();
    // SAFETY: the child only reads the guard, drops it and exits with _exit.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            let code = match guard.check() {
                Err(lost) if lost.reason == LossReason::Forked => 0,
                _ => 1,
            };
            drop(guard);
            // SAFETY: ends the child without running the parent's exit code.
            unsafe { nix::libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            let status = nix::sys::wait::waitpid(child, None).unwrap();
            assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
        }
    }
    guard.check().unwrap();
    assert!(matches!(
        lock(&etcd, "job").acquire(),
        Err(Error::AlreadyHeld { .. })
    ));
    // The parent's lease is still renewed.
    let renewals = guard.info().renewals;
    while guard.info().renewals == renewals {
        assert!(guard.check().is_ok());
        std::thread::yield_now();
    }
}

#[test]
fn async_callers_acquire_and_release_from_their_own_runtime() {
    let etcd = etcd_or_skip!();
    let lock = lock(&etcd, "job");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let guard = lock.acquire_async().await.unwrap();
        assert!(lock.clone().acquire_async().await.is_err());
        guard.release_async().await.unwrap();
        let again = lock.acquire_async().await.unwrap();
        drop(again);
    });
    assert_eq!(lock.check().unwrap(), ClusterStatus::Free);
}

#[test]
fn no_server_is_unavailable_never_a_local_holding() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let lock = ClusterLock::new("job").endpoints([format!("http://127.0.0.1:{port}")]);
    let error = lock.acquire().unwrap_err();
    assert!(matches!(error, Error::Unavailable { .. }), "{error:?}");
    assert!(error.to_string().contains(&port.to_string()), "{error}");
}

fn boot_nanos() -> u128 {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).unwrap();
    Duration::new(now.tv_sec() as u64, now.tv_nsec() as u32).as_nanos()
}

/// Three members; the holder talks to one, which is then cut off (stopped);
/// a successor queued on the other two acquires once the majority expires
/// the lease. The holder must have declared its loss before that, in every
/// run (`PIDFILE_PARTITION_RUNS`, default 20): etcd's Go client did in 1
/// of 8.
#[test]
fn a_partitioned_holder_declares_its_loss_before_the_successor_acquires() {
    let Some(cluster) = cluster_or_skip() else {
        return;
    };
    let runs: usize = std::env::var("PIDFILE_PARTITION_RUNS")
        .ok()
        .and_then(|runs| runs.parse().ok())
        .unwrap_or(20);
    let mut gaps = partitions(&cluster, runs, "2", |_| {});
    gaps.sort_unstable();
    eprintln!(
        "{runs} runs: the holder declared its loss {}..{} ms (median {}) before the successor acquired",
        gaps[0],
        gaps[gaps.len() - 1],
        gaps[gaps.len() / 2]
    );
}

/// The same with the holder's clock running at 0.85 times real time and
/// the default margin of 20 % (TTL 5 s, margin 1 s): the bound the docs
/// state, `rate >= 1 - margin / ttl`, still keeps it first.
#[test]
fn a_holder_whose_clock_runs_slow_within_the_margin_still_declares_its_loss_first() {
    let Some(cluster) = cluster_or_skip() else {
        return;
    };
    let dir = TempDir::new();
    let clock = dir.join("clock");
    std::fs::write(&clock, "0.85 0\n").unwrap();
    let gaps = partitions(&cluster, 5, "5", |command| {
        command.env("PIDFILE_CLUSTER_TEST_CLOCK", &clock);
    });
    eprintln!("at 0.85x: the holder declared its loss {gaps:?} ms before the successor acquired");
}

fn cluster_or_skip() -> Option<etcd::Cluster> {
    let cluster = etcd::Cluster::start();
    if cluster.is_none() {
        assert!(std::env::var_os("CI").is_none(), "etcd is not installed");
        eprintln!("skipped: etcd is not installed");
    }
    cluster
}

/// Runs the partition case `runs` times with a holder of TTL `ttl` (its
/// process set up by `configure`); the gaps between its loss and the
/// successor's acquisition, in milliseconds.
fn partitions(
    cluster: &etcd::Cluster,
    runs: usize,
    ttl: &str,
    configure: impl Fn(&mut std::process::Command),
) -> Vec<u128> {
    let mut gaps = Vec::new();
    for run in 0..runs {
        let name = format!("partition-{}-{run}", std::process::id());
        let mut first = holder_with(&cluster.endpoint(0), &name, ttl, &configure);
        token_of(&first.ask("acquire"));
        // A longer lease for the waiter: during the election that follows the
        // cut, its own renewals fail too, and with 2 s it can lose its place.
        let successor = ClusterLock::new(name.as_str())
            .endpoints([cluster.endpoint(1), cluster.endpoint(2)])
            .ttl(Duration::from_secs(6));
        let waiting = std::thread::spawn(move || loop {
            match successor.acquire_timeout(Duration::from_secs(60)) {
                Err(Error::LostBeforeUse { .. }) => continue,
                taken => break (taken.map(|guard| guard.fencing_token()), boot_nanos()),
            }
        });
        while cluster.keys(1, &format!("{name}/")).len() < 2 {
            std::thread::yield_now();
        }
        cluster.signal(0, Signal::SIGSTOP);
        let lost = first.ask("wait-lost-at 60");
        let (taken, acquired_at) = waiting.join().unwrap();
        cluster.signal(0, Signal::SIGCONT);
        taken.unwrap_or_else(|error| panic!("run {run}: the successor: {error}"));
        let words: Vec<&str> = lost.split(' ').collect();
        assert_eq!(
            words[..2],
            ["lost", "NoRenewalBeforeDeadline"],
            "run {run}: {lost}"
        );
        let lost_at: u128 = words[2].parse().unwrap();
        assert!(
            lost_at < acquired_at,
            "run {run}: the holder lost {} ms after the successor acquired",
            (lost_at - acquired_at) / 1_000_000
        );
        gaps.push((acquired_at - lost_at) / 1_000_000);
        cluster.wait_healthy(0);
    }
    gaps
}

/// A holder whose clock runs 20 % fast renews in time all the same; one
/// whose clock jumps forward past its deadline (a suspend) knows at once.
#[test]
fn a_fast_clock_loses_nothing_and_a_jump_past_the_deadline_is_lost_at_once() {
    let etcd = etcd_or_skip!();
    let dir = TempDir::new();
    let clock = dir.join("clock");
    std::fs::write(&clock, "1.2 0\n").unwrap();
    let mut first = holder_with(&etcd.endpoint(), "job", "2", |command| {
        command.env("PIDFILE_CLUSTER_TEST_CLOCK", &clock);
    });
    token_of(&first.ask("acquire"));
    assert_eq!(first.ask("wait-lost 6"), "holding", "three TTLs at 1.2x");
    std::fs::write(&clock, "1.2 10\n").unwrap();
    assert_eq!(first.ask("check"), "lost NoRenewalBeforeDeadline");
}

#[test]
fn a_guard_is_send_and_sync() {
    fn shareable<T: Send + Sync>() {}
    shareable::<pid_cluster::ClusterGuard>();
}

/// The user's own etcd writes, made conditional on `owner_compare`, commit
/// while the guard holds and not after it lost.
#[test]
fn owner_compare_fences_the_user_s_own_etcd_transactions() {
    use pid_cluster::etcd_client::{Client, Txn, TxnOp};

    let etcd = etcd_or_skip!();
    let guard = lock(&etcd, "job").acquire().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let endpoint = etcd.endpoint();
    let fenced_put = |value: &'static str| {
        let compare = guard.owner_compare().expect("a guard on etcd");
        runtime.block_on(async {
            let mut client = Client::connect([endpoint.as_str()], None).await.unwrap();
            let txn = Txn::new()
                .when([compare])
                .and_then([TxnOp::put("job-output", value, None)]);
            client.txn(txn).await.unwrap().succeeded()
        })
    };
    assert!(fenced_put("while held"));
    etcd.ctl(&["del", &guard.info().key]);
    assert!(guard.wait_lost(Some(TTL)).is_some());
    assert!(!fenced_put("after the loss"));
    assert_eq!(
        etcd.ctl(&["get", "--print-value-only", "job-output"]),
        "while held\n"
    );
}

#[test]
fn a_waiter_out_of_time_says_so_and_leaves_no_key() {
    let etcd = etcd_or_skip!();
    let _held = lock(&etcd, "job").acquire().unwrap();
    let error = lock(&etcd, "job")
        .acquire_timeout(Duration::from_millis(300))
        .unwrap_err();
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    assert!(error.is_already_running());
    assert_eq!(etcd.keys("job/").len(), 1, "the waiter's key is gone");
}

/// The README's example runs against a local etcd: one copy holds, works
/// and releases; a copy started while another holds is refused with 75.
#[test]
fn the_cluster_example_runs_and_a_second_copy_is_refused() {
    let etcd = etcd_or_skip!();
    let output = common::example("cluster")
        .env(pid_cluster::ETCD_ENDPOINTS_ENV, etcd.endpoint())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.starts_with("holding 'nightly-report' with token "),
        "{stdout}"
    );
    assert!(stdout.ends_with("released\n"), "{stdout}");

    let _held = ClusterLock::new("nightly-report")
        .endpoints([etcd.endpoint()])
        .acquire()
        .unwrap();
    let output = common::example("cluster")
        .env(pid_cluster::ETCD_ENDPOINTS_ENV, etcd.endpoint())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(75));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with(&format!(
            "cluster: already running as pid {} on ",
            std::process::id()
        )),
        "{stderr}"
    );
}

/// libfaketime moves the holder's wall clock an hour ahead, then an hour
/// back, while it holds: nothing changes, as the deadline never reads the
/// wall clock. `FAKETIME_DONT_FAKE_MONOTONIC` leaves the monotonic and boot
/// clocks alone, which a real clock step does too.
#[test]
fn wall_clock_jumps_change_nothing() {
    let etcd = etcd_or_skip!();
    let Some(faketime) = ["/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"]
        .into_iter()
        .map(Path::new)
        .find(|path| path.exists())
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "libfaketime is not installed"
        );
        eprintln!("skipped: libfaketime is not installed (apt-get install faketime)");
        return;
    };
    let dir = TempDir::new();
    let offset = dir.join("offset");
    std::fs::write(&offset, "+1h\n").unwrap();
    let mut first = holder_with(&etcd.endpoint(), "job", "2", |command| {
        command
            .env("LD_PRELOAD", faketime)
            .env("FAKETIME_TIMESTAMP_FILE", &offset)
            .env("FAKETIME_NO_CACHE", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    });
    let skew = |holder: &mut Holder| {
        let wall: i64 = holder
            .ask("wall")
            .strip_prefix("wall ")
            .unwrap()
            .parse()
            .unwrap();
        let ours = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        ((wall - ours) as f64 / 60.0).round() as i64
    };
    assert_eq!(skew(&mut first), 60, "minutes ahead");
    let token = token_of(&first.ask("acquire"));
    // Past a whole TTL at each offset: renewals went on all along.
    assert_eq!(first.ask("wait-lost 2.5"), "holding");
    std::fs::write(&offset, "-1h\n").unwrap();
    assert_eq!(skew(&mut first), -60, "minutes behind");
    assert_eq!(first.ask("wait-lost 2.5"), "holding");
    match lock(&etcd, "job").acquire() {
        Err(Error::AlreadyHeld { token: held, .. }) => assert_eq!(held, token),
        other => panic!("{other:?}"),
    }
    assert_eq!(first.ask("release"), "released");
}
