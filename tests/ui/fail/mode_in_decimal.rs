#[pid_runtime::pidfile(name = "worker", mode = 644)]
fn main() {}
