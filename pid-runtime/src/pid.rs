//! The process id type of the public API, ours rather than a system
//! binding's, so that it means the same on every platform.

use std::fmt;

/// A process id, as a pidfile records it.
///
/// It is the number the system calls a process by: `pid_t` on Unix, a
/// process id `DWORD` on Windows, what [`std::process::id`] returns. Any
/// `u32` can be held; one the system could never give a process (`0`, or
/// above `i32::MAX` on Unix) is refused where a pidfile would record it
/// ([`PidFileGuard::set_pid`](crate::PidFileGuard::set_pid)) and is never
/// read from one.
///
/// ```
/// use pid_runtime::Pid;
///
/// let pid = Pid::from_raw(4242);
/// assert_eq!(pid.as_raw(), 4242);
/// assert_eq!(u32::from(pid), 4242);
/// assert_eq!(Pid::from(4242_u32), pid);
/// assert_eq!(pid.to_string(), "4242");
/// assert_eq!(Pid::current().as_raw(), std::process::id());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Pid(u32);

impl Pid {
    /// The pid with this number.
    pub const fn from_raw(raw: u32) -> Pid {
        Pid(raw)
    }

    /// This pid's number.
    pub const fn as_raw(self) -> u32 {
        self.0
    }

    /// The calling process's id, as [`std::process::id`] gives it.
    pub fn current() -> Pid {
        Pid(std::process::id())
    }

    /// The highest id a process can have here.
    pub(crate) const MAX: u32 = if cfg!(unix) {
        i32::MAX as u32
    } else {
        u32::MAX
    };

    /// Whether a process could have this id here.
    pub(crate) fn is_possible(self) -> bool {
        (1..=Pid::MAX).contains(&self.0)
    }

    /// This pid for a system call; `None` for one no process can have, which
    /// would otherwise name a process group (`0`, negative) in `kill`.
    #[cfg(unix)]
    pub(crate) fn to_system(self) -> Option<nix::unistd::Pid> {
        if self.is_possible() {
            Some(nix::unistd::Pid::from_raw(self.0 as i32))
        } else {
            None
        }
    }
}

impl From<u32> for Pid {
    fn from(raw: u32) -> Pid {
        Pid(raw)
    }
}

impl From<Pid> for u32 {
    fn from(pid: Pid) -> u32 {
        pid.0
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn impossible_pids_have_no_system_pid() {
        for raw in [0, Pid::MAX + 1, u32::MAX] {
            assert_eq!(Pid::from_raw(raw).to_system(), None, "{raw}");
        }
        assert_eq!(
            Pid::from_raw(Pid::MAX).to_system(),
            Some(nix::unistd::Pid::from_raw(i32::MAX))
        );
    }
}
