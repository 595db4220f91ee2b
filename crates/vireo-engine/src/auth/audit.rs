//! Audit events for logins, with oVirt's codes and message shapes
//! (`AuditLogType` and `AuditLogMessages.properties` in ovirt-engine).

use std::net::IpAddr;

use vireo_store::{EventRefs, NewEvent};

/// `USER_VDC_LOGIN`: "User … connecting from '…' using session '…' logged in."
pub const USER_VDC_LOGIN: i64 = 30;
/// `USER_VDC_LOGOUT`.
pub const USER_VDC_LOGOUT: i64 = 31;
/// `USER_VDC_LOGIN_FAILED`, severity ERROR in oVirt.
pub const USER_VDC_LOGIN_FAILED: i64 = 114;

/// Events from the engine itself carry this origin in oVirt.
const ORIGIN: &str = "oVirt";

/// User names come straight from the request: keep them printable and short so a hostile
/// login cannot forge log lines or bloat the audit log. (NUL would also be refused by the
/// store.)
fn clean(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(256)
        .collect();
    if s.chars().count() > 256 {
        out.push('…');
    }
    out
}

fn from(peer: Option<IpAddr>) -> String {
    peer.map(|ip| format!(" connecting from '{ip}'"))
        .unwrap_or_default()
}

/// A short, non-secret handle for a token in messages: the start of its hash.
fn session(hash: Option<&str>) -> String {
    hash.map(|h| format!(" using session '{}'", &h[..h.len().min(16)]))
        .unwrap_or_default()
}

fn event(
    code: i64,
    severity: &str,
    description: String,
    user_id: Option<&str>,
    now: i64,
) -> NewEvent {
    NewEvent {
        code,
        severity: severity.to_owned(),
        description,
        time_ms: now,
        origin: Some(ORIGIN.to_owned()),
        refs: EventRefs {
            user_id: user_id.map(str::to_owned),
            ..EventRefs::default()
        },
        ..NewEvent::default()
    }
}

pub(crate) fn login_succeeded(
    user_name: &str,
    user_id: &str,
    peer: Option<IpAddr>,
    token_hash: Option<&str>,
    now: i64,
) -> NewEvent {
    let text = format!(
        "User {}{}{} logged in.",
        clean(user_name),
        from(peer),
        session(token_hash)
    );
    event(USER_VDC_LOGIN, "normal", text, Some(user_id), now)
}

/// Never receives the password: only the login name as typed and the reason.
pub(crate) fn login_failed(
    login: &str,
    user_id: Option<&str>,
    peer: Option<IpAddr>,
    reason: &str,
    now: i64,
) -> NewEvent {
    let text = format!(
        "User {}{} failed to log in : '{}'.",
        clean(login),
        from(peer),
        reason
    );
    event(USER_VDC_LOGIN_FAILED, "error", text, user_id, now)
}

pub(crate) fn logged_out(
    user_name: &str,
    user_id: &str,
    peer: Option<IpAddr>,
    token_hash: &str,
    now: i64,
) -> NewEvent {
    let peer = peer
        .map(|ip| format!(" connected from '{ip}'"))
        .unwrap_or_default();
    let text = format!(
        "User {}{}{} logged out.",
        clean(user_name),
        peer,
        session(Some(token_hash))
    );
    event(USER_VDC_LOGOUT, "normal", text, Some(user_id), now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_cleaned() {
        let e = login_failed("a\nb\0c", None, None, "Invalid credentials", 1);
        assert_eq!(
            e.description,
            "User a?b?c failed to log in : 'Invalid credentials'."
        );
        let long = "x".repeat(1000);
        let e = login_failed(&long, None, None, "r", 1);
        assert!(e.description.len() < 300);
        assert_eq!(e.code, 114);
        assert_eq!(e.severity, "error");
    }
}
