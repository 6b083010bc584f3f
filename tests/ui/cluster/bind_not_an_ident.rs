#[pid_runtime::pidfile(cluster = pid_runtime::cluster::Etcd::from_env(), bind = self.lease)]
fn main() {}
