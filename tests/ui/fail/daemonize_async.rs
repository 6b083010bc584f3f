#[pid_runtime::pidfile(name = "worker", daemonize = true)]
#[tokio::main(flavor = "current_thread")]
async fn main() {}
