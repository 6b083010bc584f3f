//! A tokio server under `#[pidfile]` written below `#[tokio::main]`, on the
//! multi-threaded runtime: as `graceful-tokio-outer`.

use std::process::ExitCode;

#[tokio::main]
#[pid_runtime::pidfile(name = "graceful", dir = std::env::var_os("GRACEFUL_DIR").expect("GRACEFUL_DIR"))]
async fn main() -> ExitCode {
    pid_tests::graceful::serve_until_sigterm().await
}
