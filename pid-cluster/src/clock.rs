//! The clock validity deadlines are kept on: one that counts through
//! suspend (`CLOCK_BOOTTIME`), since a lease on the server does too.

use std::time::Duration;

/// Time since boot, suspended time included where the system can tell
/// (Linux, Android); elsewhere the monotonic clock.
pub(crate) fn now() -> Duration {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let clock = nix::time::ClockId::CLOCK_BOOTTIME;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let clock = nix::time::ClockId::CLOCK_MONOTONIC;
    // Fails only for a clock the system lacks, and both exist where chosen.
    let now = nix::time::clock_gettime(clock).expect("a boot clock");
    Duration::new(now.tv_sec() as u64, now.tv_nsec() as u32)
}
