//! Passphrases: from the environment (scripts, tests) or asked on the terminal, and the
//! keystore they unlock.
//!
//! Passphrases live in [`Zeroizing`] strings so that they are wiped from memory when dropped.

use eenplan_core::OpenOptions;
use eenplan_core::keystore::{KdfParams, PassphraseKeyStore};
use zeroize::Zeroizing;

use crate::error::CliError;

pub const DEVICE_ENV: &str = "EENPLAN_PASSPHRASE";
pub const NEW_ENV: &str = "EENPLAN_NEW_PASSPHRASE";
pub const TRANSFER_ENV: &str = "EENPLAN_TRANSFER_PASSPHRASE";
const FAST_KDF_ENV: &str = "EENPLAN_INSECURE_FAST_KDF";
const MAX_FAILED_UNLOCKS_ENV: &str = "EENPLAN_MAX_FAILED_UNLOCKS";

pub type Secret = Zeroizing<String>;

/// Which passphrase, for prompts and messages.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    what: &'static str,
    env: &'static str,
}

pub const DEVICE: Kind = Kind { what: "passphrase", env: DEVICE_ENV };
pub const NEW: Kind = Kind { what: "new passphrase", env: NEW_ENV };
pub const TRANSFER: Kind = Kind { what: "transfer passphrase", env: TRANSFER_ENV };

/// A passphrase that already exists: asked once.
pub fn existing(kind: Kind) -> Result<Secret, CliError> {
    match from_env(kind)? {
        Some(p) => Ok(p),
        None => prompt(kind, &format!("{}: ", capitalised(kind.what))),
    }
}

/// A passphrase being chosen: asked twice, because a typo would lock the data away for good.
pub fn chosen(kind: Kind) -> Result<Secret, CliError> {
    let passphrase = match from_env(kind)? {
        Some(p) => p,
        None => {
            let first = prompt(kind, &format!("{}: ", capitalised(kind.what)))?;
            let second = prompt(kind, &format!("{} again: ", capitalised(kind.what)))?;
            if first != second {
                return Err(CliError::usage(format!("the two {}s differ", kind.what)));
            }
            first
        }
    };
    if passphrase.is_empty() {
        return Err(CliError::usage(format!("the {} may not be empty", kind.what)));
    }
    Ok(passphrase)
}

/// The keystore for a device passphrase. The KDF parameters only matter when wrapping (init,
/// passphrase change): unwrapping reads them from the stored blob.
pub fn keystore(mut passphrase: Secret) -> Result<PassphraseKeyStore, CliError> {
    // Moved out rather than copied, so that exactly one copy exists and the keystore wipes it.
    let passphrase = std::mem::take(&mut *passphrase);
    Ok(if insecure_fast_kdf()? {
        PassphraseKeyStore::with_params(passphrase, KdfParams::INSECURE_FAST_FOR_TESTS)
    } else {
        PassphraseKeyStore::new(passphrase)
    })
}

/// How the device treats wrong passphrases: `EENPLAN_MAX_FAILED_UNLOCKS` sets after how many
/// in a row it wipes itself (the core's default when unset).
pub fn open_options() -> Result<OpenOptions, CliError> {
    match std::env::var(MAX_FAILED_UNLOCKS_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(OpenOptions::default()),
        Ok(text) => match text.trim().parse::<u32>() {
            Ok(n) if n >= 1 => Ok(OpenOptions { max_failed_unlocks: n }),
            _ => {
                Err(CliError::usage(format!("{MAX_FAILED_UNLOCKS_ENV} must be a whole number of at least 1")))
            }
        },
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(CliError::usage(format!("{MAX_FAILED_UNLOCKS_ENV} is not valid UTF-8")))
        }
    }
}

fn insecure_fast_kdf() -> Result<bool, CliError> {
    match std::env::var(FAST_KDF_ENV).as_deref() {
        Err(std::env::VarError::NotPresent) | Ok("" | "0") => Ok(false),
        Ok("1") => Ok(true),
        _ => Err(CliError::usage(format!("{FAST_KDF_ENV} must be 1 (tests only) or unset"))),
    }
}

fn from_env(kind: Kind) -> Result<Option<Secret>, CliError> {
    match std::env::var(kind.env) {
        Ok(p) => Ok(Some(Zeroizing::new(p))),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(CliError::usage(format!("{} is not valid UTF-8", kind.env)))
        }
    }
}

fn prompt(kind: Kind, text: &str) -> Result<Secret, CliError> {
    rpassword::prompt_password(text).map(Zeroizing::new).map_err(|source| CliError::Prompt {
        what: kind.what,
        env: kind.env,
        source,
    })
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}
