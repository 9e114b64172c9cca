//! The keyring passphrase: from the environment (scripts, tests) or asked on the terminal, and
//! the eenplan-core keystore it unlocks.

use eenplan_core::keystore::{KdfParams, PassphraseKeyStore};
use zeroize::Zeroizing;

use crate::error::AdminError;

pub const ENV: &str = "EENPLAN_ADMIN_PASSPHRASE";
pub const FAST_KDF_ENV: &str = "EENPLAN_INSECURE_FAST_KDF";
const WHAT: &str = "keyring passphrase";

type Secret = Zeroizing<String>;

/// The passphrase of an existing keyring: asked once.
pub fn existing() -> Result<PassphraseKeyStore, AdminError> {
    let passphrase = match from_env()? {
        Some(p) => p,
        None => prompt("Keyring passphrase: ")?,
    };
    keystore(passphrase)
}

/// A new keyring's passphrase: asked twice, because a typo would lock the network's root key
/// away for good.
pub fn chosen() -> Result<PassphraseKeyStore, AdminError> {
    let passphrase = match from_env()? {
        Some(p) => p,
        None => {
            let first = prompt("New keyring passphrase: ")?;
            let second = prompt("New keyring passphrase again: ")?;
            if first != second {
                return Err(AdminError::usage("the two passphrases differ"));
            }
            first
        }
    };
    if passphrase.is_empty() {
        return Err(AdminError::usage("the keyring passphrase may not be empty"));
    }
    keystore(passphrase)
}

/// The KDF parameters only matter when wrapping (init); unwrapping reads them from the file.
fn keystore(mut passphrase: Secret) -> Result<PassphraseKeyStore, AdminError> {
    // Moved out rather than copied, so that exactly one copy exists and the keystore wipes it.
    let passphrase = std::mem::take(&mut *passphrase);
    Ok(if insecure_fast_kdf()? {
        PassphraseKeyStore::with_params(passphrase, KdfParams::INSECURE_FAST_FOR_TESTS)
    } else {
        PassphraseKeyStore::new(passphrase)
    })
}

/// FOR TESTS ONLY: the cheapest Argon2 parameters, so the test suite does not spend seconds
/// per keyring. A keyring written this way yields its passphrase to a quick guess.
fn insecure_fast_kdf() -> Result<bool, AdminError> {
    match std::env::var(FAST_KDF_ENV).as_deref() {
        Err(std::env::VarError::NotPresent) | Ok("" | "0") => Ok(false),
        Ok("1") => Ok(true),
        _ => Err(AdminError::usage(format!("{FAST_KDF_ENV} must be 1 (tests only) or unset"))),
    }
}

fn from_env() -> Result<Option<Secret>, AdminError> {
    match std::env::var(ENV) {
        Ok(p) => Ok(Some(Zeroizing::new(p))),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(AdminError::usage(format!("{ENV} is not valid UTF-8"))),
    }
}

fn prompt(text: &str) -> Result<Secret, AdminError> {
    rpassword::prompt_password(text).map(Zeroizing::new).map_err(|source| AdminError::Prompt {
        what: WHAT,
        env: ENV,
        source,
    })
}
