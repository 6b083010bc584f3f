//! `pidfile run` on Windows: the command shares pidfile's console, so a
//! Ctrl+C or Ctrl+Break reaches it directly; pidfile lets the command
//! decide, waits for it, and exits with its status.

use std::process::ExitCode;
use std::time::Duration;

use pid_runtime::{PidFile, PidFileGuard};
use windows_sys::Win32::System::Console::{SetConsoleCtrlHandler, CTRL_BREAK_EVENT, CTRL_C_EVENT};

use super::{command_and_name, not_started, release, OWN_ERROR};
use crate::args::Run;
use crate::say;

pub(crate) fn run(args: Run) -> ExitCode {
    let (program, program_args, name) = match command_and_name(&args) {
        Ok(found) => found,
        Err(status) => return status,
    };
    let pidfile = crate::pidfile(name, args.dir.as_deref()).mode(args.mode);
    let mut guard = match acquire(&pidfile, args.wait) {
        Ok(guard) => guard,
        Err(error) if error.is_busy() && args.quiet => return ExitCode::from(args.exit_code),
        Err(error) if error.is_busy() => return crate::fail(&error, args.exit_code),
        Err(error) => return crate::fail(&error, OWN_ERROR),
    };
    // After the acquisition, so it runs before the library's own handler,
    // which removes the file on the events this one leaves alone.
    // SAFETY: a plain function that lives for ever.
    unsafe { SetConsoleCtrlHandler(Some(leave_interrupts_to_the_command), 1) };
    let mut child = match std::process::Command::new(program)
        .args(program_args)
        .spawn()
    {
        Ok(child) => child,
        Err(error) => {
            say(format_args!(
                "cannot run {}: {error}",
                program.to_string_lossy()
            ));
            release(guard);
            return ExitCode::from(not_started(&error));
        }
    };
    if let Err(error) = guard.set_pid(pid_runtime::Pid::from_raw(child.id())) {
        say(format_args!("{error}; the file names pidfile itself"));
    }
    let status = child.wait();
    release(guard);
    match status.map(|status| status.code()) {
        // Windows statuses are 32 bits wide: passed on whole.
        Ok(Some(code)) => std::process::exit(code),
        Ok(None) => ExitCode::from(OWN_ERROR),
        Err(error) => {
            say(format_args!(
                "cannot wait for {}: {error}",
                program.to_string_lossy()
            ));
            ExitCode::from(OWN_ERROR)
        }
    }
}

fn acquire(
    pidfile: &PidFile,
    wait: Option<Option<Duration>>,
) -> Result<PidFileGuard, pid_runtime::Error> {
    match wait {
        None => pidfile.acquire(),
        Some(timeout) => pidfile.acquire_timeout(timeout.unwrap_or(Duration::MAX)),
    }
}

/// Ctrl+C and Ctrl+Break went to the command too: pidfile waits for it to
/// end. Closing the console, log-off and shutdown go to the next handler,
/// which removes the file before the process is ended.
unsafe extern "system" fn leave_interrupts_to_the_command(event: u32) -> i32 {
    i32::from(matches!(event, CTRL_C_EVENT | CTRL_BREAK_EVENT))
}
