#[pid_runtime::pidfile(name = "worker", dir = "/run", name = "other")]
fn main() {}
