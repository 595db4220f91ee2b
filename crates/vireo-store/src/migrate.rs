//! A small versioned migration runner.
//!
//! Why not `sqlx::migrate!`: it needs sqlx's proc-macro crate, which builds
//! a second copy of both drivers (including the bundled SQLite C code) for
//! the host — minutes on a 2-core builder — for a job this file does in a
//! page. Semantics are the same: numbered scripts per backend, each applied
//! once inside the opening transaction, recorded with a checksum so an
//! edited, already-applied script is detected instead of silently ignored.

use crate::backend::Conn;
use crate::error::{Result, StoreError};
use crate::objects::now_ms;
use crate::sql::{Arg, Dialect};

pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

/// Append new scripts at the end; never edit one that has shipped.
pub(crate) const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/sqlite/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "planner_stats",
        sql: include_str!("../migrations/sqlite/0002_planner_stats.sql"),
    },
    Migration {
        version: 3,
        name: "event_indexes",
        sql: include_str!("../migrations/sqlite/0003_event_indexes.sql"),
    },
];

pub(crate) const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "event_indexes",
        sql: include_str!("../migrations/postgres/0002_event_indexes.sql"),
    },
];

/// Advisory lock key for concurrent `open`s of one PostgreSQL database
/// ("vireomig"). SQLite is serialised by BEGIN IMMEDIATE.
const MIGRATE_LOCK: i64 = 0x7669_7265_6f6d_6967;

/// FNV-1a: only needs to notice edits, not resist attackers.
fn checksum(sql: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sql.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Bring the schema up to date. `c` must be inside a transaction.
pub(crate) async fn run(c: &mut Conn<'_>) -> Result<()> {
    let migrations = match c.dialect() {
        Dialect::Sqlite => SQLITE,
        Dialect::Postgres => {
            let mut lock = c.sql();
            lock.push("SELECT pg_advisory_xact_lock(");
            lock.bind(Arg::Int(MIGRATE_LOCK));
            lock.push(")");
            c.execute(&lock).await?;
            POSTGRES
        }
    };
    c.execute_script(
        "CREATE TABLE IF NOT EXISTS vireo_schema (
            version BIGINT PRIMARY KEY,
            name TEXT NOT NULL,
            checksum TEXT NOT NULL,
            applied_ms BIGINT NOT NULL)",
    )
    .await?;
    let mut sql = c.sql();
    sql.push("SELECT version, checksum FROM vireo_schema ORDER BY version");
    let applied = c.fetch_all(&sql).await?;
    let newest = migrations.last().map_or(0, |m| m.version);
    let mut current = 0;
    for row in &applied {
        let (version, sum) = (row.int(0)?, row.text(1)?);
        let Some(m) = migrations.iter().find(|m| m.version == version) else {
            return Err(StoreError::Migration(format!(
                "database has schema version {version}, this build knows up to {newest}; \
                 refusing to run an older binary on a newer database"
            )));
        };
        if checksum(m.sql) != sum {
            return Err(StoreError::Migration(format!(
                "migration {version} ({}) differs from the one applied to this database",
                m.name
            )));
        }
        current = current.max(version);
    }
    for m in migrations.iter().filter(|m| m.version > current) {
        c.execute_script(m.sql).await?;
        let mut ins = c.sql();
        ins.push("INSERT INTO vireo_schema (version, name, checksum, applied_ms) VALUES (");
        ins.bind(Arg::Int(m.version));
        ins.push(", ");
        ins.bind_text(m.name);
        ins.push(", ");
        ins.bind(Arg::Text(checksum(m.sql)));
        ins.push(", ");
        ins.bind(Arg::Int(now_ms()));
        ins.push(")");
        c.execute(&ins).await?;
    }
    Ok(())
}

/// The newest schema version this build applies on `backend` ("sqlite" or
/// "postgres"; for diagnostics).
pub fn schema_version(backend: &str) -> i64 {
    let list = if backend == "postgres" {
        POSTGRES
    } else {
        SQLITE
    };
    list.last().map_or(0, |m| m.version)
}
