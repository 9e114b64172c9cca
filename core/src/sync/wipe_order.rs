//! Obeying a wipe order, and reporting the wipe.
//!
//! A revoked device can no longer open a session (the server answers `403 revoked`). It then
//! asks for the order that waits for it, without a session, and obeys it only when the order
//! names this device and is signed by an administrator whose certificate chains to the root
//! pinned at enrolment: neither the server nor a stranger can wipe a device.
//!
//! ```text
//! device                                        server
//!   POST /v1/auth/challenge {device}  ────────► 403 revoked
//!   POST /v1/wipe-order {device}      ────────► {order: signed WipeOrder}
//!   verify admin certificate → root, signature, device id
//!   sign WipeReport(ordered) with the device key   (before the key is destroyed)
//!   wipe: key material first, then the files, then a marker holding the report
//!   POST /v1/wipe-report {report}     ────────► recorded; the device list shows "wiped"
//! ```
//!
//! A device that wipes itself after too many failed unlocks cannot sign anything any more, so
//! it signs a report of that cause in advance and keeps it beside the store; the report and
//! the server address are all it holds, and reveal nothing but that it existed.
//!
//! Anyone holding a copy of the device's files holds that report too, so it is bound to a
//! nonce (`eenplan_protocol::wipe`): each session registers the hash of a fresh one, and the
//! server takes only a report with the newest. The nonces live in the sealed store: the file
//! beside it could be put back to an older copy by someone who can write there, and the device
//! must then not register that copy's nonce again.
//!
//! ```text
//! before POST /v1/auth/session   refresh_self_wipe_report → H(n₂)    sealed: {confirmed n₁, pending n₂}
//!                                                                     file:   {report(n₂), previous report(n₁)}
//! session answered               confirm_self_wipe_report(H(n₂))     sealed: {confirmed n₂}
//!                                                                     file:   {report(n₂)}
//! ```
//!
//! Until a session answers, the server holds either nonce, so the file keeps a report for
//! both, and a session that failed is retried with the same pending nonce (drawing another
//! would leave the file without a report for a nonce the server may hold).

use eenplan_protocol::api::{self, WipeOrderRequest, WipeOrderResponse, WipeReportUpload, hex, unhex};
use eenplan_protocol::certificate::Certificate;
use eenplan_protocol::sync::Fixed;
use eenplan_protocol::wipe::{Signed, WipeCause, WipeOrder, WipeReport, wipe_nonce_hash};
use serde::{Deserialize, Serialize};

use super::access::Access;
use super::transport::Transport;
use super::{ServerState, SyncError, cbor, from_cbor};
use crate::device::Device;
use crate::error::CoreError;
use crate::wipe::WipeReason;

/// The sealed state naming the nonces of the self-wipe reports beside the store.
const STATE_WIPE_NONCES: &str = "wipe_nonces";

/// What the wipe marker keeps of a report: where to send it, and the signed report; for a
/// self-wipe report, also the one for the nonce the server held before the newest session
/// answered (absent in files written before nonces).
#[derive(Debug, Serialize, Deserialize)]
struct PendingReport {
    server: String,
    #[serde(with = "eenplan_protocol::bytes")]
    report: Vec<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous: Option<Blob>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(transparent)]
struct Blob(#[serde(with = "eenplan_protocol::bytes")] Vec<u8>);

/// The nonces of the self-wipe reports, in the sealed store.
#[derive(Debug, Default, Serialize, Deserialize)]
struct WipeNonces {
    /// Registered by a session the server answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    confirmed: Option<Fixed<32>>,
    /// Drawn for a session that has not answered yet: the server may or may not hold it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<Fixed<32>>,
}

/// Fetches, checks and obeys the wipe order for this revoked device (the device is held only
/// to check the order and to wipe). Returns the error the sync ends with: `Wiped` once the
/// data is gone, `Revoked` when no valid order waits.
pub(super) fn obey(access: &impl Access, server: &ServerState, transport: &Transport) -> CoreError {
    let fetched = access.with(|device| Ok(device.device_id().to_string())).and_then(|device_id| {
        let response: WipeOrderResponse =
            transport.post_json(api::PATH_WIPE_ORDER, None, &WipeOrderRequest { device_id })?;
        Ok(response.order)
    });
    let order = match fetched {
        Ok(Some(order)) => order,
        Ok(None) => return SyncError::Revoked.into(),
        Err(e) => return e,
    };
    let wiped = access.with(|device| {
        let Some(_order) = device.check_wipe_order(server, &order)? else { return Ok(None) };
        let report = device.signed_report(server, WipeCause::Ordered);
        let dir = device.data_dir().to_path_buf();
        device.wipe(WipeReason::Ordered, Some(report))?;
        Ok(Some(dir))
    });
    match wiped {
        Ok(Some(dir)) => {
            // Best effort: the marker keeps the report, and `send_wipe_report` retries.
            let _ = Device::send_wipe_report(&dir);
            CoreError::Wiped
        }
        Ok(None) => SyncError::Revoked.into(),
        Err(e) => e,
    }
}

impl Device {
    /// Checks a wipe order the server handed over: it must name this device and be signed by
    /// an administrator whose certificate chains to the pinned root.
    fn check_wipe_order(&self, server: &ServerState, order: &str) -> Result<Option<WipeOrder>, CoreError> {
        let untrusted = |why: &str| SyncError::UntrustedCertificate(format!("wipe order: {why}"));
        let bytes = unhex(order).ok_or_else(|| untrusted("not hex"))?;
        let signed = Signed::from_bytes(&bytes).map_err(|e| untrusted(&e.to_string()))?;
        let claimed = WipeOrder::claimed(&signed).map_err(|e| untrusted(&e.to_string()))?;
        let admin = Certificate::from_bytes(&claimed.admin_certificate)
            .and_then(|c| c.verify_admin(&server.root_public))
            .map_err(|e| untrusted(&e.to_string()))?;
        let order = WipeOrder::verify(&signed, &admin.admin_public).map_err(|e| untrusted(&e.to_string()))?;
        if order.device.0 != *self.device_id().as_bytes() {
            return Err(untrusted("it names another device").into());
        }
        // Only an administrator whose scope covers this device's organisation (as its own
        // certificate names it) may order it wiped; a device never certified obeys only a
        // network-wide one.
        let permitted = match self.own_named_body()? {
            Some(own) => admin.scope().permits_device(&own),
            None => admin.scope().is_network_wide(),
        };
        if !permitted {
            return Err(untrusted("it is signed by an administrator of another organisation").into());
        }
        Ok(Some(order))
    }

    /// Call before opening a session: makes sure the self-wipe report beside the store carries
    /// the nonce this session will register, and returns the hash to register
    /// ([`api::SessionRequest::wipe_nonce_hash`], signed with
    /// [`api::session_message_with_wipe_nonce`]). A nonce drawn for a session that did not
    /// answer is used again; otherwise a fresh one is drawn. The sealed store is written
    /// before the file, so a crash between the two leaves a nonce that the next call writes
    /// out again.
    pub(super) fn refresh_self_wipe_report(&mut self, server: &ServerState) -> Result<[u8; 32], CoreError> {
        self.ensure_not_wiped()?;
        let mut nonces = self.wipe_nonces()?;
        let pending = match nonces.pending {
            Some(pending) => pending.0,
            None => {
                let fresh = crate::crypto::random_array::<32>();
                nonces.pending = Some(Fixed(fresh));
                self.put_wipe_nonces(&nonces)?;
                fresh
            }
        };
        let previous = nonces.confirmed.map(|n| Blob(self.self_wipe_report(n.0)));
        self.write_self_wipe_report(server, self.self_wipe_report(pending), previous)?;
        Ok(wipe_nonce_hash(&pending))
    }

    /// Call once the server answered the session that registered `nonce_hash`: the pending
    /// nonce becomes the one the server holds, and the report for the nonce before it goes.
    /// A hash that is not the pending nonce's changes nothing.
    pub(super) fn confirm_self_wipe_report(
        &mut self,
        server: &ServerState,
        nonce_hash: &[u8; 32],
    ) -> Result<(), CoreError> {
        self.ensure_not_wiped()?;
        let nonces = self.wipe_nonces()?;
        let Some(pending) = nonces.pending.filter(|n| wipe_nonce_hash(&n.0) == *nonce_hash) else {
            return Ok(());
        };
        self.put_wipe_nonces(&WipeNonces { confirmed: Some(pending), pending: None })?;
        self.write_self_wipe_report(server, self.self_wipe_report(pending.0), None)
    }

    fn wipe_nonces(&self) -> Result<WipeNonces, CoreError> {
        self.store()
            .sync_state(STATE_WIPE_NONCES)?
            .map_or(Ok(WipeNonces::default()), |bytes| from_cbor(&bytes, "wipe nonces"))
    }

    fn put_wipe_nonces(&mut self, nonces: &WipeNonces) -> Result<(), CoreError> {
        let bytes = cbor(nonces);
        Ok(self.store_mut().write(|w| w.put_state(STATE_WIPE_NONCES, &bytes))?)
    }

    /// A self-wipe report for `nonce`, signed now.
    fn self_wipe_report(&self, nonce: [u8; 32]) -> Vec<u8> {
        self.report(WipeCause::FailedUnlocks, Some(Fixed(nonce))).to_bytes()
    }

    fn write_self_wipe_report(
        &self,
        server: &ServerState,
        report: Vec<u8>,
        previous: Option<Blob>,
    ) -> Result<(), CoreError> {
        self.store_self_wipe_report(cbor(&PendingReport { server: server.url.clone(), report, previous }))
    }

    fn report(&self, cause: WipeCause, nonce: Option<Fixed<32>>) -> Signed {
        WipeReport { device: Fixed(*self.device_id().as_bytes()), cause, signed_at_ms: self.now_ms(), nonce }
            .sign(self.identity().signing_key())
    }

    /// A report of a wipe for `cause`, signed now, with where to send it (what the wipe
    /// marker keeps).
    fn signed_report(&self, server: &ServerState, cause: WipeCause) -> Vec<u8> {
        let report = self.report(cause, None).to_bytes();
        cbor(&PendingReport { server: server.url.clone(), report, previous: None })
    }

    /// Sends the wipe report a wiped data directory holds, if it was not sent yet. Hosts call
    /// this when they find a wiped device and are online; `Ok(true)` once the server has it,
    /// `Ok(false)` while there is none or the server does not take it yet (the device's lease
    /// has not lapsed by the server's record: [`api::code::DEVICE_ACTIVE`]), so call again
    /// later.
    pub fn send_wipe_report(dir: &std::path::Path) -> Result<bool, CoreError> {
        let Some(marker) = Device::wipe_marker(dir) else { return Ok(false) };
        if marker.reported {
            return Ok(true);
        }
        let Some(bytes) = marker.report else { return Ok(false) };
        let pending: PendingReport = ciborium::from_reader(bytes.as_slice())
            .map_err(|_| SyncError::Protocol("the stored wipe report is not readable".into()))?;
        let transport = Transport::new(&pending.server);
        let mut result = post_report(&transport, &pending.report);
        // The session that would have registered the newest nonce may not have reached the
        // server: then it holds the one before.
        if let (Err(SyncError::Server { code, .. }), Some(previous)) = (&result, &pending.previous)
            && code == api::code::STALE_WIPE_REPORT
        {
            result = post_report(&transport, &previous.0);
        }
        match result {
            Ok(()) => {
                Device::mark_wipe_reported(dir)?;
                Ok(true)
            }
            Err(SyncError::Server { code, .. }) if code == api::code::DEVICE_ACTIVE => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// `POST /v1/wipe-report`; the server answers 204 with no body.
fn post_report(transport: &Transport, report: &[u8]) -> Result<(), SyncError> {
    let body = serde_json::to_vec(&WipeReportUpload { report: hex(report) })
        .map_err(|e| SyncError::Protocol(e.to_string()))?;
    transport.post(api::PATH_WIPE_REPORT, None, "application/json", body, 1024).map(|_| ())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::keystore::{KdfParams, PassphraseKeyStore};
    use crate::wipe::SELF_WIPE_REPORT_FILE;

    fn device(dir: &std::path::Path) -> Device {
        let keystore = PassphraseKeyStore::with_params("geheim", KdfParams::INSECURE_FAST_FOR_TESTS);
        Device::init(dir, &keystore).unwrap()
    }

    fn server() -> ServerState {
        ServerState { url: "https://eenplan.example".into(), root_public: [1; 32], escrow_public: vec![] }
    }

    /// The reports beside the store, verified with the device's key: (nonce hash, cause) of
    /// the newest, and the nonce hash of the previous one.
    fn reports_beside(device: &Device) -> ([u8; 32], Option<[u8; 32]>) {
        let bytes = std::fs::read(device.data_dir().join(SELF_WIPE_REPORT_FILE)).unwrap();
        let pending: PendingReport = ciborium::from_reader(bytes.as_slice()).unwrap();
        assert_eq!(pending.server, "https://eenplan.example");
        let public = device.identity().signing_key().verifying_key().to_bytes();
        let hash_of = |report: &[u8]| {
            let report = WipeReport::verify(&Signed::from_bytes(report).unwrap(), &public).unwrap();
            assert_eq!(report.cause, WipeCause::FailedUnlocks);
            assert_eq!(report.device.0, *device.device_id().as_bytes());
            wipe_nonce_hash(&report.nonce.expect("a self-wipe report carries its nonce").0)
        };
        (hash_of(&pending.report), pending.previous.map(|p| hash_of(&p.0)))
    }

    #[test]
    fn the_report_beside_the_store_carries_the_nonce_the_session_registers() {
        let dir = tempfile::tempdir().unwrap();
        let mut device = device(dir.path());
        let registered = device.refresh_self_wipe_report(&server()).unwrap();
        assert_eq!(reports_beside(&device), (registered, None));
    }

    #[test]
    fn an_unanswered_session_keeps_its_nonce_and_an_answered_one_moves_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut device = device(dir.path());
        let first = device.refresh_self_wipe_report(&server()).unwrap();
        // The session failed: the server may hold `first` or nothing; the same nonce again.
        assert_eq!(device.refresh_self_wipe_report(&server()).unwrap(), first);
        device.confirm_self_wipe_report(&server(), &first).unwrap();
        assert_eq!(reports_beside(&device), (first, None));
        let second = device.refresh_self_wipe_report(&server()).unwrap();
        assert_ne!(second, first);
        // Until the server answers, it holds either; the file has a report for both.
        assert_eq!(reports_beside(&device), (second, Some(first)));
        device.confirm_self_wipe_report(&server(), &[7; 32]).unwrap();
        assert_eq!(reports_beside(&device), (second, Some(first)), "an unknown hash changes nothing");
        device.confirm_self_wipe_report(&server(), &second).unwrap();
        assert_eq!(reports_beside(&device), (second, None));
    }

    #[test]
    fn a_report_file_put_back_from_an_older_copy_does_not_bring_its_nonce_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut device = device(dir.path());
        let old = device.refresh_self_wipe_report(&server()).unwrap();
        device.confirm_self_wipe_report(&server(), &old).unwrap();
        let copy = std::fs::read(dir.path().join(SELF_WIPE_REPORT_FILE)).unwrap();
        let newer = device.refresh_self_wipe_report(&server()).unwrap();
        device.confirm_self_wipe_report(&server(), &newer).unwrap();
        std::fs::write(dir.path().join(SELF_WIPE_REPORT_FILE), &copy).unwrap();
        let next = device.refresh_self_wipe_report(&server()).unwrap();
        assert!(next != old && next != newer, "the sealed nonces decide, not the file");
        assert_eq!(reports_beside(&device), (next, Some(newer)));
    }
}
