//! What a device calls itself ("Wim's Android") and which platform it runs on.
//!
//! A device reports its name at enrolment ([`crate::api::EnrolRequest::name`]) and at each
//! session ([`crate::api::SessionRequest::name`]), signed with its own key over
//! [`name_message`]. The server checks the signature and keeps the name and the signature;
//! the administrator's CLI checks the signature again against the device's root-certified key
//! before it shows a name or finds a device by it. So a server cannot move "Wim's Android"
//! onto another device and have the administrator revoke the wrong phone.

use serde::{Deserialize, Serialize};

use crate::api::{hex, unhex};

/// The most characters (Unicode scalar values) a device name has.
pub const MAX_DEVICE_LABEL_CHARS: usize = 64;

/// The platform a device runs on, as the device reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Android,
    Ios,
    Desktop,
    Other,
}

impl Platform {
    pub const ALL: [Platform; 4] = [Platform::Android, Platform::Ios, Platform::Desktop, Platform::Other];

    /// The code the wire and the signature carry.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Android => "android",
            Platform::Ios => "ios",
            Platform::Desktop => "desktop",
            Platform::Other => "other",
        }
    }

    pub fn parse(text: &str) -> Option<Platform> {
        Platform::ALL.into_iter().find(|p| p.as_str() == text)
    }

    /// The name people read (Dutch).
    pub fn label(self) -> &'static str {
        match self {
            Platform::Android => "Android",
            Platform::Ios => "iOS",
            Platform::Desktop => "computer",
            Platform::Other => "anders",
        }
    }
}

/// Why a text is not a device name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("de apparaatnaam is leeg")]
    Empty,
    #[error("de apparaatnaam is {chars} tekens lang; hooguit {MAX_DEVICE_LABEL_CHARS} mag")]
    TooLong { chars: usize },
    #[error("de apparaatnaam bevat een teken dat niet te zien is (U+{code:04X}, teken {position})")]
    Unprintable { code: u32, position: usize },
    #[error("de apparaatnaam begint of eindigt met een spatie")]
    OuterSpace,
}

/// A device name: 1–64 printable characters, no control or invisible formatting characters
/// (which could make two names look alike or reverse how a name reads), no spaces around it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceLabel(String);

impl DeviceLabel {
    pub fn parse(text: &str) -> Result<DeviceLabel, LabelError> {
        if text.trim().is_empty() {
            return Err(LabelError::Empty);
        }
        let chars = text.chars().count();
        if chars > MAX_DEVICE_LABEL_CHARS {
            return Err(LabelError::TooLong { chars });
        }
        if let Some((index, c)) = text.chars().enumerate().find(|(_, c)| !printable(*c)) {
            return Err(LabelError::Unprintable { code: u32::from(c), position: index + 1 });
        }
        if text.trim() != text {
            return Err(LabelError::OuterSpace);
        }
        Ok(DeviceLabel(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DeviceLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Control characters, and the invisible format characters that change how text around them
/// displays (bidirectional overrides and isolates, zero-width characters, the byte-order mark),
/// plus separators other than the plain space.
fn printable(c: char) -> bool {
    !(c.is_control()
        || matches!(c, '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{FEFF}')
        || ('\u{200B}'..='\u{200F}').contains(&c)
        || ('\u{2028}'..='\u{202E}').contains(&c)
        || ('\u{2060}'..='\u{206F}').contains(&c)
        || ('\u{FFF9}'..='\u{FFFB}').contains(&c)
        || (c.is_whitespace() && c != ' '))
}

/// What a device signs to say what it is called: bound to its id, so a name signed by one
/// device never counts for another.
pub fn name_message(device_id: &[u8; 16], platform: Platform, label: &DeviceLabel) -> Vec<u8> {
    [
        b"eenplan/device-name/v1\n".as_slice(),
        device_id,
        platform.as_str().as_bytes(),
        b"\n",
        label.as_str().as_bytes(),
    ]
    .concat()
}

/// A device's name and platform with its signature (hex), as the wire carries them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedDeviceName {
    pub label: String,
    pub platform: Platform,
    /// Hex Ed25519 signature of the device over [`name_message`].
    pub signature: String,
}

/// Why a signed device name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error(transparent)]
    Label(#[from] LabelError),
    #[error("de naam is niet door het apparaat zelf ondertekend")]
    BadSignature,
}

impl SignedDeviceName {
    /// The name as device `device_id` states it; `sign` signs with its key.
    pub fn sign(
        device_id: &[u8; 16],
        label: &DeviceLabel,
        platform: Platform,
        sign: impl FnOnce(&[u8]) -> [u8; 64],
    ) -> SignedDeviceName {
        let signature = sign(&name_message(device_id, platform, label));
        SignedDeviceName { label: label.as_str().to_owned(), platform, signature: hex(&signature) }
    }

    /// The name, if it is a valid name signed by the key `signing_public` of `device_id`.
    pub fn verify(&self, device_id: &[u8; 16], signing_public: &[u8; 32]) -> Result<DeviceLabel, NameError> {
        let label = DeviceLabel::parse(&self.label)?;
        let signature: [u8; 64] =
            unhex(&self.signature).and_then(|s| s.try_into().ok()).ok_or(NameError::BadSignature)?;
        let key =
            ed25519_dalek::VerifyingKey::from_bytes(signing_public).map_err(|_| NameError::BadSignature)?;
        key.verify_strict(
            &name_message(device_id, self.platform, &label),
            &ed25519_dalek::Signature::from_bytes(&signature),
        )
        .map_err(|_| NameError::BadSignature)?;
        Ok(label)
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    #[test]
    fn ordinary_names_are_accepted_as_written() {
        for text in ["Wim's Android", "iPhone van Fatima 🙂", "x", &"é".repeat(64), "Laptop (werk) — 2"]
        {
            assert_eq!(DeviceLabel::parse(text).unwrap().as_str(), text);
        }
    }

    #[test]
    fn empty_long_and_unprintable_names_are_refused() {
        assert_eq!(DeviceLabel::parse(""), Err(LabelError::Empty));
        assert_eq!(DeviceLabel::parse("   "), Err(LabelError::Empty));
        assert_eq!(DeviceLabel::parse(&"a".repeat(65)), Err(LabelError::TooLong { chars: 65 }));
        for text in ["Wim\n", "a\tb", "a\u{7f}", "a\u{85}b", "\u{202E}diordnA", "Wim\u{200B}", "a\u{2028}b"] {
            assert!(matches!(DeviceLabel::parse(text), Err(LabelError::Unprintable { .. })), "{text:?}");
        }
        assert_eq!(DeviceLabel::parse(" Wim"), Err(LabelError::OuterSpace));
    }

    #[test]
    fn a_signed_name_verifies_only_for_its_own_device_and_words() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = key.verifying_key().to_bytes();
        let label = DeviceLabel::parse("Wim's Android").unwrap();
        let name = SignedDeviceName::sign(&[1; 16], &label, Platform::Android, |m| key.sign(m).to_bytes());
        assert_eq!(name.verify(&[1; 16], &public), Ok(label));
        assert_eq!(name.verify(&[2; 16], &public), Err(NameError::BadSignature));
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key().to_bytes();
        assert_eq!(name.verify(&[1; 16], &other), Err(NameError::BadSignature));
        let renamed = SignedDeviceName { label: "Jan's Android".into(), ..name.clone() };
        assert_eq!(renamed.verify(&[1; 16], &public), Err(NameError::BadSignature));
        let moved = SignedDeviceName { platform: Platform::Ios, ..name.clone() };
        assert_eq!(moved.verify(&[1; 16], &public), Err(NameError::BadSignature));
        let bad = SignedDeviceName { label: "Wim\n".into(), ..name };
        assert!(matches!(bad.verify(&[1; 16], &public), Err(NameError::Label(_))));
    }

    #[test]
    fn platforms_read_back_from_their_codes() {
        for platform in Platform::ALL {
            assert_eq!(Platform::parse(platform.as_str()), Some(platform));
        }
        assert_eq!(Platform::parse("windows"), None);
    }
}
