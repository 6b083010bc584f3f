//! `check` and `wait`: looking at a pidfile without taking it.

use std::process::ExitCode;
use std::time::Duration;

use pid_runtime::{PidFile, Status};

use crate::{fail, USAGE_OR_ERROR};

/// The statuses of `check`, those of LSB init scripts' `status` action.
const RUNNING: u8 = 0;
const DEAD_WITH_PIDFILE: u8 = 1;
const NOT_RUNNING: u8 = 3;
const UNKNOWN: u8 = 4;
const TIMED_OUT: u8 = 1;

/// Prints the holder's pid when one is known; exits as LSB's `status`.
pub(crate) fn check(pidfile: &PidFile) -> ExitCode {
    match pidfile.check() {
        Ok(Status::Running { pid }) => {
            if let Some(pid) = pid {
                println!("{pid}");
            }
            ExitCode::from(RUNNING)
        }
        // A stale file's pid is not printed: it names no one to signal.
        Ok(Status::Stale { .. }) => ExitCode::from(DEAD_WITH_PIDFILE),
        Ok(Status::NotRunning) => ExitCode::from(NOT_RUNNING),
        Err(error) => fail(&error, UNKNOWN),
    }
}

/// Returns 0 once no one holds the pidfile, 1 on timeout, 2 on error.
pub(crate) fn wait(pidfile: &PidFile, timeout: Option<Duration>) -> ExitCode {
    match pidfile.wait_until_free(timeout) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(TIMED_OUT),
        Err(error) => fail(&error, USAGE_OR_ERROR),
    }
}
