//! An empty program guarded by the attribute: its start-up cost against
//! `startup-plain` is what the attribute adds. The pidfile goes where
//! `STARTUP_DIR` says.

#[pid_runtime::pidfile(name = "startup", dir = std::env::var_os("STARTUP_DIR").expect("STARTUP_DIR"))]
fn main() {}
