//! The `wtenv` binary: the process's entry. The program is the library's
//! ([`wtenv::main`]).
//!
//! On Linux with glibc, wtenv defines the C `main` itself (`no_main`) and
//! skips Rust's runtime start-up. On that platform the start-up reads
//! `/proc/self/maps` to place the main thread's stack guard and makes a
//! signal stack for the stack-overflow message: about 8% of every `wtenv
//! env`, which runs on every `cd` (docs/PERFORMANCE.md, "Where the time
//! goes"). The two duties of that start-up wtenv relies on are done here
//! instead:
//! - standard descriptors 0-2 that are closed are opened on `/dev/null`,
//!   so no file wtenv opens (the registry) can become its stdout;
//! - SIGPIPE is ignored, so a write to a closed pipe is an EPIPE error the
//!   code handles (`wtenv ports | head -1`; a supervisor whose terminal is
//!   gone keeps its services and releases their ports), not a death.
//!
//! Given up: the "has overflowed its stack" message (a stack overflow is a
//! plain SIGSEGV) and the name `main` of the main thread in a panic's
//! message. Children still start with SIGPIPE at its default: std's
//! `Command` resets it, as under Rust's own start-up. glibc hands argc and
//! argv to std's `.init_array` hook, so `std::env::args` works without the
//! runtime; elsewhere (macOS, musl) the ordinary `main` is kept.

// Not under `cargo test`, whose harness brings its own `main`.
#![cfg_attr(all(target_os = "linux", target_env = "gnu", not(test)), no_main)]

#[cfg(not(all(target_os = "linux", target_env = "gnu", not(test))))]
fn main() {
    wtenv::main()
}

#[cfg(all(target_os = "linux", target_env = "gnu", not(test)))]
mod entry {
    use std::ffi::{c_char, c_int};

    #[allow(unsafe_code)]
    // SAFETY: the C runtime calls `main` with this signature, once, before
    // any other thread exists; no other symbol of the binary is `main`.
    #[unsafe(no_mangle)]
    extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
        use nix::sys::signal::{SigHandler, Signal, signal};
        open_closed_standard_fds();
        // SAFETY: SIG_IGN installs no handler, so no code of ours runs in
        // a signal's context; no other thread exists yet to see the change.
        unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) }.expect("SIGPIPE can be ignored");
        wtenv::main()
    }

    /// Opens `/dev/null` on each of descriptors 0-2 that is closed, in
    /// order, as Rust's runtime does: `open` returns the lowest free
    /// descriptor. If it cannot, the process aborts, as Rust's runtime
    /// does: any file opened later could land on stdout.
    fn open_closed_standard_fds() {
        use std::os::fd::{AsFd, IntoRawFd};
        let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
        for fd in [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()] {
            if rustix::io::fcntl_getfd(fd) == Err(rustix::io::Errno::BADF) {
                let null = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null");
                // std opens every file close-on-exec; this one stands for a
                // standard descriptor, which children inherit.
                let inherited = null.and_then(|null| {
                    rustix::io::fcntl_setfd(&null, rustix::io::FdFlags::empty())?;
                    Ok(null)
                });
                match inherited {
                    // Kept open for the process's life: it is that descriptor now.
                    Ok(null) => _ = null.into_raw_fd(),
                    Err(_) => std::process::abort(),
                }
            }
        }
    }
}
