//! A program of which only one copy may run: `main` is guarded by the
//! attribute. Start it twice; the second copy says who holds the pidfile and
//! exits with status 3.
//!
//! ```text
//! cargo run --example singleton &
//! cargo run --example singleton
//! ```
//!
//! The pidfile is `singleton.pid` in `$SINGLETON_DIR`, or else in the
//! temporary directory. The program holds it until its standard input closes.

use std::path::PathBuf;

#[pid_runtime::pidfile(
    name = "singleton",
    dir = std::env::var_os("SINGLETON_DIR").map_or_else(std::env::temp_dir, PathBuf::from),
    exit_code = 3,
)]
fn main() {
    println!("running as pid {}", std::process::id());
    let _ = std::io::stdin().read_line(&mut String::new());
}
