//! The go-ftw test file format (github.com/coreruleset/ftw-tests-schema, v2
//! with the v1 spellings go-ftw still accepts): YAML in, typed test cases out.
//!
//! Loading follows go-ftw: `test_id` (or `id`) defaults to the 1-based
//! position, `desc` is also read as `description`, a file without `rule_id`
//! takes the first number in its file name, `stop_magic` is the inverse of
//! `autocomplete_headers`, the deprecated `log_contains`/`no_log_contains`
//! become `match_regex`/`no_match_regex`, and a `headers` map becomes an
//! ordered list sorted by name (go-ftw sorts the map's keys; `ordered_headers`
//! keeps its order). Header and data values may be any YAML scalar.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;

/// A problem loading a test file.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// What was read.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The YAML does not parse or has the wrong shape.
    #[error("{path}: invalid test file: {source}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        #[source]
        source: serde_yaml::Error,
    },
    /// A value has the wrong type or the file lacks what it needs.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// One test file: the tests of one rule.
#[derive(Clone, Debug, PartialEq)]
pub struct TestFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The rule the tests target.
    pub rule_id: u64,
    /// The test cases, in file order.
    pub tests: Vec<TestCase>,
}

/// One test case: stages run in order, each its own request.
#[derive(Clone, Debug, PartialEq)]
pub struct TestCase {
    /// The rule the file targets.
    pub rule_id: u64,
    /// The test's number within the file.
    pub test_id: u64,
    /// Free-text description.
    pub desc: String,
    /// The stages.
    pub stages: Vec<Stage>,
}

impl TestCase {
    /// go-ftw's name for the case, `<rule_id>-<test_id>`, which `--include`
    /// and `--exclude` match against.
    pub fn id_string(&self) -> String {
        format!("{}-{}", self.rule_id, self.test_id)
    }
}

/// One request and what to expect of it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stage {
    /// The request.
    pub input: Input,
    /// The expectations.
    pub output: Output,
}

/// The request a stage sends.
#[derive(Clone, Debug, PartialEq)]
pub struct Input {
    /// Server address; go-ftw's default is `localhost`.
    pub dest_addr: String,
    /// Server port; default 80.
    pub port: u16,
    /// `http` or `https` (only recorded: no TLS is involved in-process).
    pub protocol: String,
    /// Request target; default `/`.
    pub uri: String,
    /// Protocol of the request line; default `HTTP/1.1`.
    pub version: String,
    /// Method; default `GET`.
    pub method: String,
    /// Header fields, in the order they are sent.
    pub headers: Vec<(String, String)>,
    /// Body text (a Go template in go-ftw).
    pub data: Option<String>,
    /// Body, base64.
    pub encoded_data: Option<String>,
    /// A whole raw request, base64; overrides every other field.
    pub encoded_request: Option<String>,
    /// Whether go-ftw completes the request (`Connection`, `Content-Length`,
    /// `Content-Type`, URL-encoding of form data); default true.
    pub autocomplete_headers: bool,
}

impl Default for Input {
    fn default() -> Self {
        Input {
            dest_addr: "localhost".to_string(),
            port: 80,
            protocol: "http".to_string(),
            uri: "/".to_string(),
            version: "HTTP/1.1".to_string(),
            method: "GET".to_string(),
            headers: Vec::new(),
            data: None,
            encoded_data: None,
            encoded_request: None,
            autocomplete_headers: true,
        }
    }
}

/// What a stage expects.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Output {
    /// Acceptable response statuses (empty: not checked). The schema has one
    /// integer; a list (the v1 form) is accepted too.
    #[serde(deserialize_with = "status_list")]
    pub status: Vec<u16>,
    /// Regular expression the whole response must match.
    pub response_contains: Option<String>,
    /// Deprecated spelling of `log.match_regex`.
    pub log_contains: Option<String>,
    /// Deprecated spelling of `log.no_match_regex`.
    pub no_log_contains: Option<String>,
    /// Expectations on the WAF log.
    pub log: LogExpect,
    /// The request must fail at the HTTP level (no parseable response).
    pub expect_error: Option<bool>,
    /// go-ftw retries a failing stage once (a log race); ignored in-process.
    pub retry_once: Option<bool>,
    /// Exactly one rule may appear in the log.
    pub isolated: bool,
}

impl Output {
    /// Whether an HTTP-level error is expected.
    pub fn expects_error(&self) -> bool {
        self.expect_error.unwrap_or(false)
    }

    /// Applies go-ftw's load-time rewrite of the deprecated fields.
    pub(crate) fn normalise_deprecated(&mut self) {
        if let Some(regex) = self.log_contains.take() {
            if self.log.expect_ids.is_empty() && self.log.match_regex.is_none() {
                self.log.match_regex = Some(regex);
            }
        }
        if let Some(regex) = self.no_log_contains.take() {
            if self.log.no_expect_ids.is_empty() && self.log.no_match_regex.is_none() {
                self.log.no_match_regex = Some(regex);
            }
        }
    }
}

/// Expectations on the WAF log.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct LogExpect {
    /// Every one of these rule ids must appear.
    pub expect_ids: Vec<u64>,
    /// None of these rule ids may appear.
    pub no_expect_ids: Vec<u64>,
    /// Some log line must match this regular expression.
    pub match_regex: Option<String>,
    /// No log line may match this regular expression.
    pub no_match_regex: Option<String>,
}

fn status_list<'de, D>(de: D) -> Result<Vec<u16>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(u16),
        Many(Vec<u16>),
        Nothing(()),
    }
    Ok(match OneOrMany::deserialize(de)? {
        OneOrMany::One(0) | OneOrMany::Nothing(()) => Vec::new(),
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawFile {
    rule_id: Option<u64>,
    tests: Vec<RawTest>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawTest {
    test_id: Option<u64>,
    id: Option<u64>,
    desc: Option<String>,
    description: Option<String>,
    test_title: Option<String>,
    stages: Vec<RawStage>,
    payload: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawStage {
    stage: Option<Box<RawStage>>,
    input: RawInput,
    output: Output,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawInput {
    dest_addr: Option<Value>,
    port: Option<u16>,
    protocol: Option<String>,
    uri: Option<Value>,
    version: Option<Value>,
    method: Option<Value>,
    headers: Option<serde_yaml::Mapping>,
    ordered_headers: Option<Vec<RawHeader>>,
    data: Option<Value>,
    encoded_data: Option<String>,
    encoded_request: Option<String>,
    autocomplete_headers: Option<bool>,
    stop_magic: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawHeader {
    name: Value,
    value: Value,
}

/// A YAML scalar as the text go-ftw would send (`7` → "7", null → "").
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::Null => Some(String::new()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => None,
    }
}

fn scalar_field(
    path: &Path,
    field: &str,
    value: &Option<Value>,
) -> Result<Option<String>, SchemaError> {
    match value {
        None => Ok(None),
        Some(v) => scalar(v).map(Some).ok_or_else(|| SchemaError::Invalid {
            path: path.to_path_buf(),
            message: format!("{field} must be a scalar"),
        }),
    }
}

impl RawInput {
    fn into_input(self, path: &Path) -> Result<Input, SchemaError> {
        let defaults = Input::default();
        let headers = match (self.ordered_headers, self.headers) {
            (Some(list), _) => list
                .into_iter()
                .map(|h| {
                    let name = scalar(&h.name);
                    let value = scalar(&h.value);
                    name.zip(value).ok_or_else(|| SchemaError::Invalid {
                        path: path.to_path_buf(),
                        message: "ordered_headers entries need scalar name and value".into(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            (None, Some(map)) => {
                let mut headers = map
                    .iter()
                    .map(|(k, v)| {
                        scalar(k)
                            .zip(scalar(v))
                            .ok_or_else(|| SchemaError::Invalid {
                                path: path.to_path_buf(),
                                message: "header names and values must be scalars".into(),
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                // go-ftw turns the map into a list sorted by name (Go string order).
                headers.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                headers
            }
            (None, None) => Vec::new(),
        };
        let autocomplete_headers = match (self.autocomplete_headers, self.stop_magic) {
            (Some(a), _) => a,
            (None, Some(stop)) => !stop,
            (None, None) => true,
        };
        let encoded_request = self.encoded_request.filter(|s| !s.is_empty());
        Ok(Input {
            dest_addr: scalar_field(path, "dest_addr", &self.dest_addr)?
                .unwrap_or(defaults.dest_addr),
            port: self.port.unwrap_or(defaults.port),
            protocol: self.protocol.unwrap_or(defaults.protocol),
            uri: scalar_field(path, "uri", &self.uri)?.unwrap_or(defaults.uri),
            version: scalar_field(path, "version", &self.version)?.unwrap_or(defaults.version),
            method: scalar_field(path, "method", &self.method)?.unwrap_or(defaults.method),
            headers,
            data: scalar_field(path, "data", &self.data)?,
            encoded_data: self.encoded_data,
            encoded_request,
            autocomplete_headers,
        })
    }
}

/// The first run of digits in a file name (go-ftw's fallback for `rule_id`).
fn rule_id_from_name(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let start = name.find(|c: char| c.is_ascii_digit())?;
    let digits: String = name[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Parses one test file's text. An empty document yields `Ok(None)`.
pub fn parse_test_file(path: &Path, text: &str) -> Result<Option<TestFile>, SchemaError> {
    let value: Value = serde_yaml::from_str(text).map_err(|source| SchemaError::Yaml {
        path: path.to_path_buf(),
        source,
    })?;
    if value.is_null() {
        return Ok(None);
    }
    let raw: RawFile = serde_yaml::from_value(value).map_err(|source| SchemaError::Yaml {
        path: path.to_path_buf(),
        source,
    })?;
    let rule_id = match raw
        .rule_id
        .filter(|id| *id > 0)
        .or_else(|| rule_id_from_name(path))
    {
        Some(id) => id,
        None => {
            return Err(SchemaError::Invalid {
                path: path.to_path_buf(),
                message: "no rule_id, and none in the file name".into(),
            })
        }
    };
    let mut tests = Vec::with_capacity(raw.tests.len());
    for (index, test) in raw.tests.into_iter().enumerate() {
        let position = index as u64 + 1;
        let test_id = test
            .test_id
            .or(test.id)
            .filter(|id| *id > 0)
            .unwrap_or(position);
        if test.payload.is_some() && test.stages.is_empty() {
            return Err(SchemaError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "test {test_id}: the v3 payload/template form is not supported; use stages"
                ),
            });
        }
        let desc = test
            .desc
            .or(test.description)
            .or(test.test_title)
            .unwrap_or_default();
        let mut stages = Vec::with_capacity(test.stages.len());
        for stage in test.stages {
            let stage = match stage.stage {
                Some(inner) => *inner,
                None => stage,
            };
            let mut output = stage.output;
            output.normalise_deprecated();
            stages.push(Stage {
                input: stage.input.into_input(path)?,
                output,
            });
        }
        tests.push(TestCase {
            rule_id,
            test_id,
            desc,
            stages,
        });
    }
    Ok(Some(TestFile {
        path: path.to_path_buf(),
        rule_id,
        tests,
    }))
}

/// Reads one test file. An empty file yields `Ok(None)`.
pub fn load_test_file(path: &Path) -> Result<Option<TestFile>, SchemaError> {
    let text = fs::read_to_string(path).map_err(|source| SchemaError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_test_file(path, &text)
}

/// Every `*.yaml`/`*.yml` file under `dir` (recursively), sorted by path.
pub fn find_test_files(dir: &Path) -> Result<Vec<PathBuf>, SchemaError> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = fs::read_dir(&current).map_err(|source| SchemaError::Io {
            path: current.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| SchemaError::Io {
                path: current.clone(),
                source,
            })?;
            let path = entry.path();
            let file_type = entry.file_type().map_err(|source| SchemaError::Io {
                path: path.clone(),
                source,
            })?;
            if file_type.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Loads every test file under `dir`, sorted by path; empty files are left out.
pub fn load_test_dir(dir: &Path) -> Result<Vec<TestFile>, SchemaError> {
    let mut files = Vec::new();
    for path in find_test_files(dir)? {
        if let Some(file) = load_test_file(&path)? {
            files.push(file);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> TestFile {
        parse_test_file(Path::new("920100.yaml"), text)
            .expect("parses")
            .expect("not empty")
    }

    #[test]
    fn defaults_follow_go_ftw() {
        let file =
            parse("rule_id: 5\ntests:\n  - stages:\n      - input: {}\n        output: {}\n");
        let input = &file.tests[0].stages[0].input;
        assert_eq!(file.tests[0].test_id, 1);
        assert_eq!(input.method, "GET");
        assert_eq!(input.uri, "/");
        assert_eq!(input.version, "HTTP/1.1");
        assert_eq!(input.dest_addr, "localhost");
        assert_eq!(input.port, 80);
        assert!(input.autocomplete_headers);
        assert_eq!(file.tests[0].stages[0].output, Output::default());
    }

    #[test]
    fn header_map_is_sorted_and_scalars_stringified() {
        let file = parse(
            "rule_id: 1\ntests:\n  - test_id: 3\n    stages:\n      - input:\n          headers:\n            User-Agent: ua\n            Content-Length: 7\n            Accept: '*/*'\n            X-Empty:\n        output: {}\n",
        );
        let headers = &file.tests[0].stages[0].input.headers;
        let names: Vec<&str> = headers.iter().map(|h| h.0.as_str()).collect();
        assert_eq!(names, ["Accept", "Content-Length", "User-Agent", "X-Empty"]);
        assert_eq!(headers[1].1, "7");
        assert_eq!(headers[3].1, "");
    }

    #[test]
    fn ordered_headers_keep_order_and_win_over_map() {
        let file = parse(
            "rule_id: 1\ntests:\n  - stages:\n      - input:\n          headers: {A: a}\n          ordered_headers:\n            - {name: Z, value: z}\n            - {name: B, value: b}\n            - {name: Z, value: y}\n        output: {}\n",
        );
        let headers = &file.tests[0].stages[0].input.headers;
        assert_eq!(
            headers,
            &vec![
                ("Z".into(), "z".into()),
                ("B".into(), "b".into()),
                ("Z".into(), "y".into())
            ]
        );
    }

    #[test]
    fn status_forms() {
        let cases = [
            ("status: 403", vec![403]),
            ("status: [200, 404]", vec![200, 404]),
            ("{}", vec![]),
        ];
        for (yaml, want) in cases {
            let output: Output = serde_yaml::from_str(yaml).expect(yaml);
            assert_eq!(output.status, want, "{yaml}");
        }
    }

    #[test]
    fn deprecated_fields_are_mapped() {
        let file = parse(
            "rule_id: 1\ntests:\n  - stages:\n      - stage:\n          input:\n            stop_magic: true\n          output:\n            log_contains: 'id \"1\"'\n            no_log_contains: x\n",
        );
        let stage = &file.tests[0].stages[0];
        assert!(!stage.input.autocomplete_headers);
        assert_eq!(stage.output.log.match_regex.as_deref(), Some("id \"1\""));
        assert_eq!(stage.output.log.no_match_regex.as_deref(), Some("x"));
        assert_eq!(stage.output.log_contains, None);
    }

    #[test]
    fn rule_id_falls_back_to_file_name_and_ids_to_position() {
        let text = "tests:\n  - desc: a\n    stages: []\n  - id: 9\n    description: b\n    stages: []\n  - stages: []\n";
        let file = parse_test_file(Path::new("dir/REQUEST-942110.yaml"), text)
            .expect("ok")
            .expect("some");
        assert_eq!(file.rule_id, 942110);
        let ids: Vec<u64> = file.tests.iter().map(|t| t.test_id).collect();
        assert_eq!(ids, [1, 9, 3]);
        assert_eq!(file.tests[1].desc, "b");
        assert_eq!(file.tests[0].id_string(), "942110-1");
    }

    #[test]
    fn empty_file_is_none_and_bad_files_are_errors() {
        assert!(parse_test_file(Path::new("1.yaml"), "")
            .expect("ok")
            .is_none());
        assert!(parse_test_file(Path::new("1.yaml"), "---\n")
            .expect("ok")
            .is_none());
        let bad = [
            ("x.yaml", "tests: []\n"),
            ("1.yaml", "tests: 5\n"),
            (
                "1.yaml",
                "tests:\n  - stages:\n      - input:\n          uri: [1]\n",
            ),
            ("1.yaml", "tests:\n  - payload: x\n"),
            ("1.yaml", ": :\n  - ["),
        ];
        for (name, text) in bad {
            assert!(parse_test_file(Path::new(name), text).is_err(), "{text}");
        }
    }

    #[test]
    fn data_directory_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ftw");
        let files = load_test_dir(&dir).expect("loads");
        assert!(!files.is_empty());
        assert!(files.windows(2).all(|w| w[0].path < w[1].path));
        assert!(files.iter().all(|f| !f.tests.is_empty()));
    }
}
