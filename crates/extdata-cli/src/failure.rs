//! How a command fails: a message for stderr and an exit code.
//!
//! Exit codes: 0 ok, 1 runtime failure (the database said no, the network failed, the
//! account may not use the connector), 2 usage or configuration problem.

use std::fmt;
use std::io;
use std::process::ExitCode;

use extdata::{Error, ErrorKind, Problems};

/// Exit code of a runtime failure.
pub(crate) const RUNTIME: u8 = 1;
/// Exit code of a usage or configuration problem.
pub(crate) const USAGE: u8 = 2;
/// Exit code after Ctrl-C (128 + SIGINT, as shells report it).
pub(crate) const INTERRUPTED: u8 = 130;

/// A failed command: what to print (already secret-free) and the exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    message: Option<String>,
}

impl Failure {
    /// A runtime failure (exit 1).
    pub(crate) fn runtime(message: impl fmt::Display) -> Self {
        Failure {
            code: RUNTIME,
            message: Some(message.to_string()),
        }
    }

    /// A usage or configuration problem (exit 2).
    pub(crate) fn usage(message: impl fmt::Display) -> Self {
        Failure {
            code: USAGE,
            message: Some(message.to_string()),
        }
    }

    /// The user pressed Ctrl-C.
    pub(crate) fn interrupted() -> Self {
        Failure {
            code: INTERRUPTED,
            message: Some("interrupted".to_owned()),
        }
    }

    /// A failure whose details were already printed.
    pub(crate) fn silent(code: u8) -> Self {
        Failure {
            code,
            message: None,
        }
    }

    /// Configuration problems, one per line after a heading (exit 2).
    pub(crate) fn config(file: &std::path::Path, problems: &Problems) -> Self {
        let count = problems.0.len();
        Failure::usage(format!(
            "`{}` has {count} problem{}:\n{problems}",
            file.display(),
            if count == 1 { "" } else { "s" }
        ))
    }

    /// Writing the output failed.
    pub(crate) fn output(error: &io::Error) -> Self {
        Failure::runtime(format!("cannot write the output: {error}"))
    }

    /// The exit code.
    pub(crate) fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code)
    }

    /// Prints `error: <message>` on stderr, control characters escaped (a message may
    /// quote a server's text).
    pub(crate) fn report(&self) {
        if let Some(message) = &self.message {
            eprintln!("error: {}", crate::output::terminal_safe(message));
        }
    }
}

impl From<Error> for Failure {
    /// An error from the library. Its `Display` never holds a secret. Configuration and
    /// parameter errors are the caller's to fix (exit 2); the rest happened at run time.
    fn from(error: Error) -> Self {
        match error.kind() {
            ErrorKind::Config | ErrorKind::Parameter => Failure::usage(error),
            _ => Failure::runtime(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_parameter_errors_are_usage_problems() {
        assert_eq!(Failure::from(Error::config("x")).code, USAGE);
        assert_eq!(Failure::from(Error::parameter("x")).code, USAGE);
        assert_eq!(
            Failure::from(Error::new(ErrorKind::Forbidden, "x")).code,
            RUNTIME
        );
        assert_eq!(
            Failure::from(Error::new(ErrorKind::Connect, "x")).code,
            RUNTIME
        );
    }

    #[test]
    fn config_failure_lists_every_problem() {
        let mut problems = Problems::default();
        problems.push("crm", "port", "bad");
        problems.push("crm", "ssl", "worse");
        let failure = Failure::config(std::path::Path::new("x.toml"), &problems);
        let message = failure.message.unwrap();
        assert!(message.contains("2 problems"));
        assert!(message.contains("\ncrm: port: bad\ncrm: ssl: worse"));
    }
}
