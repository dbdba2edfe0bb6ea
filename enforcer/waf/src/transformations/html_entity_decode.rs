//! `t:htmlEntityDecode`: HTML character references to bytes.

use std::borrow::Cow;

use memchr::{memchr, memchr_iter};

use super::prefix_vec;

/// What the `&` at some position turns into.
enum Entity {
    /// Emit this byte and skip this many input bytes.
    Decoded(u8, usize),
    /// Not an entity ModSecurity decodes: copy this many bytes verbatim.
    Verbatim(usize),
}

/// The value of a run of digits as C `strtol` computes it, then cast to a
/// byte: saturates at `LONG_MAX` (whose low byte is 0xff) on overflow.
fn strtol_byte(digits: &[u8], radix: u32) -> u8 {
    let mut v: u64 = 0;
    for &d in digits {
        let digit = u64::from(char::from(d).to_digit(radix).unwrap_or(0));
        v = v.saturating_mul(u64::from(radix)).saturating_add(digit);
        if v > i64::MAX as u64 {
            return 0xff;
        }
    }
    (v & 0xff) as u8
}

/// Length of the run of bytes from `from` that satisfy `pred`.
fn run(input: &[u8], from: usize, pred: impl Fn(&u8) -> bool) -> usize {
    input[from..].iter().take_while(|b| pred(b)).count()
}

/// After an entity ending at `end`, the position to resume at (an optional
/// `;` is swallowed).
fn after_semicolon(input: &[u8], end: usize) -> usize {
    if input.get(end) == Some(&b';') {
        end + 1
    } else {
        end
    }
}

/// Parses the entity starting with the `&` at `i`.
fn entity_at(input: &[u8], i: usize) -> Entity {
    let len = input.len();
    if i + 1 >= len {
        return Entity::Verbatim(1);
    }
    let j = i + 1;
    if input[j] == b'#' {
        if j + 1 >= len {
            return Entity::Verbatim(2);
        }
        let j = j + 1;
        if input[j] == b'x' || input[j] == b'X' {
            if j + 1 >= len {
                return Entity::Verbatim(3);
            }
            let k = j + 1;
            let n = run(input, k, u8::is_ascii_hexdigit);
            if n == 0 {
                return Entity::Verbatim(3);
            }
            let b = strtol_byte(&input[k..k + n], 16);
            return Entity::Decoded(b, after_semicolon(input, k + n) - i);
        }
        let n = run(input, j, u8::is_ascii_digit);
        if n == 0 {
            return Entity::Verbatim(2);
        }
        let b = strtol_byte(&input[j..j + n], 10);
        return Entity::Decoded(b, after_semicolon(input, j + n) - i);
    }
    let n = run(input, j, u8::is_ascii_alphanumeric);
    if n == 0 {
        return Entity::Verbatim(1);
    }
    let name = &input[j..j + n];
    const NAMES: &[(&[u8], u8)] = &[
        (b"quot", b'"'),
        (b"amp", b'&'),
        (b"lt", b'<'),
        (b"gt", b'>'),
        (b"nbsp", 0xa0),
    ];
    for (entity, b) in NAMES {
        if name.len() >= entity.len() && name[..entity.len()].eq_ignore_ascii_case(entity) {
            return Entity::Decoded(*b, after_semicolon(input, j + n) - i);
        }
    }
    Entity::Verbatim(n + 1)
}

/// `t:htmlEntityDecode`: decodes `&#DDD;`, `&#xHH;` and the named entities
/// `&quot;`, `&amp;`, `&lt;`, `&gt;` and `&nbsp;` (to 0xA0), each with or
/// without the trailing `;`; names are case-insensitive.
///
/// ModSecurity semantics, including its quirks:
/// - every digit of a numeric reference is consumed and the value is cut to
///   its low byte (`&#x4141;` and `&#321;` give `A`, `&#00000123;` gives `{`,
///   values overflowing a C `long` give 0xFF); the result is one byte, never
///   UTF-8;
/// - a named entity is recognised when the run of letters and digits after
///   `&` *starts* with a known name, and the whole run is consumed
///   (`&ltfoo;` gives `<`);
/// - anything else (`&foo;`, `&#;`, `&#x;`, a lone `&`) is copied as is.
///
/// ModSecurity 3.0.13 limited numeric references to 2 hex / 3 decimal digits
/// (CVE-2025-27110); 3.0.14 went back to consuming every digit, which is what
/// this follows. Coraza uses Go's `html.UnescapeString`, which knows every
/// HTML5 entity, emits UTF-8 and needs the `;` for most names.
pub fn html_entity_decode(input: &[u8]) -> Cow<'_, [u8]> {
    let first = memchr_iter(b'&', input).find_map(|i| match entity_at(input, i) {
        Entity::Decoded(b, used) => Some((i, b, used)),
        Entity::Verbatim(_) => None,
    });
    let Some((start, b, used)) = first else {
        return Cow::Borrowed(input);
    };
    let mut out = prefix_vec(input, start);
    out.push(b);
    let mut i = start + used;
    while i < input.len() {
        if input[i] == b'&' {
            match entity_at(input, i) {
                Entity::Decoded(b, used) => {
                    out.push(b);
                    i += used;
                }
                Entity::Verbatim(n) => {
                    out.extend_from_slice(&input[i..i + n]);
                    i += n;
                }
            }
        } else {
            let n = memchr(b'&', &input[i..]).unwrap_or(input.len() - i);
            out.extend_from_slice(&input[i..i + n]);
            i += n;
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"TestCase", b"TestCase"),
            (b"&lt;script&gt;", b"<script>"),
            (b"&LT&Gt", b"<>"),
            (b"&quot;&amp;&nbsp;", b"\"&\xa0"),
            (b"&ltfoo;x", b"<x"),
            (b"&foo;", b"&foo;"),
            (b"&foo;&lt;", b"&foo;<"),
            (b"&", b"&"),
            (b"a&", b"a&"),
            (b"&#", b"&#"),
            (b"&#x", b"&#x"),
            (b"&#;", b"&#;"),
            (b"&#x;", b"&#x;"),
            (b"&#xg;", b"&#xg;"),
            (b"&#65;&#x41;&#X41", b"AAA"),
            (b"&#x4141;", b"A"),
            (b"&#321;", b"A"),
            (
                b"&#00000000000000000000000000000000000000000000000123;",
                b"{",
            ),
            (b"&#99999999999999999999999;", b"\xff"),
            (b"&#x24;&#123;jndi", b"${jndi"),
            (b"&;&&", b"&;&&"),
            (b"\xff&amp\xfe", b"\xff&\xfe"),
        ];
        for (input, want) in cases {
            assert_eq!(&*html_entity_decode(input), *want, "{input:?}");
        }
    }

    #[test]
    fn borrows_when_unchanged() {
        assert!(matches!(html_entity_decode(b"a=1&b=2&c"), Cow::Borrowed(_)));
        assert!(matches!(
            html_entity_decode(b"no entities"),
            Cow::Borrowed(_)
        ));
    }
}
