//! [`EgressPolicy`]: which addresses the client may connect to, checked after name resolution.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A range of IPv4 or IPv6 addresses in CIDR notation: `10.0.0.0/8`, `fe80::/10`.
///
/// A bare address is a range of one (`/32`, `/128`). An IPv4-mapped IPv6 range
/// (`::ffff:10.0.0.0/104`) is kept as the IPv4 range it maps (`10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The range's first address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// How many leading bits every address of the range shares with [`Cidr::network`].
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the range; an IPv4-mapped IPv6 address counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => u32::from(ip) & mask32(self.prefix) == u32::from(net),
            (IpAddr::V6(net), IpAddr::V6(ip)) => u128::from(ip) & mask128(self.prefix) == u128::from(net),
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Why a string is not a [`Cidr`]; its message quotes the string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{input}\" is not a CIDR: {reason}")]
pub struct CidrError {
    input: String,
    reason: String,
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let fail = |reason: String| CidrError { input: s.to_owned(), reason };
        let (address, prefix) = match s.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (s, None),
        };
        if address.is_empty() {
            return Err(fail("there is no address before the prefix length".to_owned()));
        }
        let address: IpAddr = address.parse().map_err(|_| {
            fail(format!("`{address}` is not an IPv4 or IPv6 address, such as 10.0.0.0/8 or fe80::/10"))
        })?;
        let bits: u8 = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(fail(format!("the prefix length `{p}` is not a number from 0 to {bits}")));
            }
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= bits => n,
                _ => return Err(fail(format!("the prefix length {p} is longer than the {bits} bits of the address"))),
            },
        };
        let network = match address {
            IpAddr::V4(ip) => IpAddr::V4(Ipv4Addr::from(u32::from(ip) & mask32(prefix))),
            IpAddr::V6(ip) => IpAddr::V6(Ipv6Addr::from(u128::from(ip) & mask128(prefix))),
        };
        if network != address {
            return Err(fail(format!(
                "the address has bits set beyond its prefix length /{prefix} (the range would be {network}/{prefix})"
            )));
        }
        // An IPv4-mapped range is the IPv4 range it maps, so that it matches what `contains` compares.
        if let IpAddr::V6(ip) = network
            && let Some(v4) = ip.to_ipv4_mapped()
            && prefix >= 96
        {
            return Ok(Cidr { network: IpAddr::V4(v4), prefix: prefix - 96 });
        }
        Ok(Cidr { network, prefix })
    }
}

/// Which addresses a [`RegistryClient`](crate::RegistryClient) may connect to.
///
/// It is applied to every connection after name resolution (registries, token services,
/// redirect targets): an address is refused when it is in a `deny` range and in no `allow`
/// range, so an `allow` range opens an exception in a denied one (allow wins). An IPv4-mapped
/// IPv6 address (`::ffff:169.254.169.254`) is judged as its IPv4 address.
///
/// The default denies the link-local ranges `169.254.0.0/16` and `fe80::/10`, where cloud
/// providers serve instance metadata (and the credentials in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressPolicy {
    deny: Vec<Cidr>,
    allow: Vec<Cidr>,
}

impl EgressPolicy {
    /// The ranges denied by default: link-local IPv4 and IPv6.
    pub const DEFAULT_DENY: [&str; 2] = ["169.254.0.0/16", "fe80::/10"];

    pub fn new(deny: Vec<Cidr>, allow: Vec<Cidr>) -> EgressPolicy {
        EgressPolicy { deny, allow }
    }

    /// A policy that refuses nothing.
    pub fn allow_all() -> EgressPolicy {
        EgressPolicy::new(Vec::new(), Vec::new())
    }

    pub fn deny(&self) -> &[Cidr] {
        &self.deny
    }

    pub fn allow(&self) -> &[Cidr] {
        &self.allow
    }

    /// Whether a connection to `ip` is refused.
    pub fn refuses(&self, ip: IpAddr) -> bool {
        self.deny.iter().any(|c| c.contains(ip)) && !self.allow.iter().any(|c| c.contains(ip))
    }
}

impl Default for EgressPolicy {
    fn default() -> Self {
        let deny = EgressPolicy::DEFAULT_DENY.iter().map(|c| c.parse().unwrap_or_else(|_| unreachable!())).collect();
        EgressPolicy::new(deny, Vec::new())
    }
}

/// The error a connection attempt fails with when the policy refuses every address of its host;
/// found again in the HTTP client's error chain and turned into [`Error::EgressDenied`](crate::Error).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the egress policy refuses connections to {host}")]
pub(crate) struct EgressRefusal {
    pub(crate) host: String,
    /// The first address refused, when `host` is a name.
    pub(crate) addr: Option<IpAddr>,
}

impl EgressRefusal {
    /// The error of a request to `registry` (the host refused may be its token service's, or a
    /// redirect's).
    pub(crate) fn into_error(self, registry: &str) -> crate::Error {
        crate::Error::EgressDenied { registry: registry.to_owned(), host: self.host, addr: self.addr }
    }
}

/// reqwest's name resolution through the system resolver, keeping only the addresses the policy
/// permits. IP-literal hosts never get here: the client checks those before it sends.
pub(crate) struct EgressResolver {
    pub(crate) policy: std::sync::Arc<EgressPolicy>,
}

impl reqwest::dns::Resolve for EgressResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<_> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (permitted, refused): (Vec<_>, Vec<_>) = resolved.into_iter().partition(|a| !policy.refuses(a.ip()));
            if !refused.is_empty() {
                tracing::debug!(%host, ?refused, "the egress policy dropped addresses");
            }
            match refused.first() {
                Some(first) if permitted.is_empty() => {
                    Err(Box::new(EgressRefusal { host, addr: Some(first.ip()) }) as _)
                }
                _ => Ok(Box::new(permitted.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_ranges() {
        for (input, expect) in [
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("169.254.0.0/16", "169.254.0.0/16"),
            ("127.0.0.2", "127.0.0.2/32"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("fe80::/10", "fe80::/10"),
            ("::1", "::1/128"),
            ("::/0", "::/0"),
            ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
            ("::ffff:169.254.169.254", "169.254.169.254/32"),
        ] {
            assert_eq!(cidr(input).to_string(), expect, "{input}");
        }
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        for (input, expect) in [
            (
                "10.0.0.0/33",
                r#""10.0.0.0/33" is not a CIDR: the prefix length 33 is longer than the 32 bits of the address"#,
            ),
            (
                "fe80::/129",
                r#""fe80::/129" is not a CIDR: the prefix length 129 is longer than the 128 bits of the address"#,
            ),
            (
                "10.0.0.0/300",
                r#""10.0.0.0/300" is not a CIDR: the prefix length 300 is longer than the 32 bits of the address"#,
            ),
            ("10.0.0.0/", r#""10.0.0.0/" is not a CIDR: the prefix length `` is not a number from 0 to 32"#),
            ("10.0.0.0/-1", r#""10.0.0.0/-1" is not a CIDR: the prefix length `-1` is not a number from 0 to 32"#),
            ("10.0.0.0/8/8", r#""10.0.0.0/8/8" is not a CIDR: the prefix length `8/8` is not a number from 0 to 32"#),
            (
                "10.0.0/8",
                r#""10.0.0/8" is not a CIDR: `10.0.0` is not an IPv4 or IPv6 address, such as 10.0.0.0/8 or fe80::/10"#,
            ),
            (
                "example.com/8",
                r#""example.com/8" is not a CIDR: `example.com` is not an IPv4 or IPv6 address, such as 10.0.0.0/8 or fe80::/10"#,
            ),
            ("", r#""" is not a CIDR: there is no address before the prefix length"#),
            ("/8", r#""/8" is not a CIDR: there is no address before the prefix length"#),
            (
                "169.254.169.254/16",
                r#""169.254.169.254/16" is not a CIDR: the address has bits set beyond its prefix length /16 (the range would be 169.254.0.0/16)"#,
            ),
            (
                "fe80::1/10",
                r#""fe80::1/10" is not a CIDR: the address has bits set beyond its prefix length /10 (the range would be fe80::/10)"#,
            ),
        ] {
            assert_eq!(input.parse::<Cidr>().unwrap_err().to_string(), expect, "{input}");
        }
    }

    #[test]
    fn ranges_contain_their_addresses_only() {
        let link_local = cidr("169.254.0.0/16");
        assert!(link_local.contains(ip("169.254.0.0")));
        assert!(link_local.contains(ip("169.254.169.254")));
        assert!(link_local.contains(ip("169.254.255.255")));
        assert!(!link_local.contains(ip("169.255.0.0")));
        assert!(!link_local.contains(ip("169.253.255.255")));
        // An IPv4-mapped IPv6 address is its IPv4 address; other IPv6 addresses are not in IPv4 ranges.
        assert!(link_local.contains(ip("::ffff:169.254.169.254")));
        assert!(!link_local.contains(ip("::169.254.169.254")));
        assert!(!link_local.contains(ip("fe80::1")));
        let v6 = cidr("fe80::/10");
        assert!(v6.contains(ip("fe80::1")));
        assert!(v6.contains(ip("febf:ffff::1")));
        assert!(!v6.contains(ip("fec0::1")));
        assert!(!v6.contains(ip("169.254.169.254")));
        assert!(cidr("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(!cidr("0.0.0.0/0").contains(ip("::1")));
        assert!(cidr("::/0").contains(ip("::1")));
        assert!(cidr("127.0.0.2").contains(ip("127.0.0.2")));
        assert!(!cidr("127.0.0.2").contains(ip("127.0.0.1")));
        assert!(cidr("::ffff:10.0.0.0/104").contains(ip("10.1.2.3")));
    }

    #[test]
    fn the_default_denies_link_local_only() {
        let policy = EgressPolicy::default();
        for refused in ["169.254.169.254", "169.254.0.1", "fe80::1", "fe80::a9fe:a9fe", "::ffff:169.254.169.254"] {
            assert!(policy.refuses(ip(refused)), "{refused}");
        }
        for permitted in ["127.0.0.1", "10.0.0.1", "192.168.1.1", "8.8.8.8", "::1", "2001:db8::1", "fd00:ec2::254"] {
            assert!(!policy.refuses(ip(permitted)), "{permitted}");
        }
        assert!(!EgressPolicy::allow_all().refuses(ip("169.254.169.254")));
    }

    #[test]
    fn allow_wins_over_deny() {
        let policy = EgressPolicy::new(
            vec![cidr("10.0.0.0/8"), cidr("169.254.0.0/16")],
            vec![cidr("10.1.0.0/16"), cidr("::ffff:169.254.169.123")],
        );
        assert!(policy.refuses(ip("10.0.0.1")));
        assert!(policy.refuses(ip("10.2.0.1")));
        assert!(!policy.refuses(ip("10.1.2.3")));
        assert!(!policy.refuses(ip("::ffff:10.1.2.3")));
        assert!(policy.refuses(ip("::ffff:10.2.0.1")));
        assert!(!policy.refuses(ip("169.254.169.123")));
        assert!(policy.refuses(ip("169.254.169.254")));
        // An allowed range outside every denied one changes nothing.
        assert!(!EgressPolicy::new(vec![], vec![cidr("10.0.0.0/8")]).refuses(ip("192.168.0.1")));
    }
}
