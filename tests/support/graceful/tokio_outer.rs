//! A tokio server under `#[pidfile]` written above `#[tokio::main]`: it
//! handles SIGTERM itself, shuts down gracefully and exits with status 7.
//! Prints `ready PATH` once its handler is installed, `shutting down` when
//! SIGTERM arrives. Its directory is `$GRACEFUL_DIR`.

use std::process::ExitCode;

#[pid_runtime::pidfile(name = "graceful", dir = std::env::var_os("GRACEFUL_DIR").expect("GRACEFUL_DIR"))]
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    pid_tests::graceful::serve_until_sigterm().await
}
