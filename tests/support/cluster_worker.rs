//! `#[pidfile(cluster = ..)]` on workers, sync and async, driven by the
//! cluster attribute tests: `sync` or `async` as the argument; the worker
//! prints `holding TOKEN`, waits for a line on its standard input, and
//! returns `Ok`; `main` prints `ok` or `err MESSAGE` for what the worker
//! returned. The lock's name comes from `PIDFILE_TEST_NAME`.

use std::io::{BufRead, Write};

use pid_runtime::cluster::Etcd;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("write to stdout");
    out.flush().expect("write to stdout");
}

#[pid_runtime::pidfile(
    name = std::env::var("PIDFILE_TEST_NAME").expect("PIDFILE_TEST_NAME"),
    cluster = Etcd::from_env(),
    local = false,
    ttl = "2s",
    bind = lease
)]
fn sync_worker() -> std::io::Result<()> {
    say(&format!("holding {}", lease.fencing_token()));
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(())
}

#[pid_runtime::pidfile(
    name = std::env::var("PIDFILE_TEST_NAME").expect("PIDFILE_TEST_NAME"),
    cluster = Etcd::from_env(),
    local = false,
    ttl = "2s",
    bind = lease
)]
async fn async_worker() -> std::io::Result<()> {
    say(&format!("holding {}", lease.fencing_token()));
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(tokio::io::stdin()));
    lines.next_line().await?;
    Ok(())
}

fn main() {
    // Kept past the answer: dropping it would wait for the read of the
    // standard input that the dropped body left on a blocking thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let result = match std::env::args().nth(1).as_deref() {
        Some("sync") => sync_worker(),
        Some("async") => runtime.block_on(async_worker()),
        _ => panic!("usage: cluster-worker sync|async"),
    };
    match result {
        Ok(()) => say("ok"),
        Err(error) => say(&format!("err {error}")),
    }
    runtime.shutdown_background();
}
