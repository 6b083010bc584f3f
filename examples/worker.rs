//! A worker function called in a loop, as a scheduler would: each call takes
//! the pidfile and releases it on return, and a call made while another
//! process holds the pidfile returns the error instead of running.
//!
//! ```text
//! cargo run --example worker -- 3
//! ```
//!
//! The pidfile is `worker.pid` in `$WORKER_DIR`, or else in the temporary
//! directory.

use std::io;
use std::path::PathBuf;

#[pid_runtime::pidfile(
    name = "worker",
    dir = std::env::var_os("WORKER_DIR").map_or_else(std::env::temp_dir, PathBuf::from),
)]
fn run_batch(batch: u32) -> io::Result<u32> {
    // The real work would go here; the pidfile keeps a second copy out.
    Ok(batch * 10)
}

fn main() {
    let batches: u32 = std::env::args()
        .nth(1)
        .map_or(3, |count| count.parse().expect("a number of batches"));
    for batch in 1..=batches {
        match run_batch(batch) {
            Ok(items) => println!("batch {batch}: done, {items} items"),
            Err(error) => println!("batch {batch}: skipped, {error}"),
        }
    }
}
