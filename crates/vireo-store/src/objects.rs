//! Object operations, written once against [`Conn`].

use crate::backend::{Conn, Row};
use crate::error::{Result, StoreError};
use crate::filter::{push_filter, push_order, push_paging, Filter, Order, Query};
use crate::record::{fold_case, AttrValue, ObjectWrite, Record};
use crate::sql::{Arg, Dialect, Sql};

const COLS: &str =
    "o.kind, o.id, o.parent_id, o.name, o.doc, o.generation, o.created_ms, o.updated_ms";

/// Rows per multi-row attribute INSERT: 7 parameters each stays far below
/// SQLite's 32766 and PostgreSQL's 65535 parameter limits.
const ATTR_CHUNK: usize = 500;

/// Milliseconds since the Unix epoch (the clock the store stamps records with).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn record(row: &Row) -> Result<Record> {
    Ok(Record {
        kind: row.text(0)?,
        id: row.text(1)?,
        parent_id: row.opt_text(2)?,
        name: row.opt_text(3)?,
        doc: row.text(4)?,
        generation: row.int(5)?,
        created_ms: row.int(6)?,
        updated_ms: row.int(7)?,
    })
}

fn what(kind: &str, id: &str) -> String {
    format!("{kind} {id}")
}

pub(crate) async fn insert(c: &mut Conn<'_>, w: &ObjectWrite) -> Result<Record> {
    w.validate()?;
    let now = now_ms();
    let mut sql = c.sql();
    sql.push(
        "INSERT INTO objects (kind, id, parent_id, name, name_lc, name_scope, doc, \
         generation, created_ms, updated_ms) VALUES (",
    );
    bind_columns(&mut sql, w);
    sql.push(", 1, ");
    let t = sql.bind(Arg::Int(now));
    sql.push(", ").push_param(t);
    // DO NOTHING rather than failing: a failed statement would abort a
    // PostgreSQL transaction, and we want to report which rule was hit.
    sql.push(") ON CONFLICT DO NOTHING RETURNING seq");
    let Some(row) = c.fetch_optional(&sql).await? else {
        return Err(insert_conflict(c, w).await);
    };
    let seq = row.int(0)?;
    insert_attrs(c, seq, &w.kind, &w.attrs).await?;
    Ok(Record {
        kind: w.kind.clone(),
        id: w.id.clone(),
        parent_id: w.parent_id.clone(),
        name: w.name.clone(),
        doc: w.doc.clone(),
        generation: 1,
        created_ms: now,
        updated_ms: now,
    })
}

/// `kind, id, parent_id, name, name_lc, name_scope, doc`, in that order.
fn column_args(w: &ObjectWrite) -> [Arg; 7] {
    [
        Arg::Text(w.kind.clone()),
        Arg::Text(w.id.clone()),
        Arg::OptText(w.parent_id.clone()),
        Arg::OptText(w.name.clone()),
        Arg::OptText(w.name.as_deref().map(fold_case)),
        Arg::OptText(w.scope_key()),
        Arg::Text(w.doc.clone()),
    ]
}

/// Binds the columns of [`column_args`] as a comma-separated list.
fn bind_columns(sql: &mut Sql, w: &ObjectWrite) {
    for (i, a) in column_args(w).into_iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind(a);
    }
}

async fn insert_conflict(c: &mut Conn<'_>, w: &ObjectWrite) -> StoreError {
    match get(c, &w.kind, &w.id).await {
        Ok(Some(_)) => StoreError::conflict(format!("{} already exists", what(&w.kind, &w.id))),
        Ok(None) => name_conflict(w),
        Err(e) => e,
    }
}

fn name_conflict(w: &ObjectWrite) -> StoreError {
    StoreError::conflict(format!(
        "{} named {:?} already exists in its scope",
        w.kind,
        w.name.as_deref().unwrap_or_default()
    ))
}

async fn insert_attrs(
    c: &mut Conn<'_>,
    seq: i64,
    kind: &str,
    attrs: &[(String, AttrValue)],
) -> Result<()> {
    for chunk in attrs.chunks(ATTR_CHUNK) {
        let mut sql = c.sql();
        sql.push("INSERT INTO attrs (obj, kind, field, t, t_lc, i, r) VALUES ");
        let s = sql.arg(Arg::Int(seq));
        let k = sql.arg(Arg::Text(kind.to_owned()));
        for (i, (field, value)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push("(")
                .push_param(s)
                .push(", ")
                .push_param(k)
                .push(", ");
            sql.bind_text(field);
            let (t, t_lc, int, real) = match value {
                AttrValue::Text(t) => (Some(t.clone()), Some(fold_case(t)), None, None),
                AttrValue::Int(i) => (None, None, Some(*i), None),
                AttrValue::Real(r) => (None, None, None, Some(*r)),
            };
            for a in [
                Arg::OptText(t),
                Arg::OptText(t_lc),
                Arg::OptInt(int),
                Arg::OptReal(real),
            ] {
                sql.push(", ");
                sql.bind(a);
            }
            sql.push(")");
        }
        c.execute(&sql).await?;
    }
    Ok(())
}

pub(crate) async fn update(
    c: &mut Conn<'_>,
    w: &ObjectWrite,
    expected_generation: Option<i64>,
) -> Result<Record> {
    w.validate()?;
    // Pre-check the name so the common case yields a clean Conflict without
    // a failed statement; the UNIQUE index still guards against races.
    if let (Some(scope), Some(name)) = (w.scope_key(), &w.name) {
        let mut sql = c.sql();
        sql.push("SELECT o.id FROM objects o WHERE o.kind = ");
        sql.bind_text(&w.kind);
        sql.push(" AND o.name_scope = ");
        sql.bind(Arg::Text(scope));
        sql.push(" AND o.name = ");
        sql.bind_text(name);
        sql.push(" AND o.id <> ");
        sql.bind_text(&w.id);
        sql.push(" LIMIT 1");
        if c.fetch_optional(&sql).await?.is_some() {
            return Err(name_conflict(w));
        }
    }
    let now = now_ms();
    let mut sql = c.sql();
    sql.push("UPDATE objects SET parent_id = $3, name = $4, name_lc = $5, name_scope = $6, doc = $7, generation = generation + 1, updated_ms = $8 WHERE kind = $1 AND id = $2");
    // $1..$7 in the order of bind_columns; the text above refers to them.
    for a in column_args(w) {
        sql.arg(a);
    }
    sql.arg(Arg::Int(now));
    if let Some(g) = expected_generation {
        sql.push(" AND generation = ");
        sql.bind(Arg::Int(g));
    }
    sql.push(" RETURNING seq, generation, created_ms");
    let Some(row) = c.fetch_optional(&sql).await? else {
        let current = get(c, &w.kind, &w.id).await?;
        return Err(match (current, expected_generation) {
            (None, _) => StoreError::not_found(what(&w.kind, &w.id)),
            (Some(r), Some(expected)) => StoreError::StaleGeneration {
                kind: w.kind.clone(),
                id: w.id.clone(),
                expected,
                actual: r.generation,
            },
            // Unreachable in practice (the row exists and no generation was
            // asked for), but report it rather than panic.
            (Some(_), None) => StoreError::not_found(what(&w.kind, &w.id)),
        });
    };
    let seq = row.int(0)?;
    let mut del = c.sql();
    del.push("DELETE FROM attrs WHERE obj = ");
    del.bind(Arg::Int(seq));
    c.execute(&del).await?;
    insert_attrs(c, seq, &w.kind, &w.attrs).await?;
    Ok(Record {
        kind: w.kind.clone(),
        id: w.id.clone(),
        parent_id: w.parent_id.clone(),
        name: w.name.clone(),
        doc: w.doc.clone(),
        generation: row.int(1)?,
        created_ms: row.int(2)?,
        updated_ms: now,
    })
}

pub(crate) async fn delete(c: &mut Conn<'_>, kind: &str, id: &str) -> Result<bool> {
    let mut sql = c.sql();
    // attrs rows go with it: ON DELETE CASCADE.
    sql.push("DELETE FROM objects WHERE kind = ");
    sql.bind_text(kind);
    sql.push(" AND id = ");
    sql.bind_text(id);
    Ok(c.execute(&sql).await? > 0)
}

pub(crate) async fn get(c: &mut Conn<'_>, kind: &str, id: &str) -> Result<Option<Record>> {
    let mut sql = c.sql();
    sql.push("SELECT ")
        .push(COLS)
        .push(" FROM objects o WHERE o.kind = ");
    sql.bind_text(kind);
    sql.push(" AND o.id = ");
    sql.bind_text(id);
    c.fetch_optional(&sql)
        .await?
        .as_ref()
        .map(record)
        .transpose()
}

pub(crate) async fn get_by_name(
    c: &mut Conn<'_>,
    kind: &str,
    name: &str,
    parent_id: Option<&str>,
) -> Result<Option<Record>> {
    let mut sql = c.sql();
    sql.push("SELECT ")
        .push(COLS)
        .push(" FROM objects o WHERE o.kind = ");
    sql.bind_text(kind);
    sql.push(" AND o.name = ");
    sql.bind_text(name);
    if let Some(p) = parent_id {
        sql.push(" AND o.parent_id = ");
        sql.bind_text(p);
    }
    sql.push(" ORDER BY o.seq LIMIT 1");
    c.fetch_optional(&sql)
        .await?
        .as_ref()
        .map(record)
        .transpose()
}

pub(crate) async fn get_attrs(
    c: &mut Conn<'_>,
    kind: &str,
    id: &str,
) -> Result<Vec<(String, AttrValue)>> {
    let mut sql = c.sql();
    sql.push(
        "SELECT a.field, a.t, a.i, a.r FROM attrs a JOIN objects o ON a.obj = o.seq \
         WHERE o.kind = ",
    );
    sql.bind_text(kind);
    sql.push(" AND o.id = ");
    sql.bind_text(id);
    sql.push(" ORDER BY a.field, a.t, a.i, a.r");
    let rows = c.fetch_all(&sql).await?;
    rows.iter()
        .map(|r| {
            let value = match (r.opt_text(1)?, r.opt_int(2)?, r.opt_real(3)?) {
                (Some(t), _, _) => AttrValue::Text(t),
                (None, Some(i), _) => AttrValue::Int(i),
                (None, None, Some(f)) => AttrValue::Real(f),
                (None, None, None) => AttrValue::Text(String::new()),
            };
            Ok((r.text(0)?, value))
        })
        .collect()
}

/// `SELECT <head> FROM objects o WHERE <kind> AND <filter>`.
fn select_where(dialect: Dialect, head: &str, kind: &str, filter: &Filter) -> Result<Sql> {
    let mut sql = Sql::new(dialect);
    sql.push(head).push(" FROM objects o WHERE ");
    let k = sql.arg(Arg::Text(kind.to_owned()));
    sql.push("o.kind = ").push_param(k);
    sql.push(" AND ");
    push_filter(&mut sql, k, filter)?;
    Ok(sql)
}

/// The statement `list` runs.
pub(crate) fn list_sql(dialect: Dialect, kind: &str, q: &Query) -> Result<Sql> {
    let mut sql = select_where(dialect, &format!("SELECT {COLS}"), kind, &q.filter)?;
    push_order(&mut sql, q.order_by.as_ref());
    push_paging(&mut sql, q.limit, q.offset)?;
    Ok(sql)
}

/// The columns a list may be ordered by in memory: the ones every row carries.
#[derive(Clone, Copy)]
enum RowKey {
    Seq,
    Name,
    Created,
    Updated,
    Id,
}

/// Unpaged lists ordered by a record column are sorted here rather than by the database:
/// both SQLite and PostgreSQL sort the whole rows (documents included), and once those
/// outgrow the sort memory (SQLite's temp cache is 2 MiB) they spill to temporary files —
/// about half the time of a 1,000-VM search. Same order as `push_order`: missing names
/// last, ties by insertion order.
fn row_key(q: &Query) -> Option<(RowKey, Order)> {
    if q.limit.is_some() || q.offset != 0 {
        return None;
    }
    Some(match &q.order_by {
        None => (RowKey::Seq, Order::Asc),
        Some((f, o)) => (
            match f.as_str() {
                "name" => RowKey::Name,
                "created" => RowKey::Created,
                "updated" => RowKey::Updated,
                "id" => RowKey::Id,
                _ => return None,
            },
            *o,
        ),
    })
}

fn sort_rows(rows: &mut [(i64, Record)], key: RowKey, order: Order) {
    use std::cmp::Ordering;
    let desc = order == Order::Desc;
    let dir = |o: Ordering| if desc { o.reverse() } else { o };
    rows.sort_unstable_by(|(sa, a), (sb, b)| {
        let by_key = match key {
            RowKey::Seq => Ordering::Equal,
            // NULLS LAST whatever the direction.
            RowKey::Name => match (&a.name, &b.name) {
                (Some(x), Some(y)) => dir(x.as_bytes().cmp(y.as_bytes())),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            },
            RowKey::Created => dir(a.created_ms.cmp(&b.created_ms)),
            RowKey::Updated => dir(a.updated_ms.cmp(&b.updated_ms)),
            RowKey::Id => dir(a.id.as_bytes().cmp(b.id.as_bytes())),
        };
        by_key.then_with(|| dir(sa.cmp(sb)))
    });
}

pub(crate) async fn list(c: &mut Conn<'_>, kind: &str, q: &Query) -> Result<Vec<Record>> {
    let Some((key, order)) = row_key(q) else {
        let sql = list_sql(c.dialect(), kind, q)?;
        return c.fetch_all(&sql).await?.iter().map(record).collect();
    };
    let sql = select_where(
        c.dialect(),
        &format!("SELECT {COLS}, o.seq"),
        kind,
        &q.filter,
    )?;
    let mut rows = c
        .fetch_all(&sql)
        .await?
        .iter()
        .map(|r| Ok((r.int(8)?, record(r)?)))
        .collect::<Result<Vec<_>>>()?;
    sort_rows(&mut rows, key, order);
    Ok(rows.into_iter().map(|(_, r)| r).collect())
}

pub(crate) async fn count(c: &mut Conn<'_>, kind: &str, filter: &Filter) -> Result<i64> {
    let sql = select_where(c.dialect(), "SELECT COUNT(*)", kind, filter)?;
    match c.fetch_optional(&sql).await? {
        Some(row) => row.int(0),
        None => Ok(0),
    }
}
