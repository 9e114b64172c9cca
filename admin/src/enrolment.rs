//! Enrolment codes and device certificates: the part of enrolment that needs the
//! administrator's keys, kept free of I/O so it can be tested on its own.
//!
//! The server's device list does not say which code a device claimed (it stores only code
//! hashes and never needs to tell them apart), so this keyring remembers, for every code it
//! issued, the hash, the user and the time. `device approve --code` then approves the pending
//! devices of that user that enrolled while the code was valid.

use ed25519_dalek::SigningKey;
use eenplan_protocol::api::{self, ADMIN_CLOCK_SKEW_MS, DeviceInfo, EnrolmentCode, NewEnrolment, UserInfo};
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
    let code_hash = code.hash();
    keyring.issued_codes.push(IssuedCode {
        code_hash,
        user_id: user.id,
        user_name: user.name.clone(),
        issued_at_ms: now_ms,
        expires_at_ms,
    });
    let request = NewEnrolment { user_id: user.id, code_hash: api::hex(&code_hash), expires_at_ms };
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
    let hash = code.hash();
    keyring.issued_codes.iter().position(|c| c.code_hash == hash).ok_or(AdminError::UnknownCode)
}

/// The pending devices that may have claimed `code`: its user's, enrolled while it was valid.
/// Server and administrator clocks may differ by up to the skew the server tolerates for
/// admin requests, so the window is widened by that much.
pub fn claimants<'a>(code: &IssuedCode, devices: &'a [DeviceInfo]) -> Vec<&'a DeviceInfo> {
    let from = code.issued_at_ms.saturating_sub(ADMIN_CLOCK_SKEW_MS);
    let until = code.expires_at_ms.saturating_add(ADMIN_CLOCK_SKEW_MS);
    devices
        .iter()
        .filter(|d| d.state == PENDING && d.user_id == code.user_id)
        .filter(|d| (from..=until).contains(&d.created_at_ms))
        .collect()
}

/// The certificate body for a device the server lists, valid from now for a year.
pub fn device_body(info: &DeviceInfo, issuer: [u8; 32], now_ms: i64) -> Result<DeviceBody, AdminError> {
    let bad = |reason| AdminError::BadDevice { device: info.device_id.clone(), reason };
    let device_id: [u8; 16] =
        decode(&info.device_id).ok_or_else(|| bad("the device id is not 32 hexadecimal characters"))?;
    let signing_public: [u8; 32] = decode(&info.signing_public)
        .ok_or_else(|| bad("the signing key is not 64 hexadecimal characters"))?;
    // Devices have X25519 agreement keys (envelope suite 1); a later suite brings its own
    // length and this check with it.
    let agreement_public = api::unhex(&info.agreement_public)
        .filter(|k| k.len() == 32)
        .ok_or_else(|| bad("the agreement key is not 64 hexadecimal characters"))?;
    // The server chose the id; the key decides it. A mismatch means the server (or a bug)
    // tries to bind one device's key to another device's id.
    if device_id_of(&signing_public) != device_id {
        return Err(bad("the device id does not belong to its signing key; refusing to certify"));
    }
    Ok(DeviceBody {
        device_id,
        user_id: info.user_id,
        user_name: info.user_name.clone(),
        organisation: info.org.clone(),
        role: info.role.clone(),
        signing_public,
        agreement_public,
        valid_from_ms: now_ms,
        valid_until_ms: now_ms.saturating_add(CERTIFICATE_VALIDITY_MS),
        issuer,
    })
}

/// Signs the certificate for `info` with the administrator's key.
pub fn certify(
    info: &DeviceInfo,
    admin: &SigningKey,
    now_ms: i64,
) -> Result<(DeviceBody, Certificate), AdminError> {
    let body = device_body(info, admin.verifying_key().to_bytes(), now_ms)?;
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

    fn device(seed: u8, user_id: i64, created_at_ms: i64) -> DeviceInfo {
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
            agreement_public: api::hex(&[seed; 32]),
            created_at_ms,
        }
    }

    fn keyring() -> Keyring {
        Keyring::generate("https://eenplan.example".into(), "Beheer".into(), NOW)
    }

    #[test]
    fn an_issued_code_is_remembered_by_hash_and_sent_as_its_hash() {
        let mut keyring = keyring();
        let (code, request) = issue(&mut keyring, &user(), NOW, 24).unwrap();
        assert!(code.matches_root(&keyring.root_public()));
        assert_eq!(request.user_id, 7);
        assert_eq!(request.code_hash, api::hex(&code.hash()));
        assert_eq!(request.expires_at_ms, NOW + 24 * HOUR_MS);
        assert!(!request.code_hash.contains(&api::hex(code.as_bytes())));
        let issued = &keyring.issued_codes[0];
        assert_eq!((issued.user_id, issued.issued_at_ms, issued.expires_at_ms), (7, NOW, NOW + 24 * HOUR_MS));
        assert_eq!(issued.code_hash, code.hash());
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
    fn a_code_is_claimed_by_its_users_pending_devices_from_while_it_was_valid() {
        let mut keyring = keyring();
        issue(&mut keyring, &user(), NOW, 24).unwrap();
        let code = &keyring.issued_codes[0];
        let claimed = device(1, 7, NOW + 60_000);
        let slightly_skewed = device(2, 7, NOW - 60_000);
        let older = device(3, 7, NOW - ADMIN_CLOCK_SKEW_MS - 1);
        let other_user = device(4, 8, NOW + 60_000);
        let too_late = device(5, 7, NOW + 24 * HOUR_MS + ADMIN_CLOCK_SKEW_MS + 1);
        let mut approved = device(6, 7, NOW + 60_000);
        approved.state = "approved".into();
        let devices = [claimed.clone(), slightly_skewed.clone(), older, other_user, too_late, approved];
        let found: Vec<&DeviceInfo> = claimants(code, &devices);
        assert_eq!(found, vec![&claimed, &slightly_skewed]);
    }

    #[test]
    fn a_certificate_built_for_a_pending_device_verifies_against_the_root() {
        let keyring = keyring();
        let info = device(1, 7, NOW);
        let (body, certificate) = certify(&info, &keyring.admin, NOW).unwrap();
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
        let keyring = keyring();
        let mut info = device(1, 7, NOW);
        info.device_id = device(2, 7, NOW).device_id;
        assert!(matches!(certify(&info, &keyring.admin, NOW), Err(AdminError::BadDevice { .. })));
    }

    #[test]
    fn malformed_keys_from_the_server_are_refused() {
        let keyring = keyring();
        let good = device(1, 7, NOW);
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
                matches!(certify(&info, &keyring.admin, NOW), Err(AdminError::BadDevice { .. })),
                "{info:?}"
            );
        }
    }
}
