#[pid_runtime::pidfile(cluster = pid_runtime::cluster::Etcd::from_env(), local = false, dir = "/run/job")]
fn main() {}
