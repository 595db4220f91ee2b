//! Credentials and tokens. The store only ever sees hashes: callers hash
//! passwords (with a slow KDF) and tokens (with a fast digest) themselves.

use crate::backend::{Conn, Row};
use crate::error::{Result, StoreError};
use crate::objects::now_ms;
use crate::record::check_text;
use crate::sql::Arg;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Bearer,
    Session,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Bearer => "bearer",
            TokenKind::Session => "session",
        }
    }
    fn parse(s: &str) -> Result<Self> {
        match s {
            "bearer" => Ok(TokenKind::Bearer),
            "session" => Ok(TokenKind::Session),
            other => Err(StoreError::invalid(format!("unknown token kind {other:?}"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub token_hash: String,
    pub user_id: String,
    pub kind: TokenKind,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub last_used_ms: i64,
}

impl Token {
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expires_ms <= now_ms
    }
}

const COLS: &str = "token_hash, user_id, kind, created_ms, expires_ms, last_used_ms";

fn token(r: &Row) -> Result<Token> {
    Ok(Token {
        token_hash: r.text(0)?,
        user_id: r.text(1)?,
        kind: TokenKind::parse(&r.text(2)?)?,
        created_ms: r.int(3)?,
        expires_ms: r.int(4)?,
        last_used_ms: r.int(5)?,
    })
}

pub(crate) async fn set_password_hash(c: &mut Conn<'_>, user_id: &str, hash: &str) -> Result<()> {
    if user_id.is_empty() {
        return Err(StoreError::invalid("user id must not be empty"));
    }
    check_text(user_id)?;
    check_text(hash)?;
    let mut sql = c.sql();
    sql.push("INSERT INTO credentials (user_id, password_hash, updated_ms) VALUES (");
    sql.bind_text(user_id);
    sql.push(", ");
    sql.bind_text(hash);
    sql.push(", ");
    sql.bind(Arg::Int(now_ms()));
    sql.push(
        ") ON CONFLICT (user_id) DO UPDATE SET password_hash = excluded.password_hash, \
         updated_ms = excluded.updated_ms",
    );
    c.execute(&sql).await.map(|_| ())
}

pub(crate) async fn get_password_hash(c: &mut Conn<'_>, user_id: &str) -> Result<Option<String>> {
    let mut sql = c.sql();
    sql.push("SELECT password_hash FROM credentials WHERE user_id = ");
    sql.bind_text(user_id);
    c.fetch_optional(&sql).await?.map(|r| r.text(0)).transpose()
}

pub(crate) async fn delete_credentials(c: &mut Conn<'_>, user_id: &str) -> Result<bool> {
    let mut sql = c.sql();
    sql.push("DELETE FROM credentials WHERE user_id = ");
    sql.bind_text(user_id);
    Ok(c.execute(&sql).await? > 0)
}

pub(crate) async fn insert_token(c: &mut Conn<'_>, t: &Token) -> Result<()> {
    if t.token_hash.is_empty() || t.user_id.is_empty() {
        return Err(StoreError::invalid(
            "token hash and user id must not be empty",
        ));
    }
    check_text(&t.token_hash)?;
    check_text(&t.user_id)?;
    let mut sql = c.sql();
    sql.push("INSERT INTO tokens (")
        .push(COLS)
        .push(") VALUES (");
    let args = [
        Arg::Text(t.token_hash.clone()),
        Arg::Text(t.user_id.clone()),
        Arg::Text(t.kind.as_str().to_owned()),
        Arg::Int(t.created_ms),
        Arg::Int(t.expires_ms),
        Arg::Int(t.last_used_ms),
    ];
    for (i, a) in args.into_iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind(a);
    }
    sql.push(") ON CONFLICT DO NOTHING");
    if c.execute(&sql).await? == 0 {
        return Err(StoreError::conflict("token hash already exists"));
    }
    Ok(())
}

/// The token, expired or not.
pub(crate) async fn get_token(c: &mut Conn<'_>, hash: &str) -> Result<Option<Token>> {
    let mut sql = c.sql();
    sql.push("SELECT ")
        .push(COLS)
        .push(" FROM tokens WHERE token_hash = ");
    sql.bind_text(hash);
    c.fetch_optional(&sql)
        .await?
        .as_ref()
        .map(token)
        .transpose()
}

/// Record a use; optionally slide the expiry (sessions). False if unknown.
pub(crate) async fn touch_token(
    c: &mut Conn<'_>,
    hash: &str,
    now_ms: i64,
    new_expires_ms: Option<i64>,
) -> Result<bool> {
    let mut sql = c.sql();
    sql.push("UPDATE tokens SET last_used_ms = ");
    sql.bind(Arg::Int(now_ms));
    if let Some(exp) = new_expires_ms {
        sql.push(", expires_ms = ");
        sql.bind(Arg::Int(exp));
    }
    sql.push(" WHERE token_hash = ");
    sql.bind_text(hash);
    Ok(c.execute(&sql).await? > 0)
}

pub(crate) async fn delete_token(c: &mut Conn<'_>, hash: &str) -> Result<bool> {
    let mut sql = c.sql();
    sql.push("DELETE FROM tokens WHERE token_hash = ");
    sql.bind_text(hash);
    Ok(c.execute(&sql).await? > 0)
}

pub(crate) async fn delete_expired_tokens(c: &mut Conn<'_>, now_ms: i64) -> Result<u64> {
    let mut sql = c.sql();
    sql.push("DELETE FROM tokens WHERE expires_ms <= ");
    sql.bind(Arg::Int(now_ms));
    c.execute(&sql).await
}

pub(crate) async fn delete_user_tokens(c: &mut Conn<'_>, user_id: &str) -> Result<u64> {
    let mut sql = c.sql();
    sql.push("DELETE FROM tokens WHERE user_id = ");
    sql.bind_text(user_id);
    c.execute(&sql).await
}
