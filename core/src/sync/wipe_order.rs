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
//! it signs a report of that cause right after enrolment and keeps it beside the store; the
//! report and the server address are all it holds, and reveal nothing but that it existed.

use eenplan_protocol::api::{self, WipeOrderRequest, WipeOrderResponse, WipeReportUpload, hex, unhex};
use eenplan_protocol::certificate::Certificate;
use eenplan_protocol::sync::Fixed;
use eenplan_protocol::wipe::{Signed, WipeCause, WipeOrder, WipeReport};
use serde::{Deserialize, Serialize};

use super::access::Access;
use super::transport::Transport;
use super::{ServerState, SyncError};
use crate::device::Device;
use crate::error::CoreError;
use crate::wipe::WipeReason;

/// What the wipe marker keeps of a report: where to send it, and the signed report.
#[derive(Debug, Serialize, Deserialize)]
struct PendingReport {
    server: String,
    #[serde(with = "eenplan_protocol::bytes")]
    report: Vec<u8>,
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
        Ok(Some(order))
    }

    /// Signs the report a wipe after too many failed unlocks leaves behind (it can sign
    /// nothing then), and keeps it beside the store.
    pub(super) fn prepare_self_wipe_report(&self, server: &ServerState) -> Result<(), CoreError> {
        self.store_self_wipe_report(self.signed_report(server, WipeCause::FailedUnlocks))
    }

    /// A report of a wipe for `cause`, signed now, with where to send it (what the wipe
    /// marker keeps).
    fn signed_report(&self, server: &ServerState, cause: WipeCause) -> Vec<u8> {
        let report =
            WipeReport { device: Fixed(*self.device_id().as_bytes()), cause, signed_at_ms: self.now_ms() }
                .sign(self.identity().signing_key());
        super::cbor(&PendingReport { server: server.url.clone(), report: report.to_bytes() })
    }

    /// Sends the wipe report a wiped data directory holds, if it was not sent yet. Hosts call
    /// this when they find a wiped device and are online; `Ok(true)` once the server has it.
    pub fn send_wipe_report(dir: &std::path::Path) -> Result<bool, CoreError> {
        let Some(marker) = Device::wipe_marker(dir) else { return Ok(false) };
        if marker.reported {
            return Ok(true);
        }
        let Some(bytes) = marker.report else { return Ok(false) };
        let pending: PendingReport = ciborium::from_reader(bytes.as_slice())
            .map_err(|_| SyncError::Protocol("the stored wipe report is not readable".into()))?;
        let transport = Transport::new(&pending.server);
        // The server answers 204 with no body.
        let body = serde_json::to_vec(&WipeReportUpload { report: hex(&pending.report) })
            .map_err(|e| SyncError::Protocol(e.to_string()))?;
        transport.post(api::PATH_WIPE_REPORT, None, "application/json", body, 1024)?;
        Device::mark_wipe_reported(dir)?;
        Ok(true)
    }
}
