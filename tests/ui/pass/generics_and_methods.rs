use std::fmt::Display;
use std::io;
use std::path::PathBuf;

struct Service {
    run_dir: PathBuf,
}

impl Service {
    /// A method: the arguments may use `self`.
    #[pid_runtime::pidfile(name = "ui-method", dir = self.run_dir.clone())]
    pub fn run(&self, label: &str) -> io::Result<String> {
        Ok(format!("{label} in {}", self.run_dir.display()))
    }
}

#[pid_runtime::pidfile(name = format!("ui-generic-{}", std::process::id()), force_tmpdir = true)]
fn describe<T, const N: usize>(items: [T; N]) -> Result<String, io::Error>
where
    T: Display,
{
    Ok(items.iter().map(ToString::to_string).collect::<Vec<_>>().join(","))
}

#[pid_runtime::pidfile(name = "ui-unsafe", force_tmpdir = true, term_signal = "never")]
unsafe fn unsafe_worker(pointer: *const u8) -> io::Result<u8> {
    // SAFETY: the caller passes a valid pointer.
    Ok(unsafe { *pointer })
}

fn main() {
    let service = Service {
        run_dir: std::env::temp_dir(),
    };
    assert!(service.run("job").unwrap().starts_with("job in "));
    assert_eq!(describe([1, 2, 3]).unwrap(), "1,2,3");
    let value = 7_u8;
    // SAFETY: a valid pointer to a live local.
    assert_eq!(unsafe { unsafe_worker(&value) }.unwrap(), 7);
}
