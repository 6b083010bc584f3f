#[pid_runtime::pidfile(name = "../etc/worker")]
fn main() {}
