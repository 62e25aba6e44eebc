//! Exit statuses a script can tell apart, and how a failure is reported.

use std::process::ExitCode;

use cudly_core::quote::at_most;
use cudly_core::telemetry::{ErrorChain, status_line};
use tonic::Code;

/// `--help`'s closing section: the exit statuses.
pub(crate) const HELP: &str = "\
Exit status:
  0  success
  1  any other failure
  2  usage error (bad or missing flags)
  3  api-service unreachable or not serving (UNAVAILABLE, DEADLINE_EXCEEDED, health NOT_SERVING)
  4  caller refused (UNAUTHENTICATED, PERMISSION_DENIED)
  5  bad argument (INVALID_ARGUMENT)
  6  not found (NOT_FOUND)
  7  already exists (ALREADY_EXISTS)";

/// Any other failure.
const OTHER: u8 = 1;
/// api-service could not be reached, or is not serving.
const UNREACHABLE: u8 = 3;
/// The caller's credentials were refused.
const REFUSED: u8 = 4;
/// The server refused an argument.
const BAD_ARGUMENT: u8 = 5;
/// What was asked for does not exist.
const NOT_FOUND: u8 = 6;
/// What was to be created exists.
const ALREADY_EXISTS: u8 = 7;

/// api-service cannot be reached (connecting failed) or is not serving: the
/// message says which.
#[derive(Debug)]
pub(crate) struct Unreachable(pub(crate) String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreachable {}

/// The longest server message printed: a status message is the server's
/// text, and a misbehaving server's must not flood a terminal.
const MAX_MESSAGE_CHARS: usize = 1000;

/// Prints `err` to stderr (a status as its code and message) and picks the
/// exit status.
pub(crate) fn report(err: &anyhow::Error) -> ExitCode {
    if let Some(status) = err.downcast_ref::<tonic::Status>() {
        eprintln!("cudlyctl: {}: {}", code_name(status.code()), at_most(&status_line(status), MAX_MESSAGE_CHARS));
        return ExitCode::from(status_exit(status.code()));
    }
    if is_broken_pipe(err) {
        // The reader went away (`cudlyctl watch -o json | head -1`): what it
        // wanted it has.
        return ExitCode::SUCCESS;
    }
    // Each cause once: transport errors repeat theirs.
    eprintln!("cudlyctl: {}", ErrorChain(err.as_ref()));
    if err.downcast_ref::<Unreachable>().is_some() { ExitCode::from(UNREACHABLE) } else { ExitCode::from(OTHER) }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().filter_map(|e| e.downcast_ref::<std::io::Error>()).any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// The exit status of a call that ended with `code`.
fn status_exit(code: Code) -> u8 {
    match code {
        Code::Unavailable | Code::DeadlineExceeded => UNREACHABLE,
        Code::Unauthenticated | Code::PermissionDenied => REFUSED,
        Code::InvalidArgument => BAD_ARGUMENT,
        Code::NotFound => NOT_FOUND,
        Code::AlreadyExists => ALREADY_EXISTS,
        _ => OTHER,
    }
}

/// gRPC's name of a status code, as the specification and grpcurl spell it.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_their_documented_exit_statuses() {
        for (code, exit) in [
            (Code::Unavailable, 3),
            (Code::DeadlineExceeded, 3),
            (Code::Unauthenticated, 4),
            (Code::PermissionDenied, 4),
            (Code::InvalidArgument, 5),
            (Code::NotFound, 6),
            (Code::AlreadyExists, 7),
            (Code::Internal, 1),
        ] {
            assert_eq!(status_exit(code), exit, "{code:?}");
            assert!(HELP.contains(&format!("{exit}  ")), "{exit} is documented");
            if exit != 1 {
                assert!(HELP.contains(code_name(code)), "{code:?} is documented");
            }
        }
    }
}
