//! The errors hosts see, mapped from the core's in one place.

use eenplan_core::CoreError;
use eenplan_core::keystore::KeyStoreError as CoreKeyStoreError;
use eenplan_core::plan::PlanError;
use eenplan_core::store::StoreError;
use eenplan_core::sync::SyncError;

/// What went wrong, by what the app should do about it; the message says it for people.
/// Kotlin: `ApiException.Offline` etc. with `message`; Swift: `ApiError.offline(message:)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum ApiError {
    /// The input was refused (empty, too long, an unknown id, a bad date or value); nothing
    /// was changed. Show the message next to the field.
    #[error("{0}")]
    Invalid(String),
    /// No such plan on this device, or no device in this directory yet.
    #[error("{0}")]
    NotFound(String),
    /// The keystore's key (or the passphrase) does not unlock this device.
    #[error("{0}")]
    WrongKey(String),
    /// The platform keystore failed.
    #[error("{0}")]
    KeyStore(String),
    /// Another process has this device's data open.
    #[error("{0}")]
    Busy(String),
    /// Stored data is damaged: one plan (the others still open), or the whole store.
    #[error("{0}")]
    Damaged(String),
    /// Reading or writing the device's files failed (disk full, permissions).
    #[error("{0}")]
    Storage(String),
    /// The device has not been enrolled with a server yet.
    #[error("{0}")]
    NotEnrolled(String),
    /// The device is enrolled and waits for an administrator to approve it.
    #[error("{0}")]
    NotApproved(String),
    /// The server could not be reached. Edits stay on the device; sync again later.
    #[error("{0}")]
    Offline(String),
    /// The server refused the request or answered something invalid.
    #[error("{0}")]
    Server(String),
    /// The server or a certificate could not be trusted (wrong network, forged certificate).
    #[error("{0}")]
    Untrusted(String),
    /// An administrator revoked this device; it can no longer sync.
    #[error("{0}")]
    Revoked(String),
    /// The device erased its data (a wipe order, or too many failed unlocks). Nothing can be
    /// read any more; the app offers a fresh enrolment.
    #[error("{0}")]
    Wiped(String),
    /// The offline lease ran out: plans stay locked until a sync succeeds. Edits made before
    /// are kept and sent at that sync.
    #[error("{0}")]
    LeaseExpired(String),
    /// A fault in eenplan itself (a failed thread, an inconsistent state); reopen the device.
    #[error("{0}")]
    Internal(String),
}

impl From<CoreError> for ApiError {
    fn from(error: CoreError) -> Self {
        let message = error.to_string();
        // Exhaustive on purpose: a new core error must be placed here, not fall into a default.
        match error {
            CoreError::KeyStore(CoreKeyStoreError::WrongKey) | CoreError::WrongUnlock { .. } => {
                ApiError::WrongKey(message)
            }
            CoreError::Wiped => ApiError::Wiped(message),
            CoreError::LeaseExpired { .. } => ApiError::LeaseExpired(message),
            CoreError::KeyStore(CoreKeyStoreError::Malformed(_) | CoreKeyStoreError::Platform(_)) => {
                ApiError::KeyStore(message)
            }
            CoreError::Store(StoreError::Busy) => ApiError::Busy(message),
            CoreError::Store(
                StoreError::Corrupt(_)
                | StoreError::CorruptPlan { .. }
                | StoreError::CorruptPlanEntry(_)
                | StoreError::NewerSchema { .. },
            ) => ApiError::Damaged(message),
            CoreError::Store(StoreError::Sqlite(_)) | CoreError::Io { .. } => ApiError::Storage(message),
            CoreError::Plan(
                PlanError::Malformed { .. } | PlanError::WrongPlan { .. } | PlanError::Refused { .. },
            ) => ApiError::Damaged(message),
            CoreError::Plan(PlanError::Automerge(_)) => ApiError::Internal(message),
            CoreError::Plan(
                PlanError::Invalid(_)
                | PlanError::CompartmentNotHeld(_)
                | PlanError::UnknownConflict(_)
                | PlanError::NoSuchConflictValue { .. },
            )
            | CoreError::AmbiguousPlan(_)
            | CoreError::PlanPrefixTooShort(_)
            | CoreError::AlreadyInitialised
            | CoreError::Transfer(_) => ApiError::Invalid(message),
            CoreError::UnknownPlan(_) | CoreError::NoMatchingPlan(_) | CoreError::NotInitialised => {
                ApiError::NotFound(message)
            }
            CoreError::Sync(sync) => match sync {
                SyncError::NotEnrolled => ApiError::NotEnrolled(message),
                SyncError::NotApproved => ApiError::NotApproved(message),
                SyncError::Revoked => ApiError::Revoked(message),
                SyncError::MalformedCode | SyncError::ServerUrl(_) => ApiError::Invalid(message),
                SyncError::WrongRoot | SyncError::UntrustedCertificate(_) => ApiError::Untrusted(message),
                SyncError::Network(_) => ApiError::Offline(message),
                SyncError::Server { .. }
                | SyncError::Protocol(_)
                | SyncError::TooManyRounds(_)
                | SyncError::BadPolicy(_) => ApiError::Server(message),
            },
        }
    }
}

/// What a host's [`crate::KeyStore`] reports. Kotlin: `KeyStoreException.WrongKey`,
/// `KeyStoreException.Platform(reason)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum KeyStoreError {
    /// The platform key does not open the wrapped data key (it was replaced, or the blob is
    /// not one it wrapped).
    #[error("the keystore key does not unlock this device")]
    WrongKey,
    /// The platform keystore refused or failed: the key was invalidated (the lease ran out, the
    /// lock screen was removed), the user cancelled authentication, the hardware failed.
    #[error("the platform keystore failed: {reason}")]
    Platform { reason: String },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for KeyStoreError {
    /// Any other exception the host's keystore throws.
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> Self {
        KeyStoreError::Platform { reason: error.reason }
    }
}

impl From<KeyStoreError> for CoreKeyStoreError {
    fn from(error: KeyStoreError) -> Self {
        match error {
            KeyStoreError::WrongKey => CoreKeyStoreError::WrongKey,
            KeyStoreError::Platform { reason } => CoreKeyStoreError::Platform(reason),
        }
    }
}

impl From<CoreKeyStoreError> for KeyStoreError {
    fn from(error: CoreKeyStoreError) -> Self {
        match error {
            CoreKeyStoreError::WrongKey => KeyStoreError::WrongKey,
            other => KeyStoreError::Platform { reason: other.to_string() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_core_error_keeps_its_message_and_lands_in_the_variant_an_app_acts_on() {
        let offline = ApiError::from(CoreError::Sync(SyncError::Network("connection refused".into())));
        assert_eq!(offline, ApiError::Offline("the server could not be reached: connection refused".into()));
        let revoked = ApiError::from(CoreError::Sync(SyncError::Revoked));
        assert!(matches!(revoked, ApiError::Revoked(m) if m.contains("revoked")));
        assert!(matches!(ApiError::from(CoreError::NotInitialised), ApiError::NotFound(_)));
        let wrong = ApiError::from(CoreError::KeyStore(CoreKeyStoreError::WrongKey));
        assert!(matches!(wrong, ApiError::WrongKey(_)));
    }

    #[test]
    fn a_host_keystore_failure_reaches_the_core_with_its_reason() {
        let platform = KeyStoreError::Platform { reason: "key permanently invalidated".into() };
        assert_eq!(
            CoreKeyStoreError::from(platform),
            CoreKeyStoreError::Platform("key permanently invalidated".into())
        );
    }
}
