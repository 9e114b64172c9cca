//! The errors hosts see, mapped from the core's in one place.
//!
//! Every variant carries `reason`, a sentence for people (English; the app words its own
//! screens), and the fields an app acts on: the unlock attempts left, the lease's end, the
//! server's status and error code. (`reason`, not `message`: a field named `message` would
//! clash with `Throwable.message` in the generated Kotlin.)
//!
//! | language | catch | read |
//! |---|---|---|
//! | Kotlin | `catch (e: ApiException.WrongKey)` | `e.reason`, `e.attemptsLeft` |
//! | Swift | `catch ApiError.WrongKey(let reason, let attemptsLeft)` | |
//! | Python | `except eenplan.ApiError.WrongKey as e` | `e.reason`, `e.attempts_left` |

use eenplan_core::CoreError;
use eenplan_core::family_copy::FamilyCopyError;
use eenplan_core::keystore::KeyStoreError as CoreKeyStoreError;
use eenplan_core::plan::PlanError;
use eenplan_core::store::StoreError;
use eenplan_core::sync::SyncError;
use eenplan_protocol::api::ErrorCode;

/// What went wrong, by what the app should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum ApiError {
    /// The input was refused (empty, too long, negative, an unknown id, a bad date, value or
    /// server address); nothing was changed. Show `reason` next to the field.
    #[error("{reason}")]
    Invalid { reason: String },
    /// No such plan on this device, no such user on the server, or no device in this
    /// directory yet.
    #[error("{reason}")]
    NotFound { reason: String },
    /// The plan was closed (*afgesloten*) by its regisseur: it can still be read, but nothing
    /// in it changes any more. The device removes its copy after the grace period.
    #[error("{reason}")]
    PlanClosed { reason: String },
    /// The passphrase (or the key the user's secret derives) does not unlock this device.
    /// `attempts_left`: wrong attempts left before the device wipes itself (`None` where the
    /// attempt is not counted).
    #[error("{reason}")]
    WrongKey { reason: String, attempts_left: Option<u32> },
    /// The platform keystore failed for now (authentication cancelled, keystore busy), or the
    /// wrapped key is unreadable. Not counted as a wrong unlock; try again.
    #[error("{reason}")]
    KeyStore { reason: String },
    /// This device's data is open elsewhere: another `Device` object (in this process or
    /// another) that was not closed. Answered at once.
    #[error("{reason}")]
    Busy { reason: String },
    /// [`crate::Device::close`] was called on this object; open the device again.
    #[error("{reason}")]
    Closed { reason: String },
    /// Stored data is damaged: one plan (the others still open), or the whole store.
    #[error("{reason}")]
    Damaged { reason: String },
    /// Reading or writing the device's files failed (disk full, permissions).
    #[error("{reason}")]
    Storage { reason: String },
    /// The device has not been enrolled with a server yet.
    #[error("{reason}")]
    NotEnrolled { reason: String },
    /// The device is enrolled and waits for an administrator to approve it.
    #[error("{reason}")]
    NotApproved { reason: String },
    /// The server could not be reached. Edits stay on the device; sync again later.
    #[error("{reason}")]
    Offline { reason: String },
    /// The server refused the request (`status`, and its machine `code`) or answered
    /// something invalid (`status` 0, `code` `Other("invalid_answer")`).
    #[error("{reason}")]
    Server { reason: String, status: u16, code: ErrorCode },
    /// The server or a certificate could not be trusted (wrong network, forged certificate).
    #[error("{reason}")]
    Untrusted { reason: String },
    /// An administrator revoked this device; it can no longer sync.
    #[error("{reason}")]
    Revoked { reason: String },
    /// The device erased its data (a wipe order, too many failed unlocks, or a platform key
    /// gone for good: [`crate::device_state`] says which). Nothing can be read any more;
    /// `Device.init` on the same directory sets up a new device, to be enrolled with a new
    /// code.
    #[error("{reason}")]
    Wiped { reason: String },
    /// The offline lease ran out at `expired_at_ms`: plans stay locked until a sync succeeds.
    /// Edits made before are kept and sent at that sync.
    #[error("{reason}")]
    LeaseExpired { reason: String, expired_at_ms: i64 },
    /// A fault in eenplan itself (a failed thread, an inconsistent state); reopen the device.
    #[error("{reason}")]
    Internal { reason: String },
}

impl ApiError {
    pub(crate) fn invalid(reason: impl Into<String>) -> ApiError {
        ApiError::Invalid { reason: reason.into() }
    }

    pub(crate) fn internal(reason: impl Into<String>) -> ApiError {
        ApiError::Internal { reason: reason.into() }
    }
}

impl From<CoreError> for ApiError {
    fn from(error: CoreError) -> Self {
        let reason = error.to_string();
        // Exhaustive on purpose: a new core error must be placed here, not fall into a default.
        match error {
            CoreError::WrongUnlock { attempts_left } => {
                ApiError::WrongKey { reason, attempts_left: Some(attempts_left) }
            }
            CoreError::KeyStore(CoreKeyStoreError::WrongKey) => {
                ApiError::WrongKey { reason, attempts_left: None }
            }
            CoreError::KeyStore(
                CoreKeyStoreError::Malformed(_)
                | CoreKeyStoreError::Platform(_)
                | CoreKeyStoreError::Invalidated(_),
            ) => ApiError::KeyStore { reason },
            CoreError::Wiped => ApiError::Wiped { reason },
            CoreError::LeaseExpired { expired_at_ms } => ApiError::LeaseExpired { reason, expired_at_ms },
            CoreError::Store(StoreError::Busy) => ApiError::Busy { reason },
            CoreError::Store(
                StoreError::Corrupt(_)
                | StoreError::CorruptPlan { .. }
                | StoreError::CorruptPlanEntry(_)
                | StoreError::NewerSchema { .. },
            ) => ApiError::Damaged { reason },
            CoreError::Store(StoreError::Sqlite(_)) | CoreError::Io { .. } => ApiError::Storage { reason },
            CoreError::Plan(
                PlanError::Malformed { .. } | PlanError::WrongPlan { .. } | PlanError::Refused { .. },
            ) => ApiError::Damaged { reason },
            CoreError::Plan(PlanError::Automerge(_)) | CoreError::Inconsistent => {
                ApiError::Internal { reason }
            }
            CoreError::Closed => ApiError::Closed { reason },
            CoreError::PlanClosed(_) => ApiError::PlanClosed { reason },
            CoreError::Plan(
                PlanError::Invalid(_)
                | PlanError::CompartmentNotHeld(_)
                | PlanError::UnknownConflict(_)
                | PlanError::NoSuchConflictValue { .. },
            )
            | CoreError::AmbiguousPlan(_)
            | CoreError::PlanPrefixTooShort(_)
            | CoreError::AlreadyInitialised
            | CoreError::InvalidDeviceLabel(_)
            | CoreError::Transfer(_)
            | CoreError::NotAllowed(_)
            | CoreError::AdoptedVersionResealed { .. } => ApiError::Invalid { reason },
            CoreError::UnknownPlan(_) | CoreError::NoMatchingPlan(_) | CoreError::NotInitialised => {
                ApiError::NotFound { reason }
            }
            CoreError::Sync(sync) => from_sync(sync, reason),
        }
    }
}

/// The family's copy that could not be rendered: a fault in eenplan, not the user's input.
impl From<FamilyCopyError> for ApiError {
    fn from(error: FamilyCopyError) -> Self {
        ApiError::Internal { reason: error.to_string() }
    }
}

fn from_sync(error: SyncError, reason: String) -> ApiError {
    match error {
        SyncError::NotEnrolled => ApiError::NotEnrolled { reason },
        SyncError::NotApproved => ApiError::NotApproved { reason },
        SyncError::Revoked => ApiError::Revoked { reason },
        SyncError::MalformedCode | SyncError::ServerUrl(_) => ApiError::Invalid { reason },
        SyncError::WrongRoot | SyncError::UntrustedCertificate(_) | SyncError::ClockSkew { .. } => {
            ApiError::Untrusted { reason }
        }
        SyncError::Network(_) => ApiError::Offline { reason },
        SyncError::Server { status, code, message } => match ErrorCode::parse(&code) {
            // Sharing with a name nobody has (or several have) is the user's input, not a
            // server failure: the server's sentence says which name.
            ErrorCode::UnknownUser => ApiError::NotFound { reason: message },
            code => ApiError::Server { reason, status, code },
        },
        SyncError::Protocol(_)
        | SyncError::TooManyRounds(_)
        | SyncError::BadPolicy(_)
        | SyncError::NotFetchedYet
        | SyncError::NoChainYet
        | SyncError::NoApprovedDevice(_)
        | SyncError::ErasureWaits(_) => {
            ApiError::Server { reason, status: 0, code: ErrorCode::Other("invalid_answer".into()) }
        }
    }
}

/// What a host's [`crate::KeyStore`] reports; the contract (which to return when, which count
/// towards the self-wipe) is in the [`crate::KeyStore`] docs. Kotlin:
/// `KeyStoreException.WrongKey`, `KeyStoreException.KeyInvalidated(reason)`,
/// `KeyStoreException.Platform(reason)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum KeyStoreError {
    /// The secret the user supplied (the passphrase, or a PIN the wrapping key is derived
    /// from) is wrong. Counts towards the self-wipe.
    #[error("the keystore key does not unlock this device")]
    WrongKey,
    /// The platform key is gone for good: invalidated, expired, deleted, or not on this
    /// phone. Not counted; the device wipes itself, since nothing can open its data again.
    #[error("the platform key is gone for good: {reason}")]
    KeyInvalidated { reason: String },
    /// The platform keystore failed for now: authentication cancelled or not yet given, the
    /// keystore busy, a hardware error. Not counted; the app may try again.
    #[error("the platform keystore failed: {reason}")]
    Platform { reason: String },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for KeyStoreError {
    /// Any other exception the host's keystore throws: not the user's fault, so not counted.
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> Self {
        KeyStoreError::Platform { reason: error.reason }
    }
}

impl From<KeyStoreError> for CoreKeyStoreError {
    fn from(error: KeyStoreError) -> Self {
        match error {
            KeyStoreError::WrongKey => CoreKeyStoreError::WrongKey,
            KeyStoreError::KeyInvalidated { reason } => CoreKeyStoreError::Invalidated(reason),
            KeyStoreError::Platform { reason } => CoreKeyStoreError::Platform(reason),
        }
    }
}

impl From<CoreKeyStoreError> for KeyStoreError {
    fn from(error: CoreKeyStoreError) -> Self {
        match error {
            CoreKeyStoreError::WrongKey => KeyStoreError::WrongKey,
            CoreKeyStoreError::Invalidated(reason) => KeyStoreError::KeyInvalidated { reason },
            other => KeyStoreError::Platform { reason: other.to_string() },
        }
    }
}

/// What a host's callback (a [`crate::DeviceListener`], a [`crate::LogSink`]) may throw. Any
/// exception it throws arrives as this; eenplan logs it and carries on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum CallbackError {
    #[error("{reason}")]
    Failed { reason: String },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for CallbackError {
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> Self {
        CallbackError::Failed { reason: error.reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_core_error_keeps_its_sentence_and_lands_in_the_variant_an_app_acts_on() {
        let refused = eenplan_core::sync::NetworkFailure::NoConnection("connection refused".into());
        let offline = ApiError::from(CoreError::Sync(SyncError::Network(refused)));
        let closed = ApiError::from(CoreError::PlanClosed(eenplan_core::PlanId::random()));
        assert!(matches!(closed, ApiError::PlanClosed { reason } if reason.contains("afgesloten")));
        assert_eq!(
            offline,
            ApiError::Offline { reason: "the server could not be reached: connection refused".into() }
        );
        let revoked = ApiError::from(CoreError::Sync(SyncError::Revoked));
        assert!(matches!(revoked, ApiError::Revoked { reason } if reason.contains("revoked")));
        assert!(matches!(ApiError::from(CoreError::NotInitialised), ApiError::NotFound { .. }));
    }

    #[test]
    fn the_fields_an_app_acts_on_are_fields_not_only_words() {
        let wrong = ApiError::from(CoreError::WrongUnlock { attempts_left: 3 });
        assert!(matches!(wrong, ApiError::WrongKey { attempts_left: Some(3), .. }));
        let uncounted = ApiError::from(CoreError::KeyStore(CoreKeyStoreError::WrongKey));
        assert!(matches!(uncounted, ApiError::WrongKey { attempts_left: None, .. }));
        let lease = ApiError::from(CoreError::LeaseExpired { expired_at_ms: 1_700_000_000_000 });
        assert!(matches!(lease, ApiError::LeaseExpired { expired_at_ms: 1_700_000_000_000, .. }));
        let refused = ApiError::from(CoreError::Sync(SyncError::Server {
            status: 403,
            code: "not_regisseur".into(),
            message: "only the plan's regisseur may add participants".into(),
        }));
        assert!(matches!(refused, ApiError::Server { status: 403, code: ErrorCode::NotRegisseur, .. }));
        let newer = ApiError::from(CoreError::Sync(SyncError::Server {
            status: 429,
            code: "quota_exceeded".into(),
            message: "slow down".into(),
        }));
        assert!(matches!(newer, ApiError::Server { code: ErrorCode::Other(c), .. } if c == "quota_exceeded"));
    }

    #[test]
    fn an_unknown_user_to_share_with_is_not_found_in_the_servers_words() {
        let unknown = ApiError::from(CoreError::Sync(SyncError::Server {
            status: 404,
            code: "unknown_user".into(),
            message: "no single user named \"Wendy\"".into(),
        }));
        assert_eq!(unknown, ApiError::NotFound { reason: "no single user named \"Wendy\"".into() });
    }

    #[test]
    fn a_host_keystore_failure_reaches_the_core_with_its_reason_and_kind() {
        let platform = KeyStoreError::Platform { reason: "authentication cancelled".into() };
        assert_eq!(
            CoreKeyStoreError::from(platform),
            CoreKeyStoreError::Platform("authentication cancelled".into())
        );
        let gone = KeyStoreError::KeyInvalidated { reason: "KeyPermanentlyInvalidatedException".into() };
        assert_eq!(
            CoreKeyStoreError::from(gone),
            CoreKeyStoreError::Invalidated("KeyPermanentlyInvalidatedException".into())
        );
    }
}
