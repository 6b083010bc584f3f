#[pid_runtime::pidfile(name = "worker", mode = 0o100644)]
fn main() {}
