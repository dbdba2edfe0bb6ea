//! `multipart/form-data` bodies with ModSecurity's strict checks.
//!
//! This is a re-implementation of ModSecurity v3's line-oriented multipart parser
//! (`RequestBodyProcessor::Multipart`), kept faithful where rules can see the result:
//! the MULTIPART_* flags, ARGS_POST, FILES, FILES_NAMES, FILES_SIZES and
//! MULTIPART_PART_HEADERS.
//!
//! # How a body is read
//!
//! - The boundary comes from the `Content-Type` (`multipart/form-data` prefix, case
//!   insensitive; at most one `boundary` parameter, spelled in lowercase; an optional
//!   single `;` before it, else MULTIPART_MISSING_SEMICOLON; whitespace around `=` sets
//!   MULTIPART_BOUNDARY_WHITESPACE; a fully quoted value sets MULTIPART_BOUNDARY_QUOTED,
//!   a half-quoted one is an error; RFC 2046 characters only, except that a `;` and
//!   whatever follows it is dropped when the value would otherwise be invalid).
//! - The body is cut into lines (at most 4096 bytes each, as ModSecurity's buffer). A
//!   line that starts with `--` and the boundary, followed by CRLF or LF (or `--` and
//!   then CRLF or LF for the final one), is a boundary. Lines starting with `--` that do
//!   not match, or lines containing `--<boundary>` elsewhere, are "unmatched
//!   boundaries". Lines before the first boundary are data before
//!   (MULTIPART_DATA_BEFORE); anything after the final boundary is data after.
//! - Each part has header lines (`Name: value`, folding with leading whitespace) up to an
//!   empty line. `Content-Disposition` must be `form-data` with a `name` and optionally
//!   a `filename` (and `filename*`, accepted but only alongside `filename`). Values may
//!   be tokens or quoted with `"` (or `'`, which sets MULTIPART_INVALID_QUOTING);
//!   inside quotes only the quote character and `\` can be escaped.
//! - A line that matches the boundary right after a part's headers, before any data,
//!   is not taken as a boundary: it sets MULTIPART_INVALID_PART and is read as data of
//!   that part (ModSecurity's fix for CVE-2022-48279), so it cannot hide a part.
//! - A part with a `filename` is a file: only its name, filename and size are kept.
//!   Other parts become arguments. A line break that precedes the next boundary is not
//!   part of the value.
//! - MULTIPART_PART_HEADERS: every completed header line of a part, without its line
//!   terminator, keyed by the part's field name (`Content-Type: text/plain`). A folded
//!   header is recorded as `Name: value continuation` (the parsed value, joined with a
//!   space).
//!
//! # Errors
//!
//! Problems are reported as [`Multipart::error`] in ModSecurity's words, which it puts
//! after `Multipart parsing error: ` in REQBODY_ERROR_MSG (`Multipart: Final boundary
//! missing.`); as in
//! ModSecurity a later problem replaces the message of an earlier one. Some problems
//! stop the parser (a malformed boundary line, an over-long header line, a bad
//! `Content-Type`) and set the parse-error bit that MULTIPART_STRICT_ERROR includes;
//! others (a malformed part header, a missing or invalid `Content-Disposition`) are
//! recorded while the parser carries on in the same state: the following lines are
//! then read as headers too, which usually ends in "Final boundary missing.".
//!
//! # Differences from ModSecurity v3
//!
//! - ModSecurity v3 loses the line break that ends every line of a *field* value except
//!   the last (its reserve buffer is overwritten), so `a\r\nb` becomes `ab`. We keep
//!   the line breaks, as ModSecurity v2 and Coraza do.
//! - On an error that ends parsing ("Final boundary missing.", "no boundaries found")
//!   ModSecurity v3 exposes no arguments or files at all; we keep the parts completed
//!   before the error so that rules still see them.
//! - An empty boundary (`boundary=` or `boundary=""`) makes ModSecurity v3 skip the body
//!   silently, with no error; we report "Invalid boundary in C-T (empty)." and set the
//!   parse-error bit.
//! - After an error that stops the parser, ModSecurity still runs its end-of-body
//!   check, which replaces the message with "Final boundary missing." (or "No
//!   boundaries found in payload."), so the actual reason only reaches its debug log.
//!   We keep the message that names the actual reason.
//! - Messages that quote a line (`Invalid boundary: ...`, `colon missing: ...`) quote
//!   it without its line terminator.
//! - MULTIPART_FILE_LIMIT_EXCEEDED is never set: ModSecurity only checks
//!   `SecUploadFileLimit` when it writes uploaded files to disk, which we never do.
//! - ModSecurity does not apply `SecArgumentsLimit` to multipart fields; we stop adding
//!   fields after [`BodyLimits::max_args`] and report an error.
//! - NUL bytes: ModSecurity uses C string functions in a few places (the
//!   `Content-Type` header, boundary detection); we reproduce the same outcomes.
//!
//! `tests/body_modsec_reference.rs` runs bodies through libmodsecurity 3.0.15 and this
//! parser and compares every variable, allowing only for the differences above.

use super::{BodyLimits, Pair};

/// ModSecurity's line buffer size: longer lines are processed in pieces.
const BUF_SIZE: usize = 4096;
/// ModSecurity rejects `Content-Type` headers longer than this.
const MAX_CONTENT_TYPE: usize = 1024;

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
    /// MULTIPART_UNMATCHED_BOUNDARY is 1: the last boundary-like event was a line that
    /// looked like a boundary but did not match (see
    /// [`MultipartFlags::unmatched_boundary_value`]).
    pub unmatched_boundary: bool,
    /// The exact value ModSecurity v3 gives MULTIPART_UNMATCHED_BOUNDARY: 0 when no
    /// boundary-like line was seen, 1 after an unmatched one, 2 after a matching
    /// boundary that followed another (so a well-formed body ends with 2). Whichever
    /// happened last wins. ModSecurity's recommended rule tests `@eq 1`.
    pub unmatched_boundary_value: u8,
    /// The parser stopped on a fatal error (ModSecurity's internal error flag, which
    /// MULTIPART_STRICT_ERROR includes). Not set for "Final boundary missing." or for
    /// malformed part headers, which only produce [`Multipart::error`].
    pub parse_error: bool,
}

impl MultipartFlags {
    /// MULTIPART_STRICT_ERROR: any flag that ModSecurity folds into it, or a parse error.
    ///
    /// As in ModSecurity v3: the parse-error bit, boundary quoted or with whitespace,
    /// data before or after, header folding (valid or not), LF lines, a missing
    /// semicolon, invalid quoting, an invalid part and an exceeded file limit. Unmatched
    /// boundaries and mixed CRLF/LF lines (beyond the LF flag itself) are not included.
    pub fn strict_error(&self) -> bool {
        self.parse_error
            || self.boundary_quoted
            || self.boundary_whitespace
            || self.data_before
            || self.data_after
            || self.header_folding
            || self.lf_line
            || self.missing_semicolon
            || self.invalid_quoting
            || self.invalid_part
            || self.invalid_header_folding
            || self.file_limit_exceeded
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
    let mut parser = Parser::new(limits);
    match parse_boundary(content_type, &mut parser.out.flags) {
        Ok(boundary) => {
            parser.dash_boundary = [b"--".as_slice(), &boundary].concat();
            parser.boundary = boundary;
            parser.process(body);
            parser.complete();
        }
        Err(message) => {
            parser.out.flags.parse_error = true;
            parser.fail(message);
        }
    }
    parser.finish()
}

/// C's `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Counts `boundary` (any case) occurrences that have a `=` somewhere after them.
fn count_boundary_params(value: &[u8]) -> usize {
    let lower = value.to_ascii_lowercase();
    let mut count = 0;
    let mut from = 0;
    while let Some(i) = memchr::memmem::find(&lower[from..], b"boundary") {
        from += i + 8;
        if memchr::memchr(b'=', &lower[from..]).is_some() {
            count += 1;
        }
    }
    count
}

/// RFC 2046 boundary characters (a space is allowed, but not last).
fn boundary_characters_valid(boundary: &[u8]) -> bool {
    boundary.iter().enumerate().all(|(i, &c)| {
        c.is_ascii_alphanumeric()
            || (c == b' ' && i + 1 < boundary.len())
            || matches!(
                c,
                b'\'' | b'(' | b')' | b'+' | b'_' | b',' | b'-' | b'.' | b'/' | b':' | b'=' | b'?'
            )
    })
}

/// Extracts the boundary from the `Content-Type` value, setting the boundary flags.
fn parse_boundary(content_type: &[u8], flags: &mut MultipartFlags) -> Result<Vec<u8>, String> {
    if content_type.is_empty() {
        return Err("Content-Type header not available.".into());
    }
    if content_type.len() > MAX_CONTENT_TYPE {
        return Err("Invalid boundary in C-T (length).".into());
    }
    // ModSecurity reads the header as a C string.
    let header = match memchr::memchr(0, content_type) {
        Some(nul) => &content_type[..nul],
        None => content_type,
    };
    const MIME: &[u8] = b"multipart/form-data";
    if header.len() < MIME.len() || !header[..MIME.len()].eq_ignore_ascii_case(MIME) {
        return Err("Invalid MIME type.".into());
    }
    if count_boundary_params(header) > 1 {
        return Err("Multiple boundary parameters in C-T.".into());
    }
    let Some(at) = memchr::memmem::find(header, b"boundary") else {
        if count_boundary_params(header) > 0 {
            return Err("Invalid boundary in C-T (case sensitivity).".into());
        }
        return Err("Boundary not found in C-T.".into());
    };
    let mut seen_semicolon = false;
    for &c in header.get(MIME.len()..at).unwrap_or(&[]) {
        if is_c_space(c) {
            continue;
        }
        if !seen_semicolon && c == b';' {
            seen_semicolon = true;
        } else {
            return Err("Invalid boundary in C-T (malformed).".into());
        }
    }
    if !seen_semicolon {
        flags.missing_semicolon = true;
    }
    let after_name = at + 8;
    let Some(eq) = memchr::memchr(b'=', &header[after_name..]).map(|i| after_name + i) else {
        return Err("Invalid boundary in C-T (malformed).".into());
    };
    for &c in &header[after_name..eq] {
        if is_c_space(c) {
            flags.boundary_whitespace = true;
        } else {
            return Err("Invalid boundary in C-T (parameter name).".into());
        }
    }
    let value = &header[eq + 1..];
    if value.first().is_some_and(|&c| is_c_space(c)) {
        flags.boundary_whitespace = true;
    }
    let mut boundary = if value.len() >= 2 && value[0] == b'"' && value[value.len() - 1] == b'"' {
        flags.boundary_quoted = true;
        value[1..value.len() - 1].to_vec()
    } else {
        if value.first() == Some(&b'"') || (value.len() >= 2 && value[value.len() - 1] == b'"') {
            return Err("Invalid boundary in C-T (quote).".into());
        }
        value.to_vec()
    };
    if boundary.is_empty() {
        return Err("Invalid boundary in C-T (empty).".into());
    }
    if count_boundary_params(&boundary) != 0 {
        return Err("Invalid boundary in C-T (content).".into());
    }
    if !boundary_characters_valid(&boundary) {
        // Tolerated: a parameter after the boundary (`boundary=x; charset=utf-8`).
        if let Some(semi) = memchr::memchr(b';', &boundary) {
            boundary.truncate(semi);
        }
    }
    if !boundary_characters_valid(&boundary) {
        return Err("Invalid boundary in C-T (characters).".into());
    }
    if boundary.is_empty() {
        return Err("Invalid boundary in C-T (empty).".into());
    }
    Ok(boundary)
}

/// The part being built.
#[derive(Debug, Default)]
struct Part {
    name: Vec<u8>,
    filename: Vec<u8>,
    is_file: bool,
    /// Header values by lowercased name (ModSecurity compares names
    /// case-insensitively).
    headers: std::collections::HashMap<Vec<u8>, Vec<u8>>,
    last_header_name: Vec<u8>,
    last_header_line: Vec<u8>,
    header_lines: Vec<Vec<u8>>,
    value: Vec<u8>,
    size: usize,
    /// Still reading headers (ModSecurity's `m_mpp_state == 0`).
    in_headers: bool,
    /// Some data line was read (`m_mpp_substate_part_data_read`).
    data_read: bool,
}

impl Part {
    fn new() -> Self {
        Part {
            in_headers: true,
            ..Part::default()
        }
    }

    fn header(&self, name: &[u8]) -> Option<&Vec<u8>> {
        self.headers.get(&name.to_ascii_lowercase())
    }

    fn header_mut(&mut self, name: &[u8]) -> Option<&mut Vec<u8>> {
        self.headers.get_mut(&name.to_ascii_lowercase())
    }

    fn record_last_header_line(&mut self) {
        if !self.last_header_line.is_empty() {
            self.header_lines
                .push(std::mem::take(&mut self.last_header_line));
        }
    }
}

/// Why `Content-Disposition` was rejected (ModSecurity's negative return codes).
type DispositionError = i32;

/// The parser state (ModSecurity's `Multipart` object).
#[derive(Debug)]
struct Parser {
    boundary: Vec<u8>,
    /// `--` followed by the boundary.
    dash_boundary: Vec<u8>,
    out: Multipart,
    max_args: usize,
    crlf_line: bool,
    buf: Vec<u8>,
    buf_contains_line: bool,
    crlf_state: u8,
    crlf_state_buf_end: u8,
    part: Option<Part>,
    /// Line-ending bytes held back from the previous data line of the current part.
    reserve: Vec<u8>,
    boundary_count: usize,
    is_complete: bool,
    seen_data: bool,
}

impl Parser {
    fn new(limits: &BodyLimits) -> Self {
        Parser {
            boundary: Vec::new(),
            dash_boundary: Vec::new(),
            out: Multipart::default(),
            max_args: limits.max_args,
            crlf_line: false,
            buf: Vec::with_capacity(BUF_SIZE),
            buf_contains_line: true,
            crlf_state: 0,
            crlf_state_buf_end: 0,
            part: None,
            reserve: Vec::new(),
            boundary_count: 0,
            is_complete: false,
            seen_data: false,
        }
    }

    /// Records an error message; as in ModSecurity, a later message replaces an
    /// earlier one.
    fn fail(&mut self, message: impl Into<String>) {
        let message = message.into();
        self.out.error = Some(format!("Multipart: {message}"));
    }

    /// A fatal error: record it, set the parse-error bit; the caller stops.
    fn fatal(&mut self, message: impl Into<String>) {
        self.out.flags.parse_error = true;
        self.fail(message);
    }

    fn finish(mut self) -> Multipart {
        self.out.flags.crlf_lf_lines = self.crlf_line && self.out.flags.lf_line;
        self.out.flags.unmatched_boundary = self.out.flags.unmatched_boundary_value == 1;
        self.out
    }

    /// Feeds the whole body, one line (or 4096-byte piece) at a time.
    fn process(&mut self, body: &[u8]) {
        if body.is_empty() {
            return;
        }
        self.seen_data = true;
        let mut i = 0;
        while i < body.len() {
            let c = body[i];
            // ModSecurity never puts a CR in the last byte of its buffer.
            let hold_cr = c == b'\r' && self.buf.len() == BUF_SIZE - 1;
            if !hold_cr {
                self.buf.push(c);
                i += 1;
            }
            if c == b'\n' || self.buf.len() == BUF_SIZE || hold_cr {
                let full = self.buf.len() == BUF_SIZE || hold_cr;
                if !self.process_line(full) {
                    return;
                }
                self.buf.clear();
                self.buf_contains_line = c == b'\n';
                if c == b'\n' {
                    self.crlf_state = if self.crlf_state == 1 { 3 } else { 2 };
                }
                self.crlf_state_buf_end = self.crlf_state;
            }
            if c == b'\r' {
                self.crlf_state = 1;
            } else if c != b'\n' {
                self.crlf_state = 0;
            }
            if self.is_complete && i < body.len() {
                self.out.flags.data_after = true;
                return;
            }
        }
    }

    /// Byte `i` of the buffer as the NUL-terminated C buffer would show it.
    fn byte(&self, i: usize) -> u8 {
        self.buf.get(i).copied().unwrap_or(0)
    }

    fn boundary_at(&self, from: usize) -> bool {
        self.buf
            .get(from..from + self.boundary.len())
            .is_some_and(|s| s == self.boundary.as_slice())
    }

    /// Handles one buffered line; `false` stops the parser (fatal error).
    fn process_line(&mut self, full: bool) -> bool {
        let c_len = memchr::memchr(0, &self.buf).unwrap_or(self.buf.len());
        let blen = self.boundary.len();
        let mut processed_as_boundary = false;
        if self.buf_contains_line && c_len > 3 && self.buf[0] == b'-' && self.buf[1] == b'-' {
            if c_len >= blen + 2 && self.boundary_at(2) {
                if self.crlf_state_buf_end == 2 {
                    self.out.flags.lf_line = true;
                }
                let data_read = self.part.as_ref().is_some_and(|p| p.data_read);
                if !data_read && self.boundary_count > 0 {
                    // A boundary where part data should begin.
                    self.out.flags.invalid_part = true;
                } else {
                    if self.boundary_count > 0 {
                        self.out.flags.unmatched_boundary_value = 2;
                    }
                    let mut end = 2 + blen;
                    let is_final = self.byte(end) == b'-' && self.byte(end + 1) == b'-';
                    if is_final {
                        end += 2;
                        if self.is_complete {
                            self.fatal("Invalid boundary (final duplicate).");
                            return false;
                        }
                    }
                    let crlf = self.byte(end) == b'\r'
                        && self.byte(end + 1) == b'\n'
                        && self.byte(end + 2) == 0;
                    let lf = self.byte(end) == b'\n' && self.byte(end + 1) == 0;
                    if crlf || lf {
                        if lf {
                            self.out.flags.lf_line = true;
                        } else {
                            self.crlf_line = true;
                        }
                        self.process_boundary(is_final);
                        if is_final {
                            self.is_complete = true;
                        }
                        processed_as_boundary = true;
                        self.boundary_count += 1;
                    } else {
                        let line = String::from_utf8_lossy(chomp(&self.buf[..c_len])).into_owned();
                        self.fatal(format!("Invalid boundary: {line}"));
                        return false;
                    }
                }
            } else {
                if self.out.flags.boundary_quoted
                    && c_len >= blen + 3
                    && self.buf[2] == b'"'
                    && self.boundary_at(3)
                {
                    self.fatal("Invalid boundary (quotes).");
                    return false;
                }
                let mut p = 2;
                while is_c_space(self.byte(p)) {
                    p += 1;
                }
                if p != 2 && self.boundary_at(p) {
                    self.fatal("Invalid boundary (whitespace).");
                    return false;
                }
                self.out.flags.unmatched_boundary_value = 1;
            }
        } else if self.buf_contains_line {
            // `--<boundary>` anywhere in the line (a substring search keeps this linear
            // even for boundaries made of dashes).
            if memchr::memmem::find(&self.buf, &self.dash_boundary).is_some() {
                self.out.flags.unmatched_boundary_value = 1;
            }
        }

        if !processed_as_boundary {
            match self.part.as_ref().map(|p| p.in_headers) {
                None => self.out.flags.data_before = true,
                Some(true) => {
                    if full {
                        self.fatal(format!("Part header line over {BUF_SIZE} bytes long"));
                        return false;
                    }
                    self.process_part_header();
                }
                Some(false) => self.process_part_data(),
            }
        }
        true
    }

    /// Ends the current part (if any) and, unless `last`, starts a new one.
    fn process_boundary(&mut self, last: bool) {
        if let Some(mut part) = self.part.take() {
            for line in part.header_lines.drain(..) {
                self.out.part_headers.push((part.name.clone(), line));
            }
            if part.name.is_empty() {
                self.out.flags.invalid_part = true;
            } else if part.is_file {
                self.out.files.push(FilePart {
                    name: part.name,
                    filename: part.filename,
                    size: part.size,
                });
            } else if self.out.args.len() < self.max_args {
                self.out.args.push((part.name, part.value));
            } else {
                let limit = self.max_args;
                self.fail(format!("Too many arguments (limit {limit})."));
            }
        }
        if !last {
            self.part = Some(Part::new());
            self.reserve.clear();
        }
    }

    fn process_part_data(&mut self) {
        let Some(part) = self.part.as_mut() else {
            return;
        };
        part.data_read = true;
        let mut chunk: &[u8] = &self.buf;
        let mut held: &[u8] = &[];
        if chunk.ends_with(b"\r\n") {
            held = b"\r\n";
        } else if chunk.ends_with(b"\n") {
            held = b"\n";
        }
        chunk = &chunk[..chunk.len() - held.len()];
        if part.is_file {
            part.size += self.reserve.len() + chunk.len();
        } else {
            part.value.extend_from_slice(&self.reserve);
            part.value.extend_from_slice(chunk);
        }
        self.reserve.clear();
        self.reserve.extend_from_slice(held);
    }

    fn process_part_header(&mut self) {
        if memchr::memchr(0, &self.buf).is_some() {
            self.fail("Nul byte in part headers.");
            return;
        }
        let len = self.buf.len();
        let without_terminator = if len > 1 && self.buf[len - 2] == b'\r' {
            self.crlf_line = true;
            len - 2
        } else {
            self.out.flags.lf_line = true;
            len.saturating_sub(1)
        };
        let buf = std::mem::take(&mut self.buf);
        let result = if buf == b"\r\n" || buf == b"\n" {
            self.end_of_headers()
        } else if buf.first().is_some_and(|&c| is_c_space(c)) {
            self.folded_header(&buf)
        } else {
            self.new_header(&buf, without_terminator)
        };
        self.buf = buf;
        if let Err(message) = result {
            self.fail(message);
        }
    }

    fn end_of_headers(&mut self) -> Result<(), String> {
        let Some(part) = self.part.as_mut() else {
            return Ok(());
        };
        part.record_last_header_line();
        let Some(disposition) = part.header(b"Content-Disposition").cloned() else {
            return Err("Part missing Content-Disposition header.".into());
        };
        if let Err(rc) = self.parse_content_disposition(&disposition) {
            let value = String::from_utf8_lossy(&disposition);
            return Err(format!(
                "Invalid Content-Disposition header ({rc}): {value}"
            ));
        }
        let Some(part) = self.part.as_mut() else {
            return Ok(());
        };
        if part.name.is_empty() {
            return Err("Content-Disposition header missing name field.".into());
        }
        if !part.filename.is_empty() {
            // Some parsers extract name and filename crudely; make sure they would see
            // the same filename we did.
            if memchr::memmem::find(&disposition, b"filename=").is_none() {
                return Err("Invalid Content-Disposition header (filename).".into());
            }
            part.is_file = true;
        }
        part.in_headers = false;
        part.data_read = false;
        part.last_header_name.clear();
        Ok(())
    }

    fn folded_header(&mut self, line: &[u8]) -> Result<(), String> {
        self.out.flags.header_folding = true;
        if !matches!(line.first(), Some(b'\t' | b' ')) {
            self.out.flags.invalid_header_folding = true;
        }
        let Some(part) = self.part.as_mut() else {
            return Ok(());
        };
        if part.last_header_name.is_empty() {
            return Err("Invalid part header (folding error).".into());
        }
        let mut start = 0;
        while start < line.len() && is_c_space(line[start]) {
            if line[start] != b'\t' && line[start] != b' ' {
                self.out.flags.invalid_header_folding = true;
            }
            start += 1;
        }
        let continuation = chomp(&line[start..]);
        let name = part.last_header_name.clone();
        let Some(value) = part.header_mut(&name) else {
            return Ok(());
        };
        // Once too long the value stops growing (ModSecurity keeps appending to a
        // header it has already rejected; nothing can use that value any more).
        if value.len() <= BUF_SIZE {
            value.push(b' ');
            value.extend_from_slice(continuation);
        }
        if value.len() > BUF_SIZE {
            return Err("Part header too long.".into());
        }
        let mut whole = name;
        whole.extend_from_slice(b": ");
        whole.extend_from_slice(value);
        part.last_header_line = whole;
        Ok(())
    }

    fn new_header(&mut self, line: &[u8], without_terminator: usize) -> Result<(), String> {
        let Some(part) = self.part.as_mut() else {
            return Ok(());
        };
        part.record_last_header_line();
        let Some(colon) = memchr::memchr(b':', line) else {
            let shown = String::from_utf8_lossy(chomp(line));
            return Err(format!("Invalid part header (colon missing): {shown}"));
        };
        let name = &line[..colon];
        if name.is_empty() {
            return Err("Invalid part header (header name missing).".into());
        }
        if name.iter().any(|&c| !(33..=126).contains(&c)) {
            return Err("Invalid part header (contains invalid character).".into());
        }
        let mut start = colon + 1;
        while start < line.len() && (line[start] == b' ' || line[start] == b'\t') {
            start += 1;
        }
        let value = chomp(&line[start..]).to_vec();
        if part.header(name).is_some() {
            // ModSecurity ignores a repeated part header without reporting an error.
            return Ok(());
        }
        part.last_header_name = name.to_vec();
        part.headers.insert(name.to_ascii_lowercase(), value);
        part.last_header_line = line[..without_terminator.min(line.len())].to_vec();
        Ok(())
    }

    /// ModSecurity's `parse_content_disposition`; fills the current part's name and
    /// filename and may set the invalid-quoting flag.
    fn parse_content_disposition(&mut self, value: &[u8]) -> Result<(), DispositionError> {
        // The value is read as a C string.
        let value = match memchr::memchr(0, value) {
            Some(nul) => &value[..nul],
            None => value,
        };
        let at = |p: usize| value.get(p).copied().unwrap_or(0);
        if !value.starts_with(b"form-data") {
            return Err(-1);
        }
        let mut p = 9;
        while at(p) == b'\t' || at(p) == b' ' {
            p += 1;
        }
        if at(p) == 0 {
            return Ok(());
        }
        if at(p) != b';' {
            return Err(-2);
        }
        p += 1;
        let mut filename_star: Vec<u8> = Vec::new();
        while at(p) != 0 {
            while at(p) == b'\t' || at(p) == b' ' {
                p += 1;
            }
            if at(p) == 0 {
                return Err(-3);
            }
            let start = p;
            while !matches!(at(p), 0 | b'=' | b'\t' | b' ') {
                p += 1;
            }
            if at(p) == 0 {
                return Err(-4);
            }
            let name = &value[start..p];
            while at(p) == b'\t' || at(p) == b' ' {
                p += 1;
            }
            if at(p) == 0 {
                return Err(-5);
            }
            if at(p) != b'=' {
                return Err(-13);
            }
            p += 1;
            while at(p) == b'\t' || at(p) == b' ' {
                p += 1;
            }
            if at(p) == 0 {
                return Err(-6);
            }
            let mut quote = 0u8;
            let param: Vec<u8>;
            if name == b"filename*" {
                // filename*=charset'[language]'filename
                let charset_start = p;
                while at(p) != 0
                    && (at(p).is_ascii_alphanumeric() || b"!#$%&+-^_`{}~".contains(&at(p)))
                {
                    p += 1;
                }
                if at(p) != b'\'' || p == charset_start {
                    return Err(-16);
                }
                p += 1;
                while at(p) != 0 && at(p) != b'\'' {
                    p += 1;
                }
                if at(p) != b'\'' {
                    return Err(-17);
                }
                p += 1;
                let start = p;
                while at(p) != 0 && at(p) != b';' {
                    if at(p) == b'%' {
                        if !at(p + 1).is_ascii_hexdigit() || !at(p + 2).is_ascii_hexdigit() {
                            return Err(-18);
                        }
                        p += 3;
                    } else if at(p).is_ascii_alphanumeric() || b"!#$&+-.^_`~".contains(&at(p)) {
                        p += 1;
                    } else {
                        return Err(-19);
                    }
                }
                param = value[start..p].to_vec();
            } else if at(p) == b'"' || at(p) == b'\'' {
                quote = at(p);
                if quote == b'\'' {
                    self.out.flags.invalid_quoting = true;
                }
                p += 1;
                if at(p) == 0 {
                    return Err(-7);
                }
                let mut quoted = Vec::new();
                loop {
                    match at(p) {
                        0 => {
                            // Unterminated: ModSecurity v3.0.15 flags it and rejects the
                            // header with the same code as a repeated filename.
                            self.out.flags.invalid_quoting = true;
                            return Err(-15);
                        }
                        b'\\' => {
                            if at(p + 1) == 0 {
                                return Err(-8);
                            }
                            if at(p + 1) == quote || at(p + 1) == b'\\' {
                                p += 1;
                            }
                        }
                        c if c == quote => break,
                        _ => {}
                    }
                    quoted.push(at(p));
                    p += 1;
                }
                p += 1;
                param = quoted;
            } else {
                let start = p;
                while is_token_char(at(p)) {
                    p += 1;
                }
                param = value[start..p].to_vec();
            }

            let Some(part) = self.part.as_mut() else {
                return Ok(());
            };
            match name {
                b"name" => {
                    if quote != b'"' && param.contains(&b'\'') {
                        self.out.flags.invalid_quoting = true;
                    }
                    if !part.name.is_empty() {
                        return Err(-14);
                    }
                    part.name = param;
                }
                b"filename" => {
                    if quote != b'"' && param.contains(&b'\'') {
                        self.out.flags.invalid_quoting = true;
                    }
                    if !part.filename.is_empty() {
                        return Err(-15);
                    }
                    part.filename = param;
                }
                b"filename*" => {
                    if !filename_star.is_empty() {
                        return Err(-20);
                    }
                    filename_star = param;
                }
                _ => return Err(-11),
            }

            if at(p) != 0 {
                while at(p) == b'\t' || at(p) == b' ' {
                    p += 1;
                }
                if at(p) != 0 {
                    if at(p) != b';' {
                        if p > 0 && matches!(at(p - 1), b'\'' | b'"') {
                            self.out.flags.invalid_quoting = true;
                        }
                        return Err(-12);
                    }
                    p += 1;
                }
            }
        }
        let filename_missing = self.part.as_ref().is_some_and(|p| p.filename.is_empty());
        if !filename_star.is_empty() && filename_missing {
            return Err(-21);
        }
        Ok(())
    }

    /// End of the body: accept a final boundary that lacks its line break, then check
    /// that the body was complete.
    fn complete(&mut self) {
        if self.out.flags.parse_error || !self.seen_data || self.is_complete {
            return;
        }
        if self.boundary_count == 0 {
            self.fail("No boundaries found in payload.");
            return;
        }
        let blen = self.boundary.len();
        let b = &self.buf;
        let final_in_buffer = self.buf_contains_line
            && b.len() == 4 + blen
            && b.starts_with(b"--")
            && b[2..2 + blen] == self.boundary[..]
            && b.ends_with(b"--");
        if final_in_buffer {
            if self.crlf_state_buf_end == 2 {
                self.out.flags.lf_line = true;
            }
            if !self.part.as_ref().is_some_and(|p| p.data_read) {
                // It looks like the final boundary, but part data should begin here.
                self.out.flags.invalid_part = true;
            }
            self.process_boundary(true);
            self.is_complete = true;
        } else {
            self.fail("Final boundary missing.");
        }
    }
}

/// ModSecurity's `chomp`: drops trailing CR/LF, unless the value is only CR/LF.
fn chomp(value: &[u8]) -> &[u8] {
    match value.iter().rposition(|&c| c != b'\r' && c != b'\n') {
        Some(last) => &value[..=last],
        None => value,
    }
}

/// RFC 2616 token characters.
fn is_token_char(c: u8) -> bool {
    c > 32
        && c < 127
        && !matches!(
            c,
            b'(' | b')'
                | b'<'
                | b'>'
                | b'@'
                | b','
                | b';'
                | b':'
                | b'\\'
                | b'"'
                | b'/'
                | b'['
                | b']'
                | b'?'
                | b'='
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Content type, boundary or error text, then the quoted, whitespace and
    /// missing-semicolon flags.
    type Case = (
        &'static str,
        Result<&'static str, &'static str>,
        bool,
        bool,
        bool,
    );

    #[test]
    fn boundary_from_content_type() {
        let cases: &[Case] = &[
            (
                "multipart/form-data; boundary=abc",
                Ok("abc"),
                false,
                false,
                false,
            ),
            (
                "multipart/form-data;boundary=abc",
                Ok("abc"),
                false,
                false,
                false,
            ),
            (
                "multipart/form-data; boundary=\"a b\"",
                Ok("a b"),
                true,
                false,
                false,
            ),
            (
                "multipart/form-data; boundary= abc",
                Ok(" abc"),
                false,
                true,
                false,
            ),
            (
                "multipart/form-data; boundary\t=abc",
                Ok("abc"),
                false,
                true,
                false,
            ),
            (
                "multipart/form-data boundary=abc",
                Ok("abc"),
                false,
                false,
                true,
            ),
            (
                "multipart/form-data; boundary=abc; charset=x",
                Ok("abc"),
                false,
                false,
                false,
            ),
            (
                "multipart/form-data; boundary=a:b/c?d=e",
                Ok("a:b/c?d=e"),
                false,
                false,
                false,
            ),
            (
                "multipart/form-data; boundary=abc ",
                Err("(characters)"),
                false,
                false,
                false,
            ),
            (
                "multipart/form-data; boundary=\"abc",
                Err("(quote)"),
                false,
                false,
                false,
            ),
            (
                "multipart/form-data; boundary=abc\"",
                Err("(quote)"),
                false,
                false,
                false,
            ),
            (
                "multipart/form-data; boundary=\"\"",
                Err("(empty)"),
                false,
                false,
                false,
            ),
            (
                "multipart/form-data; boundaryx=abc",
                Err("(parameter name)"),
                false,
                false,
                false,
            ),
            (
                "multipart/form-data; boundary",
                Err("(malformed)"),
                false,
                false,
                false,
            ),
            (
                "multipart/form-data;; boundary=a",
                Err("(malformed)"),
                false,
                false,
                false,
            ),
            (
                "multipart/form-data; boundary=myboundary",
                Ok("myboundary"),
                false,
                false,
                false,
            ),
            (
                "multipart/form-data; BOUNDARY=a",
                Err("(case sensitivity)"),
                false,
                false,
                true,
            ),
            (
                "multipart/mixed; boundary=a",
                Err("Invalid MIME type"),
                false,
                false,
                false,
            ),
            (
                "multipart/form-data; boundary=a\0; x",
                Ok("a"),
                false,
                false,
                false,
            ),
        ];
        for (ct, expected, quoted, whitespace, semicolon) in cases {
            let mut flags = MultipartFlags::default();
            let got = parse_boundary(ct.as_bytes(), &mut flags);
            match (expected, &got) {
                (Ok(want), Ok(b)) => assert_eq!(b.as_slice(), want.as_bytes(), "{ct}"),
                (Err(want), Err(e)) => assert!(e.contains(want), "{ct}: {e}"),
                _ => panic!("{ct}: expected {expected:?}, got {got:?}"),
            }
            if got.is_ok() {
                assert_eq!(flags.boundary_quoted, *quoted, "{ct}: quoted");
                assert_eq!(flags.boundary_whitespace, *whitespace, "{ct}: whitespace");
                assert_eq!(flags.missing_semicolon, *semicolon, "{ct}: semicolon");
            }
        }
        let long = format!("multipart/form-data; boundary={}", "a".repeat(1100));
        let err = parse_boundary(long.as_bytes(), &mut MultipartFlags::default());
        assert!(err.is_err_and(|e| e.contains("(length)")));
    }

    #[test]
    fn helpers() {
        assert_eq!(chomp(b"a\r\n"), b"a");
        assert_eq!(chomp(b"a\n\r\n"), b"a");
        assert_eq!(chomp(b"\r\n"), b"\r\n");
        assert_eq!(chomp(b""), b"");
        assert_eq!(count_boundary_params(b"Boundary=a; boundary=b"), 2);
        assert_eq!(count_boundary_params(b"boundary; x"), 0);
        assert!(boundary_characters_valid(b"a b"));
        assert!(!boundary_characters_valid(b"ab "));
        assert!(!boundary_characters_valid(b"a;b"));
        assert!(is_token_char(b'a') && !is_token_char(b'"') && !is_token_char(b' '));
    }
}
