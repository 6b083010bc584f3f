#[pid_runtime::pidfile(name = "worker", entry = true)]
fn run(_: u8) -> std::io::Result<()> {
    Ok(())
}

fn main() {
    let _ = run(1);
}
