//! What the device calls itself ("Wim's Android") and its platform: kept in the sealed store,
//! reported signed at enrolment and at every session ([`eenplan_protocol::device_name`]), so
//! the administrator can find the phone by the name its owner knows it by.

use eenplan_protocol::device_name::{DeviceLabel, Platform, SignedDeviceName};
use serde::{Deserialize, Serialize};

use super::{cbor, from_cbor};
use crate::device::Device;
use crate::error::CoreError;

const STATE_NAME: &str = "device_name";

/// The name and platform as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredName {
    label: String,
    platform: Platform,
}

/// A device name checked as the server will check it.
pub fn parse_label(text: &str) -> Result<DeviceLabel, CoreError> {
    DeviceLabel::parse(text).map_err(CoreError::InvalidDeviceLabel)
}

impl Device {
    /// What this device calls itself and its platform, if it was named.
    pub fn device_name(&self) -> Result<Option<(DeviceLabel, Platform)>, CoreError> {
        let Some(bytes) = self.store().sync_state(STATE_NAME)? else { return Ok(None) };
        let stored: StoredName = from_cbor(&bytes, "device name")?;
        let label = DeviceLabel::parse(&stored.label)
            .map_err(|_| crate::store::StoreError::Corrupt("the stored device name is not valid".into()))?;
        Ok(Some((label, stored.platform)))
    }

    /// Gives the device a new name (its platform stays). The server hears it at the next
    /// session, which the next sync opens.
    pub fn rename(&mut self, name: &str) -> Result<(), CoreError> {
        let label = parse_label(name)?;
        let platform = self.device_name()?.map_or(Platform::Other, |(_, platform)| platform);
        self.set_device_name(&label, platform)?;
        // The session held was opened under the old name.
        self.forget_session();
        Ok(())
    }

    pub(super) fn set_device_name(
        &mut self,
        label: &DeviceLabel,
        platform: Platform,
    ) -> Result<(), CoreError> {
        let stored = StoredName { label: label.as_str().to_owned(), platform };
        Ok(self.store_mut().write(|w| w.put_state(STATE_NAME, &cbor(&stored)))?)
    }

    /// The stored name, signed by this device's key, for an enrolment or a session.
    pub(super) fn signed_name(&self) -> Result<Option<SignedDeviceName>, CoreError> {
        let id = *self.device_id().as_bytes();
        Ok(self.device_name()?.map(|(label, platform)| {
            SignedDeviceName::sign(&id, &label, platform, |message| self.identity().sign(message).to_bytes())
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use eenplan_protocol::device_name::LabelError;

    use super::*;
    use crate::keystore::{KdfParams, PassphraseKeyStore};

    fn device(dir: &std::path::Path) -> Device {
        Device::init(dir, &PassphraseKeyStore::with_params("geheim", KdfParams::INSECURE_FAST_FOR_TESTS))
            .unwrap()
    }

    const CODE: &str = "AAAAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn a_bad_name_is_refused_before_anything_is_stored_or_sent() {
        let dir = tempfile::tempdir().unwrap();
        let mut device = device(dir.path());
        // The server's address leads nowhere: a name refused here never tried to reach it.
        let nowhere = "http://127.0.0.1:9";
        let long = "a".repeat(65);
        for (name, expected) in [
            ("", LabelError::Empty),
            (" ", LabelError::Empty),
            (long.as_str(), LabelError::TooLong { chars: 65 }),
            ("Wim\u{7}", LabelError::Unprintable { code: 7, position: 4 }),
        ] {
            match device.enrol(nowhere, CODE, name, Platform::Android) {
                Err(CoreError::InvalidDeviceLabel(error)) => assert_eq!(error, expected, "{name:?}"),
                other => panic!("{name:?}: {other:?}"),
            }
            assert!(matches!(device.rename(name), Err(CoreError::InvalidDeviceLabel(_))), "{name:?}");
        }
        assert_eq!(device.device_name().unwrap(), None);
    }

    #[test]
    fn a_rename_keeps_the_platform_and_signs_the_new_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut device = device(dir.path());
        device.set_device_name(&parse_label("Wim's Android").unwrap(), Platform::Android).unwrap();
        device.rename("Werktelefoon Wim").unwrap();
        let (label, platform) = device.device_name().unwrap().unwrap();
        assert_eq!((label.as_str(), platform), ("Werktelefoon Wim", Platform::Android));
        let signed = device.signed_name().unwrap().unwrap();
        let public = device.identity().signing_public().to_bytes();
        assert_eq!(signed.verify(device.device_id().as_bytes(), &public).unwrap(), label);
    }
}
