//! How `nctl` treats where its output goes. Colours ([`colours_for`]) and screen clearing only
//! on a terminal, and `NO_COLOR` (any non-empty value) turns colours off even there. A client
//! verb whose standard output (or error) is a pipe that closed ends quietly with exit 0
//! (`nctl get jobs | head -1`), as ripgrep and other Rust tools do.
//!
//! SIGPIPE stays ignored (Rust's default) for the whole process, so a write to a socket whose
//! peer went away (a reset TLS handshake, a server that hung up mid-upload) is an error the
//! verb reports, never a silent death by signal (exit 141). A closed standard output is
//! handled here instead: `print!` panics on it, and [`end_quietly_on_closed_pipe`] turns that
//! one panic into a quiet exit; writers that use `std::io::Write` directly check
//! [`is_closed_pipe`].

use std::ffi::OsStr;
use std::io::{self, IsTerminal};

/// Whether to write ANSI colours to `stream`: it is a terminal and `NO_COLOR` is unset or empty.
pub fn colours_for(stream: &impl IsTerminal) -> bool {
    wants_colours(
        stream.is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

/// The rule of [`colours_for`], given whether the stream is a terminal and `NO_COLOR`'s value.
pub fn wants_colours(terminal: bool, no_color: Option<&OsStr>) -> bool {
    terminal && no_color.is_none_or(OsStr::is_empty)
}

/// Whether standard output is a terminal, where `get --watch` clears the screen.
pub fn stdout_is_terminal() -> bool {
    io::stdout().is_terminal()
}

/// Installs a panic hook that exits 0, printing nothing, when the panic is `print!` or
/// `eprint!` failing on a closed pipe; every other panic is reported as before.
pub fn end_quietly_on_closed_pipe() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload_as_str().is_some_and(is_closed_pipe_panic) {
            std::process::exit(0);
        }
        report(info);
    }));
}

/// Whether a panic message is the standard library's `failed printing to stdout: ...` (or
/// stderr) caused by EPIPE.
pub fn is_closed_pipe_panic(message: &str) -> bool {
    let printing = message.starts_with("failed printing to stdout")
        || message.starts_with("failed printing to stderr");
    printing && message.ends_with(&format!("(os error {})", libc::EPIPE))
}

/// Whether a write failed because the reading end of the pipe closed.
pub fn is_closed_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        let set = |v: &'static str| Some(OsStr::new(v));
        assert!(wants_colours(true, None));
        assert!(wants_colours(true, set("")), "an empty NO_COLOR is unset");
        assert!(!wants_colours(true, set("1")));
        assert!(!wants_colours(true, set("false")), "any non-empty value");
        assert!(!wants_colours(false, None));
        assert!(!wants_colours(false, set("1")));
    }

    #[test]
    fn only_a_print_to_a_closed_pipe_ends_quietly() {
        let epipe = io::Error::from_raw_os_error(libc::EPIPE);
        let reset = io::Error::from_raw_os_error(libc::ECONNRESET);
        assert!(is_closed_pipe_panic(&format!(
            "failed printing to stdout: {epipe}"
        )));
        assert!(is_closed_pipe_panic(&format!(
            "failed printing to stderr: {epipe}"
        )));
        assert!(!is_closed_pipe_panic(&format!(
            "failed printing to stdout: {reset}"
        )));
        assert!(!is_closed_pipe_panic(&format!("socket write: {epipe}")));
        assert!(!is_closed_pipe_panic("index out of bounds"));
        assert!(is_closed_pipe(&epipe));
        assert!(!is_closed_pipe(&reset));
    }
}
