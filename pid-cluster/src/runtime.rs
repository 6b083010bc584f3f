//! The one thread per process that talks to the servers: renewals run there,
//! so a caller's blocked or starved runtime cannot delay them.

use std::future::Future;
use std::sync::Mutex;

use tokio::runtime::Handle;

/// The lease thread's runtime, started at first use, and again in a forked
/// child, which has no copy of the parent's thread.
pub(crate) fn handle() -> Handle {
    static LEASE_THREAD: Mutex<Option<(u32, Handle)>> = Mutex::new(None);
    let mut lease_thread = LEASE_THREAD
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let me = std::process::id();
    match &*lease_thread {
        Some((pid, handle)) if *pid == me => handle.clone(),
        _ => {
            let handle = start();
            *lease_thread = Some((me, handle.clone()));
            handle
        }
    }
}

fn start() -> Handle {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the lease thread");
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name("pid-cluster-lease".into())
        .spawn(move || runtime.block_on(std::future::pending::<()>()))
        .expect("a lease thread");
    handle
}

/// Runs `work` on the lease thread and waits for it from a plain thread.
pub(crate) fn block_on<F>(work: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (send, receive) = std::sync::mpsc::channel();
    handle().spawn(async move {
        let _ = send.send(work.await);
    });
    receive
        .recv()
        .expect("the lease thread runs for the process's life")
}

/// Runs `work` on the lease thread and waits for it from any runtime.
pub(crate) async fn run<F>(work: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    handle()
        .spawn(work)
        .await
        .expect("work on the lease thread does not panic")
}
