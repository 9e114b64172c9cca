//! Changes files: a whole plan carried between devices by hand.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use eenplan_core::Device;
use eenplan_core::transfer::{ImportReport, MAX_TRANSFER_BYTES};

use super::find_plan;
use crate::args::{ExportArgs, ImportArgs};
use crate::error::CliError;
use crate::output::Output;
use crate::passphrase;

pub fn export(device: &mut Device, args: ExportArgs) -> Result<Output, CliError> {
    let plan = find_plan(device, &args.plan)?;
    let family = device.read(&plan)?.family;
    let transfer = passphrase::chosen(passphrase::TRANSFER)?;
    let bytes = device.export_changes(&plan, &transfer)?;
    write_atomically(&args.changes, &bytes)?;
    Ok(Output::Text(format!("exported plan {plan} ({family}) to {}", args.changes.display())))
}

pub fn import(device: &mut Device, args: ImportArgs) -> Result<Output, CliError> {
    let bytes = read_bounded(&args.changes)?;
    let transfer = passphrase::existing(passphrase::TRANSFER)?;
    let report = device.import_changes(&bytes, &transfer)?;
    Output::choose(args.output.json, &report, report_text)
}

fn report_text(report: &ImportReport) -> String {
    let what = match (report.new_plan, report.changes) {
        (true, n) => format!("new on this device, {n} changes"),
        (false, 0) => "already up to date".into(),
        (false, 1) => "1 new change".into(),
        (false, n) => format!("{n} new changes"),
    };
    format!("plan {} ({}): {what}", report.plan, report.family)
}

/// Reads at most one byte more than the core accepts, so that a huge file is refused by the
/// core's size check without being read into memory whole.
fn read_bounded(path: &Path) -> Result<Vec<u8>, CliError> {
    let file = File::open(path).map_err(CliError::io("cannot open", path))?;
    let limit = u64::try_from(MAX_TRANSFER_BYTES).unwrap_or(u64::MAX).saturating_add(1);
    let mut bytes = Vec::new();
    file.take(limit).read_to_end(&mut bytes).map_err(CliError::io("cannot read", path))?;
    Ok(bytes)
}

/// Writes `FILE.tmp`, syncs it and renames it over `FILE`: a crash leaves either the old file
/// or the complete new one, never a truncated export that looks like a damaged plan.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = write_synced(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, path).map_err(CliError::io("cannot rename into place", path)));
    if written.is_err() {
        // Best effort: the error that matters is the one already in hand.
        let _ = fs::remove_file(&tmp);
    }
    written?;
    sync_parent(path)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        // The file is sealed, but there is no reason for other users to read it.
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(CliError::io("cannot create", path))?;
    file.write_all(bytes).map_err(CliError::io("cannot write", path))?;
    file.sync_all().map_err(CliError::io("cannot sync", path))
}

/// The rename is only durable once the directory entry is on disk too.
#[cfg(unix)]
fn sync_parent(path: &Path) -> Result<(), CliError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir).and_then(|d| d.sync_all()).map_err(CliError::io("cannot sync directory", dir))
}

#[cfg(not(unix))]
fn sync_parent(_path: &Path) -> Result<(), CliError> {
    Ok(())
}
