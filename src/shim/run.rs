//! Running the real tool: inherited stdin/stdout/stderr, signals forwarded, exit status
//! reproduced exactly (a tool killed by a signal kills us with the same signal).

use std::ffi::OsString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// The command for the real tool, with the shim chain in its environment.
pub fn command(tool: &Path, args: &[OsString], chain: &[PathBuf]) -> Command {
    let mut c = Command::new(tool);
    c.args(args);
    c.env(super::find::CHAIN_ENV, super::find::chain_value(chain));
    c
}

/// Replace this process with the tool (nothing to record afterwards).
pub fn exec(mut cmd: Command) -> std::io::Error {
    cmd.exec()
}

/// Run the tool to completion, forwarding SIGINT, SIGTERM, SIGHUP and SIGQUIT to it.
pub fn run(mut cmd: Command) -> std::io::Result<ExitStatus> {
    let mut child = cmd.spawn()?;
    CHILD.store(child.id() as i32, Ordering::SeqCst);
    // SAFETY: installing a handler that only calls kill(2).
    unsafe {
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::signal(s, forward as *const () as libc::sighandler_t);
        }
    }
    let st = child.wait();
    unsafe {
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::signal(s, libc::SIG_DFL);
        }
    }
    CHILD.store(0, Ordering::SeqCst);
    st
}

/// Leave with the tool's status: its exit code, or the signal that killed it.
pub fn exit_like(st: ExitStatus) -> ! {
    if let Some(sig) = st.signal() {
        // SAFETY: restoring the default action and re-raising the same signal.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
        std::process::exit(128 + sig);
    }
    std::process::exit(st.code().unwrap_or(1))
}
