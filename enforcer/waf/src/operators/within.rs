//! `@within`: the input occurs inside the argument (reverse of `@contains`).

use super::argument::{Empty, Record, StringArg};
use super::{Operator, OperatorContext};

/// `@within LIST`: matches when the input is a substring of `LIST`.
///
/// SecLang: `SecRule REQUEST_METHOD "!@within %{tx.allowed_methods}"`. As in
/// ModSecurity v3 this is a plain, case-sensitive substring test (so `GE`
/// is "within" `GET HEAD`), and an empty input always matches. Coraza uses
/// `strings.Contains(argument, input)`, which gives the same results.
#[derive(Debug)]
pub struct Within {
    arg: StringArg,
}

impl Within {
    /// Builds the operator.
    pub fn new(argument: &str) -> Within {
        Within {
            arg: StringArg::parse(argument),
        }
    }
}

impl Operator for Within {
    fn is_pure(&self) -> bool {
        self.arg.literal().is_some()
    }

    fn argument_macros(&self) -> Option<&crate::macros::MacroText> {
        self.arg.macros()
    }

    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        self.arg
            .evaluate(cx, input, Empty::InputMatches, Record::Input, occurs_in)
    }
}

/// Whether `needle` occurs in `list`.
///
/// The lists `@within` searches separate their items with the same few
/// bytes (`/content-encoding/ /proxy/ ...`, `GET HEAD POST`), so the scan
/// looks for the needle's first letter or digit rather than its first
/// byte: far fewer places to compare at than every `/`.
fn occurs_in(needle: &[u8], list: &[u8]) -> bool {
    let Some(last_start) = list.len().checked_sub(needle.len()) else {
        return false;
    };
    let Some(at) = needle
        .iter()
        .position(u8::is_ascii_alphanumeric)
        .or((!needle.is_empty()).then_some(0))
    else {
        return true;
    };
    // An occurrence starting at `s` has needle[at] at `s + at`: scan the
    // places it can be and compare the whole needle there.
    let candidates = &list[at..=last_start + at];
    memchr::memchr_iter(needle[at], candidates).any(|s| list[s..s + needle.len()] == *needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn occurs_in_is_substring_search() {
        let headers = b"/content-encoding/ /proxy/ /lock-token/ /if/ /expect/";
        // (needle, list)
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"", b"abc"),
            (b"a", b""),
            (b"/proxy/", headers),
            (b"/if/", headers),
            (b"/host/", headers),
            (b"/expect/", headers),
            (b"/expect/x", headers),
            (b"/content-encoding/", headers),
            (b"/", headers),
            (b"//", headers),
            (b"/ /", headers),
            (b"--", b"a--b"),
            (b"GE", b"GET HEAD"),
            (b"HEAD", b"GET HEAD"),
            (b"HEAD ", b"GET HEAD"),
            (b"aab", b"aaab"),
            (b"abc", b"ab"),
        ];
        for &(needle, list) in cases {
            let want = list.windows(needle.len().max(1)).any(|w| w == needle) || needle.is_empty();
            assert_eq!(
                occurs_in(needle, list),
                want && needle.len() <= list.len(),
                "{:?} in {:?}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(list)
            );
        }
    }
}
