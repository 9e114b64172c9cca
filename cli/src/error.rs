//! The CLI's errors and their exit codes.

use std::path::PathBuf;

use eenplan_core::CoreError;
use eenplan_core::plan::PlanError;

/// Exit code for input the user can fix by changing the command line.
pub const EXIT_USAGE: u8 = 2;
/// Exit code for everything else (wrong passphrase, damaged files, I/O).
pub const EXIT_FAILURE: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("{0}")]
    Usage(String),
    /// `resolve --pick` beyond the values; the core counts from 0, people from 1.
    #[error("conflict {conflict:?} has {count} values; there is no value {pick} (pick 1 to {count})")]
    NoSuchPick { conflict: String, pick: usize, count: usize },
    #[error("cannot ask for the {what} without a terminal ({source}); set {env}")]
    Prompt {
        what: &'static str,
        env: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    FamilyCopy(#[from] eenplan_core::family_copy::FamilyCopyError),
    #[error(transparent)]
    Pdf(#[from] crate::pdf::PdfError),
    #[error("cannot encode JSON output: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "this device has been wiped: its data is gone for good. {} now holds only the wipe \
         record ({}); `eenplan init` sets up a new device there, to be enrolled with a new code",
        .0.display(),
        eenplan_core::wipe::MARKER_FILE
    )]
    Wiped(PathBuf),
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> Self {
        CliError::Usage(message.into())
    }

    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| CliError::Io { action, path, source }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::NoSuchPick { .. } => EXIT_USAGE,
            CliError::Core(core) if is_usage(core) => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }
}

/// Core errors that mean the command line named something wrong, rather than that the device,
/// a file or the passphrase failed.
fn is_usage(error: &CoreError) -> bool {
    matches!(
        error,
        CoreError::UnknownPlan(_)
            | CoreError::AmbiguousPlan(_)
            | CoreError::NoMatchingPlan(_)
            | CoreError::PlanPrefixTooShort(_)
            | CoreError::InvalidDeviceLabel(_)
            | CoreError::Plan(
                PlanError::Invalid(_) | PlanError::UnknownConflict(_) | PlanError::NoSuchConflictValue { .. }
            )
    )
}
