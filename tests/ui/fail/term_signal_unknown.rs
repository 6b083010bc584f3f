#[pid_runtime::pidfile(name = "worker", term_signal = "sometimes")]
fn main() {}
