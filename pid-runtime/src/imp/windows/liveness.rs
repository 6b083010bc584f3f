//! Whether the process a pidfile names still runs, and is the one that wrote it.

use windows_sys::Win32::Foundation::{
    CloseHandle, GetLastError, ERROR_ACCESS_DENIED, FILETIME, WAIT_TIMEOUT,
};
use windows_sys::Win32::System::Threading::{
    GetProcessTimes, OpenProcess, WaitForSingleObject, PROCESS_QUERY_LIMITED_INFORMATION,
    PROCESS_SYNCHRONIZE,
};

use crate::Pid;

/// What became of the process a pidfile names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// No such process, or one that has exited.
    Dead,
    /// A process with that id was created after the file was last written,
    /// so it cannot have written it: the id was reused.
    Reused,
    /// A live process that may have written the file.
    Alive,
}

/// How much later than the file's last write a process must have been
/// created to count as a reuse, in the 100 ns units of `FILETIME`: file
/// times on FAT are kept to 2 s.
const CREATION_SLACK: u64 = 2 * 10_000_000;

/// Judges `pid` against a file last written at `written` (a `FILETIME`).
pub(crate) fn judge(pid: Pid, written: u64) -> Liveness {
    // SAFETY: plain calls; the handle is closed below.
    let process = unsafe {
        OpenProcess(
            PROCESS_QUERY_LIMITED_INFORMATION | PROCESS_SYNCHRONIZE,
            0,
            pid.as_raw(),
        )
    };
    if process.is_null() {
        // SAFETY: no precondition.
        return match unsafe { GetLastError() } {
            // A process we may not look at, such as another user's
            // service, exists all the same.
            ERROR_ACCESS_DENIED => Liveness::Alive,
            // ERROR_INVALID_PARAMETER: no process has this id.
            _ => Liveness::Dead,
        };
    }
    let zero = FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
    // SAFETY: a valid process handle and four FILETIMEs to fill.
    let (running, timed) = unsafe {
        let running = WaitForSingleObject(process, 0) == WAIT_TIMEOUT;
        let timed =
            GetProcessTimes(process, &mut created, &mut exited, &mut kernel, &mut user) != 0;
        CloseHandle(process);
        (running, timed)
    };
    if !running {
        Liveness::Dead
    } else if timed && filetime(&created) > written.saturating_add(CREATION_SLACK) {
        Liveness::Reused
    } else {
        Liveness::Alive
    }
}

/// A `FILETIME` as one number.
pub(crate) fn filetime(time: &FILETIME) -> u64 {
    (u64::from(time.dwHighDateTime) << 32) | u64::from(time.dwLowDateTime)
}
