//! How soon after its deadline `#[pidfile(cluster = ..)]` drops an `async`
//! body (`on_lost = "cancel"`): `loss-latency ENDPOINT ETCD_PID N` takes the
//! lock N times on the etcd at ENDPOINT, stops that server (SIGSTOP) from
//! inside the body so that no renewal is answered, and measures from the
//! guard's deadline to the body's drop; the server is continued between
//! rounds. The deadline is read from the guard every millisecond while the
//! body runs, and stops moving once the server stops answering.
//!
//! Prints `median MAX` in microseconds.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pid_runtime::cluster::Etcd;

/// The last deadline the body saw, and when it was dropped.
static SEEN: Mutex<(Option<Instant>, Option<Instant>)> = Mutex::new((None, None));

struct RecordsDrop;

impl Drop for RecordsDrop {
    fn drop(&mut self) {
        SEEN.lock().unwrap().1 = Some(Instant::now());
    }
}

#[pid_runtime::pidfile(
    name = format!("bench-loss-{round}"),
    cluster = Etcd::endpoints([endpoint]),
    local = false,
    ttl = "2s",
    bind = lease
)]
async fn body(endpoint: String, round: usize, etcd: Pid) -> std::io::Result<()> {
    let _dropped = RecordsDrop;
    kill(etcd, Signal::SIGSTOP).map_err(std::io::Error::from)?;
    loop {
        if let Some(left) = lease.valid_for() {
            SEEN.lock().unwrap().0 = Some(Instant::now() + left);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, endpoint, etcd, n] = args.as_slice() else {
        panic!("usage: loss-latency ENDPOINT ETCD_PID N");
    };
    let etcd = Pid::from_raw(etcd.parse().expect("a pid"));
    let n: usize = n.parse().expect("a count");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut late = Vec::with_capacity(n);
    for round in 0..n {
        *SEEN.lock().unwrap() = (None, None);
        let ended = runtime.block_on(body(endpoint.clone(), round, etcd));
        kill(etcd, Signal::SIGCONT).expect("continue etcd");
        let error = ended.expect_err("the body ends only when the lock is lost");
        assert!(error.to_string().contains("lost cluster lock"), "{error}");
        let (deadline, dropped) = *SEEN.lock().unwrap();
        let (deadline, dropped) = (deadline.expect("a deadline"), dropped.expect("a drop"));
        late.push(dropped.saturating_duration_since(deadline));
        wait_answers(endpoint);
    }
    late.sort_unstable();
    println!(
        "{} {}",
        late[(late.len() - 1) / 2].as_micros(),
        late[late.len() - 1].as_micros()
    );
}

/// Waits until the continued server answers a lock again.
fn wait_answers(endpoint: &str) {
    let lock = pid_runtime::cluster::ClusterLock::new("bench-loss-ready").endpoints([endpoint]);
    while lock.check().is_err() {
        std::thread::yield_now();
    }
}
