//! Connection plumbing shared by both backends.
//!
//! Why an enum over two concrete pools rather than `sqlx::Any`:
//! * SQLite needs two pools (one writer, several readers) while PostgreSQL
//!   needs one; `Any` only models one pool of one kind.
//! * We rely on driver-specific features that `Any` erases: `BEGIN
//!   IMMEDIATE`, per-connection pragmas, `text[]` binds, advisory locks, and
//!   the drivers' typed error codes for unique violations.
//! * `Any` needs runtime driver installation and narrows the type system to
//!   a lowest common denominator; the enum costs one `match` per statement.
//!
//! The operations themselves are written once against [`Conn`] and [`Row`],
//! which dispatch to the concrete sqlx connection.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use sqlx::postgres::{PgConnection, PgRow};
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{Postgres, Row as _, Sqlite};

use crate::error::{Result, StoreError};
use crate::sql::{Arg, Dialect, Sql};

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;
type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

pub(crate) fn bind_sqlite<'q>(sql: &'q Sql) -> SqliteQuery<'q> {
    let mut q = sqlx::query(&sql.text);
    for arg in &sql.args {
        q = match arg {
            Arg::Text(s) => q.bind(s.as_str()),
            Arg::OptText(s) => q.bind(s.as_deref()),
            Arg::Int(i) => q.bind(*i),
            Arg::OptInt(i) => q.bind(*i),
            Arg::Real(f) => q.bind(*f),
            Arg::OptReal(f) => q.bind(*f),
            // Serialising a Vec<String> to JSON cannot fail.
            Arg::TextList(v) => q.bind(serde_json::to_string(v).unwrap_or_default()),
        };
    }
    q
}

pub(crate) fn bind_pg<'q>(sql: &'q Sql) -> PgQuery<'q> {
    let mut q = sqlx::query(&sql.text);
    for arg in &sql.args {
        q = match arg {
            Arg::Text(s) => q.bind(s.as_str()),
            Arg::OptText(s) => q.bind(s.as_deref()),
            Arg::Int(i) => q.bind(*i),
            Arg::OptInt(i) => q.bind(*i),
            Arg::Real(f) => q.bind(*f),
            Arg::OptReal(f) => q.bind(*f),
            Arg::TextList(v) => q.bind(v.as_slice()),
        };
    }
    q
}

pub(crate) enum ConnInner<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

/// A borrowed connection (pooled reader or a transaction's connection).
///
/// `failed` is set whenever the database rejects a statement, so a [`Tx`]
/// can refuse to commit afterwards (see [`StoreError::TxAborted`]).
///
/// [`Tx`]: crate::Tx
pub(crate) struct Conn<'c> {
    pub(crate) inner: ConnInner<'c>,
    pub(crate) failed: &'c mut bool,
}

impl Conn<'_> {
    pub(crate) fn dialect(&self) -> Dialect {
        match self.inner {
            ConnInner::Sqlite(_) => Dialect::Sqlite,
            ConnInner::Postgres(_) => Dialect::Postgres,
        }
    }

    pub(crate) fn sql(&self) -> Sql {
        Sql::new(self.dialect())
    }

    fn note<T>(&mut self, r: std::result::Result<T, sqlx::Error>) -> Result<T> {
        r.map_err(|e| {
            *self.failed = true;
            StoreError::from_db(e)
        })
    }

    /// Run a statement, returning the number of rows it affected.
    pub(crate) async fn execute(&mut self, sql: &Sql) -> Result<u64> {
        let r = match &mut self.inner {
            ConnInner::Sqlite(c) => bind_sqlite(sql)
                .execute(&mut **c)
                .await
                .map(|r| r.rows_affected()),
            ConnInner::Postgres(c) => bind_pg(sql)
                .execute(&mut **c)
                .await
                .map(|r| r.rows_affected()),
        };
        self.note(r)
    }

    pub(crate) async fn fetch_all(&mut self, sql: &Sql) -> Result<Vec<Row>> {
        let r = match &mut self.inner {
            ConnInner::Sqlite(c) => bind_sqlite(sql)
                .fetch_all(&mut **c)
                .await
                .map(|v| v.into_iter().map(Row::Sqlite).collect()),
            ConnInner::Postgres(c) => bind_pg(sql)
                .fetch_all(&mut **c)
                .await
                .map(|v| v.into_iter().map(Row::Postgres).collect()),
        };
        self.note(r)
    }

    pub(crate) async fn fetch_optional(&mut self, sql: &Sql) -> Result<Option<Row>> {
        let r = match &mut self.inner {
            ConnInner::Sqlite(c) => bind_sqlite(sql)
                .fetch_optional(&mut **c)
                .await
                .map(|v| v.map(Row::Sqlite)),
            ConnInner::Postgres(c) => bind_pg(sql)
                .fetch_optional(&mut **c)
                .await
                .map(|v| v.map(Row::Postgres)),
        };
        self.note(r)
    }

    /// Run a multi-statement script without parameters (migrations only).
    pub(crate) async fn execute_script(&mut self, script: &str) -> Result<()> {
        let r = match &mut self.inner {
            ConnInner::Sqlite(c) => sqlx::raw_sql(script).execute(&mut **c).await.map(|_| ()),
            ConnInner::Postgres(c) => sqlx::raw_sql(script).execute(&mut **c).await.map(|_| ()),
        };
        self.note(r)
    }
}

/// A result row from either backend, decoded by column position.
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

macro_rules! get {
    ($self:ident, $i:ident) => {
        match $self {
            Row::Sqlite(r) => r.try_get($i),
            Row::Postgres(r) => r.try_get($i),
        }
        .map_err(StoreError::Backend)
    };
}

impl Row {
    pub(crate) fn text(&self, i: usize) -> Result<String> {
        get!(self, i)
    }
    pub(crate) fn opt_text(&self, i: usize) -> Result<Option<String>> {
        get!(self, i)
    }
    pub(crate) fn int(&self, i: usize) -> Result<i64> {
        get!(self, i)
    }
    pub(crate) fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        get!(self, i)
    }
    pub(crate) fn opt_real(&self, i: usize) -> Result<Option<f64>> {
        get!(self, i)
    }
}
