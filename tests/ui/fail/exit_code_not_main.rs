#[pid_runtime::pidfile(name = "worker", exit_code = 3)]
fn work() -> std::io::Result<()> {
    Ok(())
}

fn main() {
    work().unwrap();
}
