//! The administrator CLI's errors and their exit codes.

use crate::keyring::KeyringError;
use crate::output::Output;

/// Exit code for input the administrator can fix by changing the command line.
pub const EXIT_USAGE: u8 = 2;
/// Exit code for everything else: the server refused, the keyring did not open, I/O.
pub const EXIT_FAILURE: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    #[error("this network is already set up: {0} holds a keyring the server has accepted")]
    AlreadyInitialised(String),
    #[error("init did not finish (the server has not confirmed it); run `eenplan-admin init` again")]
    InitUnfinished,
    /// The server's own `ErrorBody`.
    #[error("{message} ({code})")]
    Server { status: u16, code: String, message: String },
    #[error("the server answered HTTP {status}: {excerpt:?}")]
    UnexpectedStatus { status: u16, excerpt: String },
    #[error("cannot reach the server at {url}: {source}")]
    Transport {
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("the server's answer does not follow the API: {0}")]
    BadResponse(String),
    #[error("no user {0:?} (see `eenplan-admin user list`)")]
    UnknownUser(String),
    #[error("{name:?} names several users (ids {ids}); give the id")]
    AmbiguousUser { name: String, ids: String },
    #[error("this keyring did not issue that enrolment code, or it was already used")]
    UnknownCode,
    #[error("that enrolment code belongs to another network (another root key)")]
    ForeignCode,
    #[error(
        "no pending device of {user} has claimed that enrolment code yet (with a key MAC that proves it)"
    )]
    CodeNotClaimed { user: String },
    /// Several devices prove the same code: a device claims a code once, so the server (or
    /// someone who learnt the code) made the others. None is approved.
    #[error("several pending devices prove the enrolment code of {user}; approving none (issue a new code)")]
    AmbiguousClaim { user: String },
    /// A device the server lists that this CLI refuses to certify.
    #[error("device {device}: {reason}")]
    BadDevice { device: String, reason: &'static str },
    #[error("cannot ask for the {what} without a terminal ({source}); set {env}")]
    Prompt {
        what: &'static str,
        env: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("the operating system has no random source; no enrolment code was made")]
    NoRandomness,
    #[error("the system clock is before 1970 or beyond the year 9999")]
    Clock,
    #[error("{0} device(s) not approved; see the warnings above")]
    NotApproved(usize),
    /// A command that did part of its work: `done` is printed, then `error`.
    #[error("{error}")]
    Partial { done: Output, error: Box<AdminError> },
}

impl AdminError {
    pub fn usage(message: impl Into<String>) -> Self {
        AdminError::Usage(message.into())
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            AdminError::Usage(_) | AdminError::UnknownUser(_) | AdminError::AmbiguousUser { .. } => {
                EXIT_USAGE
            }
            AdminError::Partial { error, .. } => error.exit_code(),
            _ => EXIT_FAILURE,
        }
    }
}
