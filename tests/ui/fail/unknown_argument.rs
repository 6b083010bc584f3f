#[pid_runtime::pidfile(nmae = "worker")]
fn main() {}
