#[pid_runtime::pidfile(name = "")]
fn main() {}
