#[pid_runtime::pidfile(name = "worker", force_tmpdir = true)]
fn work() -> Result<(), String> {
    Ok(())
}

fn main() {
    let _ = work();
}
