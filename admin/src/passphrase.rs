//! Keyring passphrases: from the environment (scripts, tests) or asked on the terminal; how
//! strong a new one must be; and the Argon2id cost that wraps a keyring.
//!
//! A copied keyring file is attacked offline, one Argon2id evaluation per guess, for as long
//! as the attacker likes: it holds the keys that make a network. So the cost is high
//! ([`KEYRING_KDF`]: 256 MiB and 3 passes, ≈ 1 s here, which also keeps a graphics card to a
//! few guesses at a time) and a new passphrase must be one that takes at least 10^10 guesses
//! by zxcvbn's estimate and has [`MIN_CHARS`] characters. Keyrings wrapped with lower costs
//! (before this rule) still open, and are wrapped again at the new cost on their next unlock.

use eenplan_core::keystore::{KdfParams, PassphraseKeyStore};
use zeroize::Zeroizing;

use crate::error::AdminError;

pub const ENV: &str = "EENPLAN_ADMIN_PASSPHRASE";
pub const OFFLINE_ENV: &str = "EENPLAN_OFFLINE_PASSPHRASE";
pub const FAST_KDF_ENV: &str = "EENPLAN_INSECURE_FAST_KDF";

/// Argon2id for a keyring: 256 MiB, 3 passes, one lane.
pub const KEYRING_KDF: KdfParams = KdfParams { m_cost_kib: 256 * 1024, t_cost: 3, p_cost: 1 };
// The floor the keyring promises; lowering it must not compile.
const _: () = assert!(KEYRING_KDF.m_cost_kib >= 256 * 1024 && KEYRING_KDF.t_cost >= 3);
/// The shortest passphrase a new keyring accepts.
pub const MIN_CHARS: usize = 12;
/// log10 of the guesses zxcvbn must estimate for a new passphrase.
pub const MIN_GUESSES_LOG10: f64 = 10.0;

type Secret = Zeroizing<String>;

/// Which keyring a passphrase is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The daily keyring in the data directory.
    Daily,
    /// The offline keyring with the root and escrow keys.
    Offline,
}

impl Which {
    fn env(self) -> &'static str {
        match self {
            Which::Daily => ENV,
            Which::Offline => OFFLINE_ENV,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Which::Daily => "keyring passphrase",
            Which::Offline => "offline keyring passphrase",
        }
    }
}

/// The Argon2id cost new wraps use: [`KEYRING_KDF`], or the cheapest one for a test network
/// (see [`kdf_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost(pub KdfParams);

impl Cost {
    /// Whether a keyring wrapped with `params` must be wrapped again at this cost.
    pub fn upgrades(self, params: KdfParams) -> bool {
        params.m_cost_kib < self.0.m_cost_kib || params.t_cost < self.0.t_cost
    }
}

/// The cost for a keyring of the network at `server`. `EENPLAN_INSECURE_FAST_KDF=1` gives the
/// cheapest Argon2 parameters, for test and benchmark networks only: it is refused unless the
/// server is on this machine (loopback), so it cannot weaken the keyring of a real network
/// by accident.
pub fn kdf_for(server: &crate::client::ServerUrl) -> Result<Cost, AdminError> {
    match std::env::var(FAST_KDF_ENV).as_deref() {
        Err(std::env::VarError::NotPresent) | Ok("" | "0") => Ok(Cost(KEYRING_KDF)),
        Ok("1") if server.is_loopback() => Ok(Cost(KdfParams::INSECURE_FAST_FOR_TESTS)),
        Ok("1") => Err(AdminError::usage(format!(
            "{FAST_KDF_ENV}=1 is for test networks on this machine only, and {} is not one: unset it",
            server.as_str()
        ))),
        _ => Err(AdminError::usage(format!("{FAST_KDF_ENV} must be 1 (tests only) or unset"))),
    }
}

/// The passphrase of an existing keyring: asked once.
pub fn existing(which: Which, cost: Cost) -> Result<PassphraseKeyStore, AdminError> {
    let passphrase = match from_env(which)? {
        Some(p) => p,
        None => prompt(which, &format!("{}: ", capitalised(which.what())))?,
    };
    Ok(keystore(passphrase, cost))
}

/// A new keyring's passphrase: asked twice, because a typo would lock the network's keys away
/// for good, and refused unless it is strong enough. `context` are words the passphrase must
/// not lean on (the administrator's name, the server's host).
pub fn chosen(which: Which, cost: Cost, context: &[&str]) -> Result<PassphraseKeyStore, AdminError> {
    let passphrase = match from_env(which)? {
        Some(p) => p,
        None => {
            let first = prompt(which, &format!("New {}: ", which.what()))?;
            let second = prompt(which, &format!("New {} again: ", which.what()))?;
            if first != second {
                return Err(AdminError::usage("the two passphrases differ"));
            }
            first
        }
    };
    check_strength(&passphrase, context)
        .map_err(|why| AdminError::WeakPassphrase { what: which.what(), why })?;
    Ok(keystore(passphrase, cost))
}

/// Why `passphrase` is too weak for a keyring, if it is.
pub fn check_strength(passphrase: &str, context: &[&str]) -> Result<(), String> {
    let chars = passphrase.chars().count();
    if chars < MIN_CHARS {
        return Err(format!("it has {chars} characters; at least {MIN_CHARS} are needed"));
    }
    let mut inputs = vec!["eenplan", "beheer", "admin", "keyring", "wachtwoord", "passphrase"];
    inputs.extend_from_slice(context);
    let estimate = zxcvbn::zxcvbn(passphrase, &inputs);
    if estimate.guesses_log10() >= MIN_GUESSES_LOG10 {
        return Ok(());
    }
    let mut why = format!(
        "it would be guessed in about 10^{:.0} tries; at least 10^{MIN_GUESSES_LOG10:.0} are needed",
        estimate.guesses_log10()
    );
    if let Some(warning) = estimate.feedback().and_then(|f| f.warning()) {
        why.push_str(&format!(" ({warning})"));
    }
    Err(why)
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

fn keystore(mut passphrase: Secret, cost: Cost) -> PassphraseKeyStore {
    // Moved out rather than copied, so that exactly one copy exists and the keystore wipes it.
    let passphrase = std::mem::take(&mut *passphrase);
    PassphraseKeyStore::with_params(passphrase, cost.0)
}

fn from_env(which: Which) -> Result<Option<Secret>, AdminError> {
    match std::env::var(which.env()) {
        Ok(p) => Ok(Some(Zeroizing::new(p))),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(AdminError::usage(format!("{} is not valid UTF-8", which.env())))
        }
    }
}

fn prompt(which: Which, text: &str) -> Result<Secret, AdminError> {
    rpassword::prompt_password(text).map(Zeroizing::new).map_err(|source| AdminError::Prompt {
        what: which.what(),
        env: which.env(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyring_below_the_cost_is_upgraded_and_one_at_it_is_not() {
        assert!(Cost(KEYRING_KDF).upgrades(KdfParams::RECOMMENDED));
        assert!(Cost(KEYRING_KDF).upgrades(KdfParams::INSECURE_FAST_FOR_TESTS));
        assert!(!Cost(KEYRING_KDF).upgrades(KEYRING_KDF));
        assert!(!Cost(KdfParams::INSECURE_FAST_FOR_TESTS).upgrades(KEYRING_KDF));
    }

    #[test]
    fn short_or_guessable_passphrases_are_refused_with_the_reason() {
        for weak in [
            "",
            "geheim",
            "Welkom01!",
            "wachtwoord123",
            "beheerder2025",
            "aaaaaaaaaaaaaaaa",
            "Fatima2025!!",
            "FatimaBeheer12",
        ] {
            assert!(check_strength(weak, &["Fatima"]).is_err(), "{weak:?}");
        }
        let why = check_strength("geheim", &[]).unwrap_err();
        assert!(why.contains("at least 12"), "{why}");
        let why = check_strength("wachtwoord123456", &[]).unwrap_err();
        assert!(why.contains("10^10"), "{why}");
    }

    #[test]
    fn long_unpredictable_passphrases_are_taken() {
        for strong in ["correct horse battery staple", "oranje fiets onder de brug 7", "Kq7#vR2m!xT9pL"] {
            assert_eq!(check_strength(strong, &[]), Ok(()), "{strong:?}");
        }
    }
}
