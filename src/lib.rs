//! What the helper programs of the integration tests share.

/// The programs that handle SIGTERM themselves under `#[pidfile]`.
pub mod graceful {
    use std::io::Write;
    use std::process::ExitCode;

    /// The status a graceful shutdown ends with, which dying of SIGTERM
    /// (or exiting 143) cannot be mistaken for.
    pub const STATUS: u8 = 7;

    /// Says that the program's own handler is in place.
    pub fn ready() {
        let path = pid_runtime::PidFile::new("graceful")
            .dir(std::env::var_os("GRACEFUL_DIR").expect("GRACEFUL_DIR"))
            .path()
            .expect("the pidfile's path");
        say(&format!("ready {}", path.display()));
    }

    /// The program's own shutdown, which must run on SIGTERM.
    pub fn shut_down() -> ExitCode {
        say("shutting down");
        ExitCode::from(STATUS)
    }

    /// Accepts connections on loopback until SIGTERM, answering each with a
    /// line, then shuts down.
    pub async fn serve_until_sigterm() -> ExitCode {
        use tokio::io::AsyncWriteExt;
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate()).expect("register for SIGTERM");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listen on loopback");
        ready();
        loop {
            tokio::select! {
                _ = terminate.recv() => return shut_down(),
                accepted = listener.accept() => {
                    if let Ok((mut stream, _)) = accepted {
                        let _ = stream.write_all(b"hello\n").await;
                    }
                }
            }
        }
    }

    fn say(line: &str) {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .expect("write a line");
    }
}
