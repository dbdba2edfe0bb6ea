//! Reading Kubernetes manifests: multi-document YAML (as `helm template` prints
//! it) into JSON values, and a lint for YAML 1.1 booleans that Kubernetes reads
//! differently from a YAML 1.2 parser.

use serde_json::Value;

/// One non-empty YAML document of a manifest stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Where it came from: the `# Source: ...` comment Helm writes, or the
    /// document's index in the stream.
    pub source: String,
    /// The document as JSON.
    pub value: Value,
}

impl Document {
    /// `apiVersion` of the object, or "" when absent.
    pub fn api_version(&self) -> &str {
        self.value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// `kind` of the object, or "" when absent.
    pub fn kind(&self) -> &str {
        self.value.get("kind").and_then(Value::as_str).unwrap_or("")
    }

    /// `metadata.name` of the object, or "" when absent.
    pub fn name(&self) -> &str {
        self.value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// A short description for messages: `Kind/name (source)`.
    pub fn describe(&self) -> String {
        format!("{}/{} ({})", self.kind(), self.name(), self.source)
    }
}

/// A manifest stream that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("document {index} ({source_name}): {error}")]
pub struct ParseError {
    /// Index of the document in the stream, from 0.
    pub index: usize,
    /// Its `# Source:` comment, if any.
    pub source_name: String,
    /// The YAML error.
    #[source]
    pub error: serde_yaml::Error,
}

/// Splits a multi-document YAML stream on `---` lines and parses every
/// document that is not empty (only comments or whitespace) into JSON.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, ParseError> {
    let mut out = Vec::new();
    for (index, chunk) in split_documents(text).into_iter().enumerate() {
        let source = chunk
            .lines()
            .find_map(|l| l.strip_prefix("# Source: "))
            .map_or_else(|| format!("document {index}"), str::to_owned);
        let value: Value = serde_yaml::from_str(&chunk).map_err(|error| ParseError {
            index,
            source_name: source.clone(),
            error,
        })?;
        if !value.is_null() {
            out.push(Document { source, value });
        }
    }
    Ok(out)
}

fn split_documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line == "---" || line.starts_with("--- ") || line.starts_with("---\t") {
            docs.push(String::new());
            continue;
        }
        if let Some(cur) = docs.last_mut() {
            cur.push_str(line);
            cur.push('\n');
        }
    }
    docs
}

/// Plain scalars a YAML 1.1 parser (Kubernetes' `sigs.k8s.io/yaml`, kubectl)
/// reads as booleans while YAML 1.2 parsers read them as strings. `On`, `Off`,
/// `yes` and `no` are the dangerous ones here: `palisade.dev/waf: On` would
/// reach the API server as `true`.
const YAML11_BOOLS: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
    "OFF",
];

/// One unquoted YAML 1.1 boolean found by [`yaml11_booleans`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmbiguousScalar {
    /// Line number, from 1.
    pub line: usize,
    /// The line's text.
    pub text: String,
}

/// Finds plain (unquoted) mapping values and list items that YAML 1.1 reads as
/// booleans, skipping comments and the content of block scalars (`|`, `>`).
/// A line-based check: enough for manifests, which keep one value per line.
pub fn yaml11_booleans(text: &str) -> Vec<AmbiguousScalar> {
    let mut found = Vec::new();
    let mut block_indent: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if let Some(bi) = block_indent {
            if trimmed.is_empty() || indent > bi {
                continue;
            }
            block_indent = None;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let without_comment = strip_comment(trimmed);
        if opens_block_scalar(without_comment) {
            block_indent = Some(indent);
            continue;
        }
        let value = if let Some(rest) = without_comment.strip_prefix("- ") {
            // A list item: either a scalar or `key: value`.
            value_of_mapping(rest).unwrap_or(rest)
        } else if let Some(v) = value_of_mapping(without_comment) {
            v
        } else {
            continue;
        };
        if YAML11_BOOLS.contains(&value.trim()) {
            found.push(AmbiguousScalar {
                line: i + 1,
                text: line.to_owned(),
            });
        }
    }
    found
}

/// Rewrites `text` so every unquoted YAML 1.1 boolean that
/// [`yaml11_booleans`] finds is single-quoted (`- On` becomes `- 'On'`), so
/// YAML 1.1 and 1.2 parsers read the same strings. Use it on YAML written by
/// serde_yaml, which leaves such strings plain.
pub fn quote_yaml11_booleans(text: &str) -> String {
    let hits: Vec<usize> = yaml11_booleans(text).iter().map(|h| h.line).collect();
    let mut out = String::with_capacity(text.len() + 2 * hits.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if hits.contains(&(i + 1)) {
            let body = line.trim_end_matches('\n');
            let value = strip_comment(body.trim()).trim_start_matches("- ");
            let value = value_of_mapping(value).unwrap_or(value).trim();
            if let Some(at) = body.rfind(value) {
                out.push_str(&body[..at]);
                out.push('\'');
                out.push_str(value);
                out.push('\'');
                out.push_str(&body[at + value.len()..]);
                out.push_str(&line[body.len()..]);
                continue;
            }
        }
        out.push_str(line);
    }
    out
}

fn strip_comment(s: &str) -> &str {
    // A comment starts at " #" outside quotes; good enough for plain values.
    let mut in_single = false;
    let mut in_double = false;
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\'' if !in_double => in_single = !in_single,
            b'"' if !in_single => in_double = !in_double,
            b'#' if !in_single && !in_double && i > 0 && bytes[i - 1] == b' ' => {
                return s[..i].trim_end();
            }
            _ => {}
        }
    }
    s
}

fn opens_block_scalar(s: &str) -> bool {
    let last = s.rsplit(' ').next().unwrap_or("");
    let last = last.trim_start_matches("- ");
    let mut chars = last.chars();
    matches!(chars.next(), Some('|' | '>'))
        && chars.all(|c| c == '-' || c == '+' || c.is_ascii_digit())
}

fn value_of_mapping(s: &str) -> Option<&str> {
    // `key: value` with an unquoted or quoted key.
    let idx = s.find(": ")?;
    let key = &s[..idx];
    if key.contains('{') || key.contains('[') {
        return None;
    }
    Some(s[idx + 2..].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_skips_empty_documents() {
        let text =
            "---\n# Source: a.yaml\nkind: A\nmetadata:\n  name: x\n---\n# nothing\n---\nkind: B\n";
        let docs = parse_documents(text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].source, "a.yaml");
        assert_eq!(docs[0].describe(), "A/x (a.yaml)");
        assert_eq!(docs[1].kind(), "B");
        assert_eq!(docs[1].source, "document 3");
    }

    #[test]
    fn parse_error_names_the_document() {
        let err = parse_documents("kind: A\n---\n# Source: t.yaml\nkind: [\n").unwrap_err();
        assert_eq!(err.index, 1);
        assert_eq!(err.source_name, "t.yaml");
    }

    #[test]
    fn finds_yaml11_booleans() {
        let cases: &[(&str, usize)] = &[
            ("palisade.dev/waf: On\n", 1),
            ("palisade.dev/waf: \"On\"\n", 0),
            ("mode: Off # comment\n", 1),
            ("items:\n  - yes\n  - 'no'\n", 1),
            ("- name: x\n  value: ON\n", 1),
            ("enabled: true\n", 0),
            ("# mode: On\n", 0),
            ("script: |\n  mode: On\n  x: Off\nafter: On\n", 1),
            ("text: >-\n  On\n", 0),
            ("description: turn On here\n", 0),
        ];
        for (text, want) in cases {
            assert_eq!(yaml11_booleans(text).len(), *want, "{text:?}");
        }
        let hits = yaml11_booleans("script: |\n  mode: On\nafter: On\n");
        assert_eq!(hits[0].line, 3);
    }

    #[test]
    fn quotes_yaml11_booleans() {
        let cases = [
            (
                "enum:\n- On\n- DetectionOnly\n- Off\n",
                "enum:\n- 'On'\n- DetectionOnly\n- 'Off'\n",
            ),
            ("  mode: On # c\n", "  mode: 'On' # c\n"),
            ("- key: yes\n", "- key: 'yes'\n"),
            ("a: b\nno-newline: No", "a: b\nno-newline: 'No'"),
        ];
        for (input, want) in cases {
            let got = quote_yaml11_booleans(input);
            assert_eq!(got, want);
            assert!(yaml11_booleans(&got).is_empty());
            let a: serde_json::Value = serde_yaml::from_str(input).unwrap();
            let b: serde_json::Value = serde_yaml::from_str(&got).unwrap();
            assert_eq!(a, b, "quoting changed the value");
        }
    }
}
