//! How often a process's remembered reads were served from memory, and how often they were
//! read again from the database: for the operator's `/metrics`
//! ([`crate::storage::Storage::remembered_reads`]). Beside them, what sync answers guess
//! ([`AnswerGuesses`]), with the devices whose answers wait for a transaction.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::storage::DeviceId;

/// The counts of one cache since the process started.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    served: AtomicU64,
    read: AtomicU64,
}

impl Tally {
    /// A remembered read was served.
    pub(crate) fn served(&self) {
        self.served.fetch_add(1, Ordering::Relaxed);
    }

    /// The database was read again: nothing was remembered, or it no longer held.
    pub(crate) fn read(&self) {
        self.read.fetch_add(1, Ordering::Relaxed);
    }

    /// A read that was served when `served`, made in the database otherwise.
    pub(crate) fn count(&self, served: bool) {
        if served { self.served() } else { self.read() }
    }

    /// (served, read).
    pub(crate) fn counts(&self) -> (u64, u64) {
        (self.served.load(Ordering::Relaxed), self.read.load(Ordering::Relaxed))
    }
}

/// What a process's sync answers guess before they read (`domain::answer`), and how often
/// each guess held: the reads asked for ahead with the facts (served: the answer took it;
/// read: it made the read itself), and whether the answer fits in one statement (served: it
/// did; read: it asked for a second and ran again in a transaction).
#[derive(Debug, Default)]
pub(crate) struct AnswerGuesses {
    pub mailbox: Tally,
    pub news: Tally,
    pub tails: Tally,
    pub one_statement: Tally,
    /// The devices whose answer lately needed more than one statement, with how many of
    /// their next answers run in a transaction at once.
    pub(super) in_transaction: Mutex<HashMap<DeviceId, u8>>,
}
