//! One run across hosts: takes the cluster lock `nightly-report` on the etcd
//! cluster of `PIDFILE_ETCD_ENDPOINTS` (default `http://127.0.0.1:2379`),
//! does fenced work, and releases it. A second copy started meanwhile, on
//! any host, is refused with the holder named.
//!
//! ```sh
//! etcd &   # or any etcd cluster, named in PIDFILE_ETCD_ENDPOINTS
//! cargo run --features cluster --example cluster
//! ```

use std::time::Duration;

use pid_cluster::{ClusterLock, Etcd, FencingToken};

/// A store that keeps the greatest token it has seen and refuses older ones:
/// what makes a stale holder's late write harmless.
struct Store {
    highest: FencingToken,
}

impl Store {
    fn put(&mut self, batch: u32, token: FencingToken) -> Result<(), String> {
        if token < self.highest {
            return Err(format!(
                "batch {batch}: token {token} is older than {}",
                self.highest
            ));
        }
        self.highest = token;
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lock = ClusterLock::new("nightly-report")
        .backend(Etcd::from_env())
        .ttl(Duration::from_secs(10));
    let guard = match lock.acquire() {
        Ok(guard) => guard,
        Err(error) if error.is_already_running() => {
            eprintln!("cluster: {error}");
            std::process::exit(75);
        }
        Err(error) => return Err(error.into()),
    };
    println!(
        "holding 'nightly-report' with token {}",
        guard.fencing_token()
    );
    let mut store = Store {
        highest: FencingToken::new(0),
    };
    for batch in 0..3 {
        guard.check()?;
        store.put(batch, guard.fencing_token())?;
    }
    guard.release()?;
    println!("released");
    Ok(())
}
