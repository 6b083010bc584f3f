//! `--cluster`: one instance across hosts. `run` holds the cluster lock of
//! the pidfile's name beside the local pidfile, exports its fencing token to
//! the command, and stops the command when the lock is lost; `check` names
//! the lock's holder.
//!
//! The lock needs pidfile built with the `etcd` feature; without it, the
//! option is still understood and says so.

use std::ffi::OsStr;
use std::process::ExitCode;
use std::time::Duration;

/// The exit status of `run` when the cluster lock was lost while the command
/// ran (`EX_TEMPFAIL`): the run may not have been the only one.
pub(crate) const LOST: u8 = 75;

/// The servers of a cluster lock, as `--cluster` names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cluster {
    /// `etcd://host:port[,host:port]...`: the endpoints, as `http://` URLs.
    Etcd(Vec<String>),
    /// `postgres://...` or `postgresql://...`: the server's URL.
    Postgres(String),
}

/// Parses `etcd://host:port[,host:port]...` or a `postgres://` URL.
pub(crate) fn parse_cluster(text: &str) -> Result<Cluster, String> {
    let invalid = || {
        format!(
            "{text:?} is not a cluster such as etcd://10.0.0.5:2379,10.0.0.6:2379 or postgres://user@10.0.0.5/db"
        )
    };
    if ["postgres://", "postgresql://"]
        .iter()
        .any(|scheme| text.len() > scheme.len() && text.starts_with(scheme))
    {
        return Ok(Cluster::Postgres(text.to_string()));
    }
    let hosts = text.strip_prefix("etcd://").ok_or_else(invalid)?;
    let endpoints: Vec<String> = hosts
        .split(',')
        .map(|host| {
            let well_formed = !host.is_empty()
                && !host.contains(['/', '@', '?', '#'])
                && !host.contains(char::is_whitespace);
            well_formed
                .then(|| format!("http://{host}"))
                .ok_or_else(invalid)
        })
        .collect::<Result<_, _>>()?;
    Ok(Cluster::Etcd(endpoints))
}

#[cfg(not(feature = "etcd"))]
const UNSUPPORTED: &str =
    "--cluster needs pidfile built with the `etcd` feature (cargo install pid-cli --features etcd)";

#[cfg(not(feature = "postgres"))]
const UNSUPPORTED_POSTGRES: &str =
    "--cluster postgres://... needs pidfile built with the `postgres` feature (cargo install pid-cli --features postgres)";

/// Why this pidfile cannot hold a lock on `cluster`, if it cannot: said
/// before anything is taken.
pub(crate) fn unsupported(cluster: &Cluster) -> Option<&'static str> {
    #[cfg(not(feature = "etcd"))]
    if let Cluster::Etcd(_) = cluster {
        return Some(UNSUPPORTED);
    }
    #[cfg(not(feature = "postgres"))]
    if let Cluster::Postgres(_) = cluster {
        return Some(UNSUPPORTED_POSTGRES);
    }
    let _ = cluster;
    None
}

/// The exit statuses of `check --cluster`, LSB's as for a pidfile.
#[cfg(feature = "etcd")]
const RUNNING: u8 = 0;
#[cfg(feature = "etcd")]
const NOT_RUNNING: u8 = 3;
const UNKNOWN: u8 = 4;

/// Why the cluster lock was not taken.
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
pub(crate) enum NotHeld {
    /// Another process holds it: the message names it.
    Busy(String),
    /// It could not be asked for, or the servers failed.
    Failed(String),
    /// A signal that ends a process came while waiting for it.
    Signaled(nix::sys::signal::Signal),
}

pub(crate) use imp::{acquire, check, Holding};

#[cfg(feature = "etcd")]
mod imp {
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use nix::sys::signal::{kill, Signal};
    use nix::unistd::getpid;
    use pid_runtime::cluster::{ClusterGuard, ClusterLock, ClusterStatus, Etcd, LossReason, Lost};

    use super::*;
    use crate::signals::{ends_a_process, is_stop, Blocked, Received};

    fn lock(cluster: &Cluster, name: &OsStr, ttl: Option<Duration>) -> Result<ClusterLock, String> {
        let name = name
            .to_str()
            .ok_or_else(|| format!("the cluster lock's name {name:?} is not UTF-8"))?;
        let lock = ClusterLock::new(name);
        let lock = match cluster {
            Cluster::Etcd(endpoints) => lock.backend(Etcd::endpoints(endpoints.iter().cloned())),
            #[cfg(feature = "postgres")]
            Cluster::Postgres(url) => {
                lock.backend(pid_runtime::cluster::Postgres::url(url.as_str()))
            }
            #[cfg(not(feature = "postgres"))]
            Cluster::Postgres(_) => return Err(UNSUPPORTED_POSTGRES.to_string()),
        };
        Ok(match ttl {
            Some(ttl) => lock.ttl(ttl),
            None => lock,
        })
    }

    impl From<pid_runtime::cluster::Error> for NotHeld {
        fn from(error: pid_runtime::cluster::Error) -> NotHeld {
            if error.is_already_running() {
                NotHeld::Busy(error.to_string())
            } else {
                NotHeld::Failed(error.to_string())
            }
        }
    }

    /// Takes the cluster lock; with `wait`, queues for it (for at most the
    /// time given) while passing the signals that come on as a wait for the
    /// pidfile does: a stop stops pidfile, a signal that ends a process ends
    /// the wait.
    pub(crate) fn acquire(
        cluster: &Cluster,
        name: &OsStr,
        ttl: Option<Duration>,
        wait: Option<Option<Duration>>,
        signals: &Blocked,
    ) -> Result<Holding, NotHeld> {
        let lock = lock(cluster, name, ttl).map_err(NotHeld::Failed)?;
        let Some(wait) = wait else {
            return Ok(Holding::new(lock.acquire()?));
        };
        // Queued on a thread of its own, which wakes this one with a SIGCHLD
        // of pidfile's (ignored as a child's would be) when it is done.
        let taken = Arc::new(Mutex::new(None));
        let slot = Arc::clone(&taken);
        let forever = Duration::from_secs(100 * 365 * 24 * 3600);
        std::thread::Builder::new()
            .name("pidfile-cluster-wait".into())
            .spawn(move || {
                let result = lock.acquire_timeout(wait.unwrap_or(forever));
                *slot.lock().unwrap_or_else(|poison| poison.into_inner()) = Some(result);
                let _ = kill(getpid(), Signal::SIGCHLD);
            })
            .map_err(|error| {
                NotHeld::Failed(format!("cannot wait for the cluster lock: {error}"))
            })?;
        loop {
            if let Some(result) = taken
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .take()
            {
                return Ok(Holding::new(result?));
            }
            match signals.next(None) {
                Ok(Some(Received { signal, .. })) if is_stop(signal) => {
                    let _ = signals.stop_with(signal);
                }
                Ok(Some(Received { signal, .. })) if ends_a_process(signal) => {
                    return Err(NotHeld::Signaled(signal));
                }
                Ok(_) => {}
                Err(error) => {
                    return Err(NotHeld::Failed(format!("cannot wait for signals: {error}")))
                }
            }
        }
    }

    /// A loss, and when the command must be dead by.
    struct Loss {
        lost: Lost,
        kill_at: Instant,
    }

    /// A held cluster lock and what became of it.
    pub(crate) struct Holding {
        guard: ClusterGuard,
        loss: Arc<Mutex<Option<Loss>>>,
    }

    impl Holding {
        fn new(guard: ClusterGuard) -> Holding {
            Holding {
                guard,
                loss: Arc::new(Mutex::new(None)),
            }
        }

        /// What the command is told: the token its writes carry, the lock's
        /// name and the lease's id (hexadecimal, as in the lock's key).
        pub(crate) fn export_to(&self, command: &mut std::process::Command) {
            let info = self.guard.info();
            command
                .env("PIDFILE_FENCING_TOKEN", info.token.to_string())
                .env("PIDFILE_CLUSTER_LOCK", &info.name)
                .env("PIDFILE_CLUSTER_LEASE", format!("{:x}", info.lease_id));
            // On PostgreSQL the lease is the lock's server process; the name and
            // the token make the command's fence (pid_cluster::SqlFence::new).
        }

        /// From now on a loss is noted, with the time the command must be
        /// dead by, and wakes pidfile's signal wait with a SIGCHLD.
        pub(crate) fn watch(&self) -> std::io::Result<()> {
            let info = self.guard.info();
            let loss = Arc::clone(&self.loss);
            self.guard.call_when_lost(move |lost| {
                let grace = grace(&lost.reason, info.granted_ttl, info.margin);
                *loss.lock().unwrap_or_else(|poison| poison.into_inner()) = Some(Loss {
                    lost,
                    kill_at: Instant::now() + grace,
                });
                let _ = kill(getpid(), Signal::SIGCHLD);
            })
        }

        /// When the command must be dead by, once the lock is lost.
        pub(crate) fn kill_at(&self) -> Option<Instant> {
            self.loss
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .as_ref()
                .map(|loss| loss.kill_at)
        }

        /// Releases the lock once the command ended: `Err` with the loss when
        /// it was lost at any time before, even if the command succeeded.
        pub(crate) fn finish(self) -> Result<(), Lost> {
            let noted = self
                .loss
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .take();
            if let Some(loss) = noted {
                return Err(loss.lost);
            }
            self.guard.check()?;
            if let Err(error) = self.guard.release() {
                crate::say(format_args!("{error}"));
            }
            Ok(())
        }
    }

    /// How long the command has after SIGTERM before SIGKILL: until half the
    /// margin past the guard's deadline, so that it is dead half a margin
    /// before the server can expire the lease and a successor start. A
    /// loss noticed late (pidfile was stopped) leaves less, or none; a lease
    /// the server says is gone leaves none.
    fn grace(reason: &LossReason, granted: Duration, margin: Duration) -> Duration {
        match reason {
            LossReason::NoRenewalBeforeDeadline { last_ack_sent } => {
                (granted - margin / 2).saturating_sub(*last_ack_sent)
            }
            LossReason::LeaseExpired => Duration::ZERO,
            _ => margin / 2,
        }
    }

    /// Prints the holder as `pid=P host=H token=N ttl_left=Ss`, the fields
    /// it is known by; exits as LSB's `status`.
    pub(crate) fn check(cluster: &Cluster, name: &OsStr) -> ExitCode {
        let status = lock(cluster, name, None)
            .and_then(|lock| lock.check().map_err(|error| error.to_string()));
        match status {
            Ok(ClusterStatus::Held {
                holder,
                token,
                ttl_left,
            }) => {
                let mut fields = Vec::new();
                if let Some(pid) = holder.pid {
                    fields.push(format!("pid={pid}"));
                }
                if let Some(host) = &holder.host {
                    fields.push(format!("host={host}"));
                }
                fields.push(format!("key={}", holder.key));
                fields.push(format!("token={token}"));
                if let Some(ttl_left) = ttl_left {
                    fields.push(format!("ttl_left={}s", ttl_left.as_secs()));
                }
                println!("{}", fields.join(" "));
                ExitCode::from(RUNNING)
            }
            Ok(ClusterStatus::Free) => ExitCode::from(NOT_RUNNING),
            Err(error) => {
                crate::say(format_args!("{error}"));
                ExitCode::from(UNKNOWN)
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_command_dies_half_a_margin_after_the_deadline_or_at_once_when_late() {
            let (granted, margin) = (Duration::from_secs(10), Duration::from_secs(2));
            // Lost at its deadline: 8 s after the last acknowledged renewal.
            let on_time = LossReason::NoRenewalBeforeDeadline {
                last_ack_sent: Duration::from_secs(8),
            };
            assert_eq!(grace(&on_time, granted, margin), Duration::from_secs(1));
            let late = LossReason::NoRenewalBeforeDeadline {
                last_ack_sent: Duration::from_secs(30),
            };
            assert_eq!(grace(&late, granted, margin), Duration::ZERO);
            assert_eq!(
                grace(&LossReason::LeaseExpired, granted, margin),
                Duration::ZERO
            );
            assert_eq!(
                grace(&LossReason::KeyDeleted, granted, margin),
                Duration::from_secs(1)
            );
        }
    }
}

#[cfg(not(feature = "etcd"))]
mod imp {
    use super::*;
    use crate::signals::Blocked;

    /// Cannot be: there is no lock to hold.
    pub(crate) enum Holding {}

    impl Holding {
        pub(crate) fn export_to(&self, _: &mut std::process::Command) {
            match *self {}
        }

        pub(crate) fn watch(&self) -> std::io::Result<()> {
            match *self {}
        }

        pub(crate) fn kill_at(&self) -> Option<std::time::Instant> {
            match *self {}
        }

        pub(crate) fn finish(self) -> Result<(), std::convert::Infallible> {
            match self {}
        }
    }

    pub(crate) fn acquire(
        _: &Cluster,
        _: &OsStr,
        _: Option<Duration>,
        _: Option<Option<Duration>>,
        _: &Blocked,
    ) -> Result<Holding, NotHeld> {
        Err(NotHeld::Failed(UNSUPPORTED.into()))
    }

    pub(crate) fn check(_: &Cluster, _: &OsStr) -> ExitCode {
        crate::say(format_args!("{UNSUPPORTED}"));
        ExitCode::from(UNKNOWN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_clusters_are_host_port_lists() {
        assert_eq!(
            parse_cluster("etcd://10.0.0.5:2379,10.0.0.6:2379"),
            Ok(Cluster::Etcd(vec![
                "http://10.0.0.5:2379".into(),
                "http://10.0.0.6:2379".into()
            ]))
        );
        assert_eq!(
            parse_cluster("etcd://localhost:2379"),
            Ok(Cluster::Etcd(vec!["http://localhost:2379".into()]))
        );
        assert_eq!(
            parse_cluster("postgres://jobs@10.0.0.5/ops"),
            Ok(Cluster::Postgres("postgres://jobs@10.0.0.5/ops".into()))
        );
        for bad in [
            "postgres://",
            "",
            "etcd://",
            "etcd://a:1,",
            "http://a:1",
            "etcd://a:1/x",
            "etcd://u@a:1",
            "a:1",
        ] {
            assert!(parse_cluster(bad).is_err(), "{bad}");
        }
    }
}
