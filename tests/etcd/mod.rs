//! etcd servers the cluster tests start and stop themselves: Debian's
//! `/usr/bin/etcd` on free loopback ports with a temporary data directory,
//! ready once a client call succeeds, stopped by pid.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer its first call.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Where etcd is, or `None` (with a message) when it is not installed.
pub fn etcd_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PIDFILE_ETCD")
        .map_or_else(|| PathBuf::from("/usr/bin/etcd"), PathBuf::from);
    if path.exists() {
        Some(path)
    } else {
        None
    }
}

/// Skips the calling test when etcd is not installed, unless CI is set,
/// where it must be.
#[macro_export]
macro_rules! etcd_or_skip {
    () => {
        match etcd::Etcd::start() {
            Some(etcd) => etcd,
            None => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "etcd is not installed (apt-get install etcd-server etcd-client)"
                );
                eprintln!("skipped: etcd is not installed");
                return;
            }
        }
    };
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// One etcd member, alone in its cluster.
pub struct Etcd {
    child: Option<Child>,
    data: PathBuf,
    client_port: u16,
    peer_port: u16,
}

impl Etcd {
    /// Starts a server and waits until it answers.
    pub fn start() -> Option<Etcd> {
        etcd_binary()?;
        let data =
            std::env::temp_dir().join(format!("pid-etcd-{}-{}", std::process::id(), free_port()));
        let mut etcd = Etcd {
            child: None,
            data,
            client_port: free_port(),
            peer_port: free_port(),
        };
        etcd.launch();
        Some(etcd)
    }

    fn launch(&mut self) {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new(etcd_binary().expect("etcd"))
            .args(["--name", "test", "--data-dir"])
            .arg(&self.data)
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("test={peer}")])
            .args(["--log-level", "error", "--logger", "zap"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
        wait_healthy(&self.endpoint());
    }

    /// The endpoint clients use.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// An `etcdctl` for this server (v3 API).
    pub fn etcdctl(&self) -> Command {
        etcdctl_at(&self.endpoint())
    }

    /// Runs `etcdctl` and returns its standard output.
    pub fn ctl(&self, args: &[&str]) -> String {
        let output = self.etcdctl().args(args).output().expect("run etcdctl");
        assert!(
            output.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("UTF-8")
    }

    /// The keys under a prefix.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        keys_at(&self.endpoint(), prefix)
    }

    /// Kills the server with SIGKILL, keeping its data.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports and data.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// A cluster of three members on loopback, for partitions.
pub struct Cluster {
    members: Vec<Child>,
    data: Vec<PathBuf>,
    clients: Vec<String>,
}

impl Cluster {
    /// Starts three members and waits until each answers.
    pub fn start() -> Option<Cluster> {
        etcd_binary()?;
        let names = ["m0", "m1", "m2"];
        let clients: Vec<String> = names
            .iter()
            .map(|_| format!("http://127.0.0.1:{}", free_port()))
            .collect();
        let peers: Vec<String> = names
            .iter()
            .map(|_| format!("http://127.0.0.1:{}", free_port()))
            .collect();
        let initial: Vec<String> = names
            .iter()
            .zip(&peers)
            .map(|(name, peer)| format!("{name}={peer}"))
            .collect();
        let mut cluster = Cluster {
            members: Vec::new(),
            data: Vec::new(),
            clients: clients.clone(),
        };
        for (n, name) in names.iter().enumerate() {
            let data = std::env::temp_dir().join(format!(
                "pid-etcd-{}-{name}-{}",
                std::process::id(),
                free_port()
            ));
            let child = Command::new(etcd_binary().expect("etcd"))
                .args(["--name", name, "--data-dir"])
                .arg(&data)
                .args([
                    "--listen-client-urls",
                    &clients[n],
                    "--advertise-client-urls",
                    &clients[n],
                ])
                .args([
                    "--listen-peer-urls",
                    &peers[n],
                    "--initial-advertise-peer-urls",
                    &peers[n],
                ])
                .args(["--initial-cluster", &initial.join(",")])
                .args([
                    "--initial-cluster-state",
                    "new",
                    "--log-level",
                    "error",
                    "--logger",
                    "zap",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start etcd");
            cluster.members.push(child);
            cluster.data.push(data);
        }
        for endpoint in &cluster.clients {
            wait_healthy(endpoint);
        }
        Some(cluster)
    }

    /// Member `n`'s client endpoint.
    pub fn endpoint(&self, n: usize) -> String {
        self.clients[n].clone()
    }

    /// Stops (SIGSTOP) or resumes (SIGCONT) member `n`: it neither answers
    /// nor votes while stopped, as if cut off.
    pub fn signal(&self, n: usize, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.members[n].id() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal a member");
    }

    /// The keys under a prefix, as member `n` sees them.
    pub fn keys(&self, n: usize, prefix: &str) -> Vec<String> {
        keys_at(&self.clients[n], prefix)
    }

    /// Waits until member `n` answers again.
    pub fn wait_healthy(&self, n: usize) {
        wait_healthy(&self.clients[n]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            let _ = member.kill();
            let _ = member.wait();
        }
        for data in &self.data {
            let _ = std::fs::remove_dir_all(data);
        }
    }
}

/// An `etcdctl` for the server at `endpoint` (v3 API).
fn etcdctl_at(endpoint: &str) -> Command {
    let mut command = Command::new("etcdctl");
    command
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"));
    command
}

fn keys_at(endpoint: &str, prefix: &str) -> Vec<String> {
    let output = etcdctl_at(endpoint)
        .args(["get", "--prefix", "--keys-only", prefix])
        .output()
        .expect("run etcdctl");
    assert!(
        output.status.success(),
        "etcdctl get {prefix}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .filter(|line| !line.is_empty())
        .map(String::from)
        .collect()
}

/// Waits for a successful `etcdctl endpoint health` (a real request).
fn wait_healthy(endpoint: &str) {
    let started = Instant::now();
    loop {
        let healthy = etcdctl_at(endpoint)
            .args(["endpoint", "health", "--command-timeout=1s"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if healthy {
            return;
        }
        assert!(
            started.elapsed() < START_TIMEOUT,
            "etcd at {endpoint} did not start"
        );
        std::thread::yield_now();
    }
}
