//! Offline validation of objects against a CRD's `openAPIV3Schema`, following
//! the API server's rules for structural schemas, and a check that a schema is
//! structural at all.
//!
//! Unknown fields are reported, not pruned: the API server would silently
//! drop them (and `kubectl` with its default `--validate=strict` rejects
//! them), so in a test they are always a mistake. Supported keywords: `type`,
//! `nullable`, `properties`, `additionalProperties`, `required`, `items`,
//! `enum`, `pattern`, `minLength`, `maxLength`, `minimum`, `maximum`,
//! `exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`, `minItems`,
//! `maxItems`, `uniqueItems`, `minProperties`, `maxProperties`, `format`
//! (`int32`, `int64`, `uint32`, `uint64` ranges), `allOf`, `anyOf`, `oneOf`,
//! `not`, `x-kubernetes-int-or-string`, `x-kubernetes-preserve-unknown-fields`,
//! `x-kubernetes-embedded-resource`, `x-kubernetes-list-type` (`set`, `map`
//! with `x-kubernetes-list-map-keys`). CEL rules (`x-kubernetes-validations`)
//! are not evaluated.

use serde_json::{Map, Value};

/// One way a value breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON path of the offending value (`.spec.rules[0].action`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = if self.path.is_empty() {
            "."
        } else {
            &self.path
        };
        write!(f, "{path}: {}", self.message)
    }
}

/// The `openAPIV3Schema` of `version` in a CustomResourceDefinition object.
pub fn crd_schema<'a>(crd: &'a Value, version: &str) -> Option<&'a Value> {
    crd.pointer("/spec/versions")?
        .as_array()?
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(version))?
        .pointer("/schema/openAPIV3Schema")
}

/// The `group/version` strings and kind a CRD serves: `(apiVersion, kind)`.
pub fn crd_served(crd: &Value) -> Vec<(String, String)> {
    let group = crd
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = crd
        .pointer("/spec/names/kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(false))
                .filter_map(|v| v.get("name").and_then(Value::as_str))
                .map(|v| (format!("{group}/{v}"), kind.to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Validates a whole custom resource against its CRD version's schema. The
/// root's `apiVersion`, `kind` and `metadata` are always allowed; `metadata`
/// itself is the caller's to check (e.g. as an `ObjectMeta`).
pub fn validate_resource(schema: &Value, obj: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    let ctx = Ctx {
        doc: schema,
        crd: true,
    };
    walk(&ctx, schema, obj, "", true, true, &mut out);
    out
}

/// Validates a value against a schema from an OpenAPI document (such as
/// k8s-openapi's): no root special cases, and an object schema without
/// `properties` accepts any fields (OpenAPI's meaning; in a CRD such an object
/// would have its fields pruned).
pub fn validate(schema: &Value, value: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    let ctx = Ctx {
        doc: schema,
        crd: false,
    };
    walk(&ctx, schema, value, "", false, true, &mut out);
    out
}

/// What the walk needs besides the current schema node.
struct Ctx<'a> {
    /// The whole schema document, for `$ref`.
    doc: &'a Value,
    /// CRD semantics: unknown fields of an object without `properties` are
    /// errors (the API server prunes them) unless preserved.
    crd: bool,
}

fn push(out: &mut Vec<Violation>, path: &str, message: impl Into<String>) {
    out.push(Violation {
        path: path.to_owned(),
        message: message.into(),
    });
}

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(v: &Value) -> bool {
    v.as_i64().is_some() || v.as_u64().is_some()
}

/// `root`: the value is a resource (or embedded resource) whose apiVersion,
/// kind and metadata are implicit. `strict`: report unknown fields (off inside
/// anyOf/oneOf/allOf/not branches, which only add value validations).
fn walk(
    ctx: &Ctx<'_>,
    schema: &Value,
    value: &Value,
    path: &str,
    root: bool,
    strict: bool,
    out: &mut Vec<Violation>,
) {
    let schema = match resolve(ctx.doc, schema) {
        Ok(s) => s,
        Err(message) => {
            push(out, path, message);
            return;
        }
    };
    let Some(s) = schema.as_object() else {
        return;
    };
    if value.is_null() {
        // The API server prunes nulls of non-nullable fields and keeps them
        // for nullable ones: either way not a violation by itself (a required
        // field that is null counts as missing, see `object`).
        return;
    }
    let int_or_string = flag(schema, "x-kubernetes-int-or-string");
    if int_or_string {
        if !(is_integer(value) || value.is_string()) {
            push(
                out,
                path,
                format!("must be an integer or a string, not {}", type_name(value)),
            );
            return;
        }
    } else if let Some(t) = s.get("type") {
        // One type name, or a list of them (JSON Schema; schemars writes
        // ["string", "null"] for options).
        let names: Vec<&str> = match t {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let mut ok = false;
        for t in &names {
            ok |= match *t {
                "object" => value.is_object(),
                "array" => value.is_array(),
                "string" => value.is_string(),
                "integer" => is_integer(value),
                "number" => value.is_number(),
                "boolean" => value.is_boolean(),
                "null" => false,
                other => {
                    push(out, path, format!("schema has unknown type {other:?}"));
                    return;
                }
            };
        }
        if !ok {
            let want = names.join(" or ");
            push(
                out,
                path,
                format!("must be of type {want}, not {}", type_name(value)),
            );
            return;
        }
    }

    if let Some(allowed) = s.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            push(
                out,
                path,
                format!("{value} is not one of [{}]", list.join(", ")),
            );
        }
    }
    match value {
        Value::Object(map) => object(ctx, s, map, path, root, strict, out),
        Value::Array(items) => array(ctx, s, items, path, strict, out),
        Value::String(text) => string(s, text, path, out),
        Value::Number(_) => number(s, value, path, out),
        _ => {}
    }
    combinators(ctx, s, value, path, root, out);
}

fn object(
    ctx: &Ctx<'_>,
    s: &Map<String, Value>,
    map: &Map<String, Value>,
    path: &str,
    root: bool,
    strict: bool,
    out: &mut Vec<Violation>,
) {
    let props = s.get("properties").and_then(Value::as_object);
    let additional = s.get("additionalProperties");
    let preserve = s
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let embedded = root
        || s.get("x-kubernetes-embedded-resource")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    for (k, v) in map {
        let p = format!("{path}.{k}");
        if let Some(sub) = props.and_then(|p| p.get(k)) {
            // metadata of a resource is an ObjectMeta, checked by the caller.
            if !(embedded && k == "metadata") {
                walk(ctx, sub, v, &p, false, strict, out);
            }
            continue;
        }
        if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        match additional {
            Some(Value::Bool(true)) => {}
            Some(sub @ Value::Object(_)) => walk(ctx, sub, v, &p, false, strict, out),
            _ if preserve || !strict || (!ctx.crd && props.is_none()) => {}
            _ => push(out, &p, "unknown field (not in the schema)"),
        }
    }
    if let Some(req) = s.get("required").and_then(Value::as_array) {
        for r in req.iter().filter_map(Value::as_str) {
            let present = map.get(r).is_some_and(|v| {
                !v.is_null()
                    || props
                        .and_then(|p| p.get(r))
                        .is_some_and(|sub| flag(sub, "nullable"))
            });
            if !present {
                push(out, path, format!("required field {r:?} is missing"));
            }
        }
    }
    if let Some(min) = s.get("minProperties").and_then(Value::as_u64) {
        if (map.len() as u64) < min {
            push(out, path, format!("has fewer than {min} properties"));
        }
    }
    if let Some(max) = s.get("maxProperties").and_then(Value::as_u64) {
        if (map.len() as u64) > max {
            push(out, path, format!("has more than {max} properties"));
        }
    }
}

fn array(
    ctx: &Ctx<'_>,
    s: &Map<String, Value>,
    items: &[Value],
    path: &str,
    strict: bool,
    out: &mut Vec<Violation>,
) {
    if let Some(item_schema) = s.get("items") {
        for (i, it) in items.iter().enumerate() {
            walk(
                ctx,
                item_schema,
                it,
                &format!("{path}[{i}]"),
                false,
                strict,
                out,
            );
        }
    }
    if let Some(min) = s.get("minItems").and_then(Value::as_u64) {
        if (items.len() as u64) < min {
            push(out, path, format!("has fewer than {min} items"));
        }
    }
    if let Some(max) = s.get("maxItems").and_then(Value::as_u64) {
        if (items.len() as u64) > max {
            push(out, path, format!("has more than {max} items"));
        }
    }
    let list_type = s.get("x-kubernetes-list-type").and_then(Value::as_str);
    if flag(&Value::Object(s.clone()), "uniqueItems") || list_type == Some("set") {
        for (i, it) in items.iter().enumerate() {
            if items[..i].contains(it) {
                push(out, &format!("{path}[{i}]"), "duplicate item in a set");
            }
        }
    }
    if list_type == Some("map") {
        let keys: Vec<&str> = s
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|k| k.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let key_of = |v: &Value| -> Vec<Value> {
            keys.iter()
                .map(|k| v.get(*k).cloned().unwrap_or(Value::Null))
                .collect()
        };
        for (i, it) in items.iter().enumerate() {
            if items[..i].iter().any(|o| key_of(o) == key_of(it)) {
                push(
                    out,
                    &format!("{path}[{i}]"),
                    format!("duplicate key {keys:?} in a map list"),
                );
            }
        }
    }
}

fn string(s: &Map<String, Value>, text: &str, path: &str, out: &mut Vec<Violation>) {
    let len = text.chars().count() as u64;
    if let Some(min) = s.get("minLength").and_then(Value::as_u64) {
        if len < min {
            push(out, path, format!("is shorter than {min} characters"));
        }
    }
    if let Some(max) = s.get("maxLength").and_then(Value::as_u64) {
        if len > max {
            push(out, path, format!("is longer than {max} characters"));
        }
    }
    if let Some(pattern) = s.get("pattern").and_then(Value::as_str) {
        match regex::Regex::new(pattern) {
            Ok(re) if re.is_match(text) => {}
            Ok(_) => push(out, path, format!("{text:?} does not match /{pattern}/")),
            Err(e) => push(
                out,
                path,
                format!("schema pattern /{pattern}/ is invalid: {e}"),
            ),
        }
    }
}

fn number(s: &Map<String, Value>, value: &Value, path: &str, out: &mut Vec<Violation>) {
    let Some(x) = value.as_f64() else {
        return;
    };
    let excl_min = s
        .get("exclusiveMinimum")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let excl_max = s
        .get("exclusiveMaximum")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
        if x < min || (excl_min && x == min) {
            push(out, path, format!("{value} is below the minimum {min}"));
        }
    }
    if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
        if x > max || (excl_max && x == max) {
            push(out, path, format!("{value} is above the maximum {max}"));
        }
    }
    if let Some(m) = s.get("multipleOf").and_then(Value::as_f64) {
        if m > 0.0 && (x / m).fract() != 0.0 {
            push(out, path, format!("{value} is not a multiple of {m}"));
        }
    }
    let range = match s.get("format").and_then(Value::as_str) {
        Some("int32") => Some((f64::from(i32::MIN), f64::from(i32::MAX))),
        Some("uint32") => Some((0.0, f64::from(u32::MAX))),
        Some("uint64" | "uint") => Some((0.0, u64::MAX as f64)),
        Some("uint8") => Some((0.0, 255.0)),
        Some("uint16") => Some((0.0, 65535.0)),
        _ => None,
    };
    if let Some((lo, hi)) = range {
        if x < lo || x > hi {
            push(out, path, format!("{value} is out of range for its format"));
        }
    }
}

fn combinators(
    ctx: &Ctx<'_>,
    s: &Map<String, Value>,
    value: &Value,
    path: &str,
    root: bool,
    out: &mut Vec<Violation>,
) {
    let passes = |sub: &Value| {
        let mut v = Vec::new();
        walk(ctx, sub, value, path, root, false, &mut v);
        v
    };
    if flag(&Value::Object(s.clone()), "x-kubernetes-int-or-string") {
        // The anyOf [integer, string] that goes with it says nothing more.
        return;
    }
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        for sub in all {
            out.extend(passes(sub));
        }
    }
    if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
        if !any.is_empty() && !any.iter().any(|sub| passes(sub).is_empty()) {
            push(out, path, "matches none of the anyOf alternatives");
        }
    }
    if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
        let n = one.iter().filter(|sub| passes(sub).is_empty()).count();
        if n != 1 && !one.is_empty() {
            push(
                out,
                path,
                format!("matches {n} of the oneOf alternatives (must match exactly 1)"),
            );
        }
    }
    if let Some(not) = s.get("not") {
        if passes(not).is_empty() {
            push(out, path, "matches the schema under `not`");
        }
    }
}

/// Follows `$ref` (a JSON pointer into the document, as schemars writes
/// `#/$defs/Name`) until a schema without one; sibling keywords of a `$ref`
/// (a description, say) are dropped, which loses no validation here.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> Result<&'a Value, String> {
    let mut cur = schema;
    for _ in 0..32 {
        match cur.get("$ref").and_then(Value::as_str) {
            None => return Ok(cur),
            Some(r) => {
                let ptr = r
                    .strip_prefix('#')
                    .ok_or_else(|| format!("unsupported $ref {r:?}"))?;
                cur = doc
                    .pointer(ptr)
                    .ok_or_else(|| format!("$ref {r:?} points nowhere"))?;
            }
        }
    }
    Err("$ref chain too long".to_owned())
}

/// Problems that make a schema non-structural (the API server rejects such a
/// CRD): a node without `type` (unless int-or-string or preserving unknown
/// fields), `properties` together with `additionalProperties`, or `type`,
/// `nullable`, `default`, `description` or `additionalProperties` inside
/// `allOf`/`anyOf`/`oneOf`/`not`.
pub fn structural_problems(schema: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    structural(schema, "", false, &mut out);
    out
}

fn structural(schema: &Value, path: &str, in_combinator: bool, out: &mut Vec<Violation>) {
    let Some(s) = schema.as_object() else {
        push(out, path, "schema is not an object");
        return;
    };
    let int_or_string = flag(schema, "x-kubernetes-int-or-string");
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
    if in_combinator {
        for k in [
            "type",
            "nullable",
            "default",
            "description",
            "additionalProperties",
        ] {
            if s.contains_key(k) {
                push(
                    out,
                    path,
                    format!("{k:?} is not allowed inside allOf/anyOf/oneOf/not"),
                );
            }
        }
    } else if !s.contains_key("type") && !int_or_string && !preserve {
        push(
            out,
            path,
            "no type (every structural schema node needs one)",
        );
    }
    if s.contains_key("properties") && s.contains_key("additionalProperties") {
        push(
            out,
            path,
            "properties and additionalProperties are mutually exclusive",
        );
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for (k, sub) in props {
            structural(sub, &format!("{path}.{k}"), in_combinator, out);
        }
    }
    if let Some(sub @ Value::Object(_)) = s.get("additionalProperties") {
        structural(sub, &format!("{path}.*"), in_combinator, out);
    }
    if let Some(items) = s.get("items") {
        structural(items, &format!("{path}[]"), in_combinator, out);
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(subs) = s.get(key).and_then(Value::as_array) {
            for (i, sub) in subs.iter().enumerate() {
                // int-or-string's own anyOf [integer, string] is the allowed exception.
                if int_or_string && key == "anyOf" {
                    continue;
                }
                structural(sub, &format!("{path}({key}[{i}])"), true, out);
            }
        }
    }
    if let Some(sub) = s.get("not") {
        structural(sub, &format!("{path}(not)"), true, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["mode"],
                    "properties": {
                        "mode": {"type": "string", "enum": ["On", "DetectionOnly", "Off"]},
                        "limit": {"type": "integer", "format": "uint64", "minimum": 0.0},
                        "port": {"x-kubernetes-int-or-string": true,
                                 "anyOf": [{"type": "integer"}, {"type": "string"}]},
                        "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5},
                        "tags": {"type": "array", "items": {"type": "string"},
                                 "x-kubernetes-list-type": "set"},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "opt": {"type": "string", "nullable": true},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "path": {"type": "object",
                                 "properties": {"exact": {"type": "string"}, "prefix": {"type": "string"}},
                                 "oneOf": [{"required": ["exact"]}, {"required": ["prefix"]}]}
                    }
                }
            }
        })
    }

    #[test]
    fn table() {
        let cases: &[(Value, &[&str])] = &[
            (json!({"spec": {"mode": "On"}}), &[]),
            (
                json!({"apiVersion": "palisade.dev/v1", "kind": "X", "metadata": {"name": "x"},
                       "spec": {"mode": "Off", "limit": 5, "port": "http", "name": "abc",
                                "tags": ["a", "b"], "labels": {"a": "b"}, "opt": null,
                                "free": {"anything": [1]}, "path": {"exact": "/"}}}),
                &[],
            ),
            (json!({"spec": {"mode": true}}), &[".spec.mode"]),
            (json!({"spec": {"mode": "on"}}), &[".spec.mode"]),
            (json!({"spec": {}}), &[".spec"]),
            (
                json!({"spec": {"mode": "On", "mdoe": "On"}}),
                &[".spec.mdoe"],
            ),
            (
                json!({"spec": {"mode": "On", "limit": -1}}),
                &[".spec.limit", ".spec.limit"],
            ),
            (
                json!({"spec": {"mode": "On", "limit": 1.5}}),
                &[".spec.limit"],
            ),
            (
                json!({"spec": {"mode": "On", "port": 1.5}}),
                &[".spec.port"],
            ),
            (
                json!({"spec": {"mode": "On", "name": "ABC"}}),
                &[".spec.name"],
            ),
            (
                json!({"spec": {"mode": "On", "name": "abcdef"}}),
                &[".spec.name"],
            ),
            (
                json!({"spec": {"mode": "On", "tags": ["a", "a"]}}),
                &[".spec.tags[1]"],
            ),
            (
                json!({"spec": {"mode": "On", "labels": {"a": 1}}}),
                &[".spec.labels.a"],
            ),
            (json!({"spec": {"mode": null}}), &[".spec"]),
            (json!({"spec": {"mode": "On", "name": null}}), &[]),
            (
                json!({"spec": {"mode": "On", "path": {"exact": "/", "prefix": "/"}}}),
                &[".spec.path"],
            ),
            (json!({"spec": {"mode": "On", "path": {}}}), &[".spec.path"]),
            (
                json!({"spec": {"mode": "On", "path": {"exakt": "/"}}}),
                &[".spec.path.exakt", ".spec.path"],
            ),
            (json!({"kind": "X", "status": {}}), &[".status"]),
        ];
        for (obj, want) in cases {
            let got: Vec<String> = validate_resource(&schema(), obj)
                .into_iter()
                .map(|v| v.path)
                .collect();
            assert_eq!(
                got,
                want.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "{obj}"
            );
        }
    }

    #[test]
    fn root_fields_are_only_implicit_at_the_root() {
        let errs = validate(&schema(), &json!({"kind": "X"}));
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            ".kind: unknown field (not in the schema)"
        );
    }

    #[test]
    fn structural_check() {
        assert_eq!(structural_problems(&schema()), vec![]);
        let bad = json!({"type": "object", "properties": {
            "a": {"description": "no type"},
            "b": {"type": "string", "oneOf": [{"type": "string"}]},
            "c": {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}}
        }});
        let paths: Vec<String> = structural_problems(&bad)
            .into_iter()
            .map(|v| v.path)
            .collect();
        assert_eq!(paths, vec![".a", ".b(oneOf[0])", ".c"]);
    }

    #[test]
    fn served_versions() {
        let crd = json!({"spec": {"group": "palisade.dev", "names": {"kind": "ApplicationLayer"},
            "versions": [{"name": "v1", "served": true, "schema": {"openAPIV3Schema": {"type": "object"}}},
                         {"name": "v0", "served": false}]}});
        assert_eq!(
            crd_served(&crd),
            vec![("palisade.dev/v1".to_owned(), "ApplicationLayer".to_owned())]
        );
        assert!(crd_schema(&crd, "v1").is_some());
        assert!(crd_schema(&crd, "v2").is_none());
    }
}
