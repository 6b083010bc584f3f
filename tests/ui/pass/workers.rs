use std::fmt;
use std::io;

#[pid_runtime::pidfile(name = "ui-worker-io", force_tmpdir = true)]
fn io_worker() -> io::Result<u32> {
    Ok(1)
}

#[pid_runtime::pidfile(name = "ui-worker-boxed", force_tmpdir = true)]
fn boxed_worker() -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
    Ok(2)
}

#[pid_runtime::pidfile(name = "ui-worker-anyhow", force_tmpdir = true)]
fn anyhow_worker() -> anyhow::Result<u32> {
    Ok(3)
}

#[derive(Debug)]
enum JobError {
    Busy(pid_runtime::Error),
}

impl From<pid_runtime::Error> for JobError {
    fn from(error: pid_runtime::Error) -> Self {
        JobError::Busy(error)
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Busy(error) => write!(f, "busy: {error}"),
        }
    }
}

mod job {
    /// A crate's own `Result` alias is recognised by its last segment.
    pub type Result<T> = std::result::Result<T, super::JobError>;
}

#[pid_runtime::pidfile(name = "ui-worker-custom", force_tmpdir = true)]
fn custom_worker() -> job::Result<u32> {
    Ok(4)
}

fn main() {
    for _ in 0..2 {
        assert_eq!(io_worker().unwrap(), 1);
        assert_eq!(boxed_worker().unwrap(), 2);
        assert_eq!(anyhow_worker().unwrap(), 3);
        assert_eq!(custom_worker().unwrap(), 4);
    }
    let _held = pid_runtime::PidFile::new("ui-worker-custom")
        .force_tmpdir(true)
        .acquire()
        .unwrap();
    let JobError::Busy(error) = custom_worker().unwrap_err();
    assert!(error.is_already_running());
}
