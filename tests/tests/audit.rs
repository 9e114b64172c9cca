#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The access log end to end with real devices (DESIGN §8, NEN 7513): a phone's offline reads
//! reach the administrator's query with the times they happened; an event removed from a
//! phone's store shows as a gap; the server's database never holds an event it could read.
//! Forged events and silent devices are covered against the real CLI in `admin/tests/audit.rs`.

use std::sync::Arc;

use eenplan_core::clock::{Clock, ManualClock, SystemClock};
use eenplan_core::{Device, PlanId};
use eenplan_protocol::api::hex;
use eenplan_protocol::audit::{AuditAction, SignedEvent};
use eenplan_tests::network::{Network, device_keystore};
use serde_json::Value;

const ORG: &str = "Wijkteam Zaanstad";
const HOUR: i64 = 3_600_000;

fn network() -> Network {
    let net = Network::start(&[("Wim de Vries", ORG, "wijkteam")]);
    net.admin.run(&["audit", "key", "create", "--org", ORG]);
    net
}

/// Wim's phone on an injected clock, holding the organisation's audit key and one plan.
fn phone(net: &Network, name: &str) -> (Device, ManualClock, PlanId) {
    let clock = ManualClock::new(SystemClock.now_ms());
    let mut wim = net.device(name, "Wim de Vries").with_clock(Arc::new(clock.clone()));
    let plan = wim.create_plan("Jansen").unwrap();
    wim.sync().unwrap();
    // The first sync brought the key; this one uploads what was logged before it came.
    wim.sync().unwrap();
    assert_eq!(wim.audit_backlog().unwrap().events, 0, "everything logged so far is kept by the server");
    (wim, clock, plan)
}

fn reads_of(events: &[(u64, SignedEvent)], plan: &PlanId) -> Vec<i64> {
    events
        .iter()
        .map(|(_, e)| e.claimed().unwrap())
        .filter(|e| e.action == AuditAction::Read && e.plan.map(|p| p.0) == Some(*plan.as_bytes()))
        .map(|e| e.at_ms)
        .collect()
}

fn timestamp(ms: i64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap()
        .format(format)
        .unwrap()
}

#[test]
fn three_offline_reads_are_listed_by_the_audit_query_with_their_original_times_after_a_sync_a_day_later() {
    let net = network();
    let (mut wim, clock, plan) = phone(&net, "wim");

    // On a home visit with no connection: three looks at the plan, an hour apart.
    for _ in 0..3 {
        wim.read(&plan).unwrap();
        clock.advance_ms(HOUR);
    }
    let held = wim.audit_events().unwrap();
    let read_at = reads_of(&held, &plan);
    assert_eq!(read_at.len(), 3);
    assert_eq!((read_at[1] - read_at[0], read_at[2] - read_at[1]), (HOUR, HOUR));

    // A day later the phone syncs; the events go up sealed to the organisation's audit key.
    clock.advance_ms(24 * HOUR);
    wim.sync().unwrap();
    assert_eq!(wim.audit_backlog().unwrap().events, 0);

    let rows: Value =
        serde_json::from_str(&net.admin.run(&["audit", "query", "--plan", &hex(plan.as_bytes()), "--json"]))
            .unwrap();
    let reads: Vec<&Value> =
        rows.as_array().unwrap().iter().filter(|r| r["bron"] == "apparaat" && r["actie"] == "read").collect();
    let times: Vec<&str> = reads.iter().map(|r| r["tijdstip"].as_str().unwrap()).collect();
    let expected: Vec<String> = read_at.iter().map(|ms| timestamp(*ms)).collect();
    assert_eq!(times, expected, "{rows:#}");
    assert!(reads.iter().all(|r| r["gebruiker_naam"] == "Wim de Vries" && r["organisatie"] == ORG));
    assert!(reads.iter().all(|r| r["apparaat"] == hex(wim.device_id().as_bytes())), "{rows:#}");

    // The server keeps them, but cannot read them: no event's signed bytes are in its files.
    let mut files = std::fs::read(net.server.data.join("server.db")).unwrap();
    files.extend(std::fs::read(net.server.data.join("server.db-wal")).unwrap_or_default());
    for (seq, event) in &held {
        assert!(!contains(&files, &event.body), "event {seq} is in the server's database in plaintext");
    }
    let verify = net.admin.output(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{text}{}", String::from_utf8_lossy(&verify.stderr));
}

#[test]
fn an_event_removed_from_a_copy_of_a_phones_store_shows_as_a_gap_in_audit_verify() {
    let net = network();
    let (mut wim, _clock, plan) = phone(&net, "wim");
    for _ in 0..5 {
        wim.read(&plan).unwrap();
    }
    let held = wim.audit_events().unwrap();
    let (removed, _) = held[2];
    let device = hex(wim.device_id().as_bytes());
    drop(wim);

    // Someone with the phone's files takes one event out of a copy of its database.
    let copy = net.path("wim-copy");
    copy_dir(&net.path("wim"), &copy);
    let db = rusqlite::Connection::open(copy.join(eenplan_core::store::DB_FILE)).unwrap();
    assert_eq!(db.execute("DELETE FROM audit_events WHERE seq = ?1", [removed as i64]).unwrap(), 1);
    drop(db);
    let mut copied = Device::open(&copy, &device_keystore()).unwrap();
    copied.sync().unwrap();
    assert_eq!(copied.audit_backlog().unwrap().events, 0, "the events on both sides of the gap went up");

    let out = net.admin.output(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let line = text.lines().find(|l| l.contains(&device[..8])).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains(&format!("ontbreekt: {removed}–{removed}")), "{text}");

    let json: Value =
        serde_json::from_slice(&net.admin.output(&["audit", "verify", "--json"]).stdout).unwrap();
    assert_eq!(json["ok"], false, "{json:#}");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}
