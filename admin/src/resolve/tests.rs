use ed25519_dalek::{Signer, SigningKey};
use eenplan_protocol::certificate::AdminBody;
use eenplan_protocol::device_name::{DeviceLabel, Platform};

use super::*;

const ROOT: [u8; 32] = [1; 32];
const ADMIN: [u8; 32] = [2; 32];

fn root_public() -> [u8; 32] {
    SigningKey::from_bytes(&ROOT).verifying_key().to_bytes()
}

/// An active device of user 7 whose key is `seed`, certified through the root, that signed
/// `label` itself.
fn device(seed: u8, label: &str, state: &str) -> DeviceInfo {
    device_in(seed, label, state, "Wijkteam Noord")
}

/// [`device`], certified for `organisation`.
fn device_in(seed: u8, label: &str, state: &str, organisation: &str) -> DeviceInfo {
    let (root, admin, key) =
        (SigningKey::from_bytes(&ROOT), SigningKey::from_bytes(&ADMIN), SigningKey::from_bytes(&[seed; 32]));
    let admin_certificate = Certificate::sign_admin(
        &AdminBody {
            admin_public: admin.verifying_key().to_bytes(),
            name: "Beheer".into(),
            issued_at_ms: 0,
            organisation: None,
        },
        &root,
    );
    let id = device_id_of(key.verifying_key().as_bytes());
    let body = DeviceBody {
        device_id: id,
        user_id: 7,
        user_name: "Wim".into(),
        organisation: organisation.into(),
        role: "wijkteam".into(),
        signing_public: key.verifying_key().to_bytes(),
        agreement_public: vec![9; 32],
        valid_from_ms: 0,
        valid_until_ms: 1_000,
        issuer: admin.verifying_key().to_bytes(),
    };
    let name = SignedDeviceName::sign(&id, &DeviceLabel::parse(label).unwrap(), Platform::Android, |m| {
        key.sign(m).to_bytes()
    });
    DeviceInfo {
        device_id: api::hex(&id),
        user_id: 7,
        user_name: "Wim".into(),
        org: organisation.into(),
        role: "wijkteam".into(),
        state: state.into(),
        signing_public: api::hex(key.verifying_key().as_bytes()),
        agreement_public: String::new(),
        key_mac: String::new(),
        created_at_ms: 0,
        label: name.label,
        platform: Some(Platform::Android),
        label_signature: name.signature,
        enrolled_at_ms: 0,
        last_seen_ms: None,
        revoked_at_ms: None,
        wiped_at_ms: None,
        certificate: api::hex(&Certificate::sign_device(&body, &admin).to_bytes()),
        admin_certificate: api::hex(&admin_certificate.to_bytes()),
    }
}

fn listing(devices: Vec<DeviceInfo>) -> Vec<DeviceInfo> {
    let listing = verified_listing(devices, &root_public(), 500).unwrap();
    assert_eq!((listing.names_cleared, listing.dropped), (0, 0));
    listing.devices
}

#[test]
fn a_device_is_found_by_its_id_a_unique_prefix_or_its_unique_name() {
    let (a, b) = (device(3, "Wim's Android", "active"), device(4, "Laptop Wim", "active"));
    let devices = listing(vec![a.clone(), b.clone()]);
    assert_eq!(pick_device(devices.clone(), &a.device_id.to_uppercase()).unwrap(), a);
    assert_eq!(pick_device(devices.clone(), &b.device_id[..8]).unwrap(), b);
    assert_eq!(pick_device(devices.clone(), "Wim's Android").unwrap(), a);
    assert_eq!(pick_device(devices, " laptop wim ").unwrap(), b, "case and outer spaces do not count");
}

#[test]
fn a_name_of_several_devices_is_refused_with_the_candidates_in_dutch() {
    let (a, b) = (device(3, "Telefoon", "active"), device(4, "Telefoon", "pending"));
    let error = pick_device(listing(vec![a.clone(), b.clone()]), "Telefoon").unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, AdminError::AmbiguousDevice { .. }), "{text}");
    assert!(text.contains(&a.device_id[..12]) && text.contains(&b.device_id[..12]), "{text}");
    assert!(text.contains("meerdere apparaten") && text.contains("in afwachting"), "{text}");
}

#[test]
fn a_revoked_device_of_the_same_name_gives_way_to_the_one_in_use() {
    let (old, new) = (device(3, "Wim's Android", "revoked"), device(4, "Wim's Android", "active"));
    assert_eq!(pick_device(listing(vec![old.clone(), new.clone()]), "Wim's Android").unwrap(), new);
    // Only revoked ones: the name still finds it.
    assert_eq!(pick_device(listing(vec![old.clone()]), "Wim's Android").unwrap(), old);
}

#[test]
fn unknown_names_and_short_prefixes_are_refused() {
    let devices = listing(vec![device(3, "Wim's Android", "active")]);
    assert!(matches!(pick_device(devices.clone(), "Piet's iPhone"), Err(AdminError::UnknownDevice(_))));
    assert!(matches!(pick_device(devices.clone(), "ffffff"), Err(AdminError::UnknownDevice(_))));
    for short in ["", "ab", "b62e8"] {
        assert!(matches!(pick_device(devices.clone(), short), Err(AdminError::Usage(_))), "{short:?}");
    }
}

#[test]
fn a_name_the_device_did_not_sign_is_not_shown_nor_found() {
    let (a, b) = (device(3, "Wim's Android", "active"), device(4, "Laptop Wim", "active"));
    // The server moves a's name onto b: b's signature is over another name.
    let moved = DeviceInfo { label: a.label.clone(), ..b.clone() };
    // Or hands b a's whole signed name: signed for another id.
    let copied = DeviceInfo { label_signature: a.label_signature.clone(), ..moved.clone() };
    let listing = verified_listing(vec![moved, copied], &root_public(), 500).unwrap();
    assert_eq!(listing.names_cleared, 2);
    assert!(listing.devices.iter().all(|d| d.label.is_empty()));
    assert!(matches!(pick_device(listing.devices, "Wim's Android"), Err(AdminError::UnknownDevice(_))));
    // A certificate from another root does not vouch for a key, nor for the device at all.
    let listing = verified_listing(vec![a], &[9; 32], 500).unwrap();
    assert_eq!((listing.devices.len(), listing.dropped), (0, 1));
}

fn user(id: i64, name: &str, org: &str) -> UserInfo {
    UserInfo { id, org: org.into(), name: name.into(), role: "wijkteam".into() }
}

#[test]
fn users_are_found_by_id_or_unique_name() {
    let users = || {
        vec![
            user(1, "Fatima", "A"),
            user(2, "Jan", "A"),
            user(3, "Jan", "B"),
            user(4, "1", "A"),
            user(5, "Piet", "A"),
        ]
    };
    assert_eq!(pick_user(users(), "Fatima").unwrap().id, 1);
    assert_eq!(pick_user(users(), "fatima ").unwrap().id, 1);
    assert_eq!(pick_user(users(), "2").unwrap().name, "Jan");
    let ambiguous = pick_user(users(), "Jan").unwrap_err().to_string();
    assert!(ambiguous.contains("Jan (A, id 2); Jan (B, id 3)"), "{ambiguous}");
    // "1" is user 1's id and user 4's name: which one is meant is unclear.
    assert!(matches!(pick_user(users(), "1"), Err(AdminError::AmbiguousUser { .. })));
    assert!(matches!(pick_user(users(), "Kees"), Err(AdminError::UnknownUser(_))));
    assert!(matches!(pick_user(users(), "9"), Err(AdminError::UnknownUser(_))));
}

#[test]
fn an_organisations_administrator_finds_a_name_unique_in_their_own_organisation() {
    let users = || vec![user(2, "Jan", "A"), user(3, "Jan", "B"), user(5, "Piet", "B")];
    assert_eq!(pick_user_for(users(), "Jan", Some("A")).unwrap().id, 2);
    assert_eq!(pick_user_for(users(), "Jan", Some("B")).unwrap().id, 3);
    assert!(matches!(pick_user_for(users(), "Jan", None), Err(AdminError::AmbiguousUser { .. })));
    // Someone of another organisation is still found (and the act then refused as out of
    // scope), so the administrator is told why rather than "unknown".
    assert_eq!(pick_user_for(users(), "Piet", Some("A")).unwrap().id, 5);

    let other = device_in(3, "Wim's Android", "active", "Politie");
    let devices = listing(vec![device(2, "Wim's Android", "active"), other]);
    let mine = pick_device_for(devices.clone(), "wim's android", Some("Wijkteam Noord")).unwrap();
    assert_eq!(mine.org, "Wijkteam Noord");
    assert_eq!(pick_device_for(devices.clone(), "Wim's Android", Some("Politie")).unwrap().org, "Politie");
    assert!(matches!(
        pick_device_for(devices, "Wim's Android", None),
        Err(AdminError::AmbiguousDevice { .. })
    ));
}

#[test]
fn a_listing_with_a_device_id_that_is_not_hexadecimal_is_refused_so_it_never_reaches_a_link() {
    // Put into the console's approve form, this id would post to /users/7/offboard.
    let forged =
        DeviceInfo { device_id: "x/../../users/7/offboard?".into(), ..device(3, "Wim's Android", "pending") };
    let honest = device(4, "Laptop Wim", "active");
    assert!(matches!(
        verified_listing(vec![honest.clone(), forged], &root_public(), 500),
        Err(AdminError::BadResponse(_))
    ));
    let short = DeviceInfo { device_id: honest.device_id[..31].to_owned(), ..honest.clone() };
    assert!(verified_listing(vec![short], &root_public(), 500).is_err());
    assert!(verified_listing(vec![honest], &root_public(), 500).is_ok());
}

#[test]
fn an_approved_device_is_listed_under_the_person_its_certificate_names_or_not_at_all() {
    // The server lists Wim's phone under Eve's name and organisation: the listing shows the
    // certificate's person, so no "offboard Eve" or revoke page takes it for hers.
    let relabelled = DeviceInfo {
        user_name: "Eve".into(),
        org: "Politie".into(),
        role: "politie".into(),
        ..device(3, "Wim's Android", "active")
    };
    let listing = verified_listing(vec![relabelled], &root_public(), 500).unwrap();
    let shown = &listing.devices[0];
    assert_eq!(
        (shown.user_name.as_str(), shown.org.as_str(), shown.role.as_str()),
        ("Wim", "Wijkteam Noord", "wijkteam")
    );
    // Under Eve's user id, or without its certificate, it is not listed at all.
    let moved = DeviceInfo { user_id: 8, ..device(3, "Wim's Android", "active") };
    let stripped = DeviceInfo { certificate: String::new(), ..device(4, "Laptop Wim", "active") };
    let listing = verified_listing(vec![moved, stripped], &root_public(), 500).unwrap();
    assert_eq!((listing.devices.len(), listing.dropped), (0, 2));
    // A pending device has no certificate yet and is listed as the server says.
    let pending = DeviceInfo { certificate: String::new(), ..device(5, "Nieuwe telefoon", "pending") };
    assert_eq!(verified_listing(vec![pending], &root_public(), 500).unwrap().devices.len(), 1);
}
