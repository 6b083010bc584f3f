#[pid_runtime::pidfile(name = "worker")]
struct Worker;

fn main() {}
