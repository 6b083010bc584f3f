//! The clock validity deadlines are kept on: one that counts through
//! suspend (`CLOCK_BOOTTIME`), since a lease on the server does too.

use std::time::Duration;

/// Time since boot, suspended time included where the system can tell
/// (Linux, Android); elsewhere the monotonic clock.
#[cfg(not(feature = "test-clock"))]
pub(crate) fn now() -> Duration {
    boot_time()
}

/// [`boot_time`] as the tests bend it: `PIDFILE_CLUSTER_TEST_CLOCK` names a
/// file holding `RATE OFFSET_SECS`, read at every call; the clock then runs
/// at `RATE` times real time from its first reading, `OFFSET_SECS` ahead.
#[cfg(feature = "test-clock")]
pub(crate) fn now() -> Duration {
    static FIRST: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    let real = boot_time();
    let Some(path) = std::env::var_os("PIDFILE_CLUSTER_TEST_CLOCK") else {
        return real;
    };
    let first = *FIRST.get_or_init(|| real);
    let setting = std::fs::read_to_string(path).unwrap_or_default();
    let mut numbers = setting
        .split_whitespace()
        .map(|number| number.parse::<f64>().expect("a test clock setting"));
    let rate = numbers.next().unwrap_or(1.0);
    let offset = numbers.next().unwrap_or(0.0);
    first + (real - first).mul_f64(rate) + Duration::from_secs_f64(offset)
}

fn boot_time() -> Duration {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let clock = nix::time::ClockId::CLOCK_BOOTTIME;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let clock = nix::time::ClockId::CLOCK_MONOTONIC;
    // Fails only for a clock the system lacks, and both exist where chosen.
    let now = nix::time::clock_gettime(clock).expect("a boot clock");
    Duration::new(now.tv_sec() as u64, now.tv_nsec() as u32)
}
