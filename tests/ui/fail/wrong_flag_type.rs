#[pid_runtime::pidfile(name = "worker", allow_same_pid = "yes")]
fn main() {}
