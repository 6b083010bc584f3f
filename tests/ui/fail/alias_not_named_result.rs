type Outcome = std::io::Result<()>;

#[pid_runtime::pidfile(name = "worker", force_tmpdir = true)]
fn work() -> Outcome {
    Ok(())
}

fn main() {
    let _ = work();
}
