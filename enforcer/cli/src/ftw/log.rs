//! A ModSecurity-style error log rendered from the engine's matched rules,
//! for go-ftw's `log` expectations.
//!
//! go-ftw reads rule ids out of the web server's error log with the pattern
//! `[id "N"]` and matches `match_regex`/`no_match_regex` against its lines.
//! Each matched rule that would be logged (`log`, not `nolog`) becomes one
//! line in the shape ModSecurity v2 writes:
//!
//! ```text
//! ModSecurity: Warning. Matched "@rx …" at ARGS:x. [file "f.conf"] [line "7"] [id "942100"]
//!   [msg "…"] [data "…"] [severity "CRITICAL"] [tag "…"] [hostname "localhost"]
//!   [uri "/"] [unique_id "…"]
//! ```
//!
//! (one line; disruptive rules say `Access denied with code N (phase P).`).
//! Quotes, backslashes and bytes outside printable ASCII in the fields are
//! escaped (`\"`, `\\`, `\xHH`), as ModSecurity does.

use std::fmt::Write as _;

use palisade_waf::MatchedRule;

/// Request facts that appear in every log line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogContext {
    /// Host the request was for.
    pub hostname: String,
    /// Request target.
    pub uri: String,
    /// The transaction's unique id.
    pub unique_id: String,
}

/// ModSecurity's name for a severity number.
pub fn severity_name(severity: u8) -> &'static str {
    match severity {
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

/// Escapes a log field the way ModSecurity's `log_escape` does.
pub fn escape(text: &str) -> String {
    escape_bytes(text.as_bytes())
}

fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out
}

/// One log line for `rule`, or `None` when the rule is `nolog`.
pub fn render_line(rule: &MatchedRule, status: Option<u16>, ctx: &LogContext) -> Option<String> {
    if !rule.log {
        return None;
    }
    let mut line = String::from("ModSecurity: ");
    match (rule.disruptive, status) {
        (true, Some(code)) => {
            let _ = write!(
                line,
                "Access denied with code {code} (phase {}).",
                rule.phase
            );
        }
        _ => line.push_str("Warning."),
    }
    match (rule.operator.is_empty(), rule.matched_var_name.is_empty()) {
        (false, false) => {
            let _ = write!(
                line,
                " Matched \"{}\" at {}.",
                escape(&rule.operator),
                escape(&rule.matched_var_name)
            );
        }
        (true, false) => {
            let _ = write!(line, " Matched at {}.", escape(&rule.matched_var_name));
        }
        (_, true) => {}
    }
    let _ = write!(
        line,
        " [file \"{}\"] [line \"{}\"] [id \"{}\"]",
        escape(&rule.span.file),
        rule.span.line,
        rule.id
    );
    if !rule.msg.is_empty() {
        let _ = write!(line, " [msg \"{}\"]", escape(&rule.msg));
    }
    if !rule.data.is_empty() {
        let _ = write!(line, " [data \"{}\"]", escape(&rule.data));
    }
    if let Some(severity) = rule.severity {
        let _ = write!(line, " [severity \"{}\"]", severity_name(severity));
    }
    for tag in &rule.tags {
        let _ = write!(line, " [tag \"{}\"]", escape(tag));
    }
    let _ = write!(
        line,
        " [hostname \"{}\"] [uri \"{}\"] [unique_id \"{}\"]",
        escape(&ctx.hostname),
        escape(&ctx.uri),
        escape(&ctx.unique_id)
    );
    Some(line)
}

/// The log lines of a transaction, in match order. `status` is the status of
/// the intervention, if one took effect.
pub fn render(rules: &[MatchedRule], status: Option<u16>, ctx: &LogContext) -> Vec<String> {
    rules
        .iter()
        .filter_map(|r| render_line(r, status, ctx))
        .collect()
}

/// Rule ids in `lines`, read the way go-ftw reads them (`[id "N"]`), sorted
/// and deduplicated.
pub fn ids_in(lines: &[String]) -> Vec<u64> {
    let mut ids: Vec<u64> = Vec::new();
    for line in lines {
        let mut rest = line.as_str();
        while let Some(pos) = rest.find("[id \"") {
            rest = &rest[pos + 5..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if rest[digits.len()..].starts_with("\"]") {
                if let Ok(id) = digits.parse() {
                    ids.push(id);
                }
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use palisade_waf::seclang::Span;

    use super::*;

    fn rule(id: i64, log: bool) -> MatchedRule {
        MatchedRule {
            id,
            phase: 2,
            msg: "Found \"x\"".into(),
            data: "Matched Data: a\\b found within ARGS:x: \u{e9}\n".into(),
            severity: Some(2),
            tags: vec!["OWASP_CRS".into()],
            span: Span {
                file: Arc::from("rules/x.conf"),
                line: 12,
            },
            log,
            disruptive: false,
            matched_var_name: "ARGS:x".into(),
            matched_var: b"a".to_vec(),
            operator: "@rx a".into(),
        }
    }

    fn ctx() -> LogContext {
        LogContext {
            hostname: "localhost".into(),
            uri: "/?x=1".into(),
            unique_id: "u1".into(),
        }
    }

    #[test]
    fn line_shape() {
        let line = render_line(&rule(942100, true), None, &ctx()).expect("logged");
        assert_eq!(
            line,
            "ModSecurity: Warning. Matched \"@rx a\" at ARGS:x. [file \"rules/x.conf\"] [line \"12\"] \
             [id \"942100\"] [msg \"Found \\\"x\\\"\"] \
             [data \"Matched Data: a\\\\b found within ARGS:x: \\xc3\\xa9\\x0a\"] \
             [severity \"CRITICAL\"] [tag \"OWASP_CRS\"] [hostname \"localhost\"] \
             [uri \"/?x=1\"] [unique_id \"u1\"]"
        );
    }

    #[test]
    fn nolog_rules_are_left_out_and_denials_say_so() {
        assert!(render_line(&rule(1, false), None, &ctx()).is_none());
        let mut deny = rule(949110, true);
        deny.disruptive = true;
        let line = render_line(&deny, Some(403), &ctx()).expect("logged");
        assert!(
            line.starts_with("ModSecurity: Access denied with code 403 (phase 2)."),
            "{line}"
        );
        let lines = render(&[rule(2, true), rule(3, false)], None, &ctx());
        assert_eq!(lines.len(), 1);
    }

    #[test]
    fn ids_are_read_like_go_ftw() {
        let lines = vec![
            "x [id \"920100\"] y [id \"5\"]".to_string(),
            "[id \"920100\"] [id \"12x\"] [id \"\"]".to_string(),
            "no ids here".to_string(),
        ];
        assert_eq!(ids_in(&lines), vec![5, 920100]);
        let rendered = render(&[rule(941100, true), rule(7, true)], None, &ctx());
        assert_eq!(ids_in(&rendered), vec![7, 941100]);
    }

    #[test]
    fn severity_names() {
        let names: Vec<&str> = (0..9).map(severity_name).collect();
        assert_eq!(
            names,
            [
                "EMERGENCY",
                "ALERT",
                "CRITICAL",
                "ERROR",
                "WARNING",
                "NOTICE",
                "INFO",
                "DEBUG",
                "DEBUG"
            ]
        );
    }
}
