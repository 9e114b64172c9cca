use super::*;

fn actor() -> Actor {
    Actor {
        device: Fixed([7; 16]),
        user_id: 3,
        user_name: "Wim de Vries".into(),
        organisation: "Wijkteam Zaanstad".into(),
        role: "wijkteam".into(),
    }
}

fn chain(key: &SigningKey, count: u64) -> Vec<SignedEvent> {
    let mut head = ChainHead::default();
    let mut out = Vec::new();
    for seq in 1..=count {
        let event = AuditEvent {
            seq,
            prev: head.hash,
            at_ms: 1_000 * seq as i64,
            actor: actor(),
            on_behalf_of: None,
            action: AuditAction::Read,
            plan: Some(Fixed([9; 16])),
            compartment: Some(0),
            object: None,
            result: AuditResult::Done,
            detail: None,
        };
        let signed = event.sign(key);
        head = ChainHead::after(&signed, seq);
        out.push(signed);
    }
    out
}

fn numbered(events: &[SignedEvent]) -> Vec<(u64, SignedEvent)> {
    events.iter().cloned().enumerate().map(|(i, e)| (i as u64 + 1, e)).collect()
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[5; 32])
}

#[test]
fn an_unbroken_chain_verifies_with_no_findings() {
    let events = chain(&key(), 600);
    let report = verify_chain(&key().verifying_key(), numbered(&events));
    assert_eq!(report.findings, vec![]);
    assert_eq!(report.events.len(), 600);
    assert_eq!(report.events[599].seq, 600);
}

#[test]
fn a_removed_event_shows_as_a_gap() {
    let mut received = numbered(&chain(&key(), 10));
    received.remove(4);
    let report = verify_chain(&key().verifying_key(), received);
    assert_eq!(report.findings, vec![Finding::Gap { from: 5, to: 5 }]);
}

#[test]
fn an_event_signed_by_another_key_is_forged_and_left_out() {
    let mut received = numbered(&chain(&key(), 10));
    let other = chain(&SigningKey::from_bytes(&[6; 32]), 10);
    received[3].1 = other[3].clone();
    let report = verify_chain(&key().verifying_key(), received);
    assert!(report.findings.contains(&Finding::Forged { seq: 4 }), "{:?}", report.findings);
    assert!(report.findings.contains(&Finding::Gap { from: 4, to: 4 }), "{:?}", report.findings);
    assert_eq!(report.events.len(), 9);
}

#[test]
fn a_second_event_at_one_position_is_a_fork_and_a_replaced_one_a_broken_link() {
    let events = chain(&key(), 5);
    let mut altered = AuditEvent { action: AuditAction::Export, ..events[2].claimed().unwrap() };
    let mut received = numbered(&events);
    received.push((3, altered.sign(&key())));
    let report = verify_chain(&key().verifying_key(), received);
    assert!(report.findings.contains(&Finding::Fork { seq: 3 }), "{:?}", report.findings);

    altered.detail = Some("x".into());
    let mut replaced = numbered(&events);
    replaced[2].1 = altered.sign(&key());
    let report = verify_chain(&key().verifying_key(), replaced);
    assert_eq!(report.findings, vec![Finding::BrokenLink { seq: 4 }]);
}

#[test]
fn duplicates_received_twice_count_once() {
    let events = chain(&key(), 4);
    let mut received = numbered(&events);
    received.extend(numbered(&events));
    let report = verify_chain(&key().verifying_key(), received);
    assert_eq!(report.findings, vec![]);
    assert_eq!(report.events.len(), 4);
}

#[test]
fn an_upload_opens_only_with_its_audit_key_and_only_as_signed() {
    let (secret, public) = crate::envelope::generate_keypair();
    let audit_key =
        AuditKey { organisation: "Wijkteam Zaanstad".into(), public, version: 1, issued_at_ms: 0 };
    let events = chain(&key(), 3);
    let upload = AuditUpload::seal([7; 16], &key(), &audit_key, 1, &events).unwrap();
    let upload = AuditUpload::from_bytes(&upload.to_bytes()).unwrap();
    upload.verify_signature(&key().verifying_key()).unwrap();
    assert_eq!(upload.open(&secret).unwrap(), events);

    let (wrong, _) = crate::envelope::generate_keypair();
    assert_eq!(upload.open(&wrong).unwrap_err(), AuditError::Undecryptable);
    let moved = AuditUpload { first: 2, last: 4, ..upload.clone() };
    assert_eq!(moved.verify_signature(&key().verifying_key()).unwrap_err(), AuditError::BadSignature);
    assert_eq!(moved.open(&secret).unwrap_err(), AuditError::Undecryptable);
    assert_eq!(
        upload.verify_signature(&SigningKey::from_bytes(&[6; 32]).verifying_key()).unwrap_err(),
        AuditError::BadSignature
    );
}

#[test]
fn truncated_or_oversized_uploads_are_malformed_not_a_panic() {
    let (_, public) = crate::envelope::generate_keypair();
    let audit_key = AuditKey { organisation: "o".into(), public, version: 1, issued_at_ms: 0 };
    let bytes = AuditUpload::seal([7; 16], &key(), &audit_key, 1, &chain(&key(), 2)).unwrap().to_bytes();
    for cut in [0, 1, 10, bytes.len() / 2, bytes.len() - 1] {
        assert!(AuditUpload::from_bytes(&bytes[..cut]).is_err());
    }
    assert_eq!(
        AuditUpload::from_bytes(&vec![0u8; MAX_UPLOAD_LEN + 1024]).unwrap_err(),
        AuditError::Malformed
    );
    assert!(SignedEvent::from_bytes(&[0xff; 40]).is_err());
}

#[test]
fn an_audit_key_counts_only_when_the_root_signed_it() {
    let root = SigningKey::from_bytes(&[1; 32]);
    let (_, public) = crate::envelope::generate_keypair();
    let key = AuditKey { organisation: "Politie Zaanstreek".into(), public, version: 2, issued_at_ms: 5 };
    let signed = SignedAuditKey::from_bytes(&key.sign(&root).to_bytes()).unwrap();
    assert_eq!(signed.verify(&root.verifying_key().to_bytes()).unwrap(), key);
    let other = SigningKey::from_bytes(&[2; 32]);
    assert_eq!(
        key.sign(&other).verify(&root.verifying_key().to_bytes()).unwrap_err(),
        AuditError::BadSignature
    );
}

#[test]
fn every_action_code_parses_back() {
    for action in AuditAction::ALL {
        assert_eq!(AuditAction::parse(action.as_str()), Some(action));
    }
}

#[test]
fn uploads_are_opened_per_device_and_those_that_do_not_open_or_are_not_the_devices_are_named() {
    let (secret, public) = crate::envelope::generate_keypair();
    let audit_key =
        AuditKey { organisation: "Wijkteam Zaanstad".into(), public, version: 1, issued_at_ms: 0 };
    let other = SigningKey::from_bytes(&[6; 32]);
    let events = chain(&key(), 6);
    let upload = |signer: &SigningKey, device: [u8; 16], first: u64, events: &[SignedEvent]| {
        AuditUpload::seal(device, signer, &audit_key, first, events).unwrap().to_bytes()
    };
    let uploads = vec![
        upload(&key(), [7; 16], 1, &events[..2]),
        // Event 3 never arrives; 4..=6 do, twice.
        upload(&key(), [7; 16], 4, &events[3..]),
        upload(&key(), [7; 16], 4, &events[3..]),
        // In device 7's name but signed by another key; and a device nobody certified.
        upload(&other, [7; 16], 3, &events[2..3]),
        upload(&other, [8; 16], 1, &chain(&other, 1)),
        vec![0xFF; 12],
    ];
    let writers = HashMap::from([([7; 16], key().verifying_key())]);
    let secrets = HashMap::from([(1, *secret)]);
    for threads in [1, 3] {
        let report = verify_uploads(&uploads, &writers, &secrets, threads);
        assert_eq!(report.chains.len(), 1);
        let (device, chain, head) = &report.chains[0];
        assert_eq!(*device, [7; 16]);
        assert_eq!(chain.findings, [Finding::Gap { from: 3, to: 3 }]);
        assert_eq!(chain.events.len(), 5);
        assert_eq!(*head, Some(ChainHead::after(&events[5], 6)));
        let faults: Vec<UploadFault> = report.problems.iter().map(|p| p.fault).collect();
        assert_eq!(faults, [UploadFault::NotSigned, UploadFault::UnknownDevice, UploadFault::Malformed]);
    }
    let none = verify_uploads(&uploads[..1], &writers, &HashMap::new(), 2);
    assert_eq!(none.problems[0].fault, UploadFault::NoKey);
}
