//! The administrator CLI's errors and their exit codes.

use eenplan_protocol::policy::PolicyError;
use eenplan_protocol::revocation::RevocationError;

use crate::keyring::KeyringError;
use crate::output::Output;
use crate::policy_file::PolicyFileError;

/// Exit code for input the administrator can fix by changing the command line.
pub const EXIT_USAGE: u8 = 2;
/// Exit code for everything else: the server refused, the keyring did not open, I/O.
pub const EXIT_FAILURE: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Usage(String),
    /// The console could not start or serve.
    #[error("the console: {0}")]
    Console(String),
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
    #[error("geen gebruiker {0:?} (zie `eenplan-admin user list`)")]
    UnknownUser(String),
    #[error("{name:?} past bij meerdere gebruikers: {candidates}; geef het id")]
    AmbiguousUser { name: String, candidates: String },
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
    #[error("geen apparaat {0:?} (zie `eenplan-admin device list`)")]
    UnknownDevice(String),
    #[error("{given:?} past bij meerdere apparaten: {candidates}; geef (meer van) het id")]
    AmbiguousDevice { given: String, candidates: String },
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    PolicyFile {
        path: String,
        #[source]
        source: PolicyFileError,
    },
    #[error(
        "the file's policy is version {given}, but version {current} is in force; raise `version` above {current}"
    )]
    PolicyNotNewer { current: u32, given: u32 },
    /// The policy cannot be signed or sent as it is.
    #[error("{0}")]
    PolicyUnusable(#[source] PolicyError),
    /// A user would get a role the policy in force does not name.
    #[error(
        "role {role:?} is not in the sharing policy in force (version {version}): a user in it would read \
         and write nothing. Give a role `eenplan-admin policy show` lists (`user set-role`, or \
         `user retire-role --from {role} --to ROLE` for everyone in it), or set a policy that names it"
    )]
    RoleNotInPolicy { role: String, version: u32 },
    /// The plan's membership chain from the server does not verify, or refuses the act.
    #[error("the plan's membership chain: {0}")]
    Membership(#[from] eenplan_protocol::membership::MembershipError),
    /// What the server calls the policy in force is not one this network's root signed.
    #[error("the server's policy is not valid for this network: {0}")]
    ServerPolicy(#[source] PolicyError),
    #[error(
        "the {what} is too weak: {why}. Choose one of at least 12 characters that is hard to guess, \
         such as four or five unrelated words"
    )]
    WeakPassphrase { what: &'static str, why: String },
    /// An organisation's administrator asked for an act on another organisation.
    #[error("u bent beheerder van {own}; {org} valt buiten uw organisatie: er is niets gedaan")]
    OutOfScope { own: String, org: String },
    /// An organisation's administrator asked for a network-wide act.
    #[error("{action} is aan een netwerkbeheerder; u bent beheerder van {own}: er is niets gedaan")]
    NetworkAdminOnly { own: String, action: &'static str },
    /// A command needs the root or escrow key, which are in an offline keyring.
    #[error(
        "{action} needs the {key}, which this keyring keeps in an offline keyring: pass --offline-keyring PATH"
    )]
    OfflineKeyringNeeded { action: &'static str, key: &'static str },
    /// The server's policy is older than one this keyring signed or verified.
    #[error(
        "the server's policy is version {given}, but this keyring has seen version {held}: the server \
         hands out an older policy (restored from a backup, or tampered with); nothing was done"
    )]
    PolicyRolledBack { held: u32, given: u32 },
    /// The server's revocation list is not one this keyring can take.
    #[error("the server's revocation list is refused: {0}; nothing was done")]
    ServerRevocations(#[source] RevocationError),
    /// The server listed devices this keyring revoked as readers.
    #[error(
        "the server listed {0} device(s) this keyring revoked as readers (see the warnings above); they \
         got no key, but the server's records are wrong: check the server"
    )]
    RevokedListed(usize),
    /// The re-keying loop stopped on a failure; what it did is kept, and running it again
    /// continues.
    #[error("{0}; re-keying stopped: run `eenplan-admin rekey` to continue")]
    RekeyStopped(Box<AdminError>),
    #[error(
        "{0} document(s) were not moved to a new key (see the warnings above); writes to them stay \
         refused until `eenplan-admin rekey` moves them"
    )]
    RekeyRefused(usize),
    /// `audit verify` found chains or uploads that are not in order (printed above).
    #[error("the access log is not in order: {0} finding(s) above")]
    AuditNotInOrder(usize),
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
            AdminError::Usage(_)
            | AdminError::UnknownUser(_)
            | AdminError::AmbiguousUser { .. }
            | AdminError::UnknownDevice(_)
            | AdminError::AmbiguousDevice { .. }
            | AdminError::PolicyFile { .. }
            | AdminError::PolicyNotNewer { .. }
            | AdminError::RoleNotInPolicy { .. }
            | AdminError::WeakPassphrase { .. }
            | AdminError::OfflineKeyringNeeded { .. }
            | AdminError::OutOfScope { .. }
            | AdminError::NetworkAdminOnly { .. } => EXIT_USAGE,
            AdminError::Partial { error, .. } => error.exit_code(),
            _ => EXIT_FAILURE,
        }
    }
}
