#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The access log end to end: a real `eenplan-server` process, the real `eenplan-admin`
//! binary, and devices that sign their own events (the device side of the log is built
//! elsewhere, so these devices speak the wire protocol themselves). The server and admin
//! binaries come from a workspace build (`cargo build --workspace --bins`).

use ed25519_dalek::{Signer, SigningKey};
use eenplan_core::calendar::{dutch_date_string, dutch_long_date};
use eenplan_protocol::api::{
    self, ChallengeRequest, ChallengeResponse, EnrolRequest, EnrolResponse, EnrolmentCode, SessionRequest,
    SessionResponse, hex, unhex,
};
use eenplan_protocol::audit::{
    Actor, AuditAction, AuditEvent, AuditKey, AuditResult, AuditUpload, SignedAuditKey, SignedEvent,
};
use eenplan_protocol::certificate::device_id_of;
use eenplan_protocol::sync::{self, Blob, Fixed, SyncRequest, SyncResponse};
use eenplan_tests::network::Network;
use serde_json::Value;

const ORG: &str = "Wijkteam Zaanstad";
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const PLAN: [u8; 16] = [0x5A; 16];

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().new_agent()
}

fn post(url: &str, path: &str, token: Option<&str>, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut request = agent().post(format!("{url}{path}")).header("content-type", content_type);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let mut response = request.send(body).unwrap();
    let status = response.status().as_u16();
    let bytes = response.body_mut().read_to_vec().unwrap();
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&bytes));
    bytes
}

/// A device that speaks the protocol itself, so the test holds its signing key.
struct RawDevice {
    key: SigningKey,
    id: [u8; 16],
    user_id: i64,
    token: String,
    url: String,
    /// The network root, as pinned at enrolment.
    root: [u8; 32],
}

impl RawDevice {
    /// Enrolled with a code `eenplan-admin device enrol` made, approved by the CLI, with a
    /// session.
    fn enrol(net: &Network, seed: u8, user: &str) -> RawDevice {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let public = key.verifying_key().to_bytes();
        let (_, agreement) = eenplan_protocol::envelope::generate_keypair();
        let text = net.admin.run(&["device", "enrol", "--user", user]);
        let code = EnrolmentCode::parse(&text).unwrap();
        let url = net.server.url.clone();
        let enrol = EnrolRequest::new(&code, &public, &agreement, |m| key.sign(m).to_bytes());
        let enrolled: EnrolResponse = serde_json::from_slice(&post(
            &url,
            api::PATH_ENROL,
            None,
            "application/json",
            &serde_json::to_vec(&enrol).unwrap(),
        ))
        .unwrap();
        let root = unhex(&enrolled.root_public).unwrap().try_into().unwrap();
        net.admin.run(&["device", "approve", "--code", &text]);
        let id = device_id_of(&public);
        let challenge: ChallengeResponse = serde_json::from_slice(&post(
            &url,
            api::PATH_AUTH_CHALLENGE,
            None,
            "application/json",
            &serde_json::to_vec(&ChallengeRequest { device_id: hex(&id) }).unwrap(),
        ))
        .unwrap();
        let message = api::session_message(&unhex(&challenge.challenge).unwrap());
        let session = SessionRequest {
            device_id: hex(&id),
            challenge: challenge.challenge,
            signature: hex(&key.sign(&message).to_bytes()),
            wipe_nonce_hash: None,
            name: None,
        };
        let body = serde_json::to_vec(&session).unwrap();
        let session: SessionResponse =
            serde_json::from_slice(&post(&url, api::PATH_AUTH_SESSION, None, "application/json", &body))
                .unwrap();
        let users: Value = serde_json::from_str(&net.admin.run(&["user", "list", "--json"])).unwrap();
        let user_id =
            users.as_array().unwrap().iter().find(|u| u["name"] == user).unwrap()["id"].as_i64().unwrap();
        RawDevice { key, id, user_id, token: session.token, url, root }
    }

    fn sync(&self, request: &SyncRequest) -> SyncResponse {
        let bytes =
            post(&self.url, api::PATH_SYNC, Some(&self.token), "application/cbor", &sync::encode(request));
        sync::decode(&bytes, usize::MAX).unwrap()
    }

    /// The organisation's audit key as the server hands it out, checked against the root.
    fn audit_key(&self, held: u32) -> Option<AuditKey> {
        let answer = self.sync(&SyncRequest { audit_key_version: held, ..Default::default() });
        answer.audit_key.map(|blob| SignedAuditKey::from_bytes(&blob.0).unwrap().verify(&self.root).unwrap())
    }

    fn event(
        &self,
        seq: u64,
        prev: [u8; 32],
        at_ms: i64,
        action: AuditAction,
        detail: Option<&str>,
    ) -> AuditEvent {
        AuditEvent {
            seq,
            prev: Fixed(prev),
            at_ms,
            actor: Actor {
                device: Fixed(self.id),
                user_id: self.user_id,
                user_name: "wie dan ook".into(),
                organisation: "ergens".into(),
                role: "wijkteam".into(),
            },
            on_behalf_of: None,
            action,
            plan: Some(Fixed(PLAN)),
            compartment: Some(0),
            object: None,
            result: AuditResult::Done,
            detail: detail.map(str::to_owned),
        }
    }

    /// A chain of events at the given times and actions; `forged` positions are signed by
    /// another key (as a server making events up would).
    fn chain(&self, steps: &[(i64, AuditAction)], forged: &[u64]) -> Vec<SignedEvent> {
        let impostor = SigningKey::from_bytes(&[0xEE; 32]);
        let mut prev = [0; 32];
        let mut out = Vec::new();
        for (i, (at, action)) in steps.iter().enumerate() {
            let seq = i as u64 + 1;
            let detail = forged.contains(&seq).then_some("VERVALST");
            let event = self.event(seq, prev, *at, *action, detail);
            let signed = event.sign(if forged.contains(&seq) { &impostor } else { &self.key });
            prev = signed.hash();
            out.push(signed);
        }
        out
    }

    fn upload(&self, key: &AuditKey, first: u64, events: &[SignedEvent]) -> Blob {
        Blob(AuditUpload::seal(self.id, &self.key, key, first, events).unwrap().to_bytes())
    }
}

fn day(ms: i64) -> String {
    dutch_long_date(&dutch_date_string(ms))
}

/// "3, 5 en 9 december 2026"; "30 november en 1 december 2026" across months.
fn days_text(days: &[String]) -> String {
    let mut days = days.to_vec();
    days.sort();
    days.dedup();
    // (day, month, year) in words.
    let parts: Vec<Vec<String>> =
        days.iter().map(|d| dutch_long_date(d).split(' ').map(str::to_owned).collect()).collect();
    let mut groups: Vec<(String, String, Vec<String>)> = Vec::new();
    for p in &parts {
        match groups.last_mut() {
            Some((m, y, list)) if *m == p[1] && *y == p[2] => list.push(p[0].clone()),
            _ => groups.push((p[1].clone(), p[2].clone(), vec![p[0].clone()])),
        }
    }
    let texts: Vec<String> = groups
        .iter()
        .enumerate()
        .map(|(i, (month, year, list))| {
            let year = if groups.get(i + 1).is_none_or(|g| g.1 != *year) {
                format!(" {year}")
            } else {
                String::new()
            };
            format!("{} {month}{year}", join(list))
        })
        .collect();
    join(&texts)
}

fn join(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} en {last}", rest.join(", ")),
    }
}

#[test]
fn verify_reports_a_removed_and_a_forged_event_and_a_silent_device_and_query_and_the_family_report_show_only_verified_events()
 {
    let net = Network::start(&[("Wim de Vries", ORG, "wijkteam"), ("Ans Bakker", ORG, "wijkteam")]);
    let created = net.admin.run(&["audit", "key", "create", "--org", ORG, "--json"]);
    assert_eq!(serde_json::from_str::<Value>(&created).unwrap()["version"], 1);
    let wim = RawDevice::enrol(&net, 1, "Wim de Vries");
    let ans = RawDevice::enrol(&net, 2, "Ans Bakker");
    let key = wim.audit_key(0).expect("the organisation's key reaches its devices");
    assert_eq!(key.version, 1);

    let now = now_ms();
    let (d2, d1) = (now - 48 * HOUR, now - 24 * HOUR);
    use AuditAction::{Change, Read};
    let wim_events =
        wim.chain(&[(d2, Read), (d1, Read), (d1, Change), (d1, Read), (now, Read), (now, Read)], &[]);
    // Event 4 never reaches the server: removed on the way, or on the phone.
    let answer = wim.sync(&SyncRequest {
        audit: vec![wim.upload(&key, 1, &wim_events[..3]), wim.upload(&key, 5, &wim_events[4..])],
        audit_key_version: 1,
        ..Default::default()
    });
    assert_eq!((answer.audit_through, answer.audit_refused.len()), (6, 0));
    // Ans's second event was not signed by her device; her newest event is older than the
    // 72-hour lease, so her phone has been silent since. Noon UTC five days back keeps her
    // two reads on one Amsterdam day whatever hour the test runs.
    let old = (now - 5 * DAY).div_euclid(DAY) * DAY + 12 * HOUR;
    let ans_events = ans.chain(&[(old - HOUR, Read), (old - HOUR, Change), (old, Read)], &[2]);
    ans.sync(&SyncRequest { audit: vec![ans.upload(&key, 1, &ans_events)], ..Default::default() });

    let out = net.admin.output(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = |who: &str| text.lines().find(|l| l.contains(who)).unwrap_or_else(|| panic!("{who}: {text}"));
    assert!(
        line("Wim de Vries").ends_with("(Wim de Vries, Wijkteam Zaanstad): 5 gebeurtenissen, ontbreekt: 4–4"),
        "{text}"
    );
    let ans_line = line("Ans Bakker");
    assert!(ans_line.contains("vervalst: 2"), "{text}");
    assert!(ans_line.contains(&format!("stil sinds {}", day(old))), "{text}");
    assert!(line("server:").ends_with("in orde"), "{text}");

    let json = net.admin.output(&["audit", "verify", "--json"]);
    let value: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["ok"], false);

    // The query shows Wim's five events and Ans's two signed ones, never the forged one.
    let csv = net.admin.run(&["audit", "query", "--plan", &hex(&PLAN), "--csv"]);
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("tijdstip,bron,gebruiker_id,gebruiker_naam,apparaat,organisatie,rol")
    );
    let rows: Vec<&str> = lines.filter(|l| l.contains(",apparaat,")).collect();
    assert_eq!(rows.len(), 7, "{csv}");
    assert!(!csv.contains("VERVALST"), "{csv}");
    assert!(csv.contains(",log_read,"), "the reads of this plan's log are rows too: {csv}");
    let json: Value = serde_json::from_str(&net.admin.run(&[
        "audit",
        "query",
        "--user",
        &wim.user_id.to_string(),
        "--json",
        "--from",
        &dutch_date_string(d1),
    ]))
    .unwrap();
    let rows = json.as_array().unwrap();
    let device_rows: Vec<&Value> = rows.iter().filter(|r| r["bron"] == "apparaat").collect();
    assert_eq!(device_rows.len(), 4, "{json}");
    assert!(device_rows.iter().all(|r| r["gebruiker_naam"] == "Wim de Vries" && r["organisatie"] == ORG));
    assert!(rows.iter().any(|r| r["bron"] == "server" && r["actie"] == "sync"), "Wim's syncs: {json}");

    let report = net.admin.run(&["audit", "family-report", &hex(&PLAN)]);
    let read_days: Vec<String> = [d2, d1, now].iter().map(|ms| dutch_date_string(*ms)).collect();
    let wim_line = format!(
        "Wim de Vries (Wijkteam Zaanstad, Wijkteam) bekeek het plan (Basis) op {}; wijzigde het (Basis) op {}.",
        days_text(&read_days),
        day(d1)
    );
    assert!(report.lines().any(|l| l == wim_line), "{wim_line}\n{report}");
    // Ans's forged change is no sentence: she only looked.
    let ans_line =
        format!("Ans Bakker (Wijkteam Zaanstad, Wijkteam) bekeek het plan (Basis) op {}.", day(old));
    assert!(report.lines().any(|l| l == ans_line), "{ans_line}\n{report}");
    assert!(
        report.contains(&format!("Beheerder Beheer las het logboek van dit plan op {}.", day(now))),
        "{report}"
    );
}

#[test]
fn a_new_audit_key_takes_the_next_version_and_reaches_devices_that_hold_an_older_one() {
    let net = Network::start(&[("Wim de Vries", ORG, "wijkteam")]);
    net.admin.run(&["audit", "key", "create", "--org", ORG]);
    let out = net.admin.run(&["audit", "key", "create", "--org", ORG]);
    assert_eq!(out, format!("audit key version 2 of {ORG} is in force; its secret is in this keyring"));
    let refused = net.admin.output(&["audit", "key", "create", "--org", "Nergens"]);
    assert_eq!(refused.status.code(), Some(2));
    let wim = RawDevice::enrol(&net, 3, "Wim de Vries");
    assert_eq!(wim.audit_key(1).map(|k| k.version), Some(2));
    assert_eq!(wim.audit_key(2), None);
}

#[test]
fn uploads_cannot_be_deleted_and_a_server_that_drops_a_verified_one_anyway_is_caught_by_the_pin() {
    let mut net = Network::start(&[("Wim de Vries", ORG, "wijkteam")]);
    net.admin.run(&["audit", "key", "create", "--org", ORG]);
    let wim = RawDevice::enrol(&net, 4, "Wim de Vries");
    let key = wim.audit_key(0).unwrap();
    let now = now_ms();
    let events =
        wim.chain(&[(now, AuditAction::Read), (now, AuditAction::Read), (now, AuditAction::Change)], &[]);
    let uploads = vec![wim.upload(&key, 1, &events[..2]), wim.upload(&key, 3, &events[2..])];
    assert_eq!(
        wim.sync(&SyncRequest { audit: uploads, audit_key_version: 1, ..Default::default() }).audit_through,
        3
    );
    let first = net.admin.run(&["audit", "verify"]);
    assert!(first.contains("(Wim de Vries, Wijkteam Zaanstad): 3 gebeurtenissen, in orde"), "{first}");

    net.tamper_with_server_database(|db| {
        assert!(db.execute("DELETE FROM audit_uploads WHERE first_seq = 3", []).is_err(), "append-only");
        assert!(db.execute("UPDATE server_events SET at = 0", []).is_err(), "append-only");
        // A compromised server drops the guard and the newest upload.
        db.execute_batch(
            "DROP TRIGGER audit_uploads_no_delete; DELETE FROM audit_uploads WHERE first_seq = 3;",
        )
        .unwrap();
    });
    let out = net.admin.output(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("2 gebeurtenissen, ingekort: eerder gecontroleerd tot 3"), "{text}");
    // A family report read from such a log says it may be incomplete, and so does a query.
    let report = net.admin.run(&["audit", "family-report", &hex(&PLAN)]);
    assert!(report.contains("Let op: het logboek is 1 keer niet in orde"), "{report}");
    let query = net.admin.output(&["audit", "query", "--plan", &hex(&PLAN)]);
    assert!(String::from_utf8_lossy(&query.stderr).contains("Let op:"), "{query:?}");
}
