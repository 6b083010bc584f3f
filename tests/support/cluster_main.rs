//! `#[pidfile(cluster = ..)]` on `main`, driven by the cluster attribute
//! tests through its standard input: it prints `holding TOKEN`, then for
//! each `write` line checks the lock and appends its token to the store
//! named by `PIDFILE_TEST_STORE` (answering `wrote`), and returns at the end
//! of its input. The pidfile's name, directory and the etcd endpoints come
//! from `PIDFILE_TEST_NAME`, `PIDFILE_TEST_DIR` and `PIDFILE_ETCD_ENDPOINTS`;
//! the lock is on PostgreSQL instead when `PIDFILE_POSTGRES_URL` is set.

use std::io::{BufRead, Write};

use pid_runtime::cluster::{Backend, Etcd, Postgres};

/// etcd, or PostgreSQL when `PIDFILE_POSTGRES_URL` is set.
fn backend() -> Backend {
    match std::env::var_os("PIDFILE_POSTGRES_URL") {
        Some(_) => Postgres::from_env().into(),
        None => Etcd::from_env().into(),
    }
}

#[pid_runtime::pidfile(
    name = std::env::var("PIDFILE_TEST_NAME").expect("PIDFILE_TEST_NAME"),
    dir = std::env::var("PIDFILE_TEST_DIR").expect("PIDFILE_TEST_DIR"),
    cluster = backend(),
    ttl = "2s",
    bind = lease
)]
fn main() -> std::io::Result<()> {
    let store = std::env::var("PIDFILE_TEST_STORE").expect("PIDFILE_TEST_STORE");
    let mut out = std::io::stdout().lock();
    writeln!(out, "holding {}", lease.fencing_token())?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        if line? == "write" {
            lease.check()?;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&store)?;
            writeln!(file, "{}", lease.fencing_token())?;
            writeln!(out, "wrote")?;
            out.flush()?;
        }
    }
    Ok(())
}
