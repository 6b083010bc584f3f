//! `check` and `wait`: looking at a pidfile without taking it.

use std::process::ExitCode;
use std::time::{Duration, Instant};

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
    let deadline = timeout.map(|timeout| Instant::now() + timeout);
    let mut pauses = Backoff::default();
    loop {
        match pidfile.check() {
            Ok(Status::Running { .. }) => {}
            Ok(_) => return ExitCode::SUCCESS,
            Err(error) => return fail(&error, USAGE_OR_ERROR),
        }
        match pauses.next_until(deadline) {
            Some(pause) => std::thread::sleep(pause),
            None => return ExitCode::from(TIMED_OUT),
        }
    }
}

/// Pauses between looks at a busy pidfile: short at first, for a holder
/// about to finish, then every 50 ms.
#[derive(Default)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(1);
    const LONGEST: Duration = Duration::from_millis(50);

    /// The next pause, cut short at `deadline`; `None` once it has passed.
    pub(crate) fn next_until(&mut self, deadline: Option<Instant>) -> Option<Duration> {
        let left = match deadline {
            None => Duration::MAX,
            Some(deadline) => deadline
                .checked_duration_since(Instant::now())
                .filter(|left| !left.is_zero())?,
        };
        let pause = self.next.max(Self::FIRST);
        self.next = (pause * 2).min(Self::LONGEST);
        Some(pause.min(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_longest_pause() {
        let mut backoff = Backoff::default();
        let pauses: Vec<_> = std::iter::repeat_with(|| backoff.next_until(None).unwrap())
            .take(8)
            .map(|pause| pause.as_millis())
            .collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 32, 50, 50]);
    }

    #[test]
    fn backoff_stops_at_a_deadline_that_has_passed() {
        let mut backoff = Backoff::default();
        assert_eq!(backoff.next_until(Some(Instant::now())), None);
        let far = Instant::now() + Duration::from_secs(3600);
        assert_eq!(
            backoff.next_until(Some(far)),
            Some(Duration::from_millis(1))
        );
    }
}
