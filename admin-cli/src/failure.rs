//! Why a command failed, and the exit code a script reads from it. The codes are part of the
//! interface: `--help` lists them (`EXIT_CODES`) and they never change meaning.

use sluice_wire::admin::ErrorBody;

/// Exit codes. 0 is success.
pub mod exit {
    /// Anything else: an answer the client cannot read, output that cannot be written.
    pub const OTHER: u8 = 1;
    /// The command line is wrong: unknown flag, bad value, no token, unreadable `--json` file.
    pub const USAGE: u8 = 2;
    /// The service refused the admin token (401, 403).
    pub const UNAUTHENTICATED: u8 = 3;
    /// No such tenant, project or key (404).
    pub const NOT_FOUND: u8 = 4;
    /// The service refused the request as invalid or conflicting (400, 409 and other 4xx).
    pub const REFUSED: u8 = 5;
    /// The service is unreachable, timed out, or failing (5xx).
    pub const UNAVAILABLE: u8 = 6;
}

/// What `--help` says about exit codes and errors.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  any other failure (an answer this client cannot read, output that cannot be written)
  2  usage error: unknown command or flag, bad value, no admin token, unreadable --json file
  3  the admin token was refused (HTTP 401)
  4  not found (HTTP 404): no such tenant, project or key
  5  refused as invalid or conflicting (HTTP 400, 409): a bad name or limit, a tenant that
     still has live keys, a revoked key, a bound reached
  6  the service is unreachable, timed out or failing (HTTP 5xx)
Errors are one line on stderr: `sluice-admin: <code>: <message>`, where <code> is the
service's error code (`not_found`, `conflict`, ...) or `usage`, `unreachable`, `timeout`,
`error`. The admin token is never printed.";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The command line is wrong.
    Usage(String),
    /// The service answered with an error status.
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// No connection could be made.
    Unreachable(String),
    /// No answer within the timeout.
    Timeout(String),
    /// Anything else (an unreadable answer, output that cannot be written).
    Other(String),
    /// Whoever read the output stopped reading (`| head`): nothing more to say.
    Closed,
}

impl Failure {
    /// The service's answer with status `status` and body `body`: its `ErrorBody` if it sent
    /// one, else the status alone (a proxy's page, say, is not repeated).
    pub fn from_answer(status: u16, body: &[u8]) -> Self {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(error) => Self::Refused {
                status,
                code: error.error.code,
                message: error.error.message,
            },
            Err(_) => Self::Refused {
                status,
                code: format!("http_{status}"),
                message: format!("the service answered HTTP {status}"),
            },
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => exit::USAGE,
            Self::Refused { status, .. } => match status {
                401 | 403 => exit::UNAUTHENTICATED,
                404 => exit::NOT_FOUND,
                500.. => exit::UNAVAILABLE,
                400..=499 => exit::REFUSED,
                // A 1xx or 3xx where an answer was due: not something a retry or a fix of
                // the request would change.
                _ => exit::OTHER,
            },
            Self::Unreachable(_) | Self::Timeout(_) => exit::UNAVAILABLE,
            Self::Other(_) | Self::Closed => exit::OTHER,
        }
    }

    /// The short code in the error line.
    pub fn code(&self) -> &str {
        match self {
            Self::Usage(_) => "usage",
            Self::Refused { code, .. } => code,
            Self::Unreachable(_) => "unreachable",
            Self::Timeout(_) => "timeout",
            Self::Other(_) | Self::Closed => "error",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Usage(message)
            | Self::Unreachable(message)
            | Self::Timeout(message)
            | Self::Other(message)
            | Self::Refused { message, .. } => message,
            Self::Closed => "the output was closed",
        }
    }

    /// Worth another try in `spend --watch`: the service may be back on the next round.
    pub fn is_transient(&self) -> bool {
        self.exit_code() == exit::UNAVAILABLE
    }

    /// The one line printed on stderr: `sluice-admin: <code>: <message>`, control characters
    /// (a message's newlines) turned into spaces, and `secret` (the admin token) never in it
    /// whatever a message carries.
    pub fn line(&self, secret: Option<&str>) -> String {
        let mut line = format!("sluice-admin: {}: {}", self.code(), self.message());
        if let Some(secret) = secret.filter(|secret| !secret.is_empty()) {
            line = line.replace(secret, "[redacted]");
        }
        line.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    }
}

impl From<std::io::Error> for Failure {
    fn from(err: std::io::Error) -> Self {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            return Self::Closed;
        }
        Self::Other(format!("writing the output: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::{Failure, exit};

    fn refused(status: u16) -> Failure {
        Failure::from_answer(
            status,
            br#"{"error":{"code":"some_code","message":"what went wrong"}}"#,
        )
    }

    #[test]
    fn statuses_map_to_the_documented_exit_codes() {
        assert_eq!(refused(401).exit_code(), exit::UNAUTHENTICATED);
        assert_eq!(refused(403).exit_code(), exit::UNAUTHENTICATED);
        assert_eq!(refused(404).exit_code(), exit::NOT_FOUND);
        assert_eq!(refused(400).exit_code(), exit::REFUSED);
        assert_eq!(refused(409).exit_code(), exit::REFUSED);
        assert_eq!(refused(413).exit_code(), exit::REFUSED);
        assert_eq!(refused(500).exit_code(), exit::UNAVAILABLE);
        assert_eq!(refused(503).exit_code(), exit::UNAVAILABLE);
        assert_eq!(refused(302).exit_code(), exit::OTHER);
        assert_eq!(
            Failure::Unreachable("x".into()).exit_code(),
            exit::UNAVAILABLE
        );
        assert_eq!(Failure::Timeout("x".into()).exit_code(), exit::UNAVAILABLE);
        assert_eq!(Failure::Usage("x".into()).exit_code(), exit::USAGE);
        assert_eq!(Failure::Other("x".into()).exit_code(), exit::OTHER);
        // Every code is distinct, and none is 0.
        let mut codes = [
            exit::OTHER,
            exit::USAGE,
            exit::UNAUTHENTICATED,
            exit::NOT_FOUND,
            exit::REFUSED,
            exit::UNAVAILABLE,
        ];
        codes.sort_unstable();
        assert!(codes.windows(2).all(|pair| pair[0] < pair[1]));
        assert_ne!(codes[0], 0);
    }

    #[test]
    fn the_service_error_body_gives_code_and_message() {
        let failure = refused(409);
        assert_eq!(
            failure.line(None),
            "sluice-admin: some_code: what went wrong"
        );
        assert!(!failure.is_transient());
        assert!(refused(503).is_transient());
    }

    #[test]
    fn a_body_that_is_not_an_error_body_gives_the_status_alone() {
        let failure = Failure::from_answer(502, b"<html>bad gateway</html>");
        assert_eq!(
            failure.line(None),
            "sluice-admin: http_502: the service answered HTTP 502"
        );
        assert_eq!(failure.exit_code(), exit::UNAVAILABLE);
    }

    #[test]
    fn the_line_is_one_line_and_never_holds_the_token() {
        let failure = Failure::Refused {
            status: 400,
            code: "invalid".into(),
            message: "bad\nname tok-123 here\r".into(),
        };
        let line = failure.line(Some("tok-123"));
        assert_eq!(line, "sluice-admin: invalid: bad name [redacted] here ");
        assert!(!line.contains('\n'));
        // An empty token redacts nothing.
        assert_eq!(
            Failure::Usage("x".into()).line(Some("")),
            "sluice-admin: usage: x"
        );
    }
}
