//! vireo-store: the engine's persistence layer.
//!
//! One async interface over two backends, chosen by URL at runtime:
//! SQLite (embedded default; `sqlite:///path/vireo.db` or a plain path) and
//! PostgreSQL (`postgres://...`).
//!
//! * **Objects**: the inventory, as [`Record`]s with opaque JSON docs plus
//!   indexed attributes searched through a [`Filter`] AST compiled to one
//!   parameterised statement.
//! * **Events**: the audit log, with ever-growing ids.
//! * **Auth**: password hashes and token hashes (never plaintext).
//!
//! Reads go through [`Store`] directly (a pooled read connection, seeing
//! committed data). Every mutation goes through a [`Tx`]:
//!
//! ```no_run
//! # async fn demo() -> vireo_store::Result<()> {
//! use vireo_store::{ObjectWrite, Store, NameScope};
//! let store = Store::open("sqlite:///var/lib/vireo/vireo.db").await?;
//! let mut tx = store.begin().await?;
//! tx.insert(&ObjectWrite::new("vm", "6f1c...", "{}").name("web1").unique(NameScope::Global))
//!     .await?;
//! tx.commit().await?; // dropping tx instead would roll back
//! # Ok(()) }
//! ```

mod auth;
mod backend;
mod error;
mod events;
mod filter;
mod migrate;
mod objects;
mod pattern;
mod record;
mod sql;
mod tx;

#[cfg(test)]
mod plan_tests;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Postgres, Sqlite};

use backend::postgres::PgPools;
use backend::sqlite::{self as sqlite_backend, SqlitePools};
use backend::{Conn, ConnInner};
use tx::TxInner;

pub use auth::{Token, TokenKind};
pub use error::{Result, StoreError};
pub use events::{Event, EventField, EventFilter, EventQuery, EventRefs, NewEvent};
pub use filter::{CmpOp, Filter, Order, Query};
pub use migrate::schema_version;
pub use objects::now_ms;
pub use record::{AttrValue, NameScope, ObjectWrite, Record, RESERVED_FIELDS};
pub use tx::Tx;

/// The future type [`Store::write`] closures return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

enum Pools {
    Sqlite(SqlitePools),
    Postgres(PgPools),
}

/// A handle to the database; cheap to clone, share it freely.
#[derive(Clone)]
pub struct Store {
    pools: Arc<Pools>,
}

enum ReadConn {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

/// A pooled read connection for one call. `failed` is unused for reads
/// (there is nothing to commit) but `Conn` wants somewhere to record it.
struct Reader {
    conn: ReadConn,
    failed: bool,
}

impl Reader {
    fn conn(&mut self) -> Conn<'_> {
        let inner = match &mut self.conn {
            ReadConn::Sqlite(c) => ConnInner::Sqlite(c),
            ReadConn::Postgres(c) => ConnInner::Postgres(c),
        };
        Conn {
            inner,
            failed: &mut self.failed,
        }
    }
}

impl Store {
    /// Open (creating if needed) and migrate the database at `url`:
    /// `postgres://` / `postgresql://` URLs select PostgreSQL; `sqlite:` URLs
    /// and plain paths select SQLite. Re-opening reuses existing data.
    pub async fn open(url: &str) -> Result<Store> {
        let pools = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Pools::Postgres(PgPools::open(url).await?)
        } else {
            Pools::Sqlite(SqlitePools::open(&sqlite_backend::parse_path(url)?).await?)
        };
        let store = Store {
            pools: Arc::new(pools),
        };
        let mut tx = store.begin().await?;
        migrate::run(&mut tx.conn()).await?;
        tx.commit().await?;
        Ok(store)
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match *self.pools {
            Pools::Sqlite(_) => "sqlite",
            Pools::Postgres(_) => "postgres",
        }
    }

    /// Start a write transaction. On SQLite this waits for the single
    /// writer connection and takes the write lock (`BEGIN IMMEDIATE`).
    pub async fn begin(&self) -> Result<Tx> {
        Ok(Tx::new(match &*self.pools {
            Pools::Sqlite(p) => TxInner::Sqlite(p.begin().await?),
            Pools::Postgres(p) => TxInner::Postgres(p.begin().await?),
        }))
    }

    /// Run `f` in a transaction: commit if it returns `Ok`, roll back if it
    /// returns `Err` (or panics, or the future is dropped).
    ///
    /// ```no_run
    /// # async fn demo(store: vireo_store::Store) -> vireo_store::Result<()> {
    /// use vireo_store::ObjectWrite;
    /// let rec = store
    ///     .write(|tx| Box::pin(async move {
    ///         tx.insert(&ObjectWrite::new("vm", "id-1", "{}")).await
    ///     }))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        F: for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, Result<T>>,
    {
        let mut tx = self.begin().await?;
        match f(&mut tx).await {
            Ok(value) => {
                tx.commit().await?;
                Ok(value)
            }
            Err(e) => {
                // The caller's error matters more than a rollback failure;
                // a connection that cannot roll back is discarded by sqlx.
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    /// Close all connections (SQLite checkpoints its WAL on last close).
    pub async fn close(&self) {
        match &*self.pools {
            Pools::Sqlite(p) => p.close().await,
            Pools::Postgres(p) => p.close().await,
        }
    }

    async fn reader(&self) -> Result<Reader> {
        let conn = match &*self.pools {
            Pools::Sqlite(p) => ReadConn::Sqlite(p.reader().await?),
            Pools::Postgres(p) => ReadConn::Postgres(p.reader().await?),
        };
        Ok(Reader {
            conn,
            failed: false,
        })
    }

    // ---- committed-data reads (same semantics as the `Tx` methods) -------

    pub async fn get(&self, kind: &str, id: &str) -> Result<Option<Record>> {
        objects::get(&mut self.reader().await?.conn(), kind, id).await
    }

    /// The oldest record of `kind` named `name` (optionally under a parent).
    pub async fn get_by_name(
        &self,
        kind: &str,
        name: &str,
        parent_id: Option<&str>,
    ) -> Result<Option<Record>> {
        objects::get_by_name(&mut self.reader().await?.conn(), kind, name, parent_id).await
    }

    /// A record's indexed attributes, sorted by field then value.
    pub async fn get_attrs(&self, kind: &str, id: &str) -> Result<Vec<(String, AttrValue)>> {
        objects::get_attrs(&mut self.reader().await?.conn(), kind, id).await
    }

    pub async fn list(&self, kind: &str, query: &Query) -> Result<Vec<Record>> {
        objects::list(&mut self.reader().await?.conn(), kind, query).await
    }

    pub async fn count(&self, kind: &str, filter: &Filter) -> Result<i64> {
        objects::count(&mut self.reader().await?.conn(), kind, filter).await
    }

    pub async fn get_event(&self, id: i64) -> Result<Option<Event>> {
        events::get(&mut self.reader().await?.conn(), id).await
    }

    pub async fn list_events(&self, query: &EventQuery) -> Result<Vec<Event>> {
        events::list(&mut self.reader().await?.conn(), query).await
    }

    pub async fn get_password_hash(&self, user_id: &str) -> Result<Option<String>> {
        auth::get_password_hash(&mut self.reader().await?.conn(), user_id).await
    }

    /// The token whatever its expiry; see also [`Store::get_live_token`].
    pub async fn get_token(&self, token_hash: &str) -> Result<Option<Token>> {
        auth::get_token(&mut self.reader().await?.conn(), token_hash).await
    }

    /// The token only if it has not expired at `now_ms`.
    pub async fn get_live_token(&self, token_hash: &str, now_ms: i64) -> Result<Option<Token>> {
        Ok(self
            .get_token(token_hash)
            .await?
            .filter(|t| !t.is_expired(now_ms)))
    }
}
