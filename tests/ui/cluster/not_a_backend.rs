#[pid_runtime::pidfile(cluster = 2379)]
fn main() {}
