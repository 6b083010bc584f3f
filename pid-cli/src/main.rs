//! `pidfile`: the pid-runtime engine for shell scripts, cron and service
//! managers. See `pidfile --help`.

mod args;
mod run;
mod signals;
mod status;

use std::ffi::OsStr;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use pid_runtime::{Error, PidFile};

use args::{Cli, Command, Location};

/// The status of a usage error, and of an error in `check`, `wait`, `path`.
const USAGE_OR_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => error.exit(),
        Err(error) => {
            // One line, as every other error: clap's first line, less its "error: ".
            let rendered = error.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            say(format_args!(
                "{} (see pidfile --help)",
                first.strip_prefix("error: ").unwrap_or(first)
            ));
            return ExitCode::from(USAGE_OR_ERROR);
        }
    };
    match cli.command {
        Command::Run(run) => run::run(run),
        Command::Check(location) => status::check(&located(&location)),
        Command::Wait(wait) => status::wait(&located(&wait.location), wait.timeout),
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
