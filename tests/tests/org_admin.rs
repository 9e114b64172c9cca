//! Administrators per organisation (issue 14, item 1), end to end over the real server and
//! binaries: an administrator of Politie Zaanstreek can enrol, approve, re-certify and revoke
//! the police's devices, and none of Gemeente Zaanstad's: the CLI refuses, the server refuses
//! requests signed by hand, and devices refuse what a tampered server database serves them.

// The helpers below are test code too: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signer, SigningKey};
use eenplan_core::Device;
use eenplan_protocol::api::{
    self, AdminAudience, HEADER_ADMIN, HEADER_ORIGIN, HEADER_SIGNATURE, HEADER_TIME, admin_request_message,
    hex, unhex,
};
use eenplan_protocol::certificate::{Certificate, DeviceBody};
use eenplan_protocol::revocation::{RevocationList, RevokedDevice};
use eenplan_protocol::sync::Fixed;
use eenplan_protocol::wipe::{RevocationReason, WipeOrder};
use eenplan_tests::network::{Admin, Network, device_keystore, enrolled_device};
use serde::{Deserialize, Serialize};

const GEMEENTE: &str = "Gemeente Zaanstad";
const POLITIE: &str = "Politie Zaanstreek";
const USERS: &[(&str, &str, &str)] =
    &[("Wim", GEMEENTE, "wijkteam"), ("Fatima", GEMEENTE, "wijkteam"), ("Piet", POLITIE, "politie")];
/// What the CLI says when an act is outside the administrator's organisation.
const OUT_OF_SCOPE_TEXT: &str = "valt buiten uw organisatie";

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// `eenplan-admin admin request`'s request, as the admin crate encodes it.
#[derive(Serialize)]
struct RequestToken {
    name: String,
    #[serde(with = "eenplan_protocol::bytes")]
    admin_public: Vec<u8>,
    server: String,
}

/// `eenplan-admin admin add`'s grant.
#[derive(Deserialize)]
struct GrantToken {
    #[serde(with = "eenplan_protocol::bytes")]
    certificate: Vec<u8>,
    #[serde(with = "eenplan_protocol::bytes")]
    root_public: Vec<u8>,
}

/// The police's administrator through the real CLI: request, the root's grant, accept.
fn police_admin_cli(net: &Network) -> Admin {
    let politie = Admin { data: net.path("politie-beheer"), server: net.server.url.clone() };
    let request = politie.run(&["admin", "request", "--name", "Beheer Politie"]);
    let grant = net.admin.run(&["admin", "add", "--org", POLITIE, &request]);
    let accepted = politie.run(&["admin", "accept", &grant]);
    assert!(accepted.contains("Politie Zaanstreek"), "{accepted}");
    politie
}

/// An administrator of `organisation` whose key the test holds, certified by the root
/// through `admin add`: it signs requests and certificates by hand, as a CLI that skipped
/// its own checks would.
struct HandSigned {
    key: SigningKey,
    certificate: Vec<u8>,
    root: [u8; 32],
    url: String,
    agent: ureq::Agent,
    /// Distinct times for identical requests in one millisecond, as the admin CLI keeps them.
    clock: api::AdminRequestClock,
}

impl HandSigned {
    fn new(net: &Network, organisation: &str, seed: u8) -> HandSigned {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let token = RequestToken {
            name: format!("Beheer {organisation}"),
            admin_public: key.verifying_key().to_bytes().to_vec(),
            server: net.server.url.clone(),
        };
        let mut bytes = Vec::new();
        ciborium::into_writer(&token, &mut bytes).unwrap();
        let request = format!("eenplan-beheerverzoek:{}", hex(&bytes));
        let grant = net.admin.run(&["admin", "add", "--org", organisation, &request]);
        let grant = unhex(grant.trim().strip_prefix("eenplan-beheermachtiging:").unwrap()).unwrap();
        let grant: GrantToken = ciborium::from_reader(grant.as_slice()).unwrap();
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        HandSigned {
            key,
            certificate: grant.certificate,
            root: grant.root_public.try_into().unwrap(),
            url: net.server.url.clone(),
            agent,
            clock: api::AdminRequestClock::new(),
        }
    }

    /// A signed admin request: (status, body).
    fn call(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let time = self.clock.time_for(now_ms());
        let origin = &self.url;
        let message = admin_request_message(
            AdminAudience { root_public: &self.root, origin },
            method,
            path,
            time,
            body,
        );
        let signature = hex(&self.key.sign(&message).to_bytes());
        let url = format!("{}{path}", self.url);
        let headers = [
            (HEADER_ADMIN, hex(&self.key.verifying_key().to_bytes())),
            (HEADER_TIME, time.to_string()),
            (HEADER_ORIGIN, origin.clone()),
            (HEADER_SIGNATURE, signature),
        ];
        let mut response = if method == "GET" {
            let mut request = self.agent.get(&url);
            for (name, value) in &headers {
                request = request.header(*name, value);
            }
            request.call().unwrap()
        } else {
            let mut request = self.agent.post(&url).header("content-type", "application/json");
            for (name, value) in &headers {
                request = request.header(*name, value);
            }
            request.send(body).unwrap()
        };
        let status = response.status().as_u16();
        (status, String::from_utf8_lossy(&response.body_mut().read_to_vec().unwrap()).into_owned())
    }

    fn post(&self, path: &str, body: serde_json::Value) -> (u16, String) {
        self.call("POST", path, &serde_json::to_vec(&body).unwrap())
    }

    /// A device certificate for `keys` (the server's listing of a device), signed by this
    /// administrator, naming `organisation` and `role`.
    fn certify(&self, device: &serde_json::Value, user_id: i64, organisation: &str, role: &str) -> Vec<u8> {
        let id: [u8; 16] = unhex(device["device_id"].as_str().unwrap()).unwrap().try_into().unwrap();
        let body = DeviceBody {
            device_id: id,
            user_id,
            user_name: device["user_name"].as_str().unwrap().to_owned(),
            organisation: organisation.to_owned(),
            role: role.to_owned(),
            signing_public: unhex(device["signing_public"].as_str().unwrap()).unwrap().try_into().unwrap(),
            agreement_public: unhex(device["agreement_public"].as_str().unwrap()).unwrap(),
            valid_from_ms: now_ms(),
            valid_until_ms: now_ms() + 86_400_000,
            issuer: self.key.verifying_key().to_bytes(),
        };
        Certificate::sign_device(&body, &self.key).to_bytes()
    }

    fn wipe_order(&self, device: [u8; 16]) -> Vec<u8> {
        WipeOrder {
            device: Fixed(device),
            reason: RevocationReason::Stolen,
            issued_at_ms: now_ms(),
            admin_certificate: self.certificate.clone(),
        }
        .sign(&self.key)
        .to_bytes()
    }

    fn devices(&self) -> Vec<serde_json::Value> {
        let (status, body) = self.call("GET", api::PATH_ADMIN_DEVICES, b"");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn user_id(&self, name: &str) -> i64 {
        let (status, body) = self.call("GET", api::PATH_ADMIN_USERS, b"");
        assert_eq!(status, 200, "{body}");
        let users: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        users.iter().find(|u| u["name"] == name).and_then(|u| u["id"].as_i64()).unwrap()
    }
}

fn listed(admin: &HandSigned, device: &Device) -> serde_json::Value {
    let id = device.device_id().to_string();
    admin.devices().into_iter().find(|d| d["device_id"] == id.as_str()).unwrap()
}

/// A device that claimed a code the root's administrator issued, waiting for approval.
fn pending_device(net: &Network, dir: &str, user: &str) -> Device {
    let mut device = Device::init(&net.path(dir), &device_keystore()).unwrap();
    let code = net.admin.run(&["device", "enrol", "--user", user]);
    device
        .enrol(&net.server.url, &code, &format!("Telefoon in {dir}"), eenplan_core::sync::Platform::Desktop)
        .unwrap();
    device
}

fn assert_out_of_scope((status, body): (u16, String), what: &str) {
    assert_eq!(status, 403, "{what}: {body}");
    assert!(body.contains("out_of_scope"), "{what}: {body}");
}

#[test]
fn the_police_administrators_cli_refuses_to_enrol_recertify_or_revoke_a_municipal_device() {
    let net = Network::start(USERS);
    let politie = police_admin_cli(&net);
    let mut wim = net.device("wim", "Wim");

    for args in [
        vec!["device", "enrol", "--user", "Wim"],
        vec!["user", "set-role", "Wim", "--role", "gemeente"],
        vec!["device", "revoke", &wim.device_id().to_string(), "--reason", "lost"],
        vec!["user", "add", "--org", GEMEENTE, "--name", "Sanne", "--role", "wijkteam"],
    ] {
        let output = politie.output(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} must be refused");
        assert!(stderr.contains(OUT_OF_SCOPE_TEXT), "{args:?}: {stderr}");
    }
    // Network-wide acts are not an organisation's: organisations, key epochs.
    for args in [vec!["org", "add", "Woonstichting De Zaan"], vec!["rekey"]] {
        let output = politie.output(&args);
        assert!(!output.status.success(), "{args:?} must be refused");
        assert!(String::from_utf8_lossy(&output.stderr).contains("netwerkbeheerder"), "{args:?}");
    }
    // Nothing happened: Wim's device syncs as before.
    wim.sync().unwrap();
}

#[test]
fn the_server_refuses_hand_signed_acts_of_the_police_administrator_on_municipal_devices() {
    let net = Network::start(USERS);
    let politie = HandSigned::new(&net, POLITIE, 0x51);
    let mut wim = net.device("wim", "Wim");
    let mut fatima = pending_device(&net, "fatima", "Fatima");
    let wim_user = politie.user_id("Wim");
    let fatima_user = politie.user_id("Fatima");

    // Enrol.
    let code_id = hex(&[7; 32]);
    let enrolment =
        serde_json::json!({ "user_id": wim_user, "code_id": code_id, "expires_at_ms": now_ms() + 3_600_000 });
    assert_out_of_scope(politie.post(api::PATH_ADMIN_ENROLMENTS, enrolment), "enrol");
    // Approve, with a certificate that names the device's own organisation.
    let certificate = politie.certify(&listed(&politie, &fatima), fatima_user, GEMEENTE, "wijkteam");
    let path = format!("{}/{}/certificate", api::PATH_ADMIN_DEVICES, fatima.device_id());
    assert_out_of_scope(
        politie.post(&path, serde_json::json!({ "certificate": hex(&certificate) })),
        "approve",
    );
    // Re-certify (a role change).
    let certificate = politie.certify(&listed(&politie, &wim), wim_user, GEMEENTE, "gemeente");
    let change =
        serde_json::json!({ "role": "gemeente", "certificates": [{ "certificate": hex(&certificate) }] });
    assert_out_of_scope(politie.post(&format!("/v1/admin/users/{wim_user}/role"), change), "role change");
    // Revoke: the list entry, and the revocation itself.
    let wim_id = *wim.device_id().as_bytes();
    let entry = RevokedDevice::sign(wim_id, now_ms(), RevocationReason::Stolen, GEMEENTE, &politie.key);
    let list = RevocationList::none().next(&[entry], politie.certificate.clone(), now_ms()).unwrap();
    let (status, body) =
        politie.call("POST", api::PATH_ADMIN_REVOCATIONS, &list.sign(&politie.key).to_bytes());
    assert_out_of_scope((status, body), "revocation list");
    let revoke = serde_json::json!({ "reason": "stolen", "wipe_order": hex(&politie.wipe_order(wim_id)) });
    assert_out_of_scope(politie.post(&api::admin_revoke_path(&wim_id), revoke), "revoke");
    // Network-wide acts are not an organisation's.
    for (status, body) in [
        politie.post(api::PATH_ADMIN_ORGS, serde_json::json!({ "name": "OM", "lease_hours": 72 })),
        politie.call("GET", api::PATH_ADMIN_REKEY, b""),
        politie.post(api::PATH_ADMIN_POLICY, serde_json::json!({ "policy": "00" })),
    ] {
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("network_admin_only"), "{body}");
    }

    // Nothing changed: Wim syncs as a wijkteam worker, Fatima still waits.
    wim.sync().unwrap();
    assert_eq!(listed(&politie, &fatima)["state"], "pending");
    assert!(fatima.sync().is_err());
}

#[test]
fn a_device_refuses_a_certificate_signed_by_another_organisations_administrator_in_a_tampered_database() {
    let mut net = Network::start(USERS);
    let politie = HandSigned::new(&net, POLITIE, 0x52);
    let mut wim = net.device("wim", "Wim");
    let mut fatima = pending_device(&net, "fatima", "Fatima");
    let approved =
        politie.certify(&listed(&politie, &fatima), politie.user_id("Fatima"), GEMEENTE, "wijkteam");
    let recertified = politie.certify(&listed(&politie, &wim), politie.user_id("Wim"), GEMEENTE, "gemeente");
    let (fatima_id, wim_id) = (*fatima.device_id().as_bytes(), *wim.device_id().as_bytes());
    // The server approves Fatima's device and re-certifies Wim's with the police
    // administrator's certificates, as if it had taken them.
    net.tamper_with_server_database(|conn| {
        let now = now_ms();
        for (id, certificate) in [(fatima_id, &approved), (wim_id, &recertified)] {
            let changed = conn
                .execute(
                    "UPDATE devices SET state = 'active', certificate = ?1, certified_at = ?2 WHERE device_id = ?3",
                    rusqlite::params![certificate, now, &id[..]],
                )
                .unwrap();
            assert_eq!(changed, 1);
        }
    });

    let refused = fatima.sync().unwrap_err().to_string();
    assert!(refused.contains("another organisation"), "approval: {refused}");
    let refused = wim.sync().unwrap_err().to_string();
    assert!(refused.contains("another organisation"), "role change: {refused}");
}

#[test]
fn a_device_ignores_a_wipe_order_signed_by_another_organisations_administrator() {
    let mut net = Network::start(USERS);
    let politie = HandSigned::new(&net, POLITIE, 0x53);
    let mut wim = net.device("wim", "Wim");
    let plan = wim.create_plan("Jansen").unwrap();
    wim.sync().unwrap();
    let wim_id = *wim.device_id().as_bytes();
    // Revoked for real by the network's administrator; the server then swaps the order for
    // one a police administrator signed.
    net.admin.run(&["device", "revoke", &wim.device_id().to_string(), "--reason", "lost"]);
    let order = politie.wipe_order(wim_id);
    net.tamper_with_server_database(|conn| {
        let swapped = conn
            .execute(
                "UPDATE wipe_orders SET signed = ?1 WHERE device_id = ?2",
                rusqlite::params![order, &wim_id[..]],
            )
            .unwrap();
        assert_eq!(swapped, 1);
    });

    let error = wim.sync().unwrap_err();
    assert!(!matches!(error, eenplan_core::error::CoreError::Wiped), "{error}");
    assert!(!Device::is_wiped(&net.path("wim")));
    assert!(wim.read(&plan).is_ok());
}

#[test]
fn the_police_administrator_enrols_approves_recertifies_and_revokes_a_police_device() {
    let net = Network::start(USERS);
    let politie = police_admin_cli(&net);
    // Enrol and approve (and the device's first sync verifies the certificate).
    let mut piet = enrolled_device(&politie, &net.server, &net.path("piet"), "Piet");
    // Re-certify.
    let changed = politie.run(&["user", "set-role", "Piet", "--role", "om"]);
    assert!(changed.contains("om"), "{changed}");
    piet.sync().unwrap();
    // Revoke: the device is shut out and obeys the police administrator's wipe order.
    politie.run(&["device", "revoke", &piet.device_id().to_string(), "--reason", "stolen"]);
    let error = piet.sync().unwrap_err();
    assert!(matches!(error, eenplan_core::error::CoreError::Wiped), "{error}");
    assert!(Device::is_wiped(&net.path("piet")));
}

#[test]
fn a_revocation_entry_written_under_another_organisation_revokes_nothing_on_devices() {
    use eenplan_core::plan::{Compartment, NoteKind};

    let users =
        [("Rita", GEMEENTE, "wijkteam"), ("Wim", GEMEENTE, "wijkteam"), ("Fatima", GEMEENTE, "wijkteam")];
    let mut net = Network::start(&users);
    let politie_org = net.admin.run(&["org", "add", POLITIE]);
    assert!(politie_org.contains(POLITIE), "{politie_org}");
    let politie = HandSigned::new(&net, POLITIE, 0x54);
    let mut rita = net.device("rita", "Rita");
    let mut wim = net.device("wim", "Wim");
    let mut fatima = net.device("fatima", "Fatima");
    let plan = rita.create_plan("Jansen").unwrap();
    rita.edit(&plan, |p| p.add_note(Compartment::Zorg, NoteKind::Note, "voor de intrekking")).unwrap();
    rita.sync().unwrap();
    rita.add_participant(&plan, "Wim", "wijkteam").unwrap();
    rita.sync().unwrap();
    wim.sync().unwrap();
    // The network's administrator revokes Wim's device: list version 1, and a new epoch made
    // under it. Before Rita takes that key (and so fetches version 1), the server swaps
    // version 1 for one a police administrator signed, which also names Fatima's device
    // under the police's name.
    net.admin.run(&["device", "revoke", &wim.device_id().to_string(), "--reason", "replaced"]);
    let fatima_id = *fatima.device_id().as_bytes();
    net.tamper_with_server_database(|conn| {
        let stored: Vec<u8> = conn
            .query_row("SELECT signed FROM revocation_lists WHERE version = 1", [], |row| row.get(0))
            .unwrap();
        let v1 = RevocationList::verify(&stored, &politie.root).unwrap();
        let entry =
            RevokedDevice::sign(fatima_id, now_ms() - 1, RevocationReason::Lost, POLITIE, &politie.key);
        let mut swapped = v1.next(&[entry], politie.certificate.clone(), now_ms()).unwrap();
        swapped.version = 1;
        let bytes = swapped.sign(&politie.key).to_bytes();
        conn.execute("UPDATE revocation_lists SET signed = ?1 WHERE version = 1", rusqlite::params![bytes])
            .unwrap();
    });
    rita.edit(&plan, |p| p.add_note(Compartment::Zorg, NoteKind::Note, "na de intrekking")).unwrap();
    rita.sync().unwrap();

    // Fatima joins: Rita's device, holding the swapped list, still seals her both keys.
    rita.add_participant(&plan, "Fatima", "wijkteam").unwrap();
    rita.sync().unwrap();
    let report = fatima.sync().unwrap();
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    let notes: Vec<String> = fatima.read(&plan).unwrap().notes.into_iter().map(|n| n.text).collect();
    assert!(notes.contains(&"voor de intrekking".to_string()), "{notes:?}");
    assert!(notes.contains(&"na de intrekking".to_string()), "{notes:?}");
}

#[test]
fn a_device_refuses_a_key_epoch_an_organisations_administrator_made() {
    use eenplan_protocol::DocumentId;
    use eenplan_protocol::certificate::device_id_of;
    use eenplan_protocol::epoch::{Commitment, Minter, SignedCommitment};

    let mut net = Network::start(USERS);
    let politie = HandSigned::new(&net, POLITIE, 0x54);
    let mut wim = net.device("wim", "Wim");
    let mut fatima = net.device("fatima", "Fatima");
    let plan = wim.create_plan("Jansen").unwrap();
    wim.sync().unwrap();
    wim.add_participant(&plan, "Fatima", "wijkteam").unwrap();
    wim.sync().unwrap();
    fatima.sync().unwrap();
    // A genuine rotation by the network's administrator: every compartment moves to epoch 2,
    // sealed to Wim's device.
    net.admin.run(&["device", "revoke", &fatima.device_id().to_string(), "--reason", "lost"]);

    // The server swaps the basis key for one the police's administrator made: its
    // certificate chains to the root and every signature is right; only its scope is wrong.
    // Whoever makes a key reads everything under it.
    let document = DocumentId::new(*plan.as_bytes(), 0).unwrap();
    let wim_id = *wim.device_id().as_bytes();
    let wim_public = wim.identity().agreement_public().to_vec();
    let police_key = [0x77; 32];
    let police_sealer = device_id_of(&politie.key.verifying_key().to_bytes());
    net.tamper_with_server_database(|conn| {
        let genuine: Vec<u8> = conn
            .query_row(
                "SELECT signed FROM commitments WHERE plan_id = ?1 AND compartment = 0 AND epoch = 2",
                [&plan.as_bytes()[..]],
                |row| row.get(0),
            )
            .unwrap();
        let genuine = SignedCommitment::from_bytes(&genuine).unwrap().claimed().unwrap();
        let minter = Minter::Admin { certificate: politie.certificate.clone() };
        let forged = Commitment::new(document, 2, &police_key, minter, genuine.made_at_ms)
            .under_policy(genuine.policy_version)
            .under_revocations(genuine.revocations_version)
            .at_membership(genuine.membership_seq)
            .sign(&politie.key);
        let sealed = eenplan_protocol::envelope::seal(&wim_public, wim_id, document, 2, &police_key).unwrap();
        let envelope =
            eenplan_protocol::envelope::sign(sealed, police_sealer, &politie.key, document, 2, wim_id);
        let plan_id = &plan.as_bytes()[..];
        let swapped = conn
            .execute(
                "UPDATE commitments SET signed = ?1 WHERE plan_id = ?2 AND compartment = 0 AND epoch = 2",
                rusqlite::params![forged.to_bytes(), plan_id],
            )
            .unwrap();
        assert_eq!(swapped, 1);
        let swapped = conn
            .execute(
                "UPDATE envelopes SET bytes = ?1, sealer = ?2 \
                 WHERE recipient = ?3 AND plan_id = ?4 AND compartment = 0 AND epoch = 2",
                rusqlite::params![envelope, &police_sealer[..], &wim_id[..], plan_id],
            )
            .unwrap();
        assert_eq!(swapped, 1);
    });

    let report = wim.sync().unwrap();
    assert!(
        report.refused.iter().any(|r| r.starts_with("key for basis") && r.contains("makes no key epochs")),
        "{:?}",
        report.refused
    );
}
