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
//! - roxmltree is stricter than libxml2 about a few rarely used constructs (for example
//!   some DTD syntax), which then become parse errors.
//! - An empty body is an error in both (libxml2: "Document is empty").
//! - Errors read `XML parsing error: XML: Failed parsing document. (<reason>)`:
//!   ModSecurity's REQBODY_ERROR_MSG with the reason appended.

use super::{BodyError, BodyLimits};

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
        let text = decode(body).map_err(error)?;
        let mut text = text.into_owned();
        for _ in 0..=MAX_NAMESPACE_PATCHES {
            let options = roxmltree::ParsingOptions {
                allow_dtd: true,
                nodes_limit: u32::MAX,
                entity_resolver: Some(&|_, _| Ok(Some(""))),
            };
            match roxmltree::Document::parse_with_options(&text, options) {
                Ok(doc) => return build(&doc, limits),
                Err(roxmltree::Error::UnknownNamespace(prefix, pos)) => {
                    match declare_prefix(&text, &prefix, pos) {
                        Some(patched) => text = patched,
                        None => {
                            return Err(error(format!(
                                "an unknown namespace prefix '{prefix}' at {pos}"
                            )))
                        }
                    }
                }
                Err(e) => return Err(error(e.to_string())),
            }
        }
        Err(error("too many undeclared namespace prefixes".to_string()))
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

fn error(detail: impl std::fmt::Display) -> BodyError {
    BodyError {
        message: format!("XML parsing error: XML: Failed parsing document. ({detail})"),
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

/// Binds an undeclared `prefix` on the start tag that uses it (see the module docs).
fn declare_prefix(text: &str, prefix: &str, pos: roxmltree::TextPos) -> Option<String> {
    let row = usize::try_from(pos.row).ok()?.checked_sub(1)?;
    let col = usize::try_from(pos.col).ok()?.checked_sub(1)?;
    let line_start = if row == 0 {
        0
    } else {
        text.match_indices('\n').nth(row - 1)?.0 + 1
    };
    let offset = match text[line_start..].char_indices().nth(col) {
        Some((i, _)) => line_start + i,
        None => return None,
    };
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

/// Copies a roxmltree document into an owned tree, checking the depth limit.
fn build(doc: &roxmltree::Document<'_>, limits: &BodyLimits) -> Result<XmlDocument, BodyError> {
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
            roxmltree::NodeType::Element => Kind::Element {
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
            },
            roxmltree::NodeType::Text => Kind::Text,
            roxmltree::NodeType::Comment | roxmltree::NodeType::PI => continue,
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
                return Err(error(format!(
                    "nesting depth limit exceeded (limit {})",
                    limits.max_depth
                )));
            }
        }
    }
    while let Some((_, index)) = open.pop() {
        nodes[index].end = nodes.len();
    }
    Ok(XmlDocument { nodes, text })
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
        ];
        for body in cases {
            let err = XmlDocument::parse(body, &BodyLimits::default()).expect_err("malformed");
            assert!(
                err.message
                    .starts_with("XML parsing error: XML: Failed parsing document. ("),
                "{body:?}: {}",
                err.message
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
