//! Making events: an entry point served as one access, events signed and chained, and
//! written in a write's transaction or in one small transaction of their own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use eenplan_protocol::audit::{Actor, AuditAction, AuditResult, ChainHead, SignedEvent};
use eenplan_protocol::sync::Fixed;

use super::{Access, AuditBacklog, Frame, Prepared, sign, write_prepared};
use crate::device::Device;
use crate::error::CoreError;
use crate::ids::{EntityId, PlanId};
use crate::plan::Compartment;

impl Device {
    /// Serves one entry point as one access: records `access` when `call` returns (done, or
    /// ended by its error), unless an edit inside it already recorded that action. Inside
    /// another entry point it records nothing: the outer one does.
    pub(crate) fn audited<T>(
        &mut self,
        access: Access,
        call: impl FnOnce(&mut Device) -> Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        self.audited_as(access, AuditAction::Change, call)
    }

    /// [`Device::audited`], where an edit inside records `edits_as` (the act itself, as
    /// settling and adopting are) instead of `Change`.
    pub(crate) fn audited_as<T>(
        &mut self,
        access: Access,
        edits_as: AuditAction,
        call: impl FnOnce(&mut Device) -> Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        let serving = Arc::clone(&self.audit_state().serving);
        if serving.swap(true, Ordering::SeqCst) {
            return call(self);
        }
        let guard = Serving(serving);
        self.audit_state().frame = Some(Frame { access: access.clone(), edits_as, recorded: false });
        let result = call(self);
        let recorded = self.audit_state().frame.take().is_some_and(|f| f.recorded);
        drop(guard);
        match result {
            Ok(value) if recorded => Ok(value),
            Ok(value) => {
                self.record(&[access])?;
                Ok(value)
            }
            Err(error) => {
                // The refusal stands whether or not its event could be written.
                let _ = self.record(&[access.ended_by(&error)]);
                Err(error)
            }
        }
    }

    /// Marks the entry point being served as recorded (the agenda records per plan).
    pub(crate) fn audit_recorded(&mut self) {
        if let Some(frame) = self.audit_state().frame.as_mut() {
            frame.recorded = true;
        }
    }

    /// Records `accesses` in one transaction of their own: `NORMAL` for reads and refusals,
    /// `FULL` for anything else (see the module documentation).
    pub(crate) fn record(&mut self, accesses: &[Access]) -> Result<(), CoreError> {
        if accesses.is_empty() || self.ensure_not_wiped().is_err() {
            return Ok(());
        }
        let prepared = self.prepare_events(accesses)?;
        let light = accesses.iter().all(|a| a.action == AuditAction::Read || a.result != AuditResult::Done);
        let write = |w: &mut crate::store::StoreWriter<'_>| write_prepared(w, &prepared);
        if light {
            self.store_mut().write_light(write)?;
        } else {
            self.store_mut().write(write)?;
        }
        self.audit_committed(prepared);
        Ok(())
    }

    /// Signs and numbers events after the chain's head, for the caller to write.
    pub(crate) fn prepare_events(&mut self, accesses: &[Access]) -> Result<Prepared, CoreError> {
        let actor = self.audit_actor()?;
        let at_ms = self.now_ms();
        let mut head = self.audit_state().head;
        let mut events = Vec::with_capacity(accesses.len());
        for access in accesses {
            let regisseur = match access.plan {
                Some(plan) => self.regisseur_organisation(&plan)?,
                None => None,
            };
            let on_behalf_of = regisseur.filter(|org| *org != actor.organisation);
            let signed = sign(self, &actor, at_ms, head, access, on_behalf_of);
            head = ChainHead::after(&signed, head.seq + 1);
            events.push((head.seq, signed.to_bytes()));
        }
        Ok(Prepared { events, head, actions: accesses.iter().map(|a| a.action).collect() })
    }

    /// Takes in events that were committed: the head moves, and the entry point being served
    /// knows whether its own action is recorded.
    pub(crate) fn audit_committed(&mut self, prepared: Prepared) {
        if prepared.events.is_empty() {
            return;
        }
        let state = self.audit_state();
        state.head = prepared.head;
        if let Some(frame) = state.frame.as_mut()
            && prepared.actions.contains(&frame.access.action)
        {
            frame.recorded = true;
        }
    }

    /// The events an edit of `plan` that changed `changed` records: one per compartment,
    /// with the entry point's action when the edit is its act.
    pub(crate) fn edit_accesses(&self, plan: PlanId, changed: &[Compartment]) -> Vec<Access> {
        let frame = self.audit_frame();
        let action = frame.map_or(AuditAction::Change, |f| f.edits_as);
        let object = frame.filter(|f| f.access.action == action).and_then(|f| f.access.object.clone());
        changed
            .iter()
            .map(|c| Access { object: object.clone(), ..Access::on(action, plan).compartment(*c) })
            .collect()
    }

    fn audit_frame(&self) -> Option<&Frame> {
        let state = self.audit_state_ref();
        state.frame.as_ref().filter(|_| state.serving.load(Ordering::SeqCst))
    }

    /// Who acts: the device's own certificate, cached by the stored record it came from.
    fn audit_actor(&mut self) -> Result<Actor, CoreError> {
        let device = Fixed(*self.device_id().as_bytes());
        let Some(record) = self.own_certificate_record()? else {
            return Ok(Actor {
                device,
                user_id: 0,
                user_name: String::new(),
                organisation: String::new(),
                role: String::new(),
            });
        };
        if let Some((cached, actor)) = &self.audit_state().actor
            && *cached == record
        {
            return Ok(actor.clone());
        }
        let actor = match self.own_named_body()? {
            Some(body) => Actor {
                device,
                user_id: body.user_id,
                user_name: body.user_name,
                organisation: body.organisation,
                role: body.role,
            },
            None => Actor {
                device,
                user_id: 0,
                user_name: String::new(),
                organisation: String::new(),
                role: String::new(),
            },
        };
        self.audit_state().actor = Some((record, actor.clone()));
        Ok(actor)
    }

    /// The access-log events this device holds (not yet kept by its server), oldest first,
    /// with their positions. They name ids only; no API deletes them.
    pub fn audit_events(&self) -> Result<Vec<(u64, SignedEvent)>, CoreError> {
        self.ensure_not_wiped()?;
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let rows = self.store().audit_events_after(after, 1024)?;
            let Some((last, _)) = rows.last() else { return Ok(out) };
            after = *last;
            for (seq, bytes) in rows {
                let event = SignedEvent::from_bytes(&bytes).map_err(|_| {
                    crate::store::StoreError::Corrupt(format!("audit event {seq} is not decodable"))
                })?;
                out.push((seq, event));
            }
        }
    }

    /// How many access-log events wait on this device for its server, and the bytes their
    /// sealed rows take (what a status screen shows; what the benchmark measures).
    pub fn audit_backlog(&self) -> Result<AuditBacklog, CoreError> {
        self.ensure_not_wiped()?;
        let (events, sealed_bytes) = self.store().audit_log_size()?;
        Ok(AuditBacklog { events, sealed_bytes })
    }

    /// Where this device's chain stands: the next event continues from here.
    pub fn audit_head(&self) -> ChainHead {
        self.audit_state_ref().head
    }
}

/// Clears [`super::AuditState::serving`] when the outermost entry point ends, by return or
/// by panic.
struct Serving(Arc<AtomicBool>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// The entity a conflict's id names (`compartment/path/…`): its last segment that is an
/// entity id. Paths name keys, and keys are ids or fixed names, but only an id goes into
/// an event.
pub(crate) fn conflict_entity(conflict: &str) -> Option<String> {
    conflict.split('/').rev().find_map(|s| s.parse::<EntityId>().ok()).map(|id| id.to_string())
}
