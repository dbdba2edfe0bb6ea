//! `@ipMatchFromFile` (alias `@ipMatchF`): `@ipMatch` with the networks
//! listed in data files.

use super::argument::for_each_data_file;
use super::ip_match::IpSet;
use super::{Operator, OperatorContext, OperatorEnv, OperatorError};

/// `@ipMatchFromFile FILE`: matches when the input is an IP address inside
/// one of the networks listed in `FILE` (one address or CIDR network per
/// line; text after `#` is a comment; blank lines skipped).
///
/// SecLang: `SecRule REMOTE_ADDR "@ipMatchFromFile blocked.txt"`. Files are
/// read through [`OperatorEnv::read_data_file`] (relative to the rule's
/// file). Differences from ModSecurity v3: `https://` URLs are refused (the
/// engine does no network I/O at load time), several space-separated files
/// may be listed, and a line may also hold a comma-separated list. Address
/// semantics are those of [`IpMatch`](super::IpMatch).
#[derive(Debug)]
pub struct IpMatchFromFile {
    set: IpSet,
}

const NAME: &str = "ipMatchFromFile";

impl IpMatchFromFile {
    /// Reads and parses the data files.
    pub fn new(argument: &str, env: &OperatorEnv<'_>) -> Result<IpMatchFromFile, OperatorError> {
        let mut set = IpSet::default();
        for_each_data_file(NAME, argument, env, |file, data| {
            for (number, line) in data.split(|&b| b == b'\n').enumerate() {
                let line = match memchr::memchr(b'#', line) {
                    Some(at) => &line[..at],
                    None => line,
                };
                let line = String::from_utf8_lossy(line);
                for entry in line.split(',') {
                    set.add(entry).map_err(|reason| {
                        OperatorError::invalid(NAME, format!("{file}:{}: {reason}", number + 1))
                    })?;
                }
            }
            Ok(())
        })?;
        Ok(IpMatchFromFile { set })
    }

    /// Whether the files listed no network at all.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

impl Operator for IpMatchFromFile {
    fn is_pure(&self) -> bool {
        true
    }

    fn evaluate(&self, cx: &mut dyn OperatorContext, input: &[u8]) -> bool {
        let found = self.set.contains_text(input);
        if found {
            cx.set_matched_data(input);
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::super::argument::test_support::{with_data_files, FakeCx};
    use super::*;

    fn build(argument: &str) -> Result<IpMatchFromFile, OperatorError> {
        let files: &[(&str, &[u8])] = &[
            (
                "a.txt",
                b"# blocked\n10.0.0.0/8\n\n  192.168.0.1  # one host\r\n2001:db8::/32\n",
            ),
            ("b.txt", b"1.1.1.1,8.8.8.8\n"),
            ("bad.txt", b"10.0.0.0/8\nnope\n"),
        ];
        with_data_files(files, |env| IpMatchFromFile::new(argument, env))
    }

    #[test]
    fn table() {
        let op = build("a.txt b.txt").unwrap();
        for (input, want) in [
            ("10.1.1.1", true),
            ("192.168.0.1", true),
            ("192.168.0.2", false),
            ("2001:db8:1::1", true),
            ("8.8.8.8", true),
            ("8.8.4.4", false),
        ] {
            assert_eq!(
                op.evaluate(&mut FakeCx::default(), input.as_bytes()),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn errors() {
        assert!(matches!(
            build("missing.txt"),
            Err(OperatorError::DataFile { .. })
        ));
        let err = build("bad.txt").unwrap_err().to_string();
        assert!(err.contains("bad.txt:2"), "{err}");
        assert!(build("https://example.com/list").is_err());
        assert!(build("").is_err());
    }
}
