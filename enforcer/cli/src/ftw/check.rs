//! Checking a stage's result against its expected output, in go-ftw's order:
//! an expected error decides alone; otherwise an unexpected error fails, then
//! status, `response_contains`, the log regexes, `expect_ids`,
//! `no_expect_ids` and `isolated` are checked. Every problem is reported,
//! not only the first.

use regex::Regex;

use super::schema::Output;

/// What a stage produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageResult {
    /// The response as text (status line, headers, body), or the HTTP-level
    /// error the client would see.
    pub response: Result<(u16, String), String>,
    /// The WAF log lines for the request.
    pub log_lines: Vec<String>,
    /// Rule ids in the log, sorted, each once.
    pub logged_ids: Vec<u64>,
}

impl Default for StageResult {
    /// No response at all, and an empty log.
    fn default() -> Self {
        StageResult {
            response: Err("no response".to_string()),
            log_lines: Vec::new(),
            logged_ids: Vec::new(),
        }
    }
}

/// Checks `result` against `expected`; returns the problems found (empty
/// when the stage passes).
pub fn check(expected: &Output, result: &StageResult) -> Vec<String> {
    let mut problems = Vec::new();
    if expected.expects_error() {
        if let Ok((status, _)) = &result.response {
            problems.push(format!("expected an HTTP-level error, got status {status}"));
        }
        return problems;
    }
    let (status, text) = match &result.response {
        Ok((status, text)) => (*status, text.as_str()),
        Err(err) => {
            problems.push(format!("unexpected HTTP-level error: {err}"));
            return problems;
        }
    };
    if !expected.status.is_empty() && !expected.status.contains(&status) {
        problems.push(format!(
            "status: expected {}, got {status}",
            list(&expected.status)
        ));
    }
    if let Some(pattern) = &expected.response_contains {
        match Regex::new(pattern) {
            Ok(re) if re.is_match(text) => {}
            Ok(_) => problems.push(format!("response does not match {pattern:?}")),
            Err(e) => problems.push(format!("invalid response_contains regex: {e}")),
        }
    }
    let log = &expected.log;
    if let Some(pattern) = &log.match_regex {
        match Regex::new(pattern) {
            Ok(re) if result.log_lines.iter().any(|l| re.is_match(l)) => {}
            Ok(_) => problems.push(format!("no log line matches {pattern:?}")),
            Err(e) => problems.push(format!("invalid match_regex: {e}")),
        }
    }
    if let Some(pattern) = &log.no_match_regex {
        match Regex::new(pattern) {
            Ok(re) => {
                if let Some(line) = result.log_lines.iter().find(|l| re.is_match(l)) {
                    problems.push(format!("log matches {pattern:?}: {}", shorten(line)));
                }
            }
            Err(e) => problems.push(format!("invalid no_match_regex: {e}")),
        }
    }
    let missing: Vec<u64> = log
        .expect_ids
        .iter()
        .copied()
        .filter(|id| !result.logged_ids.contains(id))
        .collect();
    if !missing.is_empty() {
        problems.push(format!("missing expected ids {}", list(&missing)));
    }
    let unwanted: Vec<u64> = log
        .no_expect_ids
        .iter()
        .copied()
        .filter(|id| result.logged_ids.contains(id))
        .collect();
    if !unwanted.is_empty() {
        problems.push(format!("unexpected ids {}", list(&unwanted)));
    }
    if expected.isolated && result.logged_ids.len() != 1 {
        problems.push(format!(
            "isolated: expected exactly one rule in the log, got {}",
            list(&result.logged_ids)
        ));
    }
    problems
}

/// `[a, b, c]`.
pub fn list<T: std::fmt::Display>(items: &[T]) -> String {
    let parts: Vec<String> = items.iter().map(ToString::to_string).collect();
    format!("[{}]", parts.join(", "))
}

fn shorten(line: &str) -> String {
    const MAX: usize = 240;
    if line.len() <= MAX {
        return line.to_string();
    }
    let mut end = MAX;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

#[cfg(test)]
mod tests {
    use super::super::schema::LogExpect;
    use super::*;

    fn result(status: u16, ids: &[u64]) -> StageResult {
        StageResult {
            response: Ok((status, format!("HTTP/1.1 {status} X\r\n\r\nhello"))),
            log_lines: ids
                .iter()
                .map(|id| format!("ModSecurity: Warning. [id \"{id}\"] [msg \"m{id}\"]"))
                .collect(),
            logged_ids: ids.to_vec(),
        }
    }

    fn output(f: impl FnOnce(&mut Output)) -> Output {
        let mut o = Output::default();
        f(&mut o);
        o
    }

    #[test]
    fn table() {
        let cases: Vec<(Output, StageResult, usize)> = vec![
            (Output::default(), result(200, &[]), 0),
            (output(|o| o.status = vec![200]), result(200, &[1]), 0),
            (output(|o| o.status = vec![400]), result(200, &[]), 1),
            (output(|o| o.status = vec![400, 200]), result(200, &[]), 0),
            (
                output(|o| o.log.expect_ids = vec![1, 2]),
                result(200, &[1, 2, 3]),
                0,
            ),
            (
                output(|o| o.log.expect_ids = vec![1, 2]),
                result(200, &[1]),
                1,
            ),
            (
                output(|o| o.log.no_expect_ids = vec![3]),
                result(200, &[1, 3]),
                1,
            ),
            (
                output(|o| o.log.match_regex = Some("m2\"".into())),
                result(200, &[2]),
                0,
            ),
            (
                output(|o| o.log.match_regex = Some("m9".into())),
                result(200, &[2]),
                1,
            ),
            (
                output(|o| o.log.no_match_regex = Some(r#"\[id "\d+"\]"#.into())),
                result(200, &[]),
                0,
            ),
            (
                output(|o| o.log.no_match_regex = Some(r#"\[id "\d+"\]"#.into())),
                result(200, &[4]),
                1,
            ),
            (
                output(|o| o.response_contains = Some("hel+o".into())),
                result(200, &[]),
                0,
            ),
            (
                output(|o| o.response_contains = Some("bye".into())),
                result(200, &[]),
                1,
            ),
            (
                output(|o| o.response_contains = Some("(".into())),
                result(200, &[]),
                1,
            ),
            (
                output(|o| {
                    o.isolated = true;
                    o.log.expect_ids = vec![1];
                }),
                result(200, &[1, 2]),
                1,
            ),
            (
                output(|o| {
                    o.status = vec![403];
                    o.log = LogExpect {
                        expect_ids: vec![9],
                        no_expect_ids: vec![1],
                        ..LogExpect::default()
                    };
                }),
                result(200, &[1]),
                3,
            ),
        ];
        for (i, (expected, got, problems)) in cases.into_iter().enumerate() {
            let found = check(&expected, &got);
            assert_eq!(found.len(), problems, "case {i}: {found:?}");
        }
    }

    #[test]
    fn errors() {
        let broken = StageResult {
            response: Err("eof".into()),
            ..StageResult::default()
        };
        let want_error = output(|o| {
            o.expect_error = Some(true);
            o.log.expect_ids = vec![77];
        });
        assert!(
            check(&want_error, &broken).is_empty(),
            "log is not checked when an error is expected"
        );
        assert_eq!(check(&want_error, &result(200, &[])).len(), 1);
        assert_eq!(check(&Output::default(), &broken).len(), 1);
    }

    #[test]
    fn formatting() {
        assert_eq!(list(&[1, 2]), "[1, 2]");
        assert_eq!(list::<u8>(&[]), "[]");
        assert_eq!(shorten(&"é".repeat(200)).chars().count(), 121);
    }
}
