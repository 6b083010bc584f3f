#[pid_runtime::pidfile(name = "worker")]
fn work() {}

#[pid_runtime::pidfile(name = "counter")]
fn count() -> u32 {
    1
}

fn main() {
    work();
    count();
}
