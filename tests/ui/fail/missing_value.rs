#[pid_runtime::pidfile(allow_same_pid)]
fn main() {}
