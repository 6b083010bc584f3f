//! The expansion of `#[pidfile]` means the same next to local items that
//! shadow what it uses, and raises no lint, even pedantic ones.
#![deny(warnings, unused_qualifications, clippy::all, clippy::pedantic)]
#![forbid(unsafe_code)]
#![allow(dead_code, clippy::unnecessary_wraps)]

mod core {}
mod pid_runtime {}
type Result = ();
struct Option;
struct PidFile;
fn __pidfile_guard() {}

/// The runtime under another name, as `crate = "..."` names it.
mod runtime {
    pub use ::pid_runtime::*;
}

mod shadowed {
    #[::pid_runtime::pidfile(name = "hygiene-plain", dir = ::std::env::temp_dir(), mode = 0o600, term_signal = "never")]
    pub fn plain() -> ::std::io::Result<u8> {
        Ok(1)
    }

    #[::pid_runtime::pidfile(
        crate = "crate::runtime",
        name = "hygiene-renamed",
        force_tmpdir = true
    )]
    pub fn renamed() -> ::std::io::Result<u8> {
        Ok(2)
    }

    #[::pid_runtime::pidfile(name = "hygiene-async", force_tmpdir = true, allow_same_pid = false)]
    pub async fn later() -> ::std::io::Result<u8> {
        ::tokio::task::yield_now().await;
        Ok(3)
    }

    /// Compiled for its lints only: changing the owner needs privilege.
    #[::pid_runtime::pidfile(
        name = "hygiene-owned",
        force_tmpdir = true,
        uid = 0,
        gid = 0,
        enforce_pid_suffix = true
    )]
    pub fn owned() -> ::std::io::Result<u8> {
        Ok(4)
    }

    /// Compiled for its lints only: a worker that loops until its cluster
    /// lock is lost, so the end of its body is never reached.
    #[cfg(feature = "cluster")]
    #[::pid_runtime::pidfile(
        name = "hygiene-cluster",
        cluster = ::pid_runtime::cluster::Etcd::from_env(),
        local = false,
        bind = lease
    )]
    pub async fn until_lost() -> ::std::io::Result<u8> {
        loop {
            lease.check()?;
            ::tokio::task::yield_now().await;
        }
    }
}

#[test]
fn expansion_ignores_local_items_with_the_names_it_uses() {
    assert_eq!(shadowed::plain().unwrap(), 1);
    assert_eq!(shadowed::renamed().unwrap(), 2);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(shadowed::later()).unwrap(), 3);
}
