//! The verdict cache (misses of pure rules remembered across transactions)
//! never changes a result: the same requests give the same matches with the
//! cache on, off, warm and cold.

use palisade_waf::Ruleset;

const RULES: &str = r#"
SecRuleEngine On
SecRequestBodyAccess On
# Static defaults: TX that no later rule writes is frozen once they ran.
SecAction "id:900,phase:1,pass,nolog,setvar:tx.allowed=GET HEAD,setvar:tx.limit=5,setvar:tx.mutable=abc"
# Pure operators: their misses may be remembered.
SecRule ARGS|REQUEST_HEADERS "@rx (?i)union\s+select" "id:1,phase:1,pass,log,t:none,t:urlDecodeUni"
SecRule ARGS_NAMES|REQUEST_COOKIES_NAMES "@pm secret token" "id:2,phase:1,pass,log,t:lowercase"
SecRule ARGS "!@rx ^[a-z0-9 ]*$" "id:3,phase:1,pass,log"
SecRule REQUEST_HEADERS:User-Agent "@detectSQLi" "id:4,phase:1,pass,log"
# Not pure: the argument names a TX variable the request sets.
SecRule ARGS:mode "@rx ^(.*)$" "id:10,phase:1,pass,nolog,capture,setvar:tx.expected=%{tx.1}"
SecRule ARGS:echo "@streq %{tx.expected}" "id:11,phase:1,pass,log"
# Arguments reading frozen TX only: pure in a transaction once it holds.
SecRule REQUEST_METHOD "!@within %{tx.allowed}" "id:30,phase:1,pass,log"
SecRule ARGS "@gt %{tx.limit}" "id:31,phase:1,pass,log,t:length"
# tx.mutable is written below: not frozen, evaluated every time.
SecRule ARGS:mode "@rx ^z" "id:33,phase:1,pass,nolog,setvar:tx.mutable=hello"
SecRule ARGS:q "@streq %{tx.mutable}" "id:32,phase:1,pass,log"
# A chain whose second link is pure and reads a captured value.
SecRule ARGS:x "@rx ^(\w+)$" "id:20,phase:1,pass,log,capture,chain"
    SecRule TX:1 "@within alpha beta" "t:none"
# TX values the transaction sets (as CRS 920450 copies header names) have no
# cache slot: a pure link walking them looks their verdicts up by content.
SecRule REQUEST_HEADERS:User-Agent "@rx ^(.*)$" "id:40,phase:1,pass,nolog,capture,setvar:'tx.ua_copy=ua:%{tx.1}'"
SecRule TX:/^ua_/ "@rx (?i)'\s*or\s" "id:41,phase:1,pass,log,t:none"
"#;

/// (uri, user agent, cookie)
const REQUESTS: &[(&str, &str, &str)] = &[
    ("/?q=hello&mode=a&echo=b", "Mozilla/5.0", "theme=dark"),
    ("/?q=hello&mode=b&echo=b", "Mozilla/5.0", "theme=dark"),
    ("/?q=hello&mode=a&echo=a", "Mozilla/5.0", "token=1"),
    (
        "/?q=union%20select%201&mode=c&echo=b",
        "Mozilla/5.0",
        "theme=dark",
    ),
    ("/?q=hello&x=alpha", "1' or '1'='1", "theme=dark"),
    ("/?q=Hello!&x=gamma", "Mozilla/5.0", "theme=dark"),
    ("/?q=hello&x=beta&secret=1", "Mozilla/5.0", "theme=dark"),
    ("/?q=hello&mode=zz&echo=zz", "1' or '1'='1", "theme=light"),
];

fn matches(rs: &Ruleset, (uri, ua, cookie): (&str, &str, &str)) -> Vec<i64> {
    let mut tx = rs.transaction();
    tx.process_uri(uri, "GET", "HTTP/1.1");
    tx.add_request_header(b"Host", b"example.com");
    tx.add_request_header(b"User-Agent", ua.as_bytes());
    tx.add_request_header(b"Cookie", cookie.as_bytes());
    tx.process_request_headers();
    let mut ids: Vec<i64> = tx
        .matched_rules()
        .iter()
        .filter(|m| m.log)
        .map(|m| m.id)
        .collect();
    ids.sort_unstable();
    ids
}

/// `RULES` without the lines of the rules `ids`.
fn rules_without(ids: &[i64]) -> Ruleset {
    let text = RULES
        .lines()
        .filter(|l| !ids.iter().any(|id| l.contains(&format!("id:{id},"))))
        .collect::<Vec<_>>()
        .join("\n");
    Ruleset::from_text(&text).expect("compiles")
}

/// Every request, three rounds over the list (so repeated values are warm
/// in the cache), in order.
fn rounds(rs: &Ruleset) -> Vec<Vec<i64>> {
    (0..3)
        .flat_map(|_| REQUESTS.iter())
        .map(|&r| matches(rs, r))
        .collect()
}

#[test]
fn results_do_not_depend_on_the_cache() {
    let cached = Ruleset::from_text(RULES).expect("compiles");
    let uncached = Ruleset::from_text(RULES).expect("compiles");
    uncached.set_verdict_cache(false);
    let with = rounds(&cached);
    let without = rounds(&uncached);
    assert_eq!(with, without);
    // The cache was used: repeated values got entries.
    assert!(cached.verdict_cache_usage().0 > 0);
    assert_eq!(uncached.verdict_cache_usage(), (0, 0));
    // And the rules did what they say, whatever came before.
    let n = REQUESTS.len();
    for round in 0..3 {
        let r = &with[round * n..(round + 1) * n];
        assert_eq!(r[0], Vec::<i64>::new(), "round {round}");
        assert_eq!(r[1], vec![11], "macro argument: tx.expected = b");
        assert_eq!(r[2], vec![2, 11], "cookie name token; echo = mode");
        assert_eq!(r[3], vec![1, 31], "14 bytes > tx.limit");
        assert_eq!(r[4], vec![4, 20, 41]);
        assert_eq!(
            r[5],
            vec![3, 31],
            "uppercase and '!' fail the negated class"
        );
        assert_eq!(r[6], vec![2, 20]);
        assert_eq!(r[7], vec![4, 11, 32, 41], "tx.mutable = hello = q");
    }
}

#[test]
fn turning_the_cache_off_and_on_keeps_results() {
    let rs = Ruleset::from_text(RULES).expect("compiles");
    let first = rounds(&rs);
    rs.set_verdict_cache(false);
    assert_eq!(rs.verdict_cache_usage(), (0, 0));
    assert_eq!(rounds(&rs), first);
    rs.set_verdict_cache(true);
    assert_eq!(rounds(&rs), first);
}

#[test]
fn threads_sharing_the_cache_get_the_same_results() {
    let shared = Ruleset::from_text(RULES).expect("compiles");
    let reference = Ruleset::from_text(RULES).expect("compiles");
    reference.set_verdict_cache(false);
    let want = rounds(&reference);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| (0..20).map(|_| rounds(&shared)).collect::<Vec<_>>()))
            .collect();
        for h in handles {
            for got in h.join().expect("thread") {
                assert_eq!(got, want);
            }
        }
    });
}

/// Links whose argument reads only TX the static rules leave and no other
/// rule writes get verdict bits; one reading written TX does not.
#[test]
fn arguments_reading_frozen_tx_count_as_pure() {
    let with = Ruleset::from_text(RULES).expect("compiles");
    let without = rules_without(&[30, 31]);
    assert_eq!(
        with.stats().verdict_links,
        without.stats().verdict_links + 2
    );
    // Rule 32 is evaluated in every transaction: its answer changes with
    // tx.mutable (rounds() checks it matches only where mode starts with z).
    let rs = rules_without(&[32]);
    assert_eq!(with.stats().verdict_links, rs.stats().verdict_links);
}

/// A pure link over TX values the transaction set (no slot) keeps its
/// misses by content: the copies `ua:...` get entries of their own, which
/// only rule 41 looks up.
#[test]
fn values_without_a_slot_are_looked_up_by_content() {
    let with = Ruleset::from_text(RULES).expect("compiles");
    let without = rules_without(&[41]);
    rounds(&with);
    rounds(&without);
    // `ua:Mozilla/5.0` and `ua:1' or '1'='1`, each seen in every round.
    assert_eq!(
        with.verdict_cache_usage().0,
        without.verdict_cache_usage().0 + 2
    );
}
