//! Enrolment codes and device certificates: the part of enrolment that needs the
//! administrator's keys, kept free of I/O so it can be tested on its own.
//!
//! For every code it issues, this keyring remembers the code's id, its MAC key and the user
//! (with organisation and role) it was issued to. The server's device list does not say which
//! code a device claimed, and must not be trusted to: it could list keys of its own under the
//! code's user. So a pending device is approved only when its `key_mac` verifies under the MAC
//! key of a code this keyring issued, which takes the code's secret to compute (see
//! `eenplan_protocol::api`), and its certificate names the user the keyring issued that code
//! to.

use ed25519_dalek::SigningKey;
use eenplan_protocol::api::{self, DeviceInfo, EnrolmentCode, NewEnrolment, UserInfo};
use eenplan_protocol::certificate::{Certificate, DeviceBody, device_id_of};

use crate::error::AdminError;
use crate::keyring::{IssuedCode, Keyring};

const HOUR_MS: i64 = 60 * 60 * 1000;
/// How long a device certificate is valid: a year, after which the device is approved again.
pub const CERTIFICATE_VALIDITY_MS: i64 = 365 * 24 * HOUR_MS;
/// The server state of a device that claimed a code and waits for its certificate.
pub const PENDING: &str = "pending";

/// Makes a code for `user`, remembers it in the keyring, and returns what the server needs.
pub fn issue(
    keyring: &mut Keyring,
    user: &UserInfo,
    now_ms: i64,
    valid_hours: u32,
) -> Result<(EnrolmentCode, NewEnrolment), AdminError> {
    let code = EnrolmentCode::generate(&keyring.root_public()).ok_or(AdminError::NoRandomness)?;
    let expires_at_ms = now_ms.saturating_add(i64::from(valid_hours) * HOUR_MS);
    let code_id = code.id();
    keyring.issued_codes.push(IssuedCode {
        code_id,
        mac_key: code.mac_key(),
        user_id: user.id,
        user_name: user.name.clone(),
        org: user.org.clone(),
        role: user.role.clone(),
        issued_at_ms: now_ms,
        expires_at_ms,
    });
    let request = NewEnrolment { user_id: user.id, code_id: api::hex(&code_id), expires_at_ms };
    Ok((code, request))
}

/// The issued code a typed code refers to (its index in the keyring).
pub fn find_code(keyring: &Keyring, text: &str) -> Result<usize, AdminError> {
    let code = EnrolmentCode::parse(text).ok_or_else(|| {
        AdminError::usage(format!("{text:?} is not an enrolment code (like ABCD-EFGH-...)"))
    })?;
    if !code.matches_root(&keyring.root_public()) {
        return Err(AdminError::ForeignCode);
    }
    let id = code.id();
    keyring.issued_codes.iter().position(|c| c.code_id == id).ok_or(AdminError::UnknownCode)
}

/// Whether the device's `key_mac` proves that whoever enrolled these keys knew `code`.
pub fn proves_code(code: &IssuedCode, info: &DeviceInfo) -> bool {
    let (Some(signing_public), Some(agreement_public), Some(mac)) =
        (decode::<32>(&info.signing_public), api::unhex(&info.agreement_public), api::unhex(&info.key_mac))
    else {
        return false;
    };
    api::verify_key_mac(&code.mac_key, &signing_public, &agreement_public, &mac)
}

/// The pending device that claimed `code`: the one whose key MAC verifies under the code's MAC
/// key. `None` if none does; [`AdminError::AmbiguousClaim`] if several devices do (a device
/// claims a code once, so only a server that copies a claim can list more).
pub fn claimant<'a>(
    code: &IssuedCode,
    devices: &'a [DeviceInfo],
) -> Result<Option<&'a DeviceInfo>, AdminError> {
    let mut found = devices.iter().filter(|d| d.state == PENDING && proves_code(code, d));
    let first = found.next();
    if let Some(first) = first
        && found.any(|d| d.device_id != first.device_id)
    {
        return Err(AdminError::AmbiguousClaim { user: code.user_name.clone() });
    }
    Ok(first)
}

/// The issued code (its index in the keyring) whose MAC key the device's key MAC verifies
/// under, if any.
pub fn code_of(keyring: &Keyring, info: &DeviceInfo) -> Option<usize> {
    keyring.issued_codes.iter().position(|code| proves_code(code, info))
}

/// The certificate body for a device the server lists as the claimant of `code`, valid from
/// now for a year. The user, organisation and role are the keyring's record of whom the code
/// was issued to; a server listing that disagrees is refused.
pub fn device_body(
    info: &DeviceInfo,
    code: &IssuedCode,
    issuer: [u8; 32],
    now_ms: i64,
) -> Result<DeviceBody, AdminError> {
    let bad = |reason| AdminError::BadDevice { device: info.device_id.clone(), reason };
    let device_id: [u8; 16] =
        decode(&info.device_id).ok_or_else(|| bad("the device id is not 32 hexadecimal characters"))?;
    let signing_public: [u8; 32] = decode(&info.signing_public)
        .ok_or_else(|| bad("the signing key is not 64 hexadecimal characters"))?;
    // Only hybrid (X-Wing) agreement keys are certified: a key envelope sealed to an
    // X25519-only key could be opened by a future quantum computer from a recording.
    let agreement_public = api::unhex(&info.agreement_public)
        .filter(|k| k.len() == eenplan_protocol::envelope::XWING_PUBLIC_LEN)
        .ok_or_else(|| bad("the agreement key is not an X-Wing public key (1,216 bytes)"))?;
    // The server chose the id; the key decides it. A mismatch means the server (or a bug)
    // tries to bind one device's key to another device's id.
    if device_id_of(&signing_public) != device_id {
        return Err(bad("the device id does not belong to its signing key; refusing to certify"));
    }
    if !proves_code(code, info) {
        return Err(bad("its key MAC does not prove it knew the enrolment code; refusing to certify"));
    }
    if (info.user_id, info.user_name.as_str(), info.org.as_str(), info.role.as_str())
        != (code.user_id, code.user_name.as_str(), code.org.as_str(), code.role.as_str())
    {
        return Err(bad(
            "the server lists it for another user, organisation or role than its enrolment code was \
             issued to; refusing to certify",
        ));
    }
    Ok(DeviceBody {
        device_id,
        user_id: code.user_id,
        user_name: code.user_name.clone(),
        organisation: code.org.clone(),
        role: code.role.clone(),
        signing_public,
        agreement_public,
        valid_from_ms: now_ms,
        valid_until_ms: now_ms.saturating_add(CERTIFICATE_VALIDITY_MS),
        issuer,
    })
}

/// Signs the certificate for `info`, the claimant of `code`, with the administrator's key.
pub fn certify(
    info: &DeviceInfo,
    code: &IssuedCode,
    admin: &SigningKey,
    now_ms: i64,
) -> Result<(DeviceBody, Certificate), AdminError> {
    let body = device_body(info, code, admin.verifying_key().to_bytes(), now_ms)?;
    let certificate = Certificate::sign_device(&body, admin);
    Ok((body, certificate))
}

fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    api::unhex(text)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use eenplan_protocol::certificate::CertificateError;

    use super::*;

    const NOW: i64 = 1_750_000_000_000;

    fn user() -> UserInfo {
        UserInfo { id: 7, org: "Wijkteam Noord".into(), name: "Fatima".into(), role: "wijkteam".into() }
    }

    /// A pending device as the server lists it after it claimed a code whose MAC key is
    /// `mac_key`.
    fn device(seed: u8, user_id: i64, mac_key: &[u8; 32]) -> DeviceInfo {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let public = key.verifying_key().to_bytes();
        DeviceInfo {
            device_id: api::hex(&device_id_of(&public)),
            user_id,
            user_name: "Fatima".into(),
            org: "Wijkteam Noord".into(),
            role: "wijkteam".into(),
            state: PENDING.into(),
            signing_public: api::hex(&public),
            agreement_public: api::hex(&[seed; eenplan_protocol::envelope::XWING_PUBLIC_LEN]),
            key_mac: api::hex(&api::key_mac(
                mac_key,
                &public,
                &[seed; eenplan_protocol::envelope::XWING_PUBLIC_LEN],
            )),
            created_at_ms: NOW,
            label: String::new(),
            platform: None,
            label_signature: String::new(),
            enrolled_at_ms: NOW,
            last_seen_ms: None,
            revoked_at_ms: None,
            wiped_at_ms: None,
            certificate: String::new(),
            admin_certificate: String::new(),
        }
    }

    fn keyring() -> Keyring {
        Keyring::generate("https://eenplan.example".into(), "Beheer".into(), NOW)
    }

    /// A keyring with one code issued to [`user`], and the code.
    fn issued() -> (Keyring, EnrolmentCode) {
        let mut keyring = keyring();
        let (code, _) = issue(&mut keyring, &user(), NOW, 24).unwrap();
        (keyring, code)
    }

    #[test]
    fn an_issued_code_is_remembered_by_id_and_sent_as_its_id() {
        let mut keyring = keyring();
        let (code, request) = issue(&mut keyring, &user(), NOW, 24).unwrap();
        assert!(code.matches_root(&keyring.root_public()));
        assert_eq!(request.user_id, 7);
        assert_eq!(request.code_id, api::hex(&code.id()));
        assert_eq!(request.expires_at_ms, NOW + 24 * HOUR_MS);
        assert!(!request.code_id.contains(&api::hex(&code.as_bytes()[..10])));
        let issued = &keyring.issued_codes[0];
        assert_eq!((issued.user_id, issued.issued_at_ms, issued.expires_at_ms), (7, NOW, NOW + 24 * HOUR_MS));
        assert_eq!((issued.org.as_str(), issued.role.as_str()), ("Wijkteam Noord", "wijkteam"));
        assert_eq!(issued.code_id, code.id());
        assert_eq!(issued.mac_key, code.mac_key());
        // Read back in any case and grouping, the code is found again.
        assert_eq!(find_code(&keyring, &code.to_string().to_lowercase()).unwrap(), 0);
        assert_eq!(find_code(&keyring, &code.to_string().replace('-', " ")).unwrap(), 0);
    }

    #[test]
    fn codes_from_elsewhere_are_told_apart() {
        let mut keyring = keyring();
        issue(&mut keyring, &user(), NOW, 24).unwrap();
        let never_issued = EnrolmentCode::generate(&keyring.root_public()).unwrap();
        assert!(matches!(find_code(&keyring, &never_issued.to_string()), Err(AdminError::UnknownCode)));
        let other_network = EnrolmentCode::generate(&[9; 32]).unwrap();
        assert!(matches!(find_code(&keyring, &other_network.to_string()), Err(AdminError::ForeignCode)));
        assert!(matches!(find_code(&keyring, "not a code"), Err(AdminError::Usage(_))));
    }

    #[test]
    fn a_code_is_claimed_by_the_pending_device_whose_mac_verifies() {
        let (keyring, code) = issued();
        let other_code = EnrolmentCode::generate(&keyring.root_public()).unwrap();
        let issued = &keyring.issued_codes[0];
        let claimed = device(1, 7, &code.mac_key());
        let other_claim = device(2, 7, &other_code.mac_key());
        let mut approved = device(3, 7, &code.mac_key());
        approved.state = "active".into();
        let devices = [other_claim.clone(), approved, claimed.clone()];
        assert_eq!(claimant(issued, &devices).unwrap(), Some(&claimed));
        assert_eq!(code_of(&keyring, &claimed), Some(0));
        assert_eq!(code_of(&keyring, &other_claim), None);
        assert_eq!(claimant(issued, &[other_claim]).unwrap(), None);
        // Listing the same device twice is no second claim; two devices are.
        assert_eq!(claimant(issued, &[claimed.clone(), claimed.clone()]).unwrap(), Some(&claimed));
        let twin = device(4, 7, &code.mac_key());
        assert!(matches!(claimant(issued, &[claimed, twin]), Err(AdminError::AmbiguousClaim { .. })));
    }

    #[test]
    fn a_pending_device_the_server_made_up_is_not_approved() {
        let (keyring, code) = issued();
        let issued = &keyring.issued_codes[0];
        // The server knows the code's id, the user and every public key, but not the MAC key.
        let mut made_up = device(1, 7, &code.id());
        assert_eq!(claimant(issued, std::slice::from_ref(&made_up)).unwrap(), None);
        assert_eq!(code_of(&keyring, &made_up), None);
        assert!(matches!(certify(&made_up, issued, &keyring.admin, NOW), Err(AdminError::BadDevice { .. })));
        // Nor does a real claim's MAC carry over to other keys, or an empty or garbled MAC pass.
        let real = device(2, 7, &code.mac_key());
        made_up.key_mac = real.key_mac.clone();
        assert!(!proves_code(issued, &made_up));
        for mac in ["", "zz", &real.key_mac[..62]] {
            let mut garbled = real.clone();
            garbled.key_mac = mac.into();
            assert!(!proves_code(issued, &garbled), "{mac:?}");
            assert!(certify(&garbled, issued, &keyring.admin, NOW).is_err());
        }
        // A device with new agreement keys under a real claim's signing key is not it either.
        let mut swapped = real.clone();
        swapped.agreement_public = api::hex(&[9; 32]);
        assert!(!proves_code(issued, &swapped));
        assert!(proves_code(issued, &real));
    }

    #[test]
    fn the_certificate_names_the_user_the_code_was_issued_to_or_is_refused() {
        let (keyring, code) = issued();
        let issued = &keyring.issued_codes[0];
        let good = device(1, 7, &code.mac_key());
        assert!(certify(&good, issued, &keyring.admin, NOW).is_ok());
        let mut cases = Vec::new();
        for field in ["id", "name", "org", "role"] {
            let mut info = good.clone();
            match field {
                "id" => info.user_id = 8,
                "name" => info.user_name = "Jan".into(),
                "org" => info.org = "Elders".into(),
                _ => info.role = "beheer".into(),
            }
            cases.push(info);
        }
        for info in cases {
            assert!(
                matches!(certify(&info, issued, &keyring.admin, NOW), Err(AdminError::BadDevice { .. })),
                "{info:?}"
            );
        }
    }

    #[test]
    fn a_certificate_built_for_a_pending_device_verifies_against_the_root() {
        let (keyring, code) = issued();
        let info = device(1, 7, &code.mac_key());
        let (body, certificate) = certify(&info, &keyring.issued_codes[0], &keyring.admin, NOW).unwrap();
        let decoded = Certificate::from_bytes(&certificate.to_bytes()).unwrap();
        let verified =
            decoded.verify_device(&keyring.admin_certificate, &keyring.root_public(), NOW + 1).unwrap();
        assert_eq!(verified, body);
        assert_eq!(api::hex(&verified.device_id), info.device_id);
        assert_eq!((verified.user_id, verified.user_name.as_str()), (7, "Fatima"));
        assert_eq!((verified.organisation.as_str(), verified.role.as_str()), ("Wijkteam Noord", "wijkteam"));
        assert_eq!(api::hex(&verified.signing_public), info.signing_public);
        assert_eq!(api::hex(&verified.agreement_public), info.agreement_public);
        assert_eq!(verified.issuer, keyring.admin_public());
        assert_eq!(verified.valid_until_ms - verified.valid_from_ms, CERTIFICATE_VALIDITY_MS);
        assert_eq!(
            decoded.verify_device(
                &keyring.admin_certificate,
                &keyring.root_public(),
                NOW + CERTIFICATE_VALIDITY_MS + 1
            ),
            Err(CertificateError::Expired)
        );
        // Another network's root does not accept it.
        let other = Keyring::generate("https://x.example".into(), "Ander".into(), NOW);
        assert!(decoded.verify_device(&keyring.admin_certificate, &other.root_public(), NOW + 1).is_err());
    }

    #[test]
    fn a_device_whose_id_does_not_match_its_key_is_not_certified() {
        let (keyring, code) = issued();
        let mut info = device(1, 7, &code.mac_key());
        info.device_id = device(2, 7, &code.mac_key()).device_id;
        assert!(matches!(
            certify(&info, &keyring.issued_codes[0], &keyring.admin, NOW),
            Err(AdminError::BadDevice { .. })
        ));
    }

    #[test]
    fn malformed_keys_from_the_server_are_refused() {
        let (keyring, code) = issued();
        let good = device(1, 7, &code.mac_key());
        let mut cases = Vec::new();
        for (field, value) in [("id", "zz"), ("signing", "abcd"), ("agreement", "00"), ("agreement", "xyz")] {
            let mut info = good.clone();
            match field {
                "id" => info.device_id = value.into(),
                "signing" => info.signing_public = value.into(),
                _ => info.agreement_public = value.into(),
            }
            cases.push(info);
        }
        for info in cases {
            assert!(
                matches!(
                    certify(&info, &keyring.issued_codes[0], &keyring.admin, NOW),
                    Err(AdminError::BadDevice { .. })
                ),
                "{info:?}"
            );
        }
    }
}
