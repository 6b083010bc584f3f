#[pid_runtime::pidfile(cluster = pid_runtime::cluster::Etcd::from_env(), ttl = "10 fortnights")]
fn main() {}
