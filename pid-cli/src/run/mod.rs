//! `pidfile run`: take the pidfile, run the command, record its pid, and
//! remove the file when it ends.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::run;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::run;

/// A command that was found but cannot be run, as shells report it.
const NOT_EXECUTABLE: u8 = 126;
/// A command that was not found.
const NOT_FOUND: u8 = 127;
/// An error of pidfile's own, as env(1) and timeout(1) report theirs.
const OWN_ERROR: u8 = 125;

/// The status of a command that could not be started.
fn not_started(error: &std::io::Error) -> u8 {
    match error.kind() {
        std::io::ErrorKind::NotFound => NOT_FOUND,
        _ => NOT_EXECUTABLE,
    }
}

/// The command, its arguments and the pidfile's name (`--name`, else the
/// command's file name), or the status to exit with.
fn command_and_name(
    args: &crate::args::Run,
) -> Result<(&std::ffi::OsStr, &[std::ffi::OsString], &std::ffi::OsStr), std::process::ExitCode> {
    let (program, program_args) = args
        .command
        .split_first()
        .expect("the command line requires a command");
    let name = args
        .name
        .as_deref()
        .or_else(|| std::path::Path::new(program).file_name());
    match name {
        Some(name) => Ok((program, program_args, name)),
        None => {
            crate::say(format_args!(
                "cannot name the pidfile after {}: give --name",
                program.to_string_lossy()
            ));
            Err(std::process::ExitCode::from(OWN_ERROR))
        }
    }
}

fn release(guard: pid_runtime::PidFileGuard) {
    if let Err(error) = guard.release() {
        crate::say(format_args!("{error}"));
    }
}
