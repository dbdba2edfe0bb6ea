//! Number parsing shared by the comparison operators (`@eq`, `@ge`, `@gt`,
//! `@le`, `@lt`), with the C library semantics ModSecurity v3 relies on.
//!
//! ModSecurity parses both the input and the argument with `atoll` for
//! `@ge`/`@gt`/`@le`/`@lt` and with `std::stoi` for `@eq`:
//! leading whitespace is skipped, an optional sign and decimal digits are
//! read, and the rest is ignored (`"12abc"` is 12). Text without digits is 0.
//! On overflow `atoll` (glibc `strtoll`) saturates to the `i64` bounds while
//! `stoi` throws, which ModSecurity catches and turns into 0.

use super::argument::StringArg;
use super::OperatorContext;

/// C `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Splits `input` into (negative, digits) the way `strtol` scans it.
fn scan(input: &[u8]) -> (bool, &[u8]) {
    let mut i = 0;
    while i < input.len() && is_c_space(input[i]) {
        i += 1;
    }
    let mut negative = false;
    if let Some(&sign) = input.get(i) {
        if sign == b'+' || sign == b'-' {
            negative = sign == b'-';
            i += 1;
        }
    }
    let rest = input.get(i..).unwrap_or_default();
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    (negative, &rest[..digits])
}

/// Accumulates decimal `digits`; `None` on `i64` overflow.
fn accumulate(negative: bool, digits: &[u8]) -> Option<i64> {
    let mut value: i64 = 0;
    for &d in digits {
        let d = i64::from(d - b'0');
        value = value.checked_mul(10)?;
        value = if negative {
            value.checked_sub(d)?
        } else {
            value.checked_add(d)?
        };
    }
    Some(value)
}

/// C `atoll` (glibc): leading integer, 0 when none, saturating on overflow.
pub(crate) fn atoll(input: &[u8]) -> i64 {
    let (negative, digits) = scan(input);
    accumulate(negative, digits).unwrap_or(if negative { i64::MIN } else { i64::MAX })
}

/// C++ `std::stoi` as ModSecurity uses it: leading `int`, and 0 both when
/// there is none and when it does not fit an `int`.
pub(crate) fn stoi_or_zero(input: &[u8]) -> i64 {
    let (negative, digits) = scan(input);
    match accumulate(negative, digits) {
        Some(v) if i32::try_from(v).is_ok() => v,
        _ => 0,
    }
}

/// How a comparison operator parses numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Parse {
    /// `atoll` (`@ge`, `@gt`, `@le`, `@lt`).
    Atoll,
    /// `std::stoi`, 0 on error (`@eq`).
    Stoi,
}

impl Parse {
    pub(crate) fn parse(self, bytes: &[u8]) -> i64 {
        match self {
            Parse::Atoll => atoll(bytes),
            Parse::Stoi => stoi_or_zero(bytes),
        }
    }
}

/// A numeric operator argument: parsed at build time when literal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NumericArg {
    /// A literal argument, already parsed.
    Literal(i64),
    /// A macro argument (`%{tx.inbound_anomaly_score_threshold}`), expanded
    /// and parsed per evaluation.
    Macro(StringArg),
}

impl NumericArg {
    /// The macro text, if the argument holds a macro.
    pub(crate) fn macros(&self) -> Option<&crate::macros::MacroText> {
        match self {
            NumericArg::Literal(_) => None,
            NumericArg::Macro(arg) => arg.macros(),
        }
    }

    pub(crate) fn parse(argument: &str, parse: Parse) -> NumericArg {
        let arg = StringArg::parse(argument);
        match arg.literal() {
            Some(lit) => NumericArg::Literal(parse.parse(lit)),
            None => NumericArg::Macro(arg),
        }
    }

    pub(crate) fn value(&self, cx: &dyn OperatorContext, parse: Parse) -> i64 {
        match self {
            NumericArg::Literal(v) => *v,
            NumericArg::Macro(arg) => parse.parse(&arg.resolve(cx)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoll_semantics() {
        for (input, want) in [
            (&b"0"[..], 0),
            (b"42", 42),
            (b"  \t42abc", 42),
            (b"+7", 7),
            (b"-7", -7),
            (b"- 7", 0),
            (b"abc", 0),
            (b"", 0),
            (b"1.9", 1),
            (b"0x10", 0),
            (b"99999999999999999999", i64::MAX),
            (b"-99999999999999999999", i64::MIN),
            (b"9223372036854775807", i64::MAX),
            (b"-9223372036854775808", i64::MIN),
            (b"\xff12", 0),
        ] {
            assert_eq!(atoll(input), want, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn stoi_semantics() {
        for (input, want) in [
            (&b"0"[..], 0),
            (b" 12x", 12),
            (b"-5", -5),
            (b"x", 0),
            (b"2147483647", 2147483647),
            (b"2147483648", 0),
            (b"-2147483648", -2147483648),
            (b"-2147483649", 0),
        ] {
            assert_eq!(
                stoi_or_zero(input),
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
