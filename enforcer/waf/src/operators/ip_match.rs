//! `@ipMatch`: the input is an IP address inside one of the listed networks.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Operator, OperatorContext, OperatorError};

/// `@ipMatch LIST`: matches when the input is an IPv4 or IPv6 address that
/// lies in one of the comma-separated addresses or CIDR networks of `LIST`.
///
/// SecLang: `SecRule REMOTE_ADDR "@ipMatch 127.0.0.1,::1"`,
/// `"@ipMatch 10.0.0.0/8,2001:db8::/32"`. As in ModSecurity v3: a bare
/// address is a host (`/32` or `/128`); host bits below the prefix are
/// ignored (`10.1.2.3/8` is `10.0.0.0/8`); the input must be exactly an
/// address (no port, no surrounding whitespace; IPv4 without leading zeros);
/// anything else does not match. An IPv4 address does not match an
/// IPv4-mapped IPv6 network or the reverse. Whitespace around list entries
/// and empty entries are ignored; a malformed entry is a build error (also in
/// ModSecurity). Coraza behaves the same. (The shared operator test suite
/// expects `::ffff:255.255.255.255` outside `0:0::/80`; ModSecurity v3.0.15
/// itself, like this implementation, puts it inside.)
#[derive(Debug)]
pub struct IpMatch {
    set: IpSet,
}

impl IpMatch {
    /// Parses the comma-separated list.
    pub fn new(argument: &str) -> Result<IpMatch, OperatorError> {
        let mut set = IpSet::default();
        for entry in argument.split(',') {
            set.add(entry)
                .map_err(|reason| OperatorError::invalid("ipMatch", reason))?;
        }
        Ok(IpMatch { set })
    }
}

impl Operator for IpMatch {
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

/// A set of IPv4 and IPv6 networks (shared with `@ipMatchFromFile`).
#[derive(Debug, Default)]
pub(crate) struct IpSet {
    /// (network, mask) pairs.
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl IpSet {
    /// Adds one entry (`1.2.3.4`, `10.0.0.0/8`, `::1`, `2001:db8::/32`);
    /// blank entries are skipped.
    pub(crate) fn add(&mut self, entry: &str) -> Result<(), String> {
        let entry = entry.trim();
        if entry.is_empty() {
            return Ok(());
        }
        let net = if entry.contains('/') {
            entry
                .parse::<IpNet>()
                .map_err(|_| format!("{entry:?} is not an IP network"))?
        } else {
            let addr = entry
                .parse::<IpAddr>()
                .map_err(|_| format!("{entry:?} is not an IP address"))?;
            IpNet::from(addr)
        };
        match net {
            IpNet::V4(n) => {
                let mask = u32::from(n.netmask());
                self.v4.push((u32::from(n.addr()) & mask, mask));
            }
            IpNet::V6(n) => {
                let mask = u128::from(n.netmask());
                self.v6.push((u128::from(n.addr()) & mask, mask));
            }
        }
        Ok(())
    }

    /// Whether the set holds no network.
    pub(crate) fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Whether `text` is an address inside the set.
    pub(crate) fn contains_text(&self, text: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(text) else {
            return false;
        };
        match text.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => {
                let a = u32::from(a);
                self.v4.iter().any(|&(net, mask)| a & mask == net)
            }
            Ok(IpAddr::V6(a)) => {
                let a = u128::from(a);
                self.v6.iter().any(|&(net, mask)| a & mask == net)
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::argument::test_support::FakeCx;
    use super::*;

    #[test]
    fn table() {
        for (input, argument, want) in [
            ("127.0.0.1", "127.0.0.1,::1", true),
            ("::1", "127.0.0.1,::1", true),
            ("127.0.0.2", "127.0.0.1,::1", false),
            ("0:0:0:0:0:0:0:1", "127.0.0.1,::1", true),
            ("10.20.30.40", "10.0.0.0/8", true),
            ("11.0.0.1", "10.0.0.0/8", false),
            ("10.20.30.40", "10.1.2.3/8", true),
            ("192.168.1.255", "192.168.1.0/24, 172.16.0.0/12", true),
            ("172.31.255.1", "192.168.1.0/24, 172.16.0.0/12", true),
            ("172.32.0.1", "192.168.1.0/24, 172.16.0.0/12", false),
            ("2001:db8::1", "2001:db8::/32", true),
            ("2001:db9::1", "2001:db8::/32", false),
            ("1.2.3.4", "0.0.0.0/0", true),
            ("::ffff:1.2.3.4", "1.2.3.4", false),
            ("not an ip", "0.0.0.0/0", false),
            ("", "0.0.0.0/0", false),
            (" 1.2.3.4", "0.0.0.0/0", false),
            ("1.2.3.4:80", "0.0.0.0/0", false),
            ("01.2.3.4", "0.0.0.0/0", false),
        ] {
            let op = IpMatch::new(argument).unwrap();
            assert_eq!(
                op.evaluate(&mut FakeCx::default(), input.as_bytes()),
                want,
                "{input:?} @ipMatch {argument}"
            );
        }
    }

    #[test]
    fn rejects_bad_entries() {
        for argument in ["1.2.3", "1.2.3.4/33", "::1/129", "example.com", "1.2.3.4,x"] {
            assert!(IpMatch::new(argument).is_err(), "{argument:?}");
        }
    }
}
