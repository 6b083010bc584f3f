//! A method or associated function named `main`, and a `main` in a module
//! marked `entry = false`, return the refusal instead of exiting.

use std::io;

struct Service;

impl Service {
    #[pid_runtime::pidfile(name = "ui-method-main", force_tmpdir = true)]
    fn main(&self) -> io::Result<u32> {
        Ok(1)
    }
}

mod worker {
    #[pid_runtime::pidfile(name = "ui-module-main", force_tmpdir = true, entry = false)]
    pub fn main() -> std::io::Result<u32> {
        Ok(2)
    }
}

fn main() -> io::Result<()> {
    let pidfile = |name| pid_runtime::PidFile::new(name).force_tmpdir(true);
    assert_eq!(Service.main()?, 1);
    assert_eq!(worker::main()?, 2);
    let _method = pidfile("ui-method-main").acquire()?;
    let _module = pidfile("ui-module-main").acquire()?;
    assert_eq!(Service.main().unwrap_err().kind(), io::ErrorKind::ResourceBusy);
    assert_eq!(worker::main().unwrap_err().kind(), io::ErrorKind::ResourceBusy);
    Ok(())
}
