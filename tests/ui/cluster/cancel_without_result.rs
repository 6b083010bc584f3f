#[pid_runtime::pidfile(cluster = pid_runtime::cluster::Etcd::from_env(), on_lost = "cancel")]
fn main() {}
