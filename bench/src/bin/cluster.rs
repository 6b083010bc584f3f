//! Cluster lock timings against a running etcd, in microseconds:
//!
//! - `cluster ENDPOINT cycles N`: N uncontended acquire + release;
//! - `cluster ENDPOINT handoff N`: N times, a holder releases while a
//!   waiter queues in `acquire_timeout`: from the start of the release to
//!   the waiter holding.
//!
//! Prints `median P99` of the rounds.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use pid_runtime::cluster::ClusterLock;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, endpoint, mode, n] = args.as_slice() else {
        panic!("usage: cluster ENDPOINT cycles|handoff N");
    };
    let n: usize = n.parse().expect("a count");
    let name = format!("bench-{}", std::process::id());
    let lock = ClusterLock::new(name)
        .endpoints([endpoint.as_str()])
        .ttl(Duration::from_secs(10));
    let mut times = match mode.as_str() {
        "cycles" => cycles(&lock, n),
        "handoff" => handoff(&lock, n),
        _ => panic!("unknown mode {mode}"),
    };
    times.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize].as_micros();
    println!("{} {}", at(0.5), at(0.99));
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

fn queued(lock: &ClusterLock) -> usize {
    // Counted with etcd's own client: a check() sees only the first key.
    let endpoint = std::env::args().nth(1).expect("endpoint");
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
