//! SecLang actions: the closed vocabulary of what a rule does when it matches
//! (and the metadata it carries), compiled from [`ActionSpec`]s.

use std::sync::Arc;

use crate::engine::EngineMode;
use crate::macros::MacroText;
use crate::seclang::{self, ActionSpec, IdRange};
use crate::transformations::Transformation;
use crate::variables::{self, TargetSpec};

/// Disruptive actions.
#[derive(Clone, Debug, PartialEq)]
pub enum Disruptive {
    /// `pass`: continue.
    Pass,
    /// `block`: whatever `SecDefaultAction` of the phase says.
    Block,
    /// `deny`: stop with the status (403 unless `status:` says otherwise).
    Deny,
    /// `drop`: close the connection.
    Drop,
    /// `allow`, `allow:phase`, `allow:request`.
    Allow(AllowScope),
    /// `redirect:URL`.
    Redirect(MacroText),
}

/// What `allow` skips.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllowScope {
    /// Every remaining rule of the transaction (logging phase still runs).
    All,
    /// The rest of the current phase.
    Phase,
    /// The rest of the request phases (1 and 2).
    Request,
}

/// `setvar` operations.
#[derive(Clone, Debug, PartialEq)]
pub enum SetVarOp {
    /// `=value` (or no value: empty)
    Set(MacroText),
    /// `=+value`
    Add(MacroText),
    /// `=-value`
    Sub(MacroText),
    /// `!name`
    Unset,
}

/// One `setvar`.
#[derive(Clone, Debug, PartialEq)]
pub struct SetVar {
    /// Collection, uppercase (`TX`, `IP`, `SESSION` ...).
    pub collection: String,
    /// Member key (may contain macros).
    pub key: MacroText,
    /// The operation.
    pub op: SetVarOp,
    /// What is known of it at compile time, so that running it allocates
    /// and hashes as little as possible.
    pub(crate) compiled: CompiledSetVar,
}

/// The parts of a `setvar` resolved at compile time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CompiledSetVar {
    /// The collection is TX (no collection lookup by name).
    pub tx: bool,
    /// The key lowercased (keys are case-insensitive), when it holds no
    /// macro: inserted by sharing, never copied.
    pub key: Option<Arc<[u8]>>,
    /// The value of an `=value` without macros, shared by every run.
    pub value: Option<Arc<[u8]>>,
    /// The operand of `=+n` / `=-n` without macros, parsed as `atoi` does.
    pub delta: Option<i64>,
}

impl SetVar {
    /// A setvar on `collection` (uppercase) with the given key and operation.
    pub fn new(collection: String, key: MacroText, op: SetVarOp) -> SetVar {
        let literal = |m: &MacroText| m.as_literal().map(<[u8]>::to_vec);
        let compiled = CompiledSetVar {
            tx: collection == "TX",
            key: literal(&key).map(|mut k| {
                k.make_ascii_lowercase();
                Arc::from(k)
            }),
            value: match &op {
                SetVarOp::Set(v) => literal(v).map(Arc::from),
                _ => None,
            },
            delta: match &op {
                SetVarOp::Add(v) | SetVarOp::Sub(v) => v.as_literal().map(atoi),
                _ => None,
            },
        };
        SetVar {
            collection,
            key,
            op,
            compiled,
        }
    }
}

/// `atoi`: optional leading whitespace and sign, then leading digits;
/// anything else is 0. Saturates instead of overflowing.
pub(crate) fn atoi(v: &[u8]) -> i64 {
    let s = v.trim_ascii_start();
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            break;
        }
        n = n.saturating_mul(10).saturating_add((b - b'0') as i64);
    }
    if neg {
        -n
    } else {
        n
    }
}

/// Request body processors selectable with `ctl:requestBodyProcessor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyProcessor {
    /// `URLENCODED`
    Urlencoded,
    /// `MULTIPART`
    Multipart,
    /// `JSON`
    Json,
    /// `XML`
    Xml,
}

impl BodyProcessor {
    /// Parses a processor name, case-insensitively.
    pub fn parse(name: &str) -> Option<BodyProcessor> {
        match name.to_ascii_uppercase().as_str() {
            "URLENCODED" => Some(BodyProcessor::Urlencoded),
            "MULTIPART" => Some(BodyProcessor::Multipart),
            "JSON" => Some(BodyProcessor::Json),
            "XML" => Some(BodyProcessor::Xml),
            _ => None,
        }
    }

    /// The REQBODY_PROCESSOR value.
    pub fn name(&self) -> &'static str {
        match self {
            BodyProcessor::Urlencoded => "URLENCODED",
            BodyProcessor::Multipart => "MULTIPART",
            BodyProcessor::Json => "JSON",
            BodyProcessor::Xml => "XML",
        }
    }
}

/// `ctl:` runtime configuration changes.
#[derive(Clone, Debug)]
pub enum Ctl {
    /// `ctl:ruleEngine=On|Off|DetectionOnly`
    RuleEngine(EngineMode),
    /// `ctl:ruleRemoveById=ID|RANGE`
    RuleRemoveById(IdRange),
    /// `ctl:ruleRemoveByTag=TAG`
    RuleRemoveByTag(String),
    /// `ctl:ruleRemoveByMsg=MSG`
    RuleRemoveByMsg(String),
    /// `ctl:ruleRemoveTargetById=ID;TARGET`
    RuleRemoveTargetById(IdRange, Vec<TargetSpec>),
    /// `ctl:ruleRemoveTargetByTag=TAG;TARGET`
    RuleRemoveTargetByTag(String, Vec<TargetSpec>),
    /// `ctl:ruleRemoveTargetByMsg=MSG;TARGET`
    RuleRemoveTargetByMsg(String, Vec<TargetSpec>),
    /// `ctl:requestBodyProcessor=JSON`
    RequestBodyProcessor(BodyProcessor),
    /// `ctl:requestBodyAccess=On|Off`
    RequestBodyAccess(bool),
    /// `ctl:forceRequestBodyVariable=On|Off`
    ForceRequestBodyVariable(bool),
    /// `ctl:responseBodyAccess=On|Off`
    ResponseBodyAccess(bool),
    /// `ctl:requestBodyLimit=N`
    RequestBodyLimit(u64),
    /// Accepted with no effect on decisions: `auditEngine`, `auditLogParts`, `debugLogLevel`.
    Audit,
}

/// The transformation list of a rule: whether `t:none` reset inherited
/// defaults, and the transformations that follow.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Transformations {
    /// `t:none` was given (defaults are dropped).
    pub reset: bool,
    /// In order.
    pub list: Vec<Transformation>,
}

/// Every action of one rule, compiled.
#[derive(Clone, Debug, Default)]
pub struct Actions {
    /// `id`
    pub id: Option<i64>,
    /// `phase` (1-5)
    pub phase: Option<u8>,
    /// `msg`
    pub msg: Option<MacroText>,
    /// `logdata`
    pub logdata: Option<MacroText>,
    /// `severity` 0..=7
    pub severity: Option<u8>,
    /// `tag`s (macros expanded at log time)
    pub tags: Vec<MacroText>,
    /// `ver`
    pub ver: Option<String>,
    /// `rev`
    pub rev: Option<String>,
    /// `maturity`
    pub maturity: Option<u8>,
    /// `accuracy`
    pub accuracy: Option<u8>,
    /// `t:` list
    pub transformations: Transformations,
    /// `chain`
    pub chain: bool,
    /// `skip:N`
    pub skip: u32,
    /// `skipAfter:MARKER`
    pub skip_after: Option<String>,
    /// `setvar`s in order
    pub setvars: Vec<SetVar>,
    /// `capture`
    pub capture: bool,
    /// `multiMatch`
    pub multi_match: bool,
    /// `log` (true) / `nolog` (false)
    pub log: Option<bool>,
    /// `auditlog` / `noauditlog`
    pub auditlog: Option<bool>,
    /// The disruptive action, if any.
    pub disruptive: Option<Disruptive>,
    /// `status:N`
    pub status: Option<u16>,
    /// `ctl:`s in order
    pub ctls: Vec<Ctl>,
    /// `expirevar`s (accepted; TX lives for one transaction)
    pub expirevars: usize,
}

/// Parses a severity name or number.
fn parse_severity(value: &str) -> Option<u8> {
    let v = value.trim();
    if let Ok(n) = v.parse::<u8>() {
        return (n <= 7).then_some(n);
    }
    let n = match v.to_ascii_uppercase().as_str() {
        "EMERGENCY" => 0,
        "ALERT" => 1,
        "CRITICAL" => 2,
        "ERROR" => 3,
        "WARNING" => 4,
        "NOTICE" => 5,
        "INFO" => 6,
        "DEBUG" => 7,
        _ => return None,
    };
    Some(n)
}

/// The SecLang name of a severity number.
pub fn severity_name(n: u8) -> &'static str {
    match n {
        0 => "EMERGENCY",
        1 => "ALERT",
        2 => "CRITICAL",
        3 => "ERROR",
        4 => "WARNING",
        5 => "NOTICE",
        6 => "INFO",
        _ => "DEBUG",
    }
}

fn parse_phase(value: &str) -> Option<u8> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" => Some(1),
        "2" | "request" => Some(2),
        "3" => Some(3),
        "4" | "response" => Some(4),
        "5" | "logging" => Some(5),
        _ => None,
    }
}

fn parse_on_off(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" => Some(true),
        "off" | "false" | "0" => Some(false),
        _ => None,
    }
}

/// Parses `ID` or `START-END`.
pub fn parse_id_range(text: &str) -> Option<IdRange> {
    let text = text.trim();
    if let Some((a, b)) = text.split_once('-').filter(|(a, _)| !a.is_empty()) {
        let start = a.trim().parse().ok()?;
        let end = b.trim().parse().ok()?;
        return Some(IdRange { start, end });
    }
    let id = text.parse().ok()?;
    Some(IdRange { start: id, end: id })
}

fn parse_setvar(value: &str) -> Result<SetVar, String> {
    let value = value.trim();
    let (unset, rest) = match value.strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, value),
    };
    let (name, op) = if unset {
        (rest, SetVarOp::Unset)
    } else {
        match rest.split_once('=') {
            None => (rest, SetVarOp::Set(MacroText::parse(""))),
            Some((n, v)) => {
                if let Some(v) = v.strip_prefix('+') {
                    (n, SetVarOp::Add(MacroText::parse(v)))
                } else if let Some(v) = v.strip_prefix('-') {
                    (n, SetVarOp::Sub(MacroText::parse(v)))
                } else {
                    (n, SetVarOp::Set(MacroText::parse(v)))
                }
            }
        }
    };
    let (collection, key) = name
        .split_once('.')
        .ok_or_else(|| format!("setvar needs COLLECTION.key, got {value:?}"))?;
    let collection = collection.trim().to_ascii_uppercase();
    if !matches!(
        collection.as_str(),
        "TX" | "IP" | "SESSION" | "USER" | "GLOBAL" | "RESOURCE"
    ) {
        return Err(format!("setvar on unknown collection {collection}"));
    }
    if key.trim().is_empty() {
        return Err(format!("setvar with an empty key: {value:?}"));
    }
    Ok(SetVar::new(collection, MacroText::parse(key.trim()), op))
}

fn parse_target_list(text: &str) -> Result<Vec<TargetSpec>, String> {
    seclang::parse_variables(text)?
        .iter()
        .map(variables::compile)
        .collect()
}

fn parse_ctl(value: &str) -> Result<Ctl, String> {
    let (name, arg) = value
        .split_once('=')
        .ok_or_else(|| format!("ctl needs name=value, got {value:?}"))?;
    let arg = arg.trim();
    let bad = || format!("invalid value for ctl:{name}: {arg:?}");
    let ctl = match name.trim().to_ascii_lowercase().as_str() {
        "ruleengine" => Ctl::RuleEngine(EngineMode::parse(arg).ok_or_else(bad)?),
        "ruleremovebyid" => Ctl::RuleRemoveById(parse_id_range(arg).ok_or_else(bad)?),
        "ruleremovebytag" => Ctl::RuleRemoveByTag(arg.to_string()),
        "ruleremovebymsg" => Ctl::RuleRemoveByMsg(arg.to_string()),
        "ruleremovetargetbyid" => {
            let (id, targets) = arg.split_once(';').ok_or_else(bad)?;
            Ctl::RuleRemoveTargetById(
                parse_id_range(id).ok_or_else(bad)?,
                parse_target_list(targets)?,
            )
        }
        "ruleremovetargetbytag" => {
            let (tag, targets) = arg.split_once(';').ok_or_else(bad)?;
            Ctl::RuleRemoveTargetByTag(tag.to_string(), parse_target_list(targets)?)
        }
        "ruleremovetargetbymsg" => {
            let (msg, targets) = arg.split_once(';').ok_or_else(bad)?;
            Ctl::RuleRemoveTargetByMsg(msg.to_string(), parse_target_list(targets)?)
        }
        "requestbodyprocessor" => {
            Ctl::RequestBodyProcessor(BodyProcessor::parse(arg).ok_or_else(bad)?)
        }
        "requestbodyaccess" => Ctl::RequestBodyAccess(parse_on_off(arg).ok_or_else(bad)?),
        "forcerequestbodyvariable" => {
            Ctl::ForceRequestBodyVariable(parse_on_off(arg).ok_or_else(bad)?)
        }
        "responsebodyaccess" => Ctl::ResponseBodyAccess(parse_on_off(arg).ok_or_else(bad)?),
        "requestbodylimit" => Ctl::RequestBodyLimit(arg.parse().map_err(|_| bad())?),
        "auditengine" | "auditlogparts" | "debugloglevel" | "hashengine" => Ctl::Audit,
        other => return Err(format!("unknown ctl option {other}")),
    };
    Ok(ctl)
}

impl Actions {
    /// Compiles an action list. Errors name the offending action.
    pub fn compile(specs: &[ActionSpec]) -> Result<Actions, String> {
        let mut a = Actions::default();
        for spec in specs {
            a.apply(spec)?;
        }
        Ok(a)
    }

    /// Applies one action on top of what is there (later actions win).
    pub fn apply(&mut self, spec: &ActionSpec) -> Result<(), String> {
        let name = spec.name.trim();
        let value = spec.value.as_deref().unwrap_or("");
        let need = |what: &str| -> Result<(), String> {
            if spec.value.is_none() {
                Err(format!("action {name} needs a value ({what})"))
            } else {
                Ok(())
            }
        };
        match name.to_ascii_lowercase().as_str() {
            "id" => {
                need("a number")?;
                let id: i64 = value
                    .trim()
                    .parse()
                    .map_err(|_| format!("invalid rule id {value:?}"))?;
                if id <= 0 {
                    return Err(format!("rule id must be positive, got {id}"));
                }
                self.id = Some(id);
            }
            "phase" => {
                need("1-5")?;
                self.phase = Some(parse_phase(value).ok_or(format!("invalid phase {value:?}"))?);
            }
            "msg" => self.msg = Some(MacroText::parse(value)),
            "logdata" => self.logdata = Some(MacroText::parse(value)),
            "severity" => {
                self.severity =
                    Some(parse_severity(value).ok_or(format!("invalid severity {value:?}"))?)
            }
            "tag" => self.tags.push(MacroText::parse(value)),
            "ver" => self.ver = Some(value.to_string()),
            "rev" => self.rev = Some(value.to_string()),
            "maturity" => self.maturity = value.trim().parse().ok(),
            "accuracy" => self.accuracy = value.trim().parse().ok(),
            "t" => {
                need("a transformation")?;
                if value.trim().eq_ignore_ascii_case("none") {
                    self.transformations.reset = true;
                    self.transformations.list.clear();
                } else {
                    let t = Transformation::from_name(value.trim())
                        .ok_or_else(|| format!("unknown transformation t:{value}"))?;
                    self.transformations.list.push(t);
                }
            }
            "chain" => self.chain = true,
            "skip" => {
                self.skip = value
                    .trim()
                    .parse()
                    .map_err(|_| format!("invalid skip {value:?}"))?
            }
            "skipafter" => {
                need("a marker")?;
                self.skip_after = Some(value.trim().to_string())
            }
            "setvar" => {
                need("COLLECTION.key=value")?;
                self.setvars.push(parse_setvar(value)?)
            }
            "capture" => self.capture = true,
            "multimatch" => self.multi_match = true,
            "log" => self.log = Some(true),
            "nolog" => self.log = Some(false),
            "auditlog" => self.auditlog = Some(true),
            "noauditlog" => self.auditlog = Some(false),
            "pass" => self.disruptive = Some(Disruptive::Pass),
            "block" => self.disruptive = Some(Disruptive::Block),
            "deny" => self.disruptive = Some(Disruptive::Deny),
            "drop" => self.disruptive = Some(Disruptive::Drop),
            "allow" => {
                let scope = match value.trim().to_ascii_lowercase().as_str() {
                    "" => AllowScope::All,
                    "phase" => AllowScope::Phase,
                    "request" => AllowScope::Request,
                    other => return Err(format!("invalid allow scope {other:?}")),
                };
                self.disruptive = Some(Disruptive::Allow(scope));
            }
            "redirect" => {
                need("a URL")?;
                self.disruptive = Some(Disruptive::Redirect(MacroText::parse(value)))
            }
            "status" => {
                let s: u16 = value
                    .trim()
                    .parse()
                    .map_err(|_| format!("invalid status {value:?}"))?;
                if !(100..=599).contains(&s) {
                    return Err(format!("status out of range: {s}"));
                }
                self.status = Some(s)
            }
            "ctl" => {
                need("option=value")?;
                self.ctls.push(parse_ctl(value)?)
            }
            "expirevar" => self.expirevars += 1,
            // Accepted, with no effect on decisions (documented in docs/user-guide.md).
            "initcol"
            | "setuid"
            | "setsid"
            | "setrsc"
            | "sanitisearg"
            | "sanitisematched"
            | "sanitisematchedbytes"
            | "sanitiserequestheader"
            | "sanitiseresponseheader"
            | "xmlns"
            | "deprecatevar"
            | "append"
            | "prepend"
            | "pause" => {}
            "exec" | "proxy" | "setenv" => {
                return Err(format!("action {name} is not supported by palisade"))
            }
            _ => return Err(format!("unknown action {name}")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, value: Option<&str>) -> ActionSpec {
        ActionSpec {
            name: name.into(),
            value: value.map(Into::into),
        }
    }

    #[test]
    fn compiles_crs_style_actions() {
        let a = Actions::compile(&[
            spec("id", Some("942100")),
            spec("phase", Some("2")),
            spec("block", None),
            spec("capture", None),
            spec("severity", Some("CRITICAL")),
            spec(
                "setvar",
                Some("tx.inbound_anomaly_score_pl1=+%{tx.critical_anomaly_score}"),
            ),
            spec("setvar", Some("!tx.foo")),
            spec("ctl", Some("ruleRemoveTargetById=942100;ARGS:pwd")),
        ])
        .unwrap();
        assert_eq!(a.id, Some(942100));
        assert_eq!(a.phase, Some(2));
        assert_eq!(a.severity, Some(2));
        assert_eq!(a.disruptive, Some(Disruptive::Block));
        assert!(a.capture);
        assert!(matches!(a.setvars[0].op, SetVarOp::Add(_)));
        assert_eq!(a.setvars[1].op, SetVarOp::Unset);
        assert!(matches!(
            a.ctls[0],
            Ctl::RuleRemoveTargetById(IdRange { start: 942100, .. }, _)
        ));
    }

    #[test]
    fn setvars_are_resolved_at_compile_time() {
        let compiled = |setvar: &str| {
            let a = Actions::compile(&[spec("setvar", Some(setvar))]).expect("compiles");
            a.setvars[0].compiled.clone()
        };
        let shared = |s: &str| Some(Arc::<[u8]>::from(s.as_bytes()));
        // (setvar, TX, key, value, delta)
        let cases = [
            ("tx.Score=0", true, shared("score"), shared("0"), None),
            ("TX.a=%{tx.b}", true, shared("a"), None, None),
            ("tx.a_%{tx.0}=/%{tx.0}/", true, None, None, None),
            ("tx.a=+5", true, shared("a"), None, Some(5)),
            ("tx.a=- 3x", true, shared("a"), None, Some(3)),
            ("tx.a=+%{tx.critical}", true, shared("a"), None, None),
            ("tx.a", true, shared("a"), shared(""), None),
            ("!tx.A", true, shared("a"), None, None),
            ("ip.Hits=1", false, shared("hits"), shared("1"), None),
        ];
        for (setvar, tx, key, value, delta) in cases {
            let want = CompiledSetVar {
                tx,
                key,
                value,
                delta,
            };
            assert_eq!(compiled(setvar), want, "{setvar}");
        }
    }

    #[test]
    fn atoi_semantics() {
        // (text, value)
        let cases: &[(&str, i64)] = &[
            ("42abc", 42),
            (" -7", -7),
            ("+8", 8),
            ("abc", 0),
            ("", 0),
            ("- 1", 0),
            ("99999999999999999999", i64::MAX),
            ("-99999999999999999999", -i64::MAX),
        ];
        for &(text, want) in cases {
            assert_eq!(atoi(text.as_bytes()), want, "{text:?}");
        }
    }

    #[test]
    fn rejects_unknown_and_malformed() {
        assert!(Actions::compile(&[spec("bogus", None)])
            .unwrap_err()
            .contains("bogus"));
        assert!(Actions::compile(&[spec("phase", Some("9"))]).is_err());
        assert!(Actions::compile(&[spec("id", Some("x"))]).is_err());
        assert!(Actions::compile(&[spec("setvar", Some("novar"))]).is_err());
        assert!(Actions::compile(&[spec("ctl", Some("ruleEngine=Maybe"))]).is_err());
    }

    #[test]
    fn id_ranges() {
        assert_eq!(parse_id_range("5-10"), Some(IdRange { start: 5, end: 10 }));
        assert_eq!(parse_id_range(" 7 "), Some(IdRange { start: 7, end: 7 }));
        assert_eq!(parse_id_range("a-b"), None);
    }
}
