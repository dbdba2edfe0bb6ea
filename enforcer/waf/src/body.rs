//! Request body processors: URLENCODED, JSON, MULTIPART and XML.
//!
//! Each turns a buffered body into the values the engine exposes as ARGS_POST,
//! FILES*, MULTIPART_* and XML. They never panic on bad input: malformed bodies
//! produce an error the engine surfaces as REQBODY_ERROR / REQBODY_ERROR_MSG
//! (and, for multipart, the MULTIPART_* flags).

pub mod json;
pub mod multipart;
pub mod urlencoded;
pub mod xml;

/// A name/value pair produced by a processor (raw bytes, already decoded).
pub type Pair = (Vec<u8>, Vec<u8>);

/// Limits the processors enforce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimits {
    /// Maximum JSON/XML nesting depth before the body is rejected as an error.
    pub max_depth: usize,
    /// Maximum number of arguments a body may produce; more is an error.
    pub max_args: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            max_depth: 512,
            max_args: 10_000,
        }
    }
}

/// A body that could not be processed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BodyError {
    /// Message for REQBODY_ERROR_MSG (lowercase, names the problem and offset where known).
    pub message: String,
}
