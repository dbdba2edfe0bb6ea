//! `application/json` bodies: every scalar becomes an argument named as
//! ModSecurity v3 names it (`json.a.b`, arrays as `json.a.array_0` ...).

use super::{BodyError, BodyLimits, Pair};

/// Flattens a JSON document into argument pairs.
pub fn parse(body: &[u8], limits: &BodyLimits) -> Result<Vec<Pair>, BodyError> {
    let _ = (body, limits);
    todo!("json::parse")
}
