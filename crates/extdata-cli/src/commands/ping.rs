//! `extdata ping NAME`: a real round trip, its time, and the failing stage on error.

use std::time::{Duration, Instant};

use extdata::ErrorKind;

use super::Context;
use crate::cli::PingArgs;
use crate::failure::Failure;
use crate::output::terminal_safe;

/// Pings the connector's server and prints its version and the time taken.
pub(super) async fn run(context: &Context, args: &PingArgs) -> Result<(), Failure> {
    let source = context.source(&args.name)?;
    let started = Instant::now();
    match source.ping().await {
        Ok(info) => {
            println!("connector: {} ({})", args.name, source.kind());
            // The version is the server's text: a hostile server could send escapes.
            println!("server version: {}", terminal_safe(&info.version));
            println!("time: {}", millis(started.elapsed()));
            Ok(())
        }
        Err(error) => Err(Failure::runtime(format!(
            "ping failed after {} (stage: {}): {error}",
            millis(started.elapsed()),
            stage(error.kind())
        ))),
    }
}

/// The step of a round trip an error kind stands for.
fn stage(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Resolve => "resolve",
        ErrorKind::Connect => "connect",
        ErrorKind::Tls => "TLS",
        ErrorKind::Auth => "authentication",
        ErrorKind::Database => "database",
        // The connect timeout bounds TCP, TLS and authentication together.
        ErrorKind::Timeout => "timeout",
        ErrorKind::Config | ErrorKind::Unsupported => "configuration",
        ErrorKind::Forbidden => "authorization",
        ErrorKind::Closed => "closed",
        _ => "query",
    }
}

fn millis(elapsed: Duration) -> String {
    format!("{:.1} ms", elapsed.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_name_the_failing_step() {
        assert_eq!(stage(ErrorKind::Resolve), "resolve");
        assert_eq!(stage(ErrorKind::Connect), "connect");
        assert_eq!(stage(ErrorKind::Tls), "TLS");
        assert_eq!(stage(ErrorKind::Auth), "authentication");
        assert_eq!(stage(ErrorKind::Database), "database");
        assert_eq!(stage(ErrorKind::Query), "query");
    }

    #[test]
    fn time_is_in_milliseconds() {
        assert_eq!(millis(Duration::from_micros(12_345)), "12.3 ms");
    }
}
