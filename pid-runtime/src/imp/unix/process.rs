//! This process's id, read once and forgotten in a forked child.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Once;

use crate::Pid;
use nix::libc;

/// 0 until read, and again in a forked child.
static CACHED_PID: AtomicU32 = AtomicU32::new(0);
static FORGET_IN_CHILD: Once = Once::new();
/// False when the fork handler could not be installed: then every call asks.
static MAY_CACHE: AtomicBool = AtomicBool::new(false);

extern "C" fn forget_pid_in_child() {
    CACHED_PID.store(0, Ordering::Relaxed);
}

/// This process's id, without a system call once known. A child made by
/// `fork` reads its own id again; one made by a raw `clone` that skips the
/// `pthread_atfork` handlers is not supported.
pub(crate) fn current_pid() -> Pid {
    let cached = CACHED_PID.load(Ordering::Relaxed);
    if cached != 0 {
        return Pid::from_raw(cached);
    }
    // The handler goes in before the first id is kept, so no child can
    // inherit a kept id without also running the handler.
    FORGET_IN_CHILD.call_once(|| {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe as a forked child's handlers must be.
        let installed = unsafe { libc::pthread_atfork(None, None, Some(forget_pid_in_child)) };
        MAY_CACHE.store(installed == 0, Ordering::Relaxed);
    });
    let pid = Pid::current();
    if MAY_CACHE.load(Ordering::Relaxed) {
        CACHED_PID.store(pid.as_raw(), Ordering::Relaxed);
    }
    pid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_pid_is_getpid() {
        let getpid = nix::unistd::getpid().as_raw() as u32;
        assert_eq!(current_pid().as_raw(), getpid);
        assert_eq!(current_pid().as_raw(), getpid);
    }
}
