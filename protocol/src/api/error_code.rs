//! The machine codes of [`super::ErrorBody`], as one type.
//!
//! The server answers every refusal with a stable code (`unknown_user`, `not_regisseur`) and a
//! sentence for people. Clients branch on the code, so it is a type here rather than a string
//! compared in each crate; a code this build does not know (a newer server) stays readable as
//! [`ErrorCode::Other`].

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal,)+) => {
        /// A refusal's machine code. The wire carries [`ErrorCode::as_str`].
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)+
            /// A code this build does not know, as the server sent it.
            Other(String),
        }

        impl ErrorCode {
            /// Every code this build knows, for tests and documentation.
            pub const KNOWN: &[ErrorCode] = &[$(ErrorCode::$variant,)+];

            pub fn as_str(&self) -> &str {
                match self {
                    $(ErrorCode::$variant => $code,)+
                    ErrorCode::Other(code) => code,
                }
            }

            /// The code the wire carries; an unknown one is kept as [`ErrorCode::Other`].
            pub fn parse(code: &str) -> ErrorCode {
                match code {
                    $($code => ErrorCode::$variant,)+
                    other => ErrorCode::Other(other.to_owned()),
                }
            }
        }
    };
}

error_codes! {
    // 400: the request is not well formed.
    Malformed = "malformed",
    BadCertificate = "bad_certificate",
    BadEscrowSignature = "bad_escrow_signature",
    BadPolicy = "bad_policy",
    BadWipeOrder = "bad_wipe_order",
    CertificateChanged = "certificate_changed",
    CertificateMismatch = "certificate_mismatch",
    IncompleteRekey = "incomplete_rekey",
    IncompleteRoleChange = "incomplete_role_change",
    PolicyNotNewer = "policy_not_newer",
    /// A membership entry that the plan's chain refuses (see the message).
    BadMembership = "bad_membership",
    UnknownPolicyVersion = "unknown_policy_version",
    /// A device name that is empty, longer than 64 characters or holds characters that do
    /// not show ([`crate::device_name::DeviceLabel`]).
    InvalidDeviceLabel = "invalid_device_label",
    // 401: no valid credentials.
    MissingToken = "missing_token",
    BadToken = "bad_token",
    ExpiredToken = "expired_token",
    BadChallenge = "bad_challenge",
    ExpiredChallenge = "expired_challenge",
    BadSignature = "bad_signature",
    MissingSignature = "missing_signature",
    StaleRequest = "stale_request",
    ReplayedRequest = "replayed_request",
    UnknownAdmin = "unknown_admin",
    UnknownDevice = "unknown_device",
    // 403: known, but not allowed.
    /// An administrator revoked this device.
    Revoked = "revoked",
    /// The device waits for an administrator's approval.
    DeviceNotApproved = "device_not_approved",
    DeviceNotPending = "device_not_pending",
    /// Only the plan's regisseur may do this (add participants).
    NotRegisseur = "not_regisseur",
    NotAReader = "not_a_reader",
    BadPolicySignature = "bad_policy_signature",
    BadWipeReport = "bad_wipe_report",
    /// An organisation's administrator asked for an act on another organisation's users,
    /// devices or participants.
    OutOfScope = "out_of_scope",
    /// Only a network-wide administrator may do this (the policy, organisations,
    /// administrators, key epochs).
    NetworkAdminOnly = "network_admin_only",
    // 404.
    NotFound = "not_found",
    NoRoute = "no_route",
    NoPolicy = "no_policy",
    NoCertificate = "no_certificate",
    UnknownCode = "unknown_code",
    UnknownOrg = "unknown_org",
    UnknownPlan = "unknown_plan",
    /// No user (or not exactly one) has the name or id given.
    UnknownUser = "unknown_user",
    // 409: conflicts with the server's state.
    Conflict = "conflict",
    InvalidState = "invalid_state",
    AlreadyInitialised = "already_initialised",
    NotInitialised = "not_initialised",
    DeviceExists = "device_exists",
    EnrolmentExists = "enrolment_exists",
    OrgExists = "org_exists",
    UserExists = "user_exists",
    StaleRekey = "stale_rekey",
    /// Another membership entry took this position first: fetch the chain and sign again.
    MembershipConflict = "membership_conflict",
    /// The plan has a signed membership chain: participants change only through it.
    MembershipSigned = "membership_signed",
    /// The plan's chain does not end with a close: it is not erased.
    NotClosed = "not_closed",
    /// The plan's retention period has not ended by the server's clock and policy.
    RetentionNotOver = "retention_not_over",
    /// The plan was erased: it cannot be registered or changed again.
    PlanErased = "plan_erased",
    // 410.
    Expired = "expired",
    ExpiredCode = "expired_code",
    // 413.
    TooLarge = "too_large",
    // 503: try again shortly.
    Busy = "busy",
    ShuttingDown = "shutting_down",
    // 500.
    Internal = "internal",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_code_reads_back_as_itself_and_an_unknown_one_is_kept() {
        for code in ErrorCode::KNOWN {
            assert_eq!(&ErrorCode::parse(code.as_str()), code);
        }
        let newer = ErrorCode::parse("quota_exceeded");
        assert_eq!(newer, ErrorCode::Other("quota_exceeded".into()));
        assert_eq!(newer.as_str(), "quota_exceeded");
    }
}
