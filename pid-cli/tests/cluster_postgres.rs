//! `pidfile run --cluster postgres://...` and `pidfile check --cluster
//! postgres://...` against a PostgreSQL server this test starts: one run
//! holds, another is refused with the holder named, and `check` agrees; the
//! holder's whole job stopped past the lock's time to live exits 75 when
//! continued, its command dead, while a successor ran with a greater token.
#![cfg(unix)]

mod common;
#[allow(dead_code)] // the tests use a part of it
#[path = "../../tests/postgres/mod.rs"]
mod postgres;

use std::os::unix::process::CommandExt;
use std::process::Stdio;

use common::{output, pidfile, Running, TempDir};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn one_run_holds_on_postgres_the_next_is_refused_and_a_stopped_one_exits_75() {
    let server = postgres_or_skip!();
    let url = server.url();
    let lock = format!("cli-pg-{}", std::process::id());
    let (a, b) = (TempDir::new(), TempDir::new());
    let mut command = pidfile(
        &[
            "run",
            "--name",
            &lock,
            "--cluster",
            &url,
            "--ttl",
            "2",
            "--",
            "sh",
            "-c",
            "echo $$ $PIDFILE_FENCING_TOKEN $PIDFILE_CLUSTER_LOCK; exec sleep 1000",
        ],
        &a,
    );
    command.process_group(0).stderr(Stdio::piped());
    let mut holder = Running::start(command);
    let line = holder.line_or_said();
    let words: Vec<&str> = line.split(' ').collect();
    let [child, old, named] = words[..] else {
        panic!("{line}");
    };
    assert_eq!(named, lock);
    let child = Pid::from_raw(child.parse().expect("a pid"));
    let old: u64 = old.parse().expect("a token");

    let check = output(pidfile(&["check", "--name", &lock, "--cluster", &url], &b));
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));
    let said = text(&check.stdout);
    assert!(said.contains(&format!("pid={} ", holder.pid())), "{said}");
    assert!(said.contains(&format!("token={old}")), "{said}");

    let refused = output(pidfile(
        &["run", "--name", &lock, "--cluster", &url, "--", "true"],
        &b,
    ));
    assert_eq!(refused.status.code(), Some(1));
    let message = text(&refused.stderr);
    assert!(
        message.contains(&format!("already running as pid {}", holder.pid())),
        "{message}"
    );
    assert!(
        message.contains(&format!("cluster lock '{lock}', token {old}")),
        "{message}"
    );

    // The whole job stopped: the server ends its idle session after the
    // time to live, and a successor waiting for the lock runs.
    holder.signal_job(Signal::SIGSTOP);
    let successor = output(pidfile(
        &[
            "run",
            "--name",
            &lock,
            "--cluster",
            &url,
            "--wait=30",
            "--",
            "sh",
            "-c",
            "echo $PIDFILE_FENCING_TOKEN",
        ],
        &b,
    ));
    assert_eq!(
        successor.status.code(),
        Some(0),
        "{}",
        text(&successor.stderr)
    );
    let new: u64 = text(&successor.stdout).trim().parse().expect("a token");
    assert!(new > old, "{new} after {old}");

    holder.assert_continued_job_lost(child, &lock, old);
    let check = output(pidfile(&["check", "--name", &lock, "--cluster", &url], &b));
    assert_eq!(check.status.code(), Some(3), "{}", text(&check.stdout));
}
