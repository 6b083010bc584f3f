#[pid_runtime::pidfile(ttl = "10s")]
fn main() {}
