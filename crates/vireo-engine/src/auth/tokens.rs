//! Bearer tokens and session ids: how they are made, hashed, kept alive and revoked.
//!
//! A token is 32 random bytes in base64url without padding (43 characters, safe in headers,
//! cookies and form bodies). The store only ever sees its SHA-256, so a copy of the database
//! cannot be replayed against the API.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use vireo_store::{Token, TokenKind};

use super::{audit, Auth, Principal};

/// A new token and the hash the store keeps for it.
pub(crate) fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_token(&token);
    (token, hash)
}

/// Lower-case hex SHA-256 of the token text.
pub(crate) fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A session's idle timeout. Sessions are created with `expires = last_used + ttl` and every
/// touch moves both together, so the difference *is* the TTL; no extra column is needed.
fn idle_ttl(t: &Token) -> i64 {
    (t.expires_ms - t.last_used_ms).max(0)
}

/// Whether a use of `t` at `now` should be written back. Writing on every request would make
/// each API call a write transaction (SQLite has one writer), so uses are recorded at most
/// every 30 s — or every quarter of a short session TTL, so a sliding session never expires
/// while it is being used.
fn due_for_touch(t: &Token, now: i64) -> bool {
    let every = match t.kind {
        TokenKind::Bearer => 30_000,
        TokenKind::Session => (idle_ttl(t) / 4).clamp(1_000, 30_000),
    };
    now - t.last_used_ms >= every
}

impl Auth {
    /// Creates and stores a token for `user_id`; returns (token, hash, expires_ms). The same
    /// transaction records the login event and drops expired tokens, so the table cannot
    /// grow without bound even if nobody runs [`Auth::purge_expired`].
    pub(crate) async fn issue_token(
        &self,
        p: &Principal,
        kind: TokenKind,
        ttl_ms: i64,
        peer: Option<std::net::IpAddr>,
    ) -> Result<(String, String, i64), String> {
        let now = self.now();
        let (token, hash) = new_token();
        let expires_ms = now.saturating_add(ttl_ms);
        let row = Token {
            token_hash: hash.clone(),
            user_id: p.user_id.clone(),
            kind,
            created_ms: now,
            expires_ms,
            last_used_ms: now,
        };
        let event = audit::login_succeeded(&p.user_name, &p.user_id, peer, Some(&hash), now);
        let mut tx = self.store.begin().await.map_err(|e| e.to_string())?;
        tx.delete_expired_tokens(now)
            .await
            .map_err(|e| e.to_string())?;
        tx.insert_token(&row).await.map_err(|e| e.to_string())?;
        tx.insert_event(&event).await.map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
        Ok((token, hash, expires_ms))
    }

    /// The live token of `kind` behind `token`, recording the use (and sliding a session's
    /// expiry). Expired tokens are deleted on sight. `None` for anything unknown.
    pub(crate) async fn use_token(
        &self,
        token: &str,
        kind: TokenKind,
    ) -> Result<Option<Token>, String> {
        if token.is_empty() {
            return Ok(None);
        }
        let hash = hash_token(token);
        let now = self.now();
        let Some(t) = self
            .store
            .get_token(&hash)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        if t.kind != kind {
            return Ok(None);
        }
        if t.is_expired(now) {
            self.delete_token_hash(&hash).await;
            return Ok(None);
        }
        if due_for_touch(&t, now) {
            let slide = (kind == TokenKind::Session).then(|| now.saturating_add(idle_ttl(&t)));
            // A failed touch only loses bookkeeping; the token itself is valid.
            if let Err(e) = self.touch(&hash, now, slide).await {
                tracing::warn!("could not record token use: {e}");
            }
        }
        Ok(Some(t))
    }

    async fn touch(&self, hash: &str, now: i64, slide: Option<i64>) -> Result<(), String> {
        let mut tx = self.store.begin().await.map_err(|e| e.to_string())?;
        tx.touch_token(hash, now, slide)
            .await
            .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())
    }

    /// Deletes a token by hash; errors are logged, because every caller is already on its way
    /// to refusing or ending the token anyway.
    pub(crate) async fn delete_token_hash(&self, hash: &str) -> bool {
        let result = async {
            let mut tx = self.store.begin().await?;
            let gone = tx.delete_token(hash).await?;
            tx.commit().await?;
            Ok::<_, vireo_store::StoreError>(gone)
        }
        .await;
        result.unwrap_or_else(|e| {
            tracing::warn!("could not delete token: {e}");
            false
        })
    }

    /// Revokes a bearer token or session (logout). Unknown tokens are not an error: revoking
    /// twice must succeed, as OAuth revocation (RFC 7009) requires. Logs a logout event for
    /// tokens that were live.
    pub async fn revoke(
        &self,
        token: &str,
        peer: Option<std::net::IpAddr>,
    ) -> anyhow::Result<bool> {
        let hash = hash_token(token);
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let Some(t) = tx.get_token(&hash).await? else {
            return Ok(false);
        };
        tx.delete_token(&hash).await?;
        if !t.is_expired(now) {
            let user_name = match tx.get("users", &t.user_id).await? {
                Some(rec) => rec.name.unwrap_or_default(),
                None => String::new(),
            };
            let event = audit::logged_out(&user_name, &t.user_id, peer, &hash, now);
            tx.insert_event(&event).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Drops every expired token; returns how many. Cheap (indexed); the engine may run it
    /// periodically, though logins already do it.
    pub async fn purge_expired(&self) -> anyhow::Result<u64> {
        let mut tx = self.store.begin().await?;
        let n = tx.delete_expired_tokens(self.now()).await?;
        tx.commit().await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_url_safe_chars_and_hashed() {
        let (t, h) = new_token();
        assert_eq!(t.len(), 43);
        assert!(t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(h.len(), 64);
        assert_eq!(h, hash_token(&t));
        assert_ne!(t, new_token().0);
    }

    #[test]
    fn touch_throttle() {
        let t = |kind, last, exp| Token {
            token_hash: "h".into(),
            user_id: "u".into(),
            kind,
            created_ms: 0,
            expires_ms: exp,
            last_used_ms: last,
        };
        assert!(!due_for_touch(&t(TokenKind::Bearer, 0, 1 << 40), 29_999));
        assert!(due_for_touch(&t(TokenKind::Bearer, 0, 1 << 40), 30_000));
        // A one-minute session is touched every 15 s.
        assert!(due_for_touch(&t(TokenKind::Session, 0, 60_000), 15_000));
        assert!(!due_for_touch(&t(TokenKind::Session, 0, 60_000), 14_999));
    }
}
