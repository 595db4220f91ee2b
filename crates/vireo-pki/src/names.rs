//! Subject alternative names: parsing what the operator gives us, reading
//! what a certificate has, and comparing the two.

use std::fmt;
use std::net::IpAddr;

use rcgen::SanType;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::PkiError;

/// One SAN entry, normalised so that equal names compare equal: DNS names are
/// case-insensitive and a trailing dot means the same host, and IP addresses
/// compare by value ("::1" and "0:0::1" are one address).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Name {
    Dns(String),
    Ip(IpAddr),
}

impl Name {
    /// Parses a host name or IP address as an operator would write it.
    /// Bracketed IPv6 ("[fe80::1]", as in URLs) is accepted too.
    pub(crate) fn parse(raw: &str) -> Result<Name, PkiError> {
        let s = raw.trim();
        let unbracketed = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Ok(Name::Ip(ip));
        }
        let dns = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
        if is_valid_dns_name(&dns) {
            Ok(Name::Dns(dns))
        } else {
            Err(PkiError::Cert(format!(
                "{raw:?} is neither an IP address nor a valid DNS name"
            )))
        }
    }

    pub(crate) fn to_san(&self) -> Result<SanType, PkiError> {
        Ok(match self {
            Name::Ip(ip) => SanType::IpAddress(*ip),
            Name::Dns(d) => SanType::DnsName(
                d.clone()
                    .try_into()
                    .map_err(PkiError::cert(format_args!("DNS name {d:?}")))?,
            ),
        })
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Name::Dns(d) => f.write_str(d),
            Name::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// Host-name syntax (RFC 1123 labels), plus two allowances found in the wild:
/// underscores (some internal DNS) and a leading "*" label for wildcards.
fn is_valid_dns_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    name.split('.').enumerate().all(|(i, label)| {
        (i == 0 && label == "*")
            || (!label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    })
}

/// The DNS and IP SANs of a parsed certificate. Other kinds (e-mail, URI) are
/// never issued by us and are ignored. A malformed extension reads as "no
/// names", which makes the caller re-issue: it is our own file.
pub(crate) fn names_in_cert(cert: &X509Certificate<'_>) -> Vec<Name> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|g| match g {
            GeneralName::DNSName(d) => Name::parse(d).ok(),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => Some(Name::Ip(IpAddr::from(<[u8; 4]>::try_from(*bytes).ok()?))),
                16 => Some(Name::Ip(IpAddr::from(<[u8; 16]>::try_from(*bytes).ok()?))),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Appends `extra` to `names`, skipping duplicates, keeping first-seen order
/// (so the certificate lists localhost first, then the host name, …).
pub(crate) fn merge(names: &mut Vec<Name>, extra: impl IntoIterator<Item = Name>) {
    for n in extra {
        if !names.contains(&n) {
            names.push(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        assert_eq!(
            Name::parse("127.0.0.1").unwrap(),
            Name::Ip([127, 0, 0, 1].into())
        );
        assert_eq!(Name::parse("0:0::1").unwrap(), Name::parse("::1").unwrap());
        assert_eq!(Name::parse("[::1]").unwrap(), Name::parse("::1").unwrap());
        assert_eq!(
            Name::parse(" Engine.Example.COM. ").unwrap(),
            Name::Dns("engine.example.com".into())
        );
        assert!(Name::parse("*.example.com").is_ok());
        assert!(Name::parse("my_host.lan").is_ok());
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "a b", "-x.com", "x..com", "über.de", "x/y", "a.*.com"] {
            assert!(Name::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Name::parse(&"a".repeat(64)).is_err());
    }

    #[test]
    fn merge_dedupes_in_order() {
        let mut v = vec![Name::parse("a").unwrap()];
        merge(&mut v, ["b", "A", "a."].map(|s| Name::parse(s).unwrap()));
        assert_eq!(
            v,
            vec![Name::parse("a").unwrap(), Name::parse("b").unwrap()]
        );
    }
}
