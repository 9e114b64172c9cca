//! Where eenplan's warnings go: to the host's [`LogSink`] when it set one (Logcat, `os_log`),
//! else to standard error.
//!
//! Warnings are what eenplan handled itself but a developer should hear of: a listener or
//! keystore callback that threw (eenplan carried on), a wipe report it could not send yet.

use std::sync::{Arc, RwLock};

use crate::error::CallbackError;

/// Receives eenplan's warnings. Called on whichever thread the warning arose on.
#[uniffi::export(with_foreign)]
pub trait LogSink: Send + Sync {
    fn warning(&self, message: String) -> Result<(), CallbackError>;
}

static SINK: RwLock<Option<Arc<dyn LogSink>>> = RwLock::new(None);

/// Sets (or with `None` removes) the process-wide [`LogSink`].
#[uniffi::export]
pub fn set_log_sink(sink: Option<Arc<dyn LogSink>>) {
    // A poisoned lock only means an earlier writer panicked; the slot itself is whole.
    *SINK.write().unwrap_or_else(std::sync::PoisonError::into_inner) = sink;
}

/// A warning, to the sink or (when there is none, or it threw) to standard error.
pub(crate) fn warn(message: &str) {
    let sink = SINK.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let delivered = sink.is_some_and(|sink| sink.warning(message.to_owned()).is_ok());
    if !delivered {
        eprintln!("eenplan: {message}");
    }
}
