//! The command line.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[cfg(unix)]
const EXAMPLES: &str = "\
Examples:
  # crontab: a backup every 5 minutes, skipped while the last one still runs
  */5 * * * * pidfile run --name backup --dir /run/user/1000 --quiet --exit-code 0 -- /usr/local/bin/backup

  # a shell script that must not run twice at once
  pidfile run --name sync --exit-code 0 -- rsync -a /src/ /mirror/ || exit

  # is it running? prints the pid of the command that holds the file
  if pid=$(pidfile check --name backup --dir /run/user/1000); then echo \"as $pid\"; fi

  # an init script's status action
  pidfile check --name worker --dir /run/worker; exit $?

  # a systemd service; KillMode=mixed sends SIGTERM to pidfile alone,
  # which passes it to the command once
  [Service]
  RuntimeDirectory=worker
  ExecStart=/usr/local/bin/pidfile run --name worker --dir /run/worker -- /usr/local/bin/worker
  KillMode=mixed

  # Type=notify: the command's sd_notify messages go through pidfile, the
  # main process; a command that sends none is ready once it started
  [Service]
  Type=notify
  ExecStart=/usr/local/bin/pidfile run --name worker --dir /run/worker --ready started -- /usr/local/bin/worker

  # on every host, from cron: one backup across all of them, its writes
  # fenced with $PIDFILE_FENCING_TOKEN
  */5 * * * * pidfile run --name backup --cluster etcd://10.0.0.5:2379,10.0.0.6:2379 --quiet --exit-code 0 -- /usr/local/bin/backup

  # who holds it, on which host
  pidfile check --name backup --cluster etcd://10.0.0.5:2379

  # s6: notification-fd holds 3
  #!/bin/execlineb -P
  pidfile run --name worker --dir /run/worker --notify-fd 3 --ready started -- /usr/local/bin/worker

Exit status:
  run    the command's status; when the command died of signal N, pidfile
         removes the file and dies of N too; --exit-code (default 1) when
         another process holds the pidfile or the cluster lock; 75 when the
         cluster lock was lost while the command ran; 126 when the command
         cannot be run, 127 when it is not found; 125 on other errors (among
         them no etcd server answering: never a local-only run)
  check  as LSB init scripts: 0 running (the pid is printed when the holder
         has written one; a holder that has not yet prints nothing), 1 not
         running but a stale pidfile is left, 3 not running, 4 cannot tell
         (not a pidfile, not a regular file, an I/O error, no etcd server
         answering)
  wait   0 when no one holds the pidfile, 1 on timeout, 2 error
  stop   as start-stop-daemon --stop --retry: 0 stopped, 1 nothing was
         running (a stale file's pid is never signalled), 2 still running
         when the time was up, 3 error
  path   0, or 2 on error
A usage error exits 2.";

#[cfg(windows)]
const EXAMPLES: &str = "\
Examples:
  # a scheduled task that must not run twice at once
  pidfile run --name backup --quiet --exit-code 0 -- C:\\Tools\\backup.exe

  # is it running? prints the pid of the command that holds the file
  pidfile check --name backup

  # end it with TerminateProcess, and wait until the file is free
  pidfile stop --name backup --timeout 10

Exit status:
  run    the command's status; --exit-code (default 1) when another process
         holds the pidfile; 126 when the command cannot be run, 127 when it
         is not found; 125 on other errors
  check  0 running (the pid is printed when the holder has written one),
         1 not running but a stale pidfile is left, 3 not running, 4 cannot
         tell (not a pidfile, not a regular file, an I/O error)
  wait   0 when no one holds the pidfile, 1 on timeout, 2 error
  stop   0 stopped, 1 nothing was running (a stale file's pid is never
         terminated), 2 still running when the time was up, 3 error
  path   0, or 2 on error
A usage error exits 2.";

/// Run a command under a locked pidfile, or look at one.
///
#[cfg_attr(
    unix,
    doc = "The lock is flock(2), the one Python pid, flock(1) and BSD pidfile(3)\n\
           take, so pidfile and those tools exclude each other on one file."
)]
#[cfg_attr(
    windows,
    doc = "The lock is LockFileEx on a byte past the pid, which stays readable;\n\
           Python pid and pidfile exclude each other on one file."
)]
#[derive(Debug, Parser)]
#[command(name = "pidfile", version, after_long_help = EXAMPLES)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Take the pidfile, run CMD, record its pid, remove the file when it ends.
    ///
    #[cfg_attr(
        unix,
        doc = "Every signal a process sends to pidfile (but SIGKILL, SIGSTOP and\n\
               SIGPIPE) is passed on to the command once; those the terminal sends\n\
               reach the command directly and are not passed on again. When the\n\
               command stops (Ctrl-Z), pidfile stops too, with the same signal, so\n\
               job control sees one job; continued, pidfile continues the command.\n\
               When the command dies of a signal, pidfile dies of the same signal.\n\
               \n\
               One limit: a stop signal sent to pidfile alone just after it was\n\
               continued, before the system has run it again, stops pidfile alone."
    )]
    #[cfg_attr(
        windows,
        doc = "Ctrl+C and Ctrl+Break reach the command, which shares the console,\n\
               and pidfile waits for it; closing the console, log-off and shutdown\n\
               remove the file. pidfile exits with the command's status."
    )]
    #[command(after_long_help = EXAMPLES)]
    Run(Run),
    /// Print the pid of the process holding the pidfile; changes nothing.
    Check(Check),
    /// Wait until no process holds the pidfile.
    Wait(Wait),
    /// Signal the process the pidfile names, and wait until it is gone.
    ///
    /// On Windows the process is ended with TerminateProcess: it gets no
    /// chance to clean up, and the file it leaves is stale.
    ///
    /// A pid is signalled only when the file is held, or names a live
    /// process that could have written it: never the number in a stale
    /// file, which may belong to a stranger by now.
    Stop(Stop),
    /// Print where the pidfile is.
    Path(Location),
}

#[derive(Debug, Args)]
pub(crate) struct Run {
    /// The pidfile's name, without ".pid" [default: the command's file name]
    #[arg(long, value_name = "N")]
    pub(crate) name: Option<OsString>,
    #[cfg_attr(
        unix,
        doc = "The pidfile's directory [default: the first writable of /run/user/UID,\n\
               /run, /var/run, else pidfile-UID in the temporary directory]"
    )]
    #[cfg_attr(
        windows,
        doc = "The pidfile's directory [default: %APPDATA%, as Python pid has it]"
    )]
    #[arg(long, value_name = "D")]
    pub(crate) dir: Option<PathBuf>,
    /// The pidfile's permissions, in octal
    #[arg(long, value_name = "MODE", default_value = "644", value_parser = parse_mode)]
    pub(crate) mode: u32,
    /// The exit status when another process holds the pidfile
    #[arg(long, value_name = "STATUS", default_value_t = 1)]
    pub(crate) exit_code: u8,
    /// Say nothing when another process holds the pidfile (errors are
    /// still reported), so a crontab line with --exit-code 0 mails nobody
    #[arg(long, short)]
    pub(crate) quiet: bool,
    /// Wait for the pidfile instead of giving up, for at most SECS seconds
    /// when given
    #[arg(long, value_name = "SECS", num_args = 0..=1, value_parser = parse_seconds)]
    pub(crate) wait: Option<Option<Duration>>,
    #[cfg(unix)]
    /// Who says the service is ready, to systemd (NOTIFY_SOCKET) and to the
    /// descriptor of --notify-fd: the command itself (notify: pidfile passes
    /// its messages on as its own), or pidfile once it holds the lock and the
    /// command runs (started)
    #[arg(long, value_name = "WHO", value_enum, default_value = "notify")]
    pub(crate) ready: Ready,
    #[cfg(unix)]
    /// The descriptor on which s6 (notification-fd) or OpenRC (notify=fd:N)
    /// waits for a newline; the command inherits it, or with --ready started
    /// pidfile writes the newline and closes it
    #[arg(long, value_name = "FD")]
    pub(crate) notify_fd: Option<i32>,
    #[cfg(unix)]
    /// Run in the background, as start-stop-daemon --background
    /// --make-pidfile does, for systemd Type=forking units and SysV scripts:
    /// once the pidfile is held, pidfile hands it to a daemon of its own,
    /// which the file then names (it passes signals on to the command), and
    /// exits 0; a refusal is still reported here
    #[arg(long)]
    pub(crate) daemon: bool,
    #[cfg(unix)]
    /// One instance across hosts as well: also hold the cluster lock of the
    /// pidfile's name on these etcd servers (the lock `etcdctl lock NAME`
    /// takes), or on a PostgreSQL server (postgres://user@host/db, 14 or
    /// later), taken after the pidfile and released before it. The command
    /// gets the lock's fencing token in PIDFILE_FENCING_TOKEN (and
    /// PIDFILE_CLUSTER_LOCK, PIDFILE_CLUSTER_LEASE); when the lock is lost,
    /// it gets SIGTERM, then SIGKILL half the lock's margin past the
    /// moment the lock stopped being valid, so that it is dead before a
    /// successor can take over, and pidfile exits 75
    #[arg(long, value_name = "URL", value_parser = crate::cluster::parse_cluster, conflicts_with = "daemon")]
    pub(crate) cluster: Option<crate::cluster::Cluster>,
    #[cfg(unix)]
    /// The cluster lock's time to live: how long after a crash of this host
    /// another can take over [default: 10]
    #[arg(long, value_name = "SECS", requires = "cluster", value_parser = parse_seconds)]
    pub(crate) ttl: Option<Duration>,
    /// The command and its arguments
    #[arg(last = true, required = true, value_name = "CMD")]
    pub(crate) command: Vec<OsString>,
}

/// Who tells the service manager that the service is ready.
#[cfg(unix)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Ready {
    /// The command, through pidfile.
    Notify,
    /// pidfile, once the command has started.
    Started,
}

#[derive(Debug, Args)]
pub(crate) struct Location {
    /// The pidfile's name, without ".pid"
    #[arg(long, value_name = "N")]
    pub(crate) name: OsString,
    /// The pidfile's directory [default: as for `run`]
    #[arg(long, value_name = "D")]
    pub(crate) dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct Check {
    #[command(flatten)]
    pub(crate) location: Location,
    #[cfg(unix)]
    /// Look at the cluster lock of this name on these etcd servers (or this
    /// PostgreSQL server) instead,
    /// and print its holder as `pid=P host=H key=K token=N ttl_left=Ss`
    #[arg(long, value_name = "URL", value_parser = crate::cluster::parse_cluster)]
    pub(crate) cluster: Option<crate::cluster::Cluster>,
}

#[derive(Debug, Args)]
pub(crate) struct Wait {
    #[command(flatten)]
    pub(crate) location: Location,
    /// Give up after SECS seconds
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub(crate) timeout: Option<Duration>,
}

#[derive(Debug, Args)]
pub(crate) struct Stop {
    #[command(flatten)]
    pub(crate) location: Location,
    /// The signal to send first, by name or number
    #[cfg(unix)]
    #[arg(long, value_name = "SIG", default_value = "TERM", value_parser = parse_signal)]
    pub(crate) signal: nix::sys::signal::Signal,
    /// How long to wait, in all, for the process to be gone
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_seconds)]
    pub(crate) timeout: Duration,
    /// Send SIGKILL when it is still there SECS seconds after the signal
    #[cfg(unix)]
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub(crate) kill_after: Option<Duration>,
}

#[cfg(unix)]
fn parse_signal(text: &str) -> Result<nix::sys::signal::Signal, String> {
    use std::str::FromStr;
    let upper = text.to_ascii_uppercase();
    let named = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    nix::sys::signal::Signal::from_str(&named)
        .ok()
        .or_else(|| {
            text.parse::<i32>()
                .ok()
                .and_then(|number| nix::sys::signal::Signal::try_from(number).ok())
        })
        .ok_or_else(|| format!("{text:?} is not a signal such as TERM, HUP or 15"))
}

fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|mode| mode & !0o7777 == 0)
        .ok_or_else(|| format!("{text:?} is not an octal mode such as 644"))
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .ok_or_else(|| format!("{text:?} is not a number of seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    #[cfg(unix)]
    fn signals_are_names_with_or_without_sig_or_numbers() {
        use nix::sys::signal::Signal;
        assert_eq!(parse_signal("TERM"), Ok(Signal::SIGTERM));
        assert_eq!(parse_signal("sighup"), Ok(Signal::SIGHUP));
        assert_eq!(parse_signal("9"), Ok(Signal::SIGKILL));
        for bad in ["", "NOPE", "0", "99", "-15"] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn modes_are_octal_permission_bits() {
        assert_eq!(parse_mode("644"), Ok(0o644));
        assert_eq!(parse_mode("0600"), Ok(0o600));
        assert_eq!(parse_mode("4755"), Ok(0o4755));
        for bad in ["", "8", "rw", "17777", "-1"] {
            assert!(parse_mode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seconds_may_be_fractional_but_not_negative() {
        assert_eq!(parse_seconds("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_seconds("0"), Ok(Duration::ZERO));
        for bad in ["", "-1", "soon", "inf", "NaN"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wait_takes_an_optional_value() {
        let parse = |args: &[&str]| match Cli::try_parse_from(args).unwrap().command {
            Command::Run(run) => (run.wait, run.command),
            other => panic!("{other:?}"),
        };
        assert_eq!(parse(&["pidfile", "run", "--", "true"]).0, None);
        assert_eq!(
            parse(&["pidfile", "run", "--wait", "--", "true"]).0,
            Some(None)
        );
        assert_eq!(
            parse(&["pidfile", "run", "--wait=3", "--", "true"]).0,
            Some(Some(Duration::from_secs(3)))
        );
        assert_eq!(
            parse(&["pidfile", "run", "--wait", "5", "--", "true"]).0,
            Some(Some(Duration::from_secs(5)))
        );
        assert_eq!(
            parse(&["pidfile", "run", "--", "sleep", "--wait"]).1,
            ["sleep", "--wait"]
        );
    }
}
