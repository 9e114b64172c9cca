//! Bundles from the network: `Bundle::decode` of arbitrary bytes, then `verify` and `open`
//! with fixed keys, must never panic; and whatever the fuzzer hands in as a payload must
//! survive `seal` → `decode` → `verify` → `open` unchanged.
#![no_main]

use eenplan_protocol::bundle::{MAX_BUNDLE_LEN, MIN_BUNDLE_LEN, SIGNATURE_LEN, TAG_LEN};
use eenplan_protocol::{Bundle, BundleError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let author = eenplan_fuzz::author_public();

    // 1. Untrusted bytes.
    match Bundle::decode(data.to_vec()) {
        Ok(bundle) => {
            assert!(data.len() >= MIN_BUNDLE_LEN && data.len() <= MAX_BUNDLE_LEN);
            assert_eq!(bundle.as_bytes(), data);
            let verified = bundle.verify(author).is_ok();
            let opened = bundle.open(&eenplan_fuzz::EPOCH_KEY);
            if verified {
                // Only the seeds (signed with the fixed key) verify; they also open, and never
                // under another key.
                assert!(opened.is_ok(), "a verified bundle does not open");
                assert_eq!(bundle.open(&eenplan_fuzz::OTHER_EPOCH_KEY), Err(BundleError::Undecryptable));
            }
            if let Ok(payload) = opened {
                assert_eq!(payload.len(), data.len() - (bundle.header_len() + TAG_LEN + SIGNATURE_LEN));
            }
            // Re-decoding what decoded gives the same header.
            let again = Bundle::decode(bundle.as_bytes().to_vec()).expect("re-decode");
            assert_eq!(again.header, bundle.header);
        }
        Err(BundleError::Truncated { len, min }) => assert!(len < min && min >= MIN_BUNDLE_LEN),
        Err(BundleError::TooLarge { len, .. }) => assert!(len > MAX_BUNDLE_LEN),
        Err(
            BundleError::UnsupportedVersion(_)
            | BundleError::UnknownKind(_)
            | BundleError::RetiredVersion(_)
            | BundleError::BadNumber
            | BundleError::UnknownCompartment(_),
        ) => {}
        Err(other) => panic!("decode returned {other:?}, which only verify/open may return"),
    }

    // 2. The fuzzer's bytes as a payload (bounded: signing costs per byte).
    if data.len() <= 4096 {
        let header = eenplan_fuzz::header_from(data);
        let sealed = Bundle::seal(header, &eenplan_fuzz::EPOCH_KEY, data, eenplan_fuzz::author())
            .expect("sealing a small payload");
        assert_eq!(sealed.as_bytes().len(), sealed.header_len() + TAG_LEN + SIGNATURE_LEN + data.len());
        let sealed_header = sealed.header;
        let decoded = Bundle::decode(sealed.into_bytes()).expect("a sealed bundle decodes");
        assert_eq!(decoded.header, sealed_header);
        assert_eq!(decoded.header.unsealed(), header);
        decoded.verify(author).expect("a sealed bundle verifies");
        assert_eq!(decoded.open(&eenplan_fuzz::EPOCH_KEY).expect("a sealed bundle opens"), data);
        assert_eq!(decoded.open(&eenplan_fuzz::OTHER_EPOCH_KEY), Err(BundleError::Undecryptable));
    }
});
