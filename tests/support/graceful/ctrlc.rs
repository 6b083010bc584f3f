//! A program under `#[pidfile]` that waits for SIGTERM with ctrlc's
//! `termination` feature, then shuts down gracefully and exits with status 7.

use std::process::ExitCode;

#[pid_runtime::pidfile(name = "graceful", dir = std::env::var_os("GRACEFUL_DIR").expect("GRACEFUL_DIR"))]
fn main() -> ExitCode {
    let (signalled, signal) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = signalled.send(());
    })
    .expect("set the handler");
    pid_tests::graceful::ready();
    signal.recv().expect("wait for the signal");
    pid_tests::graceful::shut_down()
}
