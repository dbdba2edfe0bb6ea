//! `multipart/form-data` bodies with ModSecurity's strict checks.

use super::{BodyLimits, Pair};

/// One uploaded file part.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilePart {
    /// Form field name (FILES_NAMES).
    pub name: Vec<u8>,
    /// The filename parameter (FILES).
    pub filename: Vec<u8>,
    /// Size of the content in bytes (FILES_SIZES).
    pub size: usize,
}

/// The MULTIPART_* flags ModSecurity sets (each 0 or 1 in the variables).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MultipartFlags {
    /// MULTIPART_BOUNDARY_QUOTED
    pub boundary_quoted: bool,
    /// MULTIPART_BOUNDARY_WHITESPACE
    pub boundary_whitespace: bool,
    /// MULTIPART_DATA_AFTER
    pub data_after: bool,
    /// MULTIPART_DATA_BEFORE
    pub data_before: bool,
    /// MULTIPART_FILE_LIMIT_EXCEEDED
    pub file_limit_exceeded: bool,
    /// MULTIPART_HEADER_FOLDING
    pub header_folding: bool,
    /// MULTIPART_INVALID_HEADER_FOLDING
    pub invalid_header_folding: bool,
    /// MULTIPART_INVALID_PART
    pub invalid_part: bool,
    /// MULTIPART_INVALID_QUOTING
    pub invalid_quoting: bool,
    /// MULTIPART_LF_LINE
    pub lf_line: bool,
    /// MULTIPART_MISSING_SEMICOLON
    pub missing_semicolon: bool,
    /// MULTIPART_CRLF_LF_LINES
    pub crlf_lf_lines: bool,
    /// MULTIPART_UNMATCHED_BOUNDARY
    pub unmatched_boundary: bool,
}

impl MultipartFlags {
    /// MULTIPART_STRICT_ERROR: any flag that ModSecurity folds into it, or a parse error.
    pub fn strict_error(&self) -> bool {
        let _ = self;
        todo!("MultipartFlags::strict_error")
    }
}

/// Everything a multipart body yields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Multipart {
    /// Non-file fields (ARGS_POST).
    pub args: Vec<Pair>,
    /// File parts.
    pub files: Vec<FilePart>,
    /// Every part header as (part field name, whole header line `Name: value`)
    /// (MULTIPART_PART_HEADERS, keyed by the part's field name).
    pub part_headers: Vec<Pair>,
    /// The flags.
    pub flags: MultipartFlags,
    /// A fatal parse error (REQBODY_ERROR), if any.
    pub error: Option<String>,
}

/// Parses a multipart body given the request's `Content-Type` header value.
pub fn parse(content_type: &[u8], body: &[u8], limits: &BodyLimits) -> Multipart {
    let _ = (content_type, body, limits);
    todo!("multipart::parse")
}
