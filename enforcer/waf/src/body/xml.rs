//! `text/xml` / `application/xml` bodies, exposed through the XML collection
//! with XPath selectors (`XML:/*` at least).
//!
//! ModSecurity v3 parses the body with libxml2 and, for `XML:<xpath>`, evaluates the
//! expression and returns `xmlNodeGetContent` of every node in the result: for an
//! element the concatenated text of all its descendants (text and CDATA, entities
//! expanded, whitespace kept, comments and processing instructions left out), for an
//! attribute its value. The OWASP CRS only uses `XML:/*` (the text of the whole
//! document element, one value) and `XML://@*` (every attribute value, in document
//! order). Here the document is parsed with `roxmltree` into an owned tree and a small
//! XPath subset is evaluated over it.
//!
//! # Supported XPath
//!
//! Absolute location paths made of `/` and `//` steps, each step one of: `*`, a name,
//! `prefix:name` or `prefix:*` (prefixes bound with [`XmlDocument::select_with_namespaces`],
//! as the `xmlns` action does), `@*`, `@name`, `text()`, `node()`, `.`; plus `/` itself
//! (the text of the whole document). Name tests follow XPath 1.0: an unprefixed name
//! only matches nodes without a namespace. Anything else (predicates, functions, other
//! axes, unions, relative paths) yields no values, as an XPath evaluation error does in
//! ModSecurity.
//!
//! # Parsing
//!
//! DTDs are accepted and internal entities expanded (roxmltree bounds entity nesting
//! and reference counts, so "billion laughs" is rejected); external entities resolve
//! to nothing, as in ModSecurity with `SecXmlExternalEntity Off`, so there is no XXE.
//! Bodies whose entity references could expand to more than 16 times the body size
//! (at least 1 MiB) are rejected before anything is expanded.
//! Nesting deeper than [`BodyLimits::max_depth`] elements is an error. Bodies must be
//! UTF-8 (a BOM is allowed), UTF-16 with a BOM, or declare `ISO-8859-1`/`latin1`/
//! `US-ASCII`.
//!
//! # Differences from ModSecurity v3
//!
//! - libxml2 stops at a nesting depth of 256 by default; here the limit is
//!   `max_depth` (pass 256 to match).
//! - libxml2 accepts an undeclared namespace prefix with a namespace warning; roxmltree
//!   rejects it, so such prefixes are bound to a placeholder namespace
//!   (`urn:palisade:undeclared:<prefix>`) on the element that uses them and the body is
//!   parsed again (at most 64 times). The text and attribute values are unaffected.
//! - libxml2 understands many more encodings; other encodings are a parse error here.
//! - libxml2 only warns about namespace errors such as an empty prefix declaration
//!   (`xmlns:="..."`) or a malformed qualified name (`a:b:c`, `xml:-x`); roxmltree
//!   rejects them (undeclared prefixes excepted, see above). It also tolerates a few
//!   DTD slips (`<!DOCTYPEr`) and accepts `&lt;` inside an entity that an attribute
//!   value references, which roxmltree rejects. Such bodies are errors here.
//! - On malformed XML, libxml2 keeps the tree it built up to the error and ModSecurity
//!   evaluates `XML:` selectors against that partial tree (REQBODY_ERROR is set too).
//!   [`XmlDocument::parse_partial`] rebuilds such a tree with a lenient scan of the text
//!   before the error; its recovery only approximates libxml2's (with
//!   `PALISADE_BODY_XML_PARTIAL=1 PALISADE_BODY_MUTATIONS=10`,
//!   `tests/body_modsec_reference.rs` found 30 of its 3,006 XML bodies where the values
//!   differ; by default that test checks errors, and `XML:/*` and `XML://@*` of
//!   well-formed bodies, against libmodsecurity 3.0.15).
//! - roxmltree is stricter than libxml2 about a few rarely used constructs (for example
//!   some DTD syntax), which then become parse errors.
//! - An empty body is an error in both (libxml2: "Document is empty").
//! - Errors read `XML: Failed to parse document. (<reason>)`: what ModSecurity puts
//!   after `XML parsing error: ` in REQBODY_ERROR_MSG, with the reason appended.

use super::{BodyError, BodyLimits};

/// Text that entity references may add: at least this many bytes...
const EXPANSION_FLOOR: usize = 1 << 20;
/// ...or this many times the body size.
const EXPANSION_FACTOR: usize = 16;
/// roxmltree's limit on nested entity references.
const MAX_ENTITY_NESTING: usize = 10;

/// How many times an undeclared namespace prefix may be patched before giving up.
const MAX_NAMESPACE_PATCHES: usize = 64;
/// Namespace URI given to prefixes the document uses without declaring them.
const UNDECLARED_NS: &str = "urn:palisade:undeclared:";

/// One attribute of an element.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Attribute {
    namespace: Option<String>,
    name: String,
    value: String,
}

/// What a node is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// The document node (`/`).
    Root,
    Element {
        namespace: Option<String>,
        name: String,
        attributes: Vec<Attribute>,
    },
    /// A text node (CDATA included); its text is in [`XmlDocument::text`].
    Text,
}

/// A node in document order; its descendants are the nodes `index + 1 .. end`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    kind: Kind,
    end: usize,
    /// Offset in [`XmlDocument::text`] of the text that follows this node's start.
    text_start: usize,
}

/// A parsed XML document, ready for XPath lookups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XmlDocument {
    nodes: Vec<Node>,
    /// All text nodes concatenated in document order, so that the content of any
    /// node is one slice (no quadratic work for `//*` on deep documents).
    text: String,
}

impl XmlDocument {
    /// Parses `body`; malformed XML is an error.
    pub fn parse(body: &[u8], limits: &BodyLimits) -> Result<XmlDocument, BodyError> {
        Self::parse_or_cut(body, limits).map_err(|(e, _)| e)
    }

    /// Parses `body`; on malformed XML, also returns the partial document libxml2 would
    /// have built up to the error, which ModSecurity still evaluates `XML:` selectors
    /// against (see the module docs).
    pub fn parse_partial(body: &[u8], limits: &BodyLimits) -> (XmlDocument, Option<BodyError>) {
        match Self::parse_or_cut(body, limits) {
            Ok(doc) => (doc, None),
            Err((e, Some((text, cut)))) => {
                (lenient(text.get(..cut).unwrap_or(&text), limits), Some(e))
            }
            Err((e, None)) => (XmlDocument::default(), Some(e)),
        }
    }

    /// A document, or the error with the text and the offset where parsing stopped.
    fn parse_or_cut(
        body: &[u8],
        limits: &BodyLimits,
    ) -> Result<XmlDocument, (BodyError, Option<(String, usize)>)> {
        let text = decode(body).map_err(|e| (error(e), None))?;
        let budget = EXPANSION_FLOOR.max(body.len().saturating_mul(EXPANSION_FACTOR));
        if entity_expansion_bound(&text) > budget {
            return Err((error("entity expansion limit exceeded"), None));
        }
        check_declaration(&text).map_err(|e| (error(e), None))?;
        let markup: Vec<String> = markup_entities(&text)
            .map_err(|e| (error(e), None))?
            .into_iter()
            .map(|name| format!("&{name};"))
            .collect();
        let mut text = text.into_owned();
        for _ in 0..=MAX_NAMESPACE_PATCHES {
            let options = roxmltree::ParsingOptions {
                allow_dtd: true,
                nodes_limit: u32::MAX,
                entity_resolver: Some(&|_, _| Ok(Some(""))),
            };
            let failure = match roxmltree::Document::parse_with_options(&text, options) {
                Ok(doc) => match build(&doc, limits, &markup) {
                    Ok(built) => return Ok(built),
                    Err((e, cut)) => (e, cut),
                },
                Err(roxmltree::Error::UnknownNamespace(prefix, pos)) => {
                    match declare_prefix(&text, &prefix, pos) {
                        Some(patched) => {
                            text = patched;
                            continue;
                        }
                        None => (
                            error(format!("an unknown namespace prefix '{prefix}' at {pos}")),
                            offset_of(&text, pos),
                        ),
                    }
                }
                Err(e) => {
                    let cut = match e {
                        roxmltree::Error::UnexpectedEndOfStream
                        | roxmltree::Error::UnclosedRootNode
                        | roxmltree::Error::NoRootNode => text.len(),
                        _ => offset_of(&text, e.pos()),
                    };
                    (error(e.to_string()), cut)
                }
            };
            return Err((failure.0, Some((text, failure.1))));
        }
        Err((
            error("too many undeclared namespace prefixes".to_string()),
            None,
        ))
    }

    /// Evaluates an XPath selector as ModSecurity does for `XML:<xpath>`,
    /// returning the text values (`/*`: the content of the document).
    pub fn select(&self, xpath: &str) -> Vec<Vec<u8>> {
        self.select_with_namespaces(xpath, &[])
    }

    /// Like [`XmlDocument::select`], with namespace prefixes bound as the `xmlns`
    /// action binds them (`(prefix, uri)` pairs).
    pub fn select_with_namespaces(&self, xpath: &str, namespaces: &[(&str, &str)]) -> Vec<Vec<u8>> {
        if self.nodes.is_empty() {
            return Vec::new();
        }
        let Some(steps) = parse_xpath(xpath, namespaces) else {
            return Vec::new();
        };
        let mut set = vec![Item::Node(0)];
        for step in &steps {
            set = self.apply(&set, step);
        }
        set.iter()
            .map(|item| self.value(*item).into_bytes())
            .collect()
    }

    fn element_children(&self, index: usize) -> impl Iterator<Item = usize> + '_ {
        let end = self.nodes.get(index).map_or(index, |n| n.end);
        let mut next = index + 1;
        std::iter::from_fn(move || {
            if next >= end {
                return None;
            }
            let current = next;
            next = self.nodes[current].end;
            Some(current)
        })
    }

    fn apply(&self, set: &[Item], step: &Step) -> Vec<Item> {
        let mut out = Vec::new();
        // For `//` steps: the end of the last subtree already searched. A node inside
        // it adds nothing new (its descendants were searched with its ancestor's).
        let mut covered_end = 0;
        for item in set {
            let Item::Node(index) = *item else {
                continue;
            };
            let Some(node) = self.nodes.get(index) else {
                continue;
            };
            if step.descendants {
                if index < covered_end {
                    continue;
                }
                covered_end = node.end;
            }
            // The nodes whose children (or attributes) the step looks at.
            let contexts: Vec<usize> = if step.descendants {
                std::iter::once(index)
                    .chain(
                        (index + 1..node.end)
                            .filter(|&i| matches!(self.nodes[i].kind, Kind::Element { .. })),
                    )
                    .collect()
            } else {
                vec![index]
            };
            for context in contexts {
                match &step.test {
                    Test::SelfNode => out.push(Item::Node(context)),
                    Test::Attribute(name) => {
                        if let Kind::Element { attributes, .. } = &self.nodes[context].kind {
                            for (i, attribute) in attributes.iter().enumerate() {
                                if name.matches(&attribute.namespace, &attribute.name) {
                                    out.push(Item::Attribute(context, i));
                                }
                            }
                        }
                    }
                    test => {
                        for child in self.element_children(context) {
                            let keep = match (&self.nodes[child].kind, test) {
                                (_, Test::AnyNode) => true,
                                (Kind::Text, Test::Text) => true,
                                (
                                    Kind::Element {
                                        namespace, name, ..
                                    },
                                    Test::Element(n),
                                ) => n.matches(namespace, name),
                                _ => false,
                            };
                            if keep {
                                out.push(Item::Node(child));
                            }
                        }
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// `xmlNodeGetContent`: the text of a node and all its descendants.
    fn value(&self, item: Item) -> String {
        match item {
            Item::Attribute(element, i) => match self.nodes.get(element).map(|n| &n.kind) {
                Some(Kind::Element { attributes, .. }) => attributes
                    .get(i)
                    .map(|a| a.value.clone())
                    .unwrap_or_default(),
                _ => String::new(),
            },
            Item::Node(index) => {
                let text_at =
                    |i: usize| self.nodes.get(i).map_or(self.text.len(), |n| n.text_start);
                let Some(node) = self.nodes.get(index) else {
                    return String::new();
                };
                self.text
                    .get(node.text_start..text_at(node.end))
                    .unwrap_or_default()
                    .to_string()
            }
        }
    }
}

/// ModSecurity's XML error (REQBODY_ERROR_MSG without its `XML parsing error: `
/// prefix), with the parser's reason appended.
fn error(detail: impl std::fmt::Display) -> BodyError {
    BodyError {
        message: format!("XML: Failed to parse document. ({detail})"),
    }
}

/// Turns the body into text: UTF-8 (BOM allowed), UTF-16 with a BOM, or a declared
/// single-byte encoding.
fn decode(body: &[u8]) -> Result<std::borrow::Cow<'_, str>, String> {
    if body.is_empty() {
        return Err("document is empty".into());
    }
    let utf16 = |bytes: &[u8], big: bool| -> Result<String, String> {
        let units = bytes.chunks(2).map(|c| {
            let pair = [c[0], c.get(1).copied().unwrap_or(0)];
            if big {
                u16::from_be_bytes(pair)
            } else {
                u16::from_le_bytes(pair)
            }
        });
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map_err(|_| "invalid UTF-16".to_string())
    };
    if let Some(rest) = body.strip_prefix(b"\xff\xfe") {
        return utf16(rest, false).map(Into::into);
    }
    if let Some(rest) = body.strip_prefix(b"\xfe\xff") {
        return utf16(rest, true).map(Into::into);
    }
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    if let Ok(text) = std::str::from_utf8(body) {
        return Ok(text.into());
    }
    let declaration_end = memchr::memmem::find(body, b"?>").unwrap_or(0);
    let declaration = body[..declaration_end].to_ascii_lowercase();
    let single_byte = body.starts_with(b"<?xml")
        && ["iso-8859-1", "latin1", "iso_8859-1", "us-ascii"]
            .iter()
            .any(|name| memchr::memmem::find(&declaration, name.as_bytes()).is_some());
    if single_byte {
        return Ok(body
            .iter()
            .map(|&b| char::from(b))
            .collect::<String>()
            .into());
    }
    Err("input is not proper UTF-8".into())
}

/// Checks the XML declaration as libxml2 does; roxmltree accepts malformed ones
/// (`version="10"`, misspelled or missing attributes).
fn check_declaration(text: &str) -> Result<(), &'static str> {
    let Some(rest) = text.strip_prefix("<?xml") else {
        return Ok(());
    };
    if !rest.starts_with(|c: char| c.is_ascii_whitespace()) {
        // `<?xml-stylesheet ...?>` and the like are processing instructions.
        return Ok(());
    }
    let end = rest.find("?>").ok_or("unterminated XML declaration")?;
    let mut rest = &rest[..end];
    let mut seen = Vec::new();
    loop {
        let trimmed = rest.trim_start_matches(|c: char| c.is_ascii_whitespace());
        if trimmed.is_empty() {
            break;
        }
        if trimmed.len() == rest.len() {
            return Err("malformed XML declaration (space expected)");
        }
        let name_end = trimmed
            .find(|c: char| c == '=' || c.is_ascii_whitespace())
            .ok_or("malformed XML declaration")?;
        let name = &trimmed[..name_end];
        let after = trimmed[name_end..].trim_start_matches(|c: char| c.is_ascii_whitespace());
        let after = after
            .strip_prefix('=')
            .ok_or("malformed XML declaration (= expected)")?;
        let after = after.trim_start_matches(|c: char| c.is_ascii_whitespace());
        let quote = after
            .chars()
            .next()
            .filter(|c| *c == '"' || *c == '\'')
            .ok_or("malformed XML declaration (quote expected)")?;
        let value_end = after[1..].find(quote).ok_or("malformed XML declaration")?;
        let value = &after[1..1 + value_end];
        let valid = match name {
            // libxml2: one digit, a dot, digits.
            "version" if seen.is_empty() => {
                let mut chars = value.chars();
                chars.next().is_some_and(|c| c.is_ascii_digit())
                    && chars.next() == Some('.')
                    && chars.all(|c| c.is_ascii_digit())
            }
            "encoding" if seen == ["version"] => {
                value.starts_with(|c: char| c.is_ascii_alphabetic())
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            }
            "standalone" if seen.first() == Some(&"version") && !seen.contains(&"standalone") => {
                value == "yes" || value == "no"
            }
            _ => false,
        };
        if !valid {
            return Err("malformed XML declaration");
        }
        seen.push(name);
        rest = &after[1 + value_end + 1..];
    }
    if seen.first() != Some(&"version") {
        return Err("malformed XML declaration (version expected)");
    }
    Ok(())
}

/// The names referenced as `&name;` in `text` (character references excluded).
fn entity_references(text: &str) -> impl Iterator<Item = &str> {
    text.match_indices('&').filter_map(move |(at, _)| {
        let rest = &text[at + 1..];
        let end = rest.find(';')?;
        let name = &rest[..end];
        (!name.is_empty() && !name.starts_with('#') && is_name(name)).then_some(name)
    })
}

/// The internal general entities declared in `text`: (name, replacement text).
fn internal_entities(text: &str) -> Vec<(&str, &str)> {
    let mut entities = Vec::new();
    for (at, _) in text.match_indices("<!ENTITY") {
        let rest = text[at + 8..].trim_start();
        if rest.starts_with('%') {
            continue;
        }
        let name_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let name = &rest[..name_end];
        let after = rest[name_end..].trim_start();
        let Some(quote) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            continue;
        };
        let value = &after[1..];
        let value = &value[..value.find(quote).unwrap_or(value.len())];
        entities.push((name, value));
    }
    entities
}

/// Entities whose replacement text holds markup (`<`): libxml2 requires it to be
/// well-formed content and forbids it in attribute values; roxmltree checks neither.
fn markup_entities(text: &str) -> Result<Vec<&str>, String> {
    let mut names = Vec::new();
    let referenced: std::collections::HashSet<&str> = entity_references(text).collect();
    for (name, value) in internal_entities(text) {
        if !value.contains('<') || !referenced.contains(name) {
            continue;
        }
        // Other entities it references are checked on their own.
        let mut fragment = String::from("<x>");
        let mut rest = value;
        while let Some(at) = rest.find('&') {
            fragment.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            match after.find(';') {
                Some(end)
                    if !["lt", "gt", "amp", "apos", "quot"].contains(&&after[..end])
                        && !after.starts_with('#') =>
                {
                    rest = &after[end + 1..];
                }
                _ => {
                    fragment.push('&');
                    rest = after;
                }
            }
        }
        fragment.push_str(rest);
        fragment.push_str("</x>");
        if roxmltree::Document::parse(&fragment).is_err() {
            return Err(format!("entity '{name}' is not well-formed content"));
        }
        names.push(name);
    }
    Ok(names)
}

/// The attribute names written in the start tag at `start` (`<name a="1" ...>`).
fn start_tag_attribute_names(text: &str, start: usize) -> Vec<&str> {
    let mut names = Vec::new();
    let Some(tag) = text.get(start..) else {
        return names;
    };
    let bytes = tag.as_bytes();
    let mut i = 1;
    while i < bytes.len() && !bytes[i].is_ascii_whitespace() && !matches!(bytes[i], b'>' | b'/') {
        i += 1;
    }
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() || matches!(bytes[i], b'>' | b'/') {
            return names;
        }
        let name_start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let name = tag.get(name_start..i).unwrap_or_default();
        while i < bytes.len() && bytes[i] != b'=' {
            i += 1;
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let Some(&quote) = bytes.get(i) else {
            return names;
        };
        if quote != b'"' && quote != b'\'' {
            return names;
        }
        match bytes[i + 1..].iter().position(|&b| b == quote) {
            Some(end) => i += end + 2,
            None => return names,
        }
        names.push(name);
    }
}

/// An upper bound of the text that general entity references can add to the document.
///
/// roxmltree rejects reference loops and deep nesting but lets every reference in the
/// document expand in full, so a few kilobytes of entities referenced many times can
/// still expand to gigabytes; libxml2 has amplification checks for this. Here each
/// internal entity's expanded size is computed (nesting bounded as in roxmltree) and
/// multiplied by the number of references in the body, before anything is expanded.
fn entity_expansion_bound(text: &str) -> usize {
    let entities = internal_entities(text);
    if entities.is_empty() {
        return 0;
    }
    // The first declaration of a name is the one that counts.
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, (name, _)) in entities.iter().enumerate() {
        index.entry(name).or_insert(i);
    }
    // Expanded sizes, level by level: level k allows k nested references.
    let mut sizes: Vec<usize> = entities.iter().map(|(_, v)| v.len()).collect();
    for _ in 0..MAX_ENTITY_NESTING {
        let next: Vec<usize> = entities
            .iter()
            .map(|(_, value)| {
                entity_references(value).fold(value.len(), |total, name| {
                    let size = index.get(name).map_or(0, |&i| sizes[i]);
                    total.saturating_add(size)
                })
            })
            .collect();
        if next == sizes {
            break;
        }
        sizes = next;
    }
    let largest = sizes.iter().copied().max().unwrap_or(0);
    entity_references(text).count().saturating_mul(largest)
}

/// The byte offset of a roxmltree position (1-based row and column in characters).
fn position(text: &str, pos: roxmltree::TextPos) -> Option<usize> {
    let row = usize::try_from(pos.row).ok()?.checked_sub(1)?;
    let col = usize::try_from(pos.col).ok()?.checked_sub(1)?;
    let line_start = if row == 0 {
        0
    } else {
        text.match_indices('\n').nth(row - 1)?.0 + 1
    };
    match text[line_start..].char_indices().nth(col) {
        Some((i, _)) => Some(line_start + i),
        None => Some(text.len()),
    }
}

/// Like [`position`], the end of the text when the position is unknown.
fn offset_of(text: &str, pos: roxmltree::TextPos) -> usize {
    position(text, pos).unwrap_or(text.len())
}

/// Binds an undeclared `prefix` on the start tag that uses it (see the module docs).
fn declare_prefix(text: &str, prefix: &str, pos: roxmltree::TextPos) -> Option<String> {
    let offset = position(text, pos)?;
    let rest = text.get(offset..)?;
    if !rest.starts_with(prefix) || !rest[prefix.len()..].starts_with(':') {
        return None;
    }
    let declaration = format!(" xmlns:{prefix}=\"{UNDECLARED_NS}{prefix}\"");
    let element = text[..offset].ends_with('<');
    let at = if element {
        let name_len = rest
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .unwrap_or(rest.len());
        offset + name_len
    } else {
        offset
    };
    let mut patched = String::with_capacity(text.len() + declaration.len() + 1);
    patched.push_str(&text[..at]);
    patched.push_str(&declaration);
    if !element {
        patched.push(' ');
    }
    patched.push_str(&text[at..]);
    Some(patched)
}

/// What libxml2 rejects in a start tag and roxmltree accepts: a repeated namespace
/// declaration, and markup reaching an attribute value through an entity.
fn check_start_tag(
    doc: &roxmltree::Document<'_>,
    node: &roxmltree::Node<'_, '_>,
    markup_references: &[String],
) -> Result<(), BodyError> {
    let text = doc.input_text();
    let mut names = start_tag_attribute_names(text, node.range().start);
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(error("attribute redefined"));
    }
    if !markup_references.is_empty() {
        for attribute in node.attributes() {
            let raw = text.get(attribute.range_value()).unwrap_or_default();
            if markup_references.iter().any(|r| raw.contains(r.as_str())) {
                return Err(error("'<' in an attribute value (through an entity)"));
            }
        }
    }
    Ok(())
}

/// Copies a roxmltree document into an owned tree, checking the depth limit.
fn build(
    doc: &roxmltree::Document<'_>,
    limits: &BodyLimits,
    markup_references: &[String],
) -> Result<XmlDocument, (BodyError, usize)> {
    let mut nodes: Vec<Node> = Vec::new();
    let mut text = String::new();
    // (roxmltree node id, our index) of the open elements, root first.
    let mut open: Vec<(roxmltree::NodeId, usize)> = Vec::new();
    for node in doc.root().descendants() {
        if let Some(parent) = node.parent() {
            while open.last().is_some_and(|(id, _)| *id != parent.id()) {
                if let Some((_, index)) = open.pop() {
                    nodes[index].end = nodes.len();
                }
            }
        }
        let index = nodes.len();
        let kind = match node.node_type() {
            roxmltree::NodeType::Root => Kind::Root,
            roxmltree::NodeType::Element => {
                check_start_tag(doc, &node, markup_references)
                    .map_err(|e| (e, node.range().start))?;
                Kind::Element {
                    namespace: node.tag_name().namespace().map(str::to_string),
                    name: node.tag_name().name().to_string(),
                    attributes: node
                        .attributes()
                        .map(|a| Attribute {
                            namespace: a.namespace().map(str::to_string),
                            name: a.name().to_string(),
                            value: a.value().to_string(),
                        })
                        .collect(),
                }
            }
            roxmltree::NodeType::Text => Kind::Text,
            roxmltree::NodeType::PI => {
                // libxml2 requires whitespace between a PI's target and its data;
                // roxmltree does not (`<?target<data?>`).
                let target_len = node.pi().map_or(0, |pi| pi.target.len());
                let after = doc.input_text().get(node.range().start + 2 + target_len..);
                let separated = after.is_some_and(|rest| {
                    rest.starts_with("?>") || rest.starts_with(|c: char| c.is_ascii_whitespace())
                });
                if !separated {
                    return Err((
                        error("processing instruction: space expected after target"),
                        node.range().start,
                    ));
                }
                continue;
            }
            roxmltree::NodeType::Comment => continue,
        };
        let container = matches!(kind, Kind::Root | Kind::Element { .. });
        nodes.push(Node {
            kind,
            end: index + 1,
            text_start: text.len(),
        });
        if let Some(t) = node.text().filter(|_| node.is_text()) {
            text.push_str(t);
        }
        if container {
            open.push((node.id(), index));
            // The root does not count as a level.
            if open.len() > limits.max_depth.saturating_add(1) {
                return Err((
                    error(format!(
                        "nesting depth limit exceeded (limit {})",
                        limits.max_depth
                    )),
                    node.range().start,
                ));
            }
        }
    }
    while let Some((_, index)) = open.pop() {
        nodes[index].end = nodes.len();
    }
    Ok(XmlDocument { nodes, text })
}

/// Decodes character data: predefined entities, character references and internal
/// entities (one level; their markup is not parsed). Unknown references are dropped.
fn decode_text(raw: &str, entities: &[(&str, &str)], out: &mut String) {
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let Some(end) = after.find(';').filter(|&e| e <= 32) else {
            // libxml2 stops at a malformed reference; so does the partial tree.
            return;
        };
        let name = &after[..end];
        match name {
            "lt" => out.push('<'),
            "gt" => out.push('>'),
            "amp" => out.push('&'),
            "apos" => out.push('\''),
            "quot" => out.push('"'),
            _ => {
                let code = if let Some(hex) = name.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = name.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                if let Some(c) = code.and_then(char::from_u32) {
                    out.push(c);
                } else if let Some((_, value)) = entities.iter().find(|(n, _)| *n == name) {
                    out.push_str(value);
                }
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
}

/// The tree libxml2 would have built from the part of a malformed document before the
/// error: elements whose start tag is complete, attributes, text and CDATA; comments,
/// processing instructions and the DTD are skipped. No recursion, bounded by the depth
/// limit.
fn lenient(text: &str, limits: &BodyLimits) -> XmlDocument {
    // Line ends are normalised first, as an XML parser does.
    let text = &text.replace("\r\n", "\n").replace('\r', "\n");
    let entities = internal_entities(text);
    let bytes = text.as_bytes();
    let mut nodes = vec![Node {
        kind: Kind::Root,
        end: 1,
        text_start: 0,
    }];
    let mut all_text = String::new();
    // (node index, element name) of the open elements; the root first.
    let mut open: Vec<(usize, &str)> = vec![(0, "")];
    let mut seen_root = false;
    let mut i = 0;
    let find = |from: usize, needle: &str| {
        text.get(from..)
            .and_then(|t| t.find(needle))
            .map(|p| from + p)
    };
    while i < bytes.len() {
        if bytes[i] != b'<' {
            let end = find(i, "<").unwrap_or(bytes.len());
            if text[i..end].contains("]]>") {
                // Not allowed in content: libxml2 stops without this text.
                break;
            }
            if open.len() > 1 {
                let start = all_text.len();
                decode_text(&text[i..end], &entities, &mut all_text);
                if all_text.len() > start {
                    nodes.push(Node {
                        kind: Kind::Text,
                        end: nodes.len() + 1,
                        text_start: start,
                    });
                }
            }
            i = end;
            continue;
        }
        let rest = &text[i..];
        if rest.starts_with("<!--") {
            match find(i + 4, "-->") {
                Some(end) => i = end + 3,
                None => break,
            }
        } else if rest.starts_with("<![CDATA[") {
            let Some(end) = find(i + 9, "]]>") else {
                break;
            };
            if open.len() > 1 {
                let start = all_text.len();
                all_text.push_str(&text[i + 9..end]);
                nodes.push(Node {
                    kind: Kind::Text,
                    end: nodes.len() + 1,
                    text_start: start,
                });
            }
            i = end + 3;
        } else if let Some(pi) = rest.strip_prefix("<?") {
            // libxml2: the target `xml` is reserved (but for the declaration at the
            // start), and data needs a space before it.
            let target_len = pi
                .find(|c: char| c.is_ascii_whitespace() || c == '?')
                .unwrap_or(pi.len());
            let after = &pi[target_len..];
            if (i > 0 && &pi[..target_len] == "xml")
                || !(after.starts_with("?>")
                    || after.starts_with(|c: char| c.is_ascii_whitespace()))
            {
                break;
            }
            match find(i + 2, "?>") {
                Some(end) => i = end + 2,
                None => break,
            }
        } else if rest.starts_with("<!") {
            // A DTD: up to the `>` outside brackets and quotes.
            let mut depth = 0usize;
            let mut quote = None;
            let mut j = i + 2;
            let mut closed = false;
            while j < bytes.len() {
                let c = bytes[j];
                match quote {
                    Some(q) if c == q => quote = None,
                    Some(_) => {}
                    None => match c {
                        b'"' | b'\'' => quote = Some(c),
                        b'[' => depth += 1,
                        b']' => depth = depth.saturating_sub(1),
                        b'>' if depth == 0 => {
                            closed = true;
                            break;
                        }
                        _ => {}
                    },
                }
                j += 1;
            }
            if !closed {
                break;
            }
            i = j + 1;
        } else if let Some(close) = rest.strip_prefix("</") {
            let Some(end) = close.find('>') else {
                break;
            };
            let name = close[..end].trim_end();
            if open.len() > 1 && open.last().is_some_and(|(_, n)| *n == name) {
                if let Some((index, _)) = open.pop() {
                    nodes[index].end = nodes.len();
                }
            } else {
                // A mismatched end tag is where libxml2 stops.
                break;
            }
            i += 2 + end + 1;
        } else {
            let Some((element, attributes, len, empty)) = start_tag(rest, &entities) else {
                break;
            };
            // A second root element, or one nested deeper than the limit, is where
            // parsing stops.
            if (open.len() == 1 && seen_root) || open.len() > limits.max_depth {
                break;
            }
            seen_root = true;
            let index = nodes.len();
            nodes.push(Node {
                kind: Kind::Element {
                    namespace: None,
                    name: element.to_string(),
                    attributes,
                },
                end: index + 1,
                text_start: all_text.len(),
            });
            if !empty {
                open.push((index, element));
            }
            i += len;
        }
    }
    while let Some((index, _)) = open.pop() {
        nodes[index].end = nodes.len();
    }
    XmlDocument {
        nodes,
        text: all_text,
    }
}

/// A complete start tag at the beginning of `tag`: its name, attributes (namespace
/// declarations left out), length, and whether it is empty (`/>`).
fn start_tag<'a>(
    tag: &'a str,
    entities: &[(&str, &str)],
) -> Option<(&'a str, Vec<Attribute>, usize, bool)> {
    let bytes = tag.as_bytes();
    let mut i = 1;
    while i < bytes.len() && !bytes[i].is_ascii_whitespace() && !matches!(bytes[i], b'>' | b'/') {
        i += 1;
    }
    let name = &tag[1..i];
    if name.is_empty() || !name.starts_with(|c: char| c.is_alphabetic() || c == '_' || c == ':') {
        return None;
    }
    let mut attributes = Vec::new();
    loop {
        let before = i;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        match bytes.get(i)? {
            b'>' => return Some((name, attributes, i + 1, false)),
            b'/' => {
                return (bytes.get(i + 1) == Some(&b'>')).then_some((name, attributes, i + 2, true))
            }
            _ if before == i => return None,
            _ => {}
        }
        let name_start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let attribute = &tag[name_start..i];
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if bytes.get(i) != Some(&b'=') {
            return None;
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let quote = *bytes.get(i).filter(|q| matches!(q, b'"' | b'\''))?;
        let end = i + 1 + bytes[i + 1..].iter().position(|&b| b == quote)?;
        let raw = &tag[i + 1..end];
        if raw.contains('<') {
            return None;
        }
        i = end + 1;
        if attribute == "xmlns" || attribute.starts_with("xmlns:") {
            continue;
        }
        let mut value = String::new();
        decode_text(raw, entities, &mut value);
        let value = value.replace(['\t', '\n', '\r'], " ");
        let (namespace, local) = match attribute.split_once(':') {
            Some(("xml", local)) => (
                Some("http://www.w3.org/XML/1998/namespace".to_string()),
                local,
            ),
            Some((_, local)) => (None, local),
            None => (None, attribute),
        };
        attributes.push(Attribute {
            namespace,
            name: local.to_string(),
            value,
        });
    }
}

/// A selected node: a tree node, or attribute `i` of an element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Item {
    Node(usize),
    Attribute(usize, usize),
}

/// A name test: `*`, `name`, `prefix:*` or `prefix:name` (prefix resolved to a URI).
#[derive(Debug)]
struct NameTest {
    /// `None`: any namespace (`*`); `Some(None)`: no namespace; `Some(Some(uri))`.
    namespace: Option<Option<String>>,
    /// `None` for any local name.
    local: Option<String>,
}

impl NameTest {
    fn matches(&self, namespace: &Option<String>, name: &str) -> bool {
        let namespace_ok = match &self.namespace {
            None => true,
            Some(wanted) => wanted == namespace,
        };
        namespace_ok && self.local.as_deref().is_none_or(|local| local == name)
    }
}

#[derive(Debug)]
enum Test {
    Element(NameTest),
    Attribute(NameTest),
    Text,
    AnyNode,
    SelfNode,
}

/// One location step; `descendants` for a step after `//`.
#[derive(Debug)]
struct Step {
    descendants: bool,
    test: Test,
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn name_test(text: &str, namespaces: &[(&str, &str)]) -> Option<NameTest> {
    if text == "*" {
        return Some(NameTest {
            namespace: None,
            local: None,
        });
    }
    let (namespace, local) = match text.split_once(':') {
        Some((prefix, local)) => {
            if !is_name(prefix) {
                return None;
            }
            let uri = namespaces.iter().find(|(p, _)| *p == prefix)?.1;
            (Some(Some(uri.to_string())), local)
        }
        None => (Some(None), text),
    };
    if local == "*" {
        return Some(NameTest {
            namespace,
            local: None,
        });
    }
    is_name(local).then(|| NameTest {
        namespace,
        local: Some(local.to_string()),
    })
}

/// Parses the supported XPath subset; `None` for anything else.
fn parse_xpath(xpath: &str, namespaces: &[(&str, &str)]) -> Option<Vec<Step>> {
    let xpath = xpath.trim();
    let mut rest = xpath.strip_prefix('/')?;
    let mut steps = Vec::new();
    if rest.is_empty() {
        return Some(steps);
    }
    let mut descendants = false;
    loop {
        if let Some(r) = rest.strip_prefix('/') {
            if descendants {
                return None;
            }
            descendants = true;
            rest = r;
            continue;
        }
        let end = rest.find('/').unwrap_or(rest.len());
        let text = rest[..end].trim();
        let test = match text {
            "" => return None,
            "." => Test::SelfNode,
            "text()" => Test::Text,
            "node()" => Test::AnyNode,
            _ => match text.strip_prefix('@') {
                Some(attribute) => Test::Attribute(name_test(attribute, namespaces)?),
                None => Test::Element(name_test(text, namespaces)?),
            },
        };
        steps.push(Step { descendants, test });
        descendants = false;
        rest = &rest[end..];
        match rest.strip_prefix('/') {
            Some(r) if !r.is_empty() => rest = r,
            _ if rest.is_empty() => return Some(steps),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> XmlDocument {
        XmlDocument::parse(text.as_bytes(), &BodyLimits::default())
            .unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn select(d: &XmlDocument, xpath: &str) -> Vec<String> {
        d.select(xpath)
            .into_iter()
            .map(|v| String::from_utf8(v).unwrap_or_default())
            .collect()
    }

    #[test]
    fn xpath_table() {
        let d = doc(concat!(
            "<?xml version=\"1.0\"?>\n",
            "<!-- c --><root a=\"1\" xmlns:x=\"urn:x\">\n",
            "  <b id=\"b1\">one<![CDATA[<two>]]></b>\n",
            "  <x:c x:k=\"v\">three<!-- no --><?pi no?><b>four</b></x:c>\n",
            "</root>"
        ));
        let cases: &[(&str, &[&str])] = &[
            ("/*", &["\n  one<two>\n  threefour\n"]),
            ("/", &["\n  one<two>\n  threefour\n"]),
            ("//@*", &["1", "b1", "v"]),
            ("/root/b", &["one<two>"]),
            ("//b", &["one<two>", "four"]),
            ("/root/@a", &["1"]),
            ("//@id", &["b1"]),
            ("//b/@*", &["b1"]),
            ("/root/b/text()", &["one<two>"]),
            ("/*/*", &["one<two>", "threefour"]),
            ("//c", &[]),
            ("/root/*/b", &["four"]),
            ("/root/.", &["\n  one<two>\n  threefour\n"]),
            ("//nothing", &[]),
            ("//b[1]", &[]),
            ("count(//b)", &[]),
            ("b", &[]),
            ("//y:c", &[]),
            ("///b", &[]),
            ("/root/", &[]),
        ];
        for (xpath, expected) in cases {
            assert_eq!(select(&d, xpath), *expected, "xpath {xpath}");
        }
        let with_ns: Vec<String> = d
            .select_with_namespaces("//x:c/@x:k", &[("x", "urn:x")])
            .into_iter()
            .map(|v| String::from_utf8(v).unwrap_or_default())
            .collect();
        assert_eq!(with_ns, vec!["v"]);
        assert_eq!(
            d.select_with_namespaces("//x:*", &[("x", "urn:x")]).len(),
            1
        );
    }

    #[test]
    fn entities_and_no_xxe() {
        let d = doc(concat!(
            "<!DOCTYPE r [<!ENTITY e \"ent\"><!ENTITY x SYSTEM \"file:///etc/passwd\">]>",
            "<r a=\"&e;\">&e;-&x;-&amp;</r>"
        ));
        assert_eq!(select(&d, "/*"), vec!["ent--&"]);
        assert_eq!(select(&d, "//@*"), vec!["ent"]);
    }

    #[test]
    fn billion_laughs_is_rejected() {
        let mut text = String::from("<!DOCTYPE r [<!ENTITY a0 \"lol\">");
        for i in 1..10 {
            let refs = format!("&a{};", i - 1).repeat(10);
            text.push_str(&format!("<!ENTITY a{i} \"{refs}\">"));
        }
        text.push_str("]><r>&a9;</r>");
        assert!(XmlDocument::parse(text.as_bytes(), &BodyLimits::default()).is_err());
    }

    #[test]
    fn entity_amplification_is_rejected_early() {
        let big = "x".repeat(10_000);
        let refs = "&big;".repeat(20_000);
        let text = format!("<!DOCTYPE r [<!ENTITY big \"{big}\">]><r>{refs}</r>");
        let err = XmlDocument::parse(text.as_bytes(), &BodyLimits::default()).unwrap_err();
        assert!(err.message.contains("entity expansion"), "{}", err.message);
        // Nested amplification within the nesting limit.
        let text = concat!(
            "<!DOCTYPE r [<!ENTITY a \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\">",
            "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">",
            "<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">",
            "<!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">",
            "<!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\">]>",
            "<r>&e;&e;&e;&e;</r>"
        );
        assert!(XmlDocument::parse(text.as_bytes(), &BodyLimits::default()).is_err());
        // Modest use is fine.
        let d = doc("<!DOCTYPE r [<!ENTITY n \"name\">]><r a=\"&n;\">&n; &n; &amp; &#65;</r>");
        assert_eq!(select(&d, "/*"), vec!["name name & A"]);
    }

    #[test]
    fn malformed_table() {
        let cases: &[&[u8]] = &[
            b"",
            b"   ",
            b"<a>",
            b"<a></b>",
            b"<a><b></a></b>",
            b"text",
            b"<a x='1' x='2'/>",
            b"<a>&undefined;</a>",
            b"<a/><b/>",
            b"<a>\xff</a>",
            b"<?pi<x?><a/>",
            b"<?xml version=\"10\"?><a/>",
            b"<?xml version=\".0\"?><a/>",
            b"<?xml versio=\"1.0\"?><a/>",
            b"<?xml encoding=\"utf-8\"?><a/>",
            b"<?xml version=\"1.0\"encoding=\"utf-8\"?><a/>",
            b"<?xml version=\"1.0\" standalone=\"maybe\"?><a/>",
            b"<?xml\n< versio=\"1.0\"?>\n<root/>",
            b"<r xmlns=\"a\" xmlns=\"b\"/>",
            b"<r xmlns:p=\"a\" xmlns:p=\"b\"/>",
            b"<!DOCTYPE r [<!ENTITY e \"<bnt\">]><r>x&e;y</r>",
            b"<!DOCTYPE r [<!ENTITY e \"a<b\">]><r a=\"&e;\"/>",
            b"<!DOCTYPE r [<!ENTITY e \"<b/>\">]><r a=\"&e;\"/>",
        ];
        for body in cases {
            let err = XmlDocument::parse(body, &BodyLimits::default()).expect_err("malformed");
            assert!(
                err.message.starts_with("XML: Failed to parse document. ("),
                "{body:?}: {}",
                err.message
            );
        }
    }

    #[test]
    fn partial_documents() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            (
                "<r a='1'>unclosed <b c=\"2\">text",
                &["unclosed text"],
                &["1", "2"],
            ),
            ("<r>one</r><r>two</r>", &["one"], &[]),
            (
                "<r>a\r\nb<!-- c --><![CDATA[<x>]]>&lt;&#65;</q>rest",
                &["a\nb<x><A"],
                &[],
            ),
            ("<r><b x='1'", &[""], &[]),
            ("<r>ok</r>trailing", &["ok"], &[]),
        ];
        for (body, text, attributes) in cases {
            let (doc, err) = XmlDocument::parse_partial(body.as_bytes(), &BodyLimits::default());
            assert!(err.is_some(), "{body}");
            assert_eq!(select(&doc, "/*"), *text, "{body}");
            assert_eq!(select(&doc, "//@*"), *attributes, "{body}");
        }
        let (doc, err) = XmlDocument::parse_partial(b"<r>fine</r>", &BodyLimits::default());
        assert!(err.is_none());
        assert_eq!(select(&doc, "/*"), vec!["fine"]);
        // Errors found before parsing leave nothing to inspect.
        let (doc, err) =
            XmlDocument::parse_partial(b"<?xml version=\"9\"?><r>x</r>", &BodyLimits::default());
        assert!(err.is_some());
        assert!(doc.select("/*").is_empty());
    }

    #[test]
    fn declarations() {
        for ok in [
            "<?xml version=\"1.0\"?><a/>",
            "<?xml version='1.1' encoding='ISO-8859-1' standalone='yes' ?><a/>",
            "<?xml version=\"1.0\" standalone=\"no\"?><a/>",
            "<?xml-stylesheet href=\"a\"?><a/>",
            "<a/>",
            "<!DOCTYPE r [<!ENTITY e \"<b>t</b>\"><!ENTITY f \"&e;&lt;\">]><r a=\"x\">&f;</r>",
            "<r a=\"1\" b='2' xmlns:p=\"u\" p:a=\"3\"/>",
        ] {
            assert!(
                XmlDocument::parse(ok.as_bytes(), &BodyLimits::default()).is_ok(),
                "{ok}"
            );
        }
    }

    #[test]
    fn undeclared_prefixes_are_tolerated() {
        let d = doc("<soap:Envelope a:x=\"1\"><soap:Body><m:q>v</m:q></soap:Body></soap:Envelope>");
        assert_eq!(select(&d, "/*"), vec!["v"]);
        assert_eq!(select(&d, "//@*"), vec!["1"]);
    }

    #[test]
    fn depth_limit() {
        let limits = BodyLimits {
            max_depth: 3,
            max_args: 10,
        };
        assert!(XmlDocument::parse(b"<a><b><c>x</c></b></a>", &limits).is_ok());
        let err = XmlDocument::parse(b"<a><b><c><d/></c></b></a>", &limits).unwrap_err();
        assert!(err.message.contains("depth"), "{}", err.message);
        let deep = "<a>".repeat(100_000);
        assert!(XmlDocument::parse(deep.as_bytes(), &BodyLimits::default()).is_err());
    }

    #[test]
    fn encodings() {
        let latin1 = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>caf\xe9</a>";
        let d = XmlDocument::parse(latin1, &BodyLimits::default()).expect("latin1");
        assert_eq!(select(&d, "/*"), vec!["café"]);
        let mut utf16 = vec![0xff, 0xfe];
        for unit in "<a>é</a>".encode_utf16() {
            utf16.extend_from_slice(&unit.to_le_bytes());
        }
        let d = XmlDocument::parse(&utf16, &BodyLimits::default()).expect("utf16");
        assert_eq!(select(&d, "/*"), vec!["é"]);
        let bom = b"\xef\xbb\xbf<a>x</a>";
        let d = XmlDocument::parse(bom, &BodyLimits::default()).expect("bom");
        assert_eq!(select(&d, "/*"), vec!["x"]);
    }

    #[test]
    fn default_document_selects_nothing() {
        assert!(XmlDocument::default().select("/*").is_empty());
    }
}
