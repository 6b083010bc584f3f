//! A program whose `main` is a daemon under `#[pidfile(daemonize = true)]`:
//! the starter exits 0 once the pidfile names the daemon, which prints
//! `daemon PID` and holds the file until its standard input closes. Its
//! directory is `$DAEMON_DIR`.

use std::io::Read;

#[pid_runtime::pidfile(daemonize = true, name = "daemon-main", dir = std::env::var_os("DAEMON_DIR").expect("DAEMON_DIR"))]
fn main() {
    println!("daemon {}", std::process::id());
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
