//! The administrator's side of the signed revocation list (`eenplan_protocol::revocation`).
//!
//! Before anything is sealed or revoked, the keyring takes in the server's newest list: it
//! must verify against the root, be no older than the newest this keyring saw, and keep every
//! revocation a list already confirmed (see [`Trust::reconcile`]). Revocations this keyring
//! made that the list still lacks (recorded before the server heard of them, so a failure in
//! between loses none) go into the next version, which this administrator signs and uploads.
//! Two administrators racing for the same version: the loser fetches the winner's and tries
//! again.

use eenplan_protocol::api::{self, RevocationListStored};
use eenplan_protocol::revocation::{RevocationList, RevokedDevice};

use crate::client::Client;
use crate::error::AdminError;
use crate::keyring::Keyring;

/// Rounds of fetch, sign, upload before giving up on a server that keeps answering that
/// another version won.
const MAX_ROUNDS: u32 = 4;

/// The server's side: a trait so the logic can be tested without one.
pub trait RevocationServer {
    /// The newest signed list, `None` before the first.
    fn newest(&self) -> Result<Option<Vec<u8>>, AdminError>;
    /// Uploads the next version; `Ok(false)` when another upload took that version first.
    fn upload(&self, signed: Vec<u8>) -> Result<bool, AdminError>;
}

impl RevocationServer for Client<'_> {
    fn newest(&self) -> Result<Option<Vec<u8>>, AdminError> {
        match self.get_bytes(api::PATH_ADMIN_REVOCATIONS) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(AdminError::Server { status: 404, code, .. }) if code == "no_revocation_list" => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn upload(&self, signed: Vec<u8>) -> Result<bool, AdminError> {
        match self.post_cbor(api::PATH_ADMIN_REVOCATIONS, signed) {
            Ok(answer) => {
                serde_json::from_slice::<RevocationListStored>(&answer)
                    .map_err(|e| AdminError::BadResponse(e.to_string()))?;
                Ok(true)
            }
            Err(AdminError::Server { status: 409, code, .. }) if code == "stale_revocation_list" => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Brings the keyring and the server's list up to date with each other; the newest list,
/// which names every revocation this keyring knows of. The caller saves the keyring.
pub fn synchronise(
    server: &dyn RevocationServer,
    keyring: &mut Keyring,
    now_ms: i64,
) -> Result<RevocationList, AdminError> {
    for _ in 0..MAX_ROUNDS {
        let newest = match server.newest()? {
            Some(bytes) => {
                RevocationList::verify(&bytes, &keyring.root_public).map_err(AdminError::ServerRevocations)?
            }
            None => RevocationList::none(),
        };
        let pending: Vec<RevokedDevice> =
            keyring.trust.reconcile(&newest).map_err(AdminError::ServerRevocations)?;
        if pending.is_empty() {
            return Ok(newest);
        }
        let next = newest
            .next(&pending, keyring.admin_certificate.to_bytes(), now_ms)
            .map_err(AdminError::ServerRevocations)?;
        if server.upload(next.sign(&keyring.admin).to_bytes())? {
            keyring.trust.learn(&next);
            return Ok(next);
        }
    }
    Err(AdminError::BadResponse(format!(
        "the server refused {MAX_ROUNDS} revocation lists in a row as not the next version"
    )))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use eenplan_protocol::revocation::RevocationError;
    use eenplan_protocol::wipe::RevocationReason;

    use super::*;

    /// A server that keeps the lists it was given, and can be made to lie.
    #[derive(Default)]
    struct Memory {
        lists: RefCell<Vec<Vec<u8>>>,
        /// Served instead of the newest, when set.
        served: RefCell<Option<Vec<u8>>>,
    }

    impl RevocationServer for Memory {
        fn newest(&self) -> Result<Option<Vec<u8>>, AdminError> {
            Ok(self.served.borrow().clone().or_else(|| self.lists.borrow().last().cloned()))
        }

        fn upload(&self, signed: Vec<u8>) -> Result<bool, AdminError> {
            self.lists.borrow_mut().push(signed);
            Ok(true)
        }
    }

    fn keyring() -> Keyring {
        Keyring::generate("http://127.0.0.1:1".into(), "Beheer".into(), 1)
    }

    /// An entry signed by `keyring`'s administrator.
    fn entry(keyring: &Keyring, device: u8) -> RevokedDevice {
        RevokedDevice::sign([device; 16], 5, RevocationReason::Stolen, "Wijkteam Noord", &keyring.admin)
    }

    #[test]
    fn a_revocation_recorded_in_the_keyring_is_published_in_the_next_signed_list() {
        let server = Memory::default();
        let mut keyring = keyring();
        assert_eq!(synchronise(&server, &mut keyring, 10).unwrap().version, 0);
        keyring.trust.record(entry(&keyring, 3));
        let list = synchronise(&server, &mut keyring, 10).unwrap();
        assert_eq!(list.version, 1);
        assert!(list.is_revoked(&[3; 16]).is_some());
        let uploaded = RevocationList::verify(&server.lists.borrow()[0], &keyring.root_public).unwrap();
        assert_eq!(uploaded, list);
        assert_eq!(keyring.trust.revocations_version, 1);
        assert_eq!(keyring.trust.revoked(&[3; 16]).unwrap().listed_in, 1);
        // Nothing new: nothing uploaded.
        assert_eq!(synchronise(&server, &mut keyring, 11).unwrap().version, 1);
        assert_eq!(server.lists.borrow().len(), 1);
    }

    #[test]
    fn an_older_list_or_one_that_drops_a_revocation_is_refused() {
        let server = Memory::default();
        let mut keyring = keyring();
        keyring.trust.record(entry(&keyring, 3));
        synchronise(&server, &mut keyring, 10).unwrap();
        keyring.trust.record(entry(&keyring, 4));
        synchronise(&server, &mut keyring, 11).unwrap();
        assert_eq!(keyring.trust.revocations_version, 2);

        // The server serves version 1 again.
        *server.served.borrow_mut() = Some(server.lists.borrow()[0].clone());
        assert!(matches!(
            synchronise(&server, &mut keyring, 12),
            Err(AdminError::ServerRevocations(RevocationError::RolledBack { held: 2, given: 1 }))
        ));
        // Or a version 3 without device 4, signed by an administrator of the network (one
        // whose key the server holds a copy of, say).
        let v1 = RevocationList::verify(&server.lists.borrow()[0], &keyring.root_public).unwrap();
        let mut dropped = v1.next(&[entry(&keyring, 5)], keyring.admin_certificate.to_bytes(), 12).unwrap();
        dropped.version = 3;
        *server.served.borrow_mut() = Some(dropped.sign(&keyring.admin).to_bytes());
        assert!(matches!(
            synchronise(&server, &mut keyring, 12),
            Err(AdminError::ServerRevocations(RevocationError::NotAppendOnly { .. }))
        ));
        // Nor is a list signed under another root believed.
        let stranger = Keyring::generate("x".into(), "x".into(), 1);
        let foreign = RevocationList::none().next(&[], stranger.admin_certificate.to_bytes(), 1).unwrap();
        *server.served.borrow_mut() = Some(foreign.sign(&stranger.admin).to_bytes());
        assert!(matches!(
            synchronise(&server, &mut keyring, 12),
            Err(AdminError::ServerRevocations(RevocationError::UntrustedAdministrator))
        ));
        // The keyring still knows both devices.
        assert!(keyring.trust.revoked(&[4; 16]).is_some());
    }

    #[test]
    fn another_administrators_revocations_are_learnt_and_kept() {
        let server = Memory::default();
        let mut other = keyring();
        other.trust.record(entry(&other, 7));
        let mut mine = Keyring { trust: Default::default(), ..keyring_of_same_network(&other) };
        synchronise(&server, &mut other, 10).unwrap();
        let list = synchronise(&server, &mut mine, 11).unwrap();
        assert_eq!(list.version, 1);
        assert!(mine.trust.revoked(&[7; 16]).is_some());
        // A later list that drops it is refused by this keyring too.
        let mut empty = RevocationList::none().next(&[], other.admin_certificate.to_bytes(), 12).unwrap();
        empty.version = 2;
        *server.served.borrow_mut() = Some(empty.sign(&other.admin).to_bytes());
        assert!(synchronise(&server, &mut mine, 12).is_err());
    }

    #[test]
    fn an_entry_under_another_organisation_does_not_stand_in_for_this_keyrings_own() {
        let server = Memory::default();
        let mut other = keyring();
        // The server already lists device 7 under another organisation (revoking nothing on
        // devices of Wijkteam Noord) when this keyring revokes it under its own.
        let elsewhere =
            RevokedDevice::sign([7; 16], 4, RevocationReason::Lost, "Politie Zaanstreek", &other.admin);
        other.trust.record(elsewhere);
        synchronise(&server, &mut other, 10).unwrap();
        let mut mine = Keyring { trust: Default::default(), ..keyring_of_same_network(&other) };
        let own = RevokedDevice::sign([7; 16], 5, RevocationReason::Stolen, "Wijkteam Noord", &mine.admin);
        mine.trust.record(own.clone());
        let list = synchronise(&server, &mut mine, 11).unwrap();
        assert_eq!(list.version, 2, "this keyring's own entry was published");
        assert_eq!(list.entry_of(&[7; 16], "Wijkteam Noord"), Some(&own));
    }

    /// A second administrator's keyring of `keyring`'s network (same root, another admin key
    /// certified by it).
    fn keyring_of_same_network(keyring: &Keyring) -> Keyring {
        let mut second = Keyring::generate(keyring.server.clone(), "Tweede".into(), 1);
        let root = &keyring.offline.as_ref().unwrap().root;
        second.admin_certificate = eenplan_protocol::certificate::Certificate::sign_admin(
            &eenplan_protocol::certificate::AdminBody {
                admin_public: second.admin_public(),
                name: "Tweede".into(),
                issued_at_ms: 1,
                organisation: None,
            },
            root,
        );
        second.root_public = keyring.root_public;
        second.offline = None;
        second
    }
}
