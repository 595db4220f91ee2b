//! Reading the credentials of an API request (`Authorization`, `Cookie`, `Prefer`,
//! `Session-TTL`) and the short-lived cache of verified Basic credentials.
//!
//! Everything here takes untrusted header bytes: every parse returns `None` on anything
//! odd rather than panicking.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::HeaderMap;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::Principal;

/// The session cookie, named and scoped as oVirt's application server sets it.
pub const SESSION_COOKIE: &str = "JSESSIONID";
const COOKIE_ATTRS: &str = "Path=/ovirt-engine/api; Secure; HttpOnly";
/// Longest `Session-TTL` honoured, in minutes (one year), so the expiry arithmetic stays
/// far from overflow.
const MAX_SESSION_TTL_MIN: i64 = 365 * 24 * 60;
/// The cache never holds more entries than this; a flood of distinct valid credentials
/// just empties it.
const CACHE_CAP: usize = 1024;

/// Standard base64, padding optional: some clients strip it.
const BASIC_B64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The `Authorization` header split into scheme (lower-cased) and the rest.
pub(crate) enum Credentials<'a> {
    None,
    Bearer(&'a str),
    /// The whole header value (the cache key) and the base64 part.
    Basic {
        header: &'a str,
        b64: &'a str,
    },
    /// Present but unusable: not ASCII, or a scheme we do not speak.
    Unusable(&'static str),
}

pub(crate) fn credentials(headers: &HeaderMap) -> Credentials<'_> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Credentials::None;
    };
    let Ok(text) = value.to_str() else {
        return Credentials::Unusable("the Authorization header is not printable ASCII");
    };
    let text = text.trim();
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        Credentials::Bearer(rest)
    } else if scheme.eq_ignore_ascii_case("basic") {
        Credentials::Basic {
            header: text,
            b64: rest,
        }
    } else {
        Credentials::Unusable("unsupported authentication scheme")
    }
}

/// `user:password` out of a Basic credential; `None` for bad base64, non-UTF-8 or no colon.
pub(crate) fn decode_basic(b64: &str) -> Option<(String, String)> {
    let bytes = BASIC_B64.decode(b64.as_bytes()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Every `JSESSIONID` value in the request's `Cookie` headers (a client may hold several,
/// e.g. a stale one for another path).
pub(crate) fn session_cookies(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| name.trim() == SESSION_COOKIE)
        .map(|(_, value)| value.trim().trim_matches('"'))
        .filter(|v| !v.is_empty())
        .collect()
}

/// The `Prefer` preferences oVirt reads (`FiltersHelper.getPrefer`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Prefer {
    /// Keep the session behind a cookie after this request.
    pub persistent_auth: bool,
    /// Ignore any existing session and authenticate again.
    pub new_auth: bool,
}

pub(crate) fn prefer(headers: &HeaderMap) -> Prefer {
    let mut p = Prefer::default();
    let elements = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    for element in elements {
        // `name[=value][; param]…`: only the name matters.
        let name = element.split([';', '=']).next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("persistent-auth") {
            p.persistent_auth = true;
        } else if name.eq_ignore_ascii_case("new-auth") {
            p.new_auth = true;
        }
    }
    p
}

/// `Session-TTL` in milliseconds, when it is a whole number of minutes ≥ 1 (oVirt ignores
/// anything else).
pub(crate) fn session_ttl_ms(headers: &HeaderMap) -> Option<i64> {
    let minutes: i64 = headers
        .get("session-ttl")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (minutes >= 1).then(|| minutes.min(MAX_SESSION_TTL_MIN) * 60_000)
}

pub(crate) fn set_cookie(token: &str) -> String {
    format!("{SESSION_COOKIE}={token}; {COOKIE_ATTRS}")
}

/// Verified Basic credentials, keyed by the SHA-256 of the whole `Authorization` value, so
/// a client repeating the same header skips the deliberately slow argon2 check. Only
/// successes are stored and only for a short time; the password itself is never kept.
#[derive(Default)]
pub(crate) struct BasicCache {
    entries: Mutex<HashMap<[u8; 32], (Principal, i64)>>,
}

impl BasicCache {
    pub(crate) fn key(header: &str) -> [u8; 32] {
        Sha256::digest(header.as_bytes()).into()
    }

    pub(crate) fn get(&self, key: &[u8; 32], now: i64) -> Option<Principal> {
        let mut map = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get(key) {
            Some((p, until)) if *until > now => Some(p.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    pub(crate) fn put(&self, key: [u8; 32], p: Principal, until: i64, now: i64) {
        let mut map = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= CACHE_CAP {
            map.retain(|_, (_, u)| *u > now);
            if map.len() >= CACHE_CAP {
                map.clear();
            }
        }
        map.insert(key, (p, until));
    }

    pub(crate) fn forget_user(&self, user_id: &str) {
        let mut map = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, (p, _)| p.user_id != user_id);
    }

    pub(crate) fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn authorization_schemes() {
        let h = headers(&[("authorization", b"bearer abc ")]);
        assert!(matches!(credentials(&h), Credentials::Bearer("abc")));
        let h = headers(&[("authorization", b"Basic YTpi")]);
        assert!(matches!(
            credentials(&h),
            Credentials::Basic { b64: "YTpi", .. }
        ));
        let h = headers(&[("authorization", b"Negotiate xyz")]);
        assert!(matches!(credentials(&h), Credentials::Unusable(_)));
        let h = headers(&[("authorization", b"Basic \xff\xfe")]);
        assert!(matches!(credentials(&h), Credentials::Unusable(_)));
        assert!(matches!(credentials(&HeaderMap::new()), Credentials::None));
    }

    #[test]
    fn basic_decoding() {
        assert_eq!(decode_basic("YTpi"), Some(("a".into(), "b".into())));
        // "admin@internal:pa:ss" with and without padding.
        assert_eq!(
            decode_basic("YWRtaW5AaW50ZXJuYWw6cGE6c3M="),
            Some(("admin@internal".into(), "pa:ss".into()))
        );
        assert_eq!(
            decode_basic("YWRtaW5AaW50ZXJuYWw6cGE6c3M"),
            Some(("admin@internal".into(), "pa:ss".into()))
        );
        assert_eq!(decode_basic("!!!"), None);
        assert_eq!(decode_basic("bm9jb2xvbg=="), None); // "nocolon"
        assert_eq!(decode_basic("/w=="), None); // 0xff: not UTF-8
        assert_eq!(decode_basic(""), None);
    }

    #[test]
    fn cookies_prefer_ttl() {
        let h = headers(&[
            ("cookie", b"a=1; JSESSIONID=tok1"),
            ("cookie", b"JSESSIONID=\"tok2\""),
            ("cookie", b"\xff"),
            ("prefer", b"return=minimal, persistent-auth"),
            ("session-ttl", b"5"),
        ]);
        assert_eq!(session_cookies(&h), vec!["tok1", "tok2"]);
        assert_eq!(
            prefer(&h),
            Prefer {
                persistent_auth: true,
                new_auth: false
            }
        );
        assert_eq!(session_ttl_ms(&h), Some(300_000));
        let h = headers(&[("session-ttl", b"0"), ("prefer", b"New-Auth")]);
        assert_eq!(session_ttl_ms(&h), None);
        assert!(prefer(&h).new_auth);
        let h = headers(&[("session-ttl", b"99999999999999999")]);
        assert_eq!(session_ttl_ms(&h), Some(MAX_SESSION_TTL_MIN * 60_000));
    }

    #[test]
    fn cache_expires_and_forgets() {
        let c = BasicCache::default();
        let p = Principal {
            user_id: "u".into(),
            user_name: "n".into(),
            superuser: true,
            token_hash: None,
        };
        let k = BasicCache::key("Basic x");
        c.put(k, p.clone(), 100, 0);
        assert_eq!(c.get(&k, 99), Some(p.clone()));
        assert_eq!(c.get(&k, 100), None);
        c.put(k, p, 100, 0);
        c.forget_user("u");
        assert_eq!(c.get(&k, 1), None);
    }
}
