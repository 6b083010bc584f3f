//! PostgreSQL servers, and PgBouncer in front of one, that the cluster tests
//! start and stop themselves: Debian's `initdb` and `postgres` from
//! `/usr/lib/postgresql/<version>/bin`, run as an unprivileged user when the
//! tests run as root (initdb refuses root), listening on a free loopback
//! port with its socket in a temporary directory; ready once `psql` gets an
//! answer; stopped by pid.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer its first query.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The directory of the newest installed server's programs, or `None`.
pub fn server_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("PIDFILE_PG_BIN") {
        return Some(PathBuf::from(bin));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort_by_key(|bin| {
        bin.parent()
            .and_then(|version| version.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop()
}

fn pgbouncer_binary() -> Option<PathBuf> {
    ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
}

/// Skips the calling test when the server is not installed, unless CI is
/// set, where it must be.
#[macro_export]
macro_rules! postgres_or_skip {
    () => {
        match postgres::Postgres::start() {
            Some(server) => server,
            None => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "PostgreSQL is not installed (apt-get install postgresql pgbouncer)"
                );
                eprintln!("skipped: PostgreSQL is not installed");
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

/// A command run as `nobody` when this runs as root.
fn unprivileged(program: &Path) -> Command {
    if nix::unistd::geteuid().is_root() {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// A directory of its own the server's user can write, removed when done.
struct ServerDir(PathBuf);

impl ServerDir {
    fn new(what: &str) -> ServerDir {
        let template = std::env::temp_dir().join(format!("pid-{what}-XXXXXX"));
        let path = nix::unistd::mkdtemp(&template).expect("a temporary directory");
        if nix::unistd::geteuid().is_root() {
            let nobody = nix::unistd::User::from_name("nobody")
                .expect("read the user database")
                .expect("a user nobody");
            let nogroup = nix::unistd::Group::from_name("nogroup")
                .ok()
                .flatten()
                .map(|group| group.gid);
            nix::unistd::chown(&path, Some(nobody.uid), nogroup).expect("chown");
        }
        ServerDir(path)
    }
}

impl Drop for ServerDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One PostgreSQL server, trusting local connections as `postgres`.
pub struct Postgres {
    child: Option<Child>,
    dir: ServerDir,
    bin: PathBuf,
    port: u16,
}

impl Postgres {
    /// Creates a cluster, starts its server and waits until it answers.
    pub fn start() -> Option<Postgres> {
        let bin = server_bin()?;
        let dir = ServerDir::new("postgres");
        let data = dir.0.join("data");
        let initdb = unprivileged(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdin(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            initdb.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let mut server = Postgres {
            child: None,
            dir,
            bin,
            port: free_port(),
        };
        server.launch();
        Some(server)
    }

    fn launch(&mut self) {
        let child = unprivileged(&self.bin.join("postgres"))
            .arg("-D")
            .arg(self.dir.0.join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.dir.0)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        wait_answers(self.port);
    }

    /// The URL clients use.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs one statement with `psql` and returns what it printed, unaligned
    /// and without headers.
    pub fn sql(&self, statement: &str) -> String {
        psql(self.port, statement)
    }

    /// Stops the server (a fast shutdown, which ends every session) and
    /// starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
            let _ = child.wait();
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// PgBouncer in transaction mode with one server connection, in front of a
/// server: every client's transaction runs on the same server session.
pub struct Bouncer {
    child: Child,
    _dir: ServerDir,
    port: u16,
}

impl Bouncer {
    /// Starts it in front of `server`, or `None` when it is not installed.
    pub fn start(server: &Postgres) -> Option<Bouncer> {
        let binary = pgbouncer_binary()?;
        let dir = ServerDir::new("pgbouncer");
        let port = free_port();
        let users = dir.0.join("users.txt");
        std::fs::write(&users, "\"postgres\" \"\"\n").expect("write users.txt");
        let config = dir.0.join("pgbouncer.ini");
        std::fs::write(
            &config,
            format!(
                "[databases]\n* = host=127.0.0.1 port={}\n\n[pgbouncer]\n\
                 listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = trust\nauth_file = {}\npool_mode = transaction\n\
                 default_pool_size = 1\nmax_client_conn = 100\n",
                server.port(),
                users.display()
            ),
        )
        .expect("write pgbouncer.ini");
        let child = unprivileged(&binary)
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbouncer");
        wait_answers(port);
        Some(Bouncer {
            child,
            _dir: dir,
            port,
        })
    }

    /// The URL clients of the pool use.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn psql(port: u16, statement: &str) -> String {
    let output = psql_command(port, statement).output().expect("run psql");
    assert!(
        output.status.success(),
        "psql {statement:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .trim()
        .to_string()
}

fn psql_command(port: u16, statement: &str) -> Command {
    let mut command = Command::new("psql");
    command
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "postgres", "-d", "postgres", "-X", "-A", "-t", "-q"])
        .args(["-v", "ON_ERROR_STOP=1", "-c", statement])
        .stdin(Stdio::null());
    command
}

/// Waits for a successful `SELECT 1` (a real query).
fn wait_answers(port: u16) {
    let started = Instant::now();
    loop {
        let answered = psql_command(port, "SELECT 1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if answered {
            return;
        }
        assert!(
            started.elapsed() < START_TIMEOUT,
            "the server on port {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
