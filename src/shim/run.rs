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

/// The name the real tool gets as argv[0] when it is not its path: the name the build called
/// it by (set for the archiver and the linker, whose messages print argv[0] whole). The
/// compiler driver keeps its full path: GCC finds its own installation from argv[0], and
/// prints only the base name.
pub static ARG0: std::sync::OnceLock<OsString> = std::sync::OnceLock::new();

/// PATH without the directories where this shim's name is a link to this very binary (shim
/// directories), so that a tool that looks for itself on PATH through its argv[0] finds
/// itself, not us. None when PATH has no such directory.
fn path_without_shims() -> Option<OsString> {
    use std::os::unix::fs::MetadataExt;
    let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let me = super::find::self_identity()?;
    let argv0 = PathBuf::from(crate::argv::arg0()?);
    let name = argv0.file_name()?;
    let path = std::env::var_os("PATH")?;
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    let kept: Vec<&PathBuf> = dirs
        .iter()
        .filter(|d| id(&d.join(name)) != Some(me))
        .collect();
    if kept.len() == dirs.len() {
        return None;
    }
    std::env::join_paths(kept).ok()
}

/// The command for the real tool, with the shim chain in its environment.
pub fn command(tool: &Path, args: &[OsString], chain: &[PathBuf]) -> Command {
    static CHILD_PATH: std::sync::OnceLock<Option<OsString>> = std::sync::OnceLock::new();
    let mut c = Command::new(tool);
    c.args(args);
    if let Some(a) = ARG0.get() {
        // binutils look for themselves on PATH by argv[0] (to find their plugin directory):
        // they must find the real tool, not us. Only these tools get such a PATH: wrappers of
        // the compiler (ccache, distcc, scripts) may call the compiler by name again and rely
        // on the shim being found first to pass them on (OMNISHIM_CHAIN).
        c.arg0(a);
        if let Some(p) = CHILD_PATH.get_or_init(path_without_shims) {
            set_inherited("PATH", p);
        }
    }
    set_inherited(super::find::CHAIN_ENV, &super::find::chain_value(chain));
    c
}

/// Set a variable for the tools this shim starts, in the shim's own environment, which they
/// inherit as it is. `Command::env` would have std copy the whole environment into a new
/// one at each start (an allocation per variable: about 50 us of a step's CPU here). The
/// shim has read what it needs of its environment by then (the tool finder, the store),
/// and is one thread, so nothing reads the environment while it changes.
pub fn set_inherited(key: &str, value: &std::ffi::OsStr) {
    if std::env::var_os(key).as_deref() != Some(value) {
        std::env::set_var(key, value);
    }
}

/// Replace this process with the tool (nothing to record afterwards).
pub fn exec(mut cmd: Command) -> std::io::Error {
    cmd.exec()
}

/// Run the tool to completion, forwarding SIGINT, SIGTERM, SIGHUP and SIGQUIT to it.
pub fn run(cmd: Command) -> std::io::Result<ExitStatus> {
    run_while(cmd, || {})
}

/// `run`, doing `meanwhile` while the tool runs: work the recording needs whatever the tool
/// does (see `Recorder::warm`) then overlaps the tool, on a core the tool leaves idle,
/// instead of adding to the step's time after it.
pub fn run_while(mut cmd: Command, meanwhile: impl FnOnce()) -> std::io::Result<ExitStatus> {
    let mut child = cmd.spawn()?;
    CHILD.store(child.id() as i32, Ordering::SeqCst);
    // SAFETY: installing a handler that only calls kill(2).
    unsafe {
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::signal(s, forward as *const () as libc::sighandler_t);
        }
    }
    meanwhile();
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
    // the step is over: recorded, failed, or its failure reported
    super::inflight::end();
    super::phase::mark("inflight_end");
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
