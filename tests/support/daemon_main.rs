//! A program whose `main` is a daemon under `#[pidfile(daemonize = true)]`:
//! the starter exits 0 once the pidfile names the daemon, which prints
//! `daemon PID`, then what a child it starts has open of the pidfile
//! (`child holds the pidfile` or `child holds nothing`), and holds the file
//! until its standard input closes. Its directory is `$DAEMON_DIR`.

use std::io::Read;

#[pid_runtime::pidfile(daemonize = true, name = "daemon-main", dir = std::env::var_os("DAEMON_DIR").expect("DAEMON_DIR"))]
fn main() {
    println!("daemon {}", std::process::id());
    let held = std::process::Command::new("sh")
        .args(["-c", "for fd in /proc/$$/fd/*; do readlink \"$fd\"; done"])
        .output()
        .expect("run a child");
    let held = String::from_utf8_lossy(&held.stdout);
    if held
        .lines()
        .any(|target| target.ends_with("daemon-main.pid"))
    {
        println!("child holds the pidfile");
    } else {
        println!("child holds nothing");
    }
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
