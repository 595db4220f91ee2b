//! SQLite backend: one writer connection, a small pool of readers.
//!
//! SQLite allows one writer at a time per database. Instead of letting
//! several connections race for the write lock (and occasionally fail with
//! SQLITE_BUSY despite busy_timeout, e.g. when a deferred transaction tries
//! to upgrade from a stale read snapshot), every transaction goes through a
//! pool of exactly ONE connection and starts with `BEGIN IMMEDIATE`: writers
//! queue in the pool, in-process, and the lock is taken up front. Readers use
//! separate read-only connections; in WAL mode they never block the writer
//! and never see uncommitted data.
//!
//! Durability: `journal_mode=WAL` with `synchronous=FULL` fsyncs the WAL on
//! every COMMIT, so a transaction whose `commit()` returned survives kill -9
//! and power loss alike.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use crate::error::{Result, StoreError};

/// How long a connection waits on a lock held by another process before
/// giving up. Inside one process writes are queued by the pool instead.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a writer waits for the single write connection.
const WRITE_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(120);
const READERS: u32 = 4;

pub(crate) struct SqlitePools {
    write: SqlitePool,
    read: SqlitePool,
}

/// Turn `sqlite:///abs/path`, `sqlite://rel/path`, `sqlite:path` or a plain
/// path into a filesystem path.
pub(crate) fn parse_path(url: &str) -> Result<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"));
    let path = match rest {
        Some(rest) => {
            if rest.contains('?') {
                return Err(StoreError::invalid(
                    "sqlite URL query parameters are not supported",
                ));
            }
            rest
        }
        None => url,
    };
    if path.is_empty() || path.contains(":memory:") || path.starts_with("file:") {
        return Err(StoreError::invalid(format!(
            "sqlite needs a database file path, got {url:?} (in-memory databases are not supported: \
             readers and the writer must share one database)"
        )));
    }
    Ok(PathBuf::from(path))
}

impl SqlitePools {
    pub(crate) async fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::invalid(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let base = SqliteConnectOptions::new()
            .filename(path)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("cache_size", "-32768")
            .pragma("mmap_size", "268435456");
        // The writer opens first: it creates the file and switches it to WAL
        // (a persistent property of the file, so readers need not set it).
        let write_opts = base
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(WRITE_ACQUIRE_TIMEOUT)
            .connect_with(write_opts)
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(base.read_only(true))
            .await?;
        Ok(SqlitePools { write, read })
    }

    pub(crate) async fn begin(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
    }

    pub(crate) async fn reader(&self) -> Result<PoolConnection<Sqlite>> {
        Ok(self.read.acquire().await?)
    }

    pub(crate) async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}
