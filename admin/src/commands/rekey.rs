//! `rekey`: the rotation loop alone, to finish what an interrupted command left.

use serde_json::json;

use super::{Session, with_rotation};
use crate::error::AdminError;
use crate::output::Output;

pub fn run(session: &mut Session, json: bool) -> Result<Output, AdminError> {
    let outcome = session.rotate_pending(None, None);
    with_rotation(json, String::new(), json!({}), outcome)
}
