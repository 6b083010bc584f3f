#[pid_runtime::pidfile(name = "worker")]
const fn work() -> Result<(), std::io::Error> {
    Ok(())
}

fn main() {}
