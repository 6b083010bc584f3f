//! `pidfile run --cluster` and `pidfile check --cluster` against real etcd
//! servers these tests start: two runs on two "hosts" (UTS namespaces with
//! their own host names, when this runs as root), one runs and the other is
//! refused with the holder named; a holder stopped past its lease exits 75
//! when continued, its command killed; a holder cut off from the cluster's
//! majority has its command dead before a successor's starts.
//!
//! Events are ordered by what the processes print and by the keys etcd
//! holds, never by sleeping.
#![cfg(unix)]

mod common;
#[allow(dead_code)] // the tests use a part of it
#[path = "../../tests/etcd/mod.rs"]
mod etcd;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{output, Running, TempDir, PATIENCE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A `pidfile` command on a host named `host`, its pidfiles in `dir`.
fn pidfile_on(host: &str, dir: &TempDir, args: &[&str]) -> Command {
    let pidfile = env!("CARGO_BIN_EXE_pidfile");
    let mut command = if nix::unistd::geteuid().is_root() {
        let mut command = Command::new("unshare");
        command
            .args(["--uts", "sh", "-c", "hostname \"$0\" && exec \"$@\"", host])
            .arg(pidfile);
        command
    } else {
        Command::new(pidfile)
    };
    let (subcommand, rest) = args.split_first().expect("a subcommand");
    command.arg(subcommand).arg("--dir").arg(&dir.0).args(rest);
    command
}

fn cluster_of(endpoints: &[String]) -> String {
    let hosts: Vec<&str> = endpoints
        .iter()
        .map(|endpoint| endpoint.trim_start_matches("http://"))
        .collect();
    format!("etcd://{}", hosts.join(","))
}

fn lock_name(case: &str) -> String {
    format!("cli-{case}-{}", std::process::id())
}

/// `pidfile run` of `sh -c SCRIPT` on `host`, holding `lock` on `cluster`
/// with a time to live of `ttl` seconds, its standard error piped.
fn run_script(
    host: &str,
    dir: &TempDir,
    lock: &str,
    cluster: &str,
    ttl: &str,
    script: &str,
) -> Command {
    let args = [
        "run",
        "--name",
        lock,
        "--cluster",
        cluster,
        "--ttl",
        ttl,
        "--",
        "sh",
        "-c",
        script,
    ];
    let mut command = pidfile_on(host, dir, &args);
    command.stderr(Stdio::piped());
    command
}

/// Waits until etcd holds no key of `lock`: its holder's lease expired.
fn wait_until_free(keys: impl Fn() -> Vec<String>) {
    let deadline = Instant::now() + PATIENCE;
    while !keys().is_empty() {
        assert!(Instant::now() < deadline, "the lease never expired");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The value of `field=` in a line of `field=value` words.
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
}

#[test]
fn one_run_holds_across_two_hosts_and_the_other_is_refused_with_the_holder_named() {
    let etcd = etcd_or_skip!();
    let lock = lock_name("refused");
    let cluster = cluster_of(&[etcd.endpoint()]);
    let (a, b) = (TempDir::new(), TempDir::new());
    let told = "echo token=$PIDFILE_FENCING_TOKEN lock=$PIDFILE_CLUSTER_LOCK lease=$PIDFILE_CLUSTER_LEASE; read line || true";
    let mut first = Running::start(run_script("host-a", &a, &lock, &cluster, "2", told));
    let line = first.line_or_said();
    let token = field(&line, "token");
    assert!(token.parse::<u64>().is_ok_and(|token| token > 0), "{line}");
    assert_eq!(field(&line, "lock"), lock);
    let lease = field(&line, "lease");
    assert_eq!(
        etcd.keys(&format!("{lock}/")),
        [format!("{lock}/{lease}")],
        "the lock's key is the one etcdctl lock would make"
    );
    assert!(a.join(&format!("{lock}.pid")).exists(), "the local pidfile");

    let check = output(pidfile_on(
        "host-b",
        &b,
        &["check", "--name", &lock, "--cluster", &cluster],
    ));
    assert_eq!(check.status.code(), Some(0));
    let said = String::from_utf8_lossy(&check.stdout);
    assert_eq!(field(&said, "pid"), first.pid().to_string(), "{said}");
    assert_eq!(field(&said, "token"), token, "{said}");
    if nix::unistd::geteuid().is_root() {
        assert_eq!(field(&said, "host"), "host-a", "{said}");
    }

    let refused = output(pidfile_on(
        "host-b",
        &b,
        &[
            "run",
            "--name",
            &lock,
            "--cluster",
            &cluster,
            "--exit-code",
            "9",
            "--",
            "true",
        ],
    ));
    assert_eq!(refused.status.code(), Some(9));
    let message = String::from_utf8_lossy(&refused.stderr);
    let named = if nix::unistd::geteuid().is_root() {
        format!("already running as pid {} on host-a", first.pid())
    } else {
        format!("already running as pid {}", first.pid())
    };
    assert!(message.contains(&named), "{message}");
    assert!(
        message.contains(&format!("cluster lock '{lock}', token {token}")),
        "{message}"
    );
    assert!(
        !b.join(&format!("{lock}.pid")).exists(),
        "the refused run left its pidfile"
    );

    drop(first.stdin.take());
    let status = first.wait();
    assert_eq!(status.code(), Some(0), "{}", first.said());
    assert!(
        etcd.keys(&format!("{lock}/")).is_empty(),
        "the lease was not revoked"
    );
    assert!(!a.join(&format!("{lock}.pid")).exists());
    let check = output(pidfile_on(
        "host-b",
        &b,
        &["check", "--name", &lock, "--cluster", &cluster],
    ));
    assert_eq!(
        check.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

#[test]
fn a_holder_stopped_past_its_lease_exits_75_when_continued_and_its_command_is_killed() {
    let etcd = etcd_or_skip!();
    let lock = lock_name("stopped");
    let cluster = cluster_of(&[etcd.endpoint()]);
    let (a, b) = (TempDir::new(), TempDir::new());
    let script = "echo $$ $PIDFILE_FENCING_TOKEN; exec sleep 1000";
    let mut command = run_script("host-a", &a, &lock, &cluster, "2", script);
    // Its own group: the whole job, pidfile and command, is stopped, as a
    // frozen host or virtual machine is.
    command.process_group(0);
    let mut holder = Running::start(command);
    let line = holder.line_or_said();
    let (child, old) = line.split_once(' ').expect("pid and token");
    let child = Pid::from_raw(child.parse().expect("a pid"));
    let old: u64 = old.parse().expect("a token");
    holder.signal_job(Signal::SIGSTOP);
    wait_until_free(|| etcd.keys(&format!("{lock}/")));

    let successor = output(pidfile_on(
        "host-b",
        &b,
        &[
            "run",
            "--name",
            &lock,
            "--cluster",
            &cluster,
            "--",
            "sh",
            "-c",
            "echo $PIDFILE_FENCING_TOKEN",
        ],
    ));
    assert_eq!(
        successor.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&successor.stderr)
    );
    let new: u64 = String::from_utf8_lossy(&successor.stdout)
        .trim()
        .parse()
        .expect("a token");
    assert!(new > old, "{new} after {old}");

    holder.assert_continued_job_lost(child, &lock, old);
    assert!(
        !a.join(&format!("{lock}.pid")).exists(),
        "the local pidfile was left"
    );
}

/// How many times the partition is made; `PIDFILE_CLI_PARTITION_RUNS`.
fn partition_runs() -> usize {
    std::env::var("PIDFILE_CLI_PARTITION_RUNS")
        .ok()
        .and_then(|runs| runs.parse().ok())
        .unwrap_or(2)
}

#[test]
fn a_holder_cut_off_from_the_majority_has_its_command_dead_before_a_successor_s_starts() {
    let Some(cluster) = etcd::Cluster::start() else {
        assert!(std::env::var_os("CI").is_none(), "etcd is not installed");
        eprintln!("skipped: etcd is not installed");
        return;
    };
    for run in 0..partition_runs() {
        let lock = lock_name(&format!("partition-{run}"));
        let (a, b) = (TempDir::new(), TempDir::new());
        // The holder talks to member 1 alone; its command ignores SIGTERM,
        // so only SIGKILL ends it. A time to live of 3 s leaves 2 s to a
        // cluster that has just elected its leader.
        let member_1 = cluster_of(&[cluster.endpoint(1)]);
        let script = "trap '' TERM; echo $$; exec sleep 1000";
        let mut holder = Running::start(run_script("host-a", &a, &lock, &member_1, "3", script));
        let child = holder.line_or_said();
        // Queued behind it on the other two members, it runs a command that
        // says whether the holder's command is still there. Its default
        // time to live (10 s) outlasts an election, if member 1 led.
        let overlap =
            format!("if kill -0 {child} 2>/dev/null; then echo overlap; else echo alone; fi");
        let majority = cluster_of(&[cluster.endpoint(0), cluster.endpoint(2)]);
        let mut command = pidfile_on(
            "host-b",
            &b,
            &[
                "run",
                "--name",
                &lock,
                "--cluster",
                &majority,
                "--wait",
                "--",
                "sh",
                "-c",
                &overlap,
            ],
        );
        command.stderr(Stdio::piped());
        let mut successor = Running::start(command);
        let queued = Instant::now();
        while cluster.keys(0, &format!("{lock}/")).len() < 2 {
            assert!(queued.elapsed() < PATIENCE, "the successor never queued");
            std::thread::sleep(Duration::from_millis(10));
        }

        cluster.signal(1, Signal::SIGSTOP);
        assert_eq!(
            successor.line_or_said(),
            "alone",
            "run {run}: both commands ran at once"
        );
        let status = holder.wait();
        let stderr = holder.said();
        assert_eq!(status.code(), Some(75), "run {run}: {stderr}");
        assert!(
            stderr.contains(&format!("lost cluster lock '{lock}'")),
            "{stderr}"
        );
        assert_eq!(successor.wait().code(), Some(0), "{}", successor.said());
        cluster.signal(1, Signal::SIGCONT);
        cluster.wait_healthy(1);
    }
}

#[test]
fn a_cluster_without_a_server_is_an_error_and_never_a_local_run() {
    let dir = TempDir::new();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port();
    let mut run = Command::new(env!("CARGO_BIN_EXE_pidfile"));
    run.args(["run", "--dir"])
        .arg(&dir.0)
        .args([
            "--name",
            "nowhere",
            "--cluster",
            &format!("etcd://127.0.0.1:{port}"),
        ])
        .args(["--", "sh", "-c", "echo ran"]);
    let ran = output(run);
    assert_eq!(
        ran.status.code(),
        Some(125),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(ran.stdout.is_empty(), "the command ran without the lock");
    let message = String::from_utf8_lossy(&ran.stderr);
    assert!(
        message.contains("cluster lock 'nowhere': no server answers"),
        "{message}"
    );
    assert!(!dir.join("nowhere.pid").exists());
}

#[test]
fn a_run_waiting_for_the_cluster_lock_dies_of_the_signal_that_ends_its_wait() {
    use std::os::unix::process::ExitStatusExt;

    let etcd = etcd_or_skip!();
    let lock = lock_name("waiting");
    let cluster = cluster_of(&[etcd.endpoint()]);
    let (a, b) = (TempDir::new(), TempDir::new());
    let mut holder = Running::start(run_script(
        "host-a",
        &a,
        &lock,
        &cluster,
        "2",
        "echo held; read line || true",
    ));
    assert_eq!(holder.line_or_said(), "held");
    let args = [
        "run",
        "--name",
        &lock,
        "--cluster",
        &cluster,
        "--wait",
        "--",
        "echo",
        "ran",
    ];
    let mut waiter = Running::start(pidfile_on("host-b", &b, &args));
    let queued = Instant::now();
    while etcd.keys(&format!("{lock}/")).len() < 2 {
        assert!(queued.elapsed() < PATIENCE, "the waiter never queued");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        b.join(&format!("{lock}.pid")).exists(),
        "the waiter holds its pidfile while it waits"
    );
    kill(waiter.pid(), Signal::SIGTERM).unwrap();
    let status = waiter.wait();
    assert_eq!(status.signal(), Some(Signal::SIGTERM as i32), "{status:?}");
    assert!(
        !b.join(&format!("{lock}.pid")).exists(),
        "the waiter left its pidfile"
    );
    assert!(waiter.lines.try_recv().is_err(), "the command ran");
    drop(holder.stdin.take());
    assert_eq!(holder.wait().code(), Some(0), "{}", holder.said());
}
