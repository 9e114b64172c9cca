//! Where an administrator may act: the one rule, written once, that the server, every device
//! and the administrator's own CLI apply.
//!
//! The root certifies two kinds of administrator. A **network-wide** administrator (an
//! [`AdminBody`] without `organisation`, which is every certificate signed before the field
//! existed) may do everything the root allows. An **organisation** administrator may enrol,
//! approve, re-certify, revoke and wipe only devices of its own organisation, and sign
//! membership acts only about its own organisation's users; the network-wide acts (the
//! sharing policy, organisations, administrators, key epochs) are not theirs.
//!
//! Organisations are compared by their exact name, as the device certificate carries it:
//! that is what every device can check without asking the server.

use super::{AdminBody, DeviceBody};

/// The reach of an administrator's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminScope {
    NetworkWide,
    Organisation(String),
}

impl AdminScope {
    /// The scope `admin`'s certificate gives.
    pub fn of(admin: &AdminBody) -> AdminScope {
        match &admin.organisation {
            None => AdminScope::NetworkWide,
            Some(organisation) => AdminScope::Organisation(organisation.clone()),
        }
    }

    pub fn is_network_wide(&self) -> bool {
        matches!(self, AdminScope::NetworkWide)
    }

    /// Whether this administrator may act on the users and devices of `organisation`.
    pub fn permits_org(&self, organisation: &str) -> bool {
        match self {
            AdminScope::NetworkWide => true,
            AdminScope::Organisation(own) => own == organisation,
        }
    }

    /// Whether this administrator may certify, re-certify, revoke or wipe `device`.
    pub fn permits_device(&self, device: &DeviceBody) -> bool {
        self.permits_org(&device.organisation)
    }

    /// The organisation, for an organisation's administrator.
    pub fn organisation(&self) -> Option<&str> {
        match self {
            AdminScope::NetworkWide => None,
            AdminScope::Organisation(own) => Some(own),
        }
    }
}

impl std::fmt::Display for AdminScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminScope::NetworkWide => f.write_str("network-wide"),
            AdminScope::Organisation(own) => write!(f, "organisation {own}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::certificate::{Certificate, CertificateError, device_id_of};

    const POLITIE: &str = "Politie Zaanstreek";
    const GEMEENTE: &str = "Gemeente Zaanstad";

    fn admin(organisation: Option<&str>) -> AdminBody {
        AdminBody {
            admin_public: [2; 32],
            name: "beheer".into(),
            issued_at_ms: 0,
            organisation: organisation.map(str::to_owned),
        }
    }

    fn device(organisation: &str, issuer: &SigningKey) -> DeviceBody {
        let key = SigningKey::from_bytes(&[3; 32]);
        DeviceBody {
            device_id: device_id_of(key.verifying_key().as_bytes()),
            user_id: 7,
            user_name: "Wim".into(),
            organisation: organisation.into(),
            role: "politie".into(),
            signing_public: key.verifying_key().to_bytes(),
            agreement_public: vec![9; 32],
            valid_from_ms: 0,
            valid_until_ms: 1_000,
            issuer: issuer.verifying_key().to_bytes(),
        }
    }

    #[test]
    fn a_network_wide_administrator_may_act_for_every_organisation() {
        let scope = admin(None).scope();
        assert!(scope.is_network_wide());
        assert!(scope.permits_org(POLITIE) && scope.permits_org(GEMEENTE));
        assert_eq!(scope.organisation(), None);
    }

    #[test]
    fn an_organisations_administrator_may_act_only_for_its_own_organisation() {
        let scope = admin(Some(POLITIE)).scope();
        assert!(!scope.is_network_wide());
        assert!(scope.permits_org(POLITIE));
        assert!(!scope.permits_org(GEMEENTE));
        // Exact names: a look-alike is another organisation.
        assert!(!scope.permits_org("politie zaanstreek"));
        assert!(!scope.permits_org("Politie Zaanstreek "));
        let key = SigningKey::from_bytes(&[2; 32]);
        assert!(scope.permits_device(&device(POLITIE, &key)));
        assert!(!scope.permits_device(&device(GEMEENTE, &key)));
    }

    #[test]
    fn a_device_certificate_from_another_organisations_administrator_does_not_verify() {
        let root = SigningKey::from_bytes(&[1; 32]);
        let key = SigningKey::from_bytes(&[2; 32]);
        let admin_certificate = Certificate::sign_admin(
            &AdminBody { admin_public: key.verifying_key().to_bytes(), ..admin(Some(POLITIE)) },
            &root,
        );
        let root_public = root.verifying_key().to_bytes();
        let own = Certificate::sign_device(&device(POLITIE, &key), &key);
        assert!(own.verify_device(&admin_certificate, &root_public, 5).is_ok());
        let other = Certificate::sign_device(&device(GEMEENTE, &key), &key);
        assert_eq!(
            other.verify_device(&admin_certificate, &root_public, 5),
            Err(CertificateError::OutOfScope)
        );
    }

    /// The administrator body as it was encoded before `organisation` existed.
    #[derive(Serialize, Deserialize)]
    struct OldAdminBody {
        admin_public: [u8; 32],
        name: String,
        issued_at_ms: i64,
    }

    #[test]
    fn a_certificate_signed_before_scopes_existed_verifies_as_network_wide() {
        let root = SigningKey::from_bytes(&[1; 32]);
        let old = OldAdminBody { admin_public: [2; 32], name: "beheer".into(), issued_at_ms: 4 };
        let mut body = Vec::new();
        ciborium::into_writer(&old, &mut body).unwrap();
        let certificate = super::super::sign_raw(super::super::ADMIN_LABEL, body, &root);
        let read = certificate.verify_admin(&root.verifying_key().to_bytes()).unwrap();
        assert_eq!(read, admin(None).with_issued_at(4));
        assert!(read.scope().is_network_wide());
        // And a network-wide certificate signed now encodes exactly as the old one did, so
        // older verifiers read it too.
        let new = Certificate::sign_admin(&read, &root);
        assert_eq!(new, certificate);
    }

    impl AdminBody {
        fn with_issued_at(mut self, at: i64) -> AdminBody {
            self.issued_at_ms = at;
            self
        }
    }
}
