#[pid_runtime::pidfile(name = "worker", exit_code = 256)]
fn main() {}
