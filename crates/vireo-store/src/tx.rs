//! Write transactions.

use sqlx::{Postgres, Sqlite, Transaction};

use crate::auth::{self, Token};
use crate::backend::{Conn, ConnInner};
use crate::error::{Result, StoreError};
use crate::events::{self, Event, EventQuery, NewEvent};
use crate::filter::{Filter, Query};
use crate::objects;
use crate::record::{AttrValue, ObjectWrite, Record};

pub(crate) enum TxInner {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// A database transaction: the only way to change anything.
///
/// Obtained from [`Store::begin`](crate::Store::begin). Nothing is visible
/// to others until [`Tx::commit`] returns `Ok`; dropping a `Tx` (early
/// return, `?`, panic, cancelled future) rolls it back. Reads through a `Tx`
/// see its own uncommitted writes.
///
/// On SQLite a `Tx` holds the database's single write connection, so keep
/// transactions short and never hold one across network calls: other writers
/// wait for it. For the same reason never call `Store::begin` (or
/// `Store::write`) while holding a `Tx` in the same task: it would wait for
/// the connection this task holds, until the acquire timeout. Reads through
/// the `Store` are fine (they use the read pool, and see committed data only).
///
/// If the database rejects a statement (as opposed to a `Conflict` or
/// `StaleGeneration` the store detects itself, or an `Invalid` input), the
/// transaction is spoiled: PostgreSQL aborts it, and `commit` returns
/// [`StoreError::TxAborted`] on both backends.
pub struct Tx {
    inner: TxInner,
    failed: bool,
}

impl Tx {
    pub(crate) fn new(inner: TxInner) -> Self {
        Tx {
            inner,
            failed: false,
        }
    }

    pub(crate) fn conn(&mut self) -> Conn<'_> {
        let inner = match &mut self.inner {
            TxInner::Sqlite(t) => ConnInner::Sqlite(t),
            TxInner::Postgres(t) => ConnInner::Postgres(t),
        };
        Conn {
            inner,
            failed: &mut self.failed,
        }
    }

    /// Make the transaction durable. Fails with [`StoreError::TxAborted`]
    /// (after rolling back) if any statement in it failed.
    pub async fn commit(self) -> Result<()> {
        if self.failed {
            self.rollback().await?;
            return Err(StoreError::TxAborted);
        }
        match self.inner {
            TxInner::Sqlite(t) => t.commit().await?,
            TxInner::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    /// Discard everything done in the transaction (same as dropping it, but
    /// waits for the rollback and reports its errors).
    pub async fn rollback(self) -> Result<()> {
        match self.inner {
            TxInner::Sqlite(t) => t.rollback().await?,
            TxInner::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }

    // ---- objects ---------------------------------------------------------

    /// Insert a new record (generation 1). `Conflict` if `(kind, id)` exists
    /// or the name is taken in its [`NameScope`](crate::NameScope).
    pub async fn insert(&mut self, obj: &ObjectWrite) -> Result<Record> {
        objects::insert(&mut self.conn(), obj).await
    }

    /// Replace a record's parent, name, scope, doc and attributes.
    /// With `Some(expected_generation)`, fails with `StaleGeneration` unless
    /// that is the current generation. `NotFound` if it does not exist.
    pub async fn update(
        &mut self,
        obj: &ObjectWrite,
        expected_generation: Option<i64>,
    ) -> Result<Record> {
        objects::update(&mut self.conn(), obj, expected_generation).await
    }

    /// Delete a record and its attributes; false if it did not exist.
    pub async fn delete(&mut self, kind: &str, id: &str) -> Result<bool> {
        objects::delete(&mut self.conn(), kind, id).await
    }

    pub async fn get(&mut self, kind: &str, id: &str) -> Result<Option<Record>> {
        objects::get(&mut self.conn(), kind, id).await
    }

    pub async fn get_by_name(
        &mut self,
        kind: &str,
        name: &str,
        parent_id: Option<&str>,
    ) -> Result<Option<Record>> {
        objects::get_by_name(&mut self.conn(), kind, name, parent_id).await
    }

    pub async fn get_attrs(&mut self, kind: &str, id: &str) -> Result<Vec<(String, AttrValue)>> {
        objects::get_attrs(&mut self.conn(), kind, id).await
    }

    pub async fn list(&mut self, kind: &str, query: &Query) -> Result<Vec<Record>> {
        objects::list(&mut self.conn(), kind, query).await
    }

    pub async fn count(&mut self, kind: &str, filter: &Filter) -> Result<i64> {
        objects::count(&mut self.conn(), kind, filter).await
    }

    // ---- events ----------------------------------------------------------

    /// Append an event; returns its id. On PostgreSQL this also serialises
    /// event-writing transactions until commit (see `events.rs` for why).
    pub async fn insert_event(&mut self, event: &NewEvent) -> Result<i64> {
        events::insert(&mut self.conn(), event).await
    }

    pub async fn get_event(&mut self, id: i64) -> Result<Option<Event>> {
        events::get(&mut self.conn(), id).await
    }

    pub async fn list_events(&mut self, query: &EventQuery) -> Result<Vec<Event>> {
        events::list(&mut self.conn(), query).await
    }

    pub async fn delete_event(&mut self, id: i64) -> Result<bool> {
        events::delete(&mut self.conn(), id).await
    }

    /// Retention: delete events older than `time_ms`; returns how many.
    pub async fn delete_events_before(&mut self, time_ms: i64) -> Result<u64> {
        events::delete_before(&mut self.conn(), time_ms).await
    }

    // ---- auth ------------------------------------------------------------

    /// Create or replace a user's password hash.
    pub async fn set_password_hash(&mut self, user_id: &str, password_hash: &str) -> Result<()> {
        auth::set_password_hash(&mut self.conn(), user_id, password_hash).await
    }

    pub async fn get_password_hash(&mut self, user_id: &str) -> Result<Option<String>> {
        auth::get_password_hash(&mut self.conn(), user_id).await
    }

    pub async fn delete_credentials(&mut self, user_id: &str) -> Result<bool> {
        auth::delete_credentials(&mut self.conn(), user_id).await
    }

    /// `Conflict` if the hash already exists.
    pub async fn insert_token(&mut self, token: &Token) -> Result<()> {
        auth::insert_token(&mut self.conn(), token).await
    }

    /// The token whatever its expiry; see also [`Tx::get_live_token`].
    pub async fn get_token(&mut self, token_hash: &str) -> Result<Option<Token>> {
        auth::get_token(&mut self.conn(), token_hash).await
    }

    /// The token only if it has not expired at `now_ms`.
    pub async fn get_live_token(&mut self, token_hash: &str, now_ms: i64) -> Result<Option<Token>> {
        Ok(self
            .get_token(token_hash)
            .await?
            .filter(|t| !t.is_expired(now_ms)))
    }

    /// Set `last_used_ms` (and, for sliding sessions, `expires_ms`).
    /// False if the token does not exist.
    pub async fn touch_token(
        &mut self,
        token_hash: &str,
        now_ms: i64,
        new_expires_ms: Option<i64>,
    ) -> Result<bool> {
        auth::touch_token(&mut self.conn(), token_hash, now_ms, new_expires_ms).await
    }

    pub async fn delete_token(&mut self, token_hash: &str) -> Result<bool> {
        auth::delete_token(&mut self.conn(), token_hash).await
    }

    /// Delete tokens with `expires_ms <= now_ms`; returns how many.
    pub async fn delete_expired_tokens(&mut self, now_ms: i64) -> Result<u64> {
        auth::delete_expired_tokens(&mut self.conn(), now_ms).await
    }

    /// Delete all tokens of a user (logout everywhere, user removal).
    pub async fn delete_user_tokens(&mut self, user_id: &str) -> Result<u64> {
        auth::delete_user_tokens(&mut self.conn(), user_id).await
    }
}
