//! A program under `#[pidfile]` that waits for SIGTERM with signal-hook,
//! then shuts down gracefully and exits with status 7.

use std::process::ExitCode;

#[pid_runtime::pidfile(name = "graceful", dir = std::env::var_os("GRACEFUL_DIR").expect("GRACEFUL_DIR"))]
fn main() -> ExitCode {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM])
        .expect("register for SIGTERM");
    pid_tests::graceful::ready();
    signals.forever().next();
    pid_tests::graceful::shut_down()
}
