//! The administrators' signed revocation list, as a device keeps it: nothing the server says
//! about revocation is taken on its word.
//!
//! Every key an administrator makes after a revocation is committed to under the version of
//! the list that names the revoked device (`Commitment::revocations_version`). A device that
//! takes such a key learns that this version exists, and must hold at least that version of
//! the list (fetched from the server, verified against the pinned root, and only if it extends
//! the one held) before it seals any key to anyone. It never seals to a listed device, and it
//! refuses a write of a listed device in an epoch made after its revocation. So a compromised
//! server that lists a revoked device as active again, or asks for a key on its behalf, gets
//! nothing; one that withholds the newer list only stops this device from answering key
//! requests.
//!
//! ```text
//! admin revokes Wim's phone      list v1 {wim}   epoch 2 of every document, committed "under v1"
//! Rita takes an epoch-2 key      demanded = 1 > held 0  →  fetch list, verify, extend: held v1
//! server asks Rita for Wim       v1 names Wim  →  refused
//! ```

use eenplan_protocol::revocation::RevocationList;

use super::ServerState;
use super::authors::{Judge, RevocationsFetch};
use crate::device::Device;
use crate::error::CoreError;

pub(super) const STATE_REVOCATIONS: &str = "revocations";
const STATE_DEMANDED: &str = "revocations-demanded";

/// The revocation list a pass judges by.
#[derive(Debug)]
pub(super) struct Revocations {
    pub list: RevocationList,
    /// The newest version named by a commitment this device holds.
    pub demanded: u32,
    /// A newer list taken in this pass, to store with the pass's writes.
    pub taken: Option<Vec<u8>>,
    /// Why a newer list the pass needed could not be taken.
    pub problem: Option<String>,
}

impl Revocations {
    /// Whether this device may seal keys to others: it holds every revocation it has heard of.
    pub fn current(&self) -> bool {
        self.list.version >= self.demanded
    }

    /// The state to persist with the pass: the demanded version, and a list taken.
    pub fn writes(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut out = vec![(STATE_DEMANDED, self.demanded.to_be_bytes().to_vec())];
        if let Some(bytes) = &self.taken {
            out.push((STATE_REVOCATIONS, bytes.clone()));
        }
        out
    }
}

impl Device {
    /// The list this device holds, verified against the pinned root (none: version 0).
    pub(super) fn held_revocations(&self, server: &ServerState) -> Result<RevocationList, CoreError> {
        match self.store().sync_state(STATE_REVOCATIONS)? {
            Some(bytes) => RevocationList::verify(&bytes, &server.root_public).map_err(|e| {
                crate::store::StoreError::Corrupt(format!("the stored revocation list: {e}")).into()
            }),
            None => Ok(RevocationList::none()),
        }
    }

    fn demanded_revocations(&self) -> Result<u32, CoreError> {
        Ok(self
            .store()
            .sync_state(STATE_DEMANDED)?
            .and_then(|b| b.as_slice().try_into().ok().map(u32::from_be_bytes))
            .unwrap_or(0))
    }

    /// The list a pass judges by: the one held, or a newer one fetched in this sync when a
    /// commitment demands it (`named`: the newest version the pass's keys were made under).
    /// Wants the newest list from the server when it is needed and not fetched yet.
    pub(super) fn revocations_for_pass(
        &self,
        server: &ServerState,
        named: u32,
        judge: &mut Judge,
    ) -> Result<Revocations, CoreError> {
        let held = self.held_revocations(server)?;
        let demanded = self.demanded_revocations()?.max(named);
        let mut out = Revocations { list: held, demanded, taken: None, problem: None };
        if out.current() {
            return Ok(out);
        }
        match judge.revocations() {
            RevocationsFetch::NotYet => judge.want_revocations(),
            RevocationsFetch::Missing(why) => out.problem = Some(why),
            RevocationsFetch::Found(bytes) => match RevocationList::verify(&bytes, &server.root_public)
                .and_then(|list| list.check_extends(&out.list).map(|()| list))
            {
                Ok(list) => {
                    out.list = list;
                    out.taken = Some(bytes);
                }
                Err(e) => out.problem = Some(format!("the revocation list from the server: {e}")),
            },
        }
        if !out.current() && out.problem.is_none() && !judge.wants() {
            out.problem = Some(format!(
                "the server's revocation list is version {}, older than the version {} a key was made under",
                out.list.version, out.demanded
            ));
        }
        Ok(out)
    }
}
