#[pid_runtime::pidfile(name = "worker", dir = "")]
fn main() {}
