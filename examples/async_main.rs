//! An async `main` under tokio, guarded by the attribute: the pidfile is held
//! across every `.await` of the body.
//!
//! ```text
//! cargo run --example async_main
//! ```

use std::path::PathBuf;
use std::time::Duration;

#[pid_runtime::pidfile(
    name = "async-main",
    dir = std::env::var_os("ASYNC_MAIN_DIR").map_or_else(std::env::temp_dir, PathBuf::from),
)]
#[tokio::main(flavor = "current_thread")]
async fn main() {
    println!("running as pid {}", std::process::id());
    tokio::time::sleep(Duration::from_millis(10)).await;
    println!("done");
}
