//! `pidfile`: the pid-runtime engine for shell scripts, cron and service
//! managers. See `pidfile --help`.

mod args;
#[cfg(unix)]
mod cluster;
#[cfg(unix)]
mod notify;
mod run;
#[cfg(unix)]
mod signals;
mod status;
mod stop;

use std::ffi::OsStr;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use pid_runtime::{Error, PidFile};

use args::{Cli, Command, Location};

/// The status of a usage error, and of an error in `wait` and `path`.
const USAGE_OR_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => error.exit(),
        Err(error) => {
            // clap's whole message: which argument, the tip, the usage.
            let rendered = error.render().to_string();
            let message = rendered.strip_prefix("error: ").unwrap_or(&rendered);
            eprint!("pidfile: {message}");
            if error.kind() == clap::error::ErrorKind::UnknownArgument
                && std::env::args_os()
                    .nth(1)
                    .is_some_and(|command| command == "run")
                && !std::env::args_os().any(|arg| arg == "--")
            {
                eprintln!(
                    "tip: put `--` before the command: pidfile run [OPTIONS] -- CMD [ARGS]..."
                );
            }
            return ExitCode::from(USAGE_OR_ERROR);
        }
    };
    match cli.command {
        Command::Run(run) => run::run(run),
        #[cfg(unix)]
        Command::Check(args::Check {
            location,
            cluster: Some(cluster),
        }) => cluster::check(&cluster, &location.name),
        Command::Check(check) => status::check(&located(&check.location)),
        Command::Wait(wait) => status::wait(&located(&wait.location), wait.timeout),
        Command::Stop(stop) => stop::stop(&located(&stop.location), &stop),
        Command::Path(location) => match located(&location).path() {
            Ok(path) => {
                println!("{}", path.display());
                ExitCode::SUCCESS
            }
            Err(error) => fail(&error, USAGE_OR_ERROR),
        },
    }
}

/// The pidfile `name` in `dir`, or in the default directory.
fn pidfile(name: &OsStr, dir: Option<&Path>) -> PidFile {
    let pidfile = PidFile::new(name);
    match dir {
        Some(dir) => pidfile.dir(dir),
        None => pidfile,
    }
}

fn located(location: &Location) -> PidFile {
    pidfile(&location.name, location.dir.as_deref())
}

/// One line on stderr, starting with "pidfile: ".
fn say(message: std::fmt::Arguments<'_>) {
    eprintln!("pidfile: {message}");
}

fn fail(error: &Error, status: u8) -> ExitCode {
    say(format_args!("{error}"));
    ExitCode::from(status)
}
