use std::process::ExitCode;

#[pid_runtime::pidfile(name = "ui-main-exit-code", force_tmpdir = true, exit_code = 75)]
fn main() -> ExitCode {
    ExitCode::SUCCESS
}
