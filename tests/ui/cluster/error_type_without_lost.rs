#[derive(Debug)]
struct JobError;

impl From<pid_runtime::Error> for JobError {
    fn from(_: pid_runtime::Error) -> JobError {
        JobError
    }
}

#[pid_runtime::pidfile(cluster = pid_runtime::cluster::Etcd::from_env())]
fn job() -> Result<(), JobError> {
    Ok(())
}

fn main() {
    let _ = job();
}
