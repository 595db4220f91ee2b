//! The audit log.

use crate::backend::{Conn, Row};
use crate::error::{Result, StoreError};
use crate::filter::Order;
use crate::record::check_text;
use crate::sql::{Arg, Dialect};

/// Optional references from an event to the objects it concerns. In a
/// query, every `Some` field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventRefs {
    pub vm_id: Option<String>,
    pub host_id: Option<String>,
    pub cluster_id: Option<String>,
    pub data_center_id: Option<String>,
    pub storage_domain_id: Option<String>,
    pub user_id: Option<String>,
    pub template_id: Option<String>,
}

const REF_COLS: [&str; 7] = [
    "vm_id",
    "host_id",
    "cluster_id",
    "data_center_id",
    "storage_domain_id",
    "user_id",
    "template_id",
];

impl EventRefs {
    fn values(&self) -> [&Option<String>; 7] {
        [
            &self.vm_id,
            &self.host_id,
            &self.cluster_id,
            &self.data_center_id,
            &self.storage_domain_id,
            &self.user_id,
            &self.template_id,
        ]
    }
}

/// An event to append.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewEvent {
    pub code: i64,
    pub severity: String,
    pub description: String,
    pub time_ms: i64,
    pub correlation_id: Option<String>,
    pub origin: Option<String>,
    pub refs: EventRefs,
    /// JSON text, opaque to the store; empty means `{}`.
    pub doc: String,
}

/// A stored event; `id` only ever grows.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: i64,
    pub code: i64,
    pub severity: String,
    pub description: String,
    pub time_ms: i64,
    pub correlation_id: Option<String>,
    pub origin: Option<String>,
    pub refs: EventRefs,
    pub doc: String,
}

/// Which events to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    /// Only events with `id > from`.
    pub from: Option<i64>,
    /// At most this many.
    pub max: Option<i64>,
    /// `Desc` = newest first (the default), `Asc` = oldest first.
    pub order: Order,
    pub refs: EventRefs,
    pub correlation_id: Option<String>,
}

impl Default for EventQuery {
    fn default() -> Self {
        EventQuery {
            from: None,
            max: None,
            order: Order::Desc,
            refs: EventRefs::default(),
            correlation_id: None,
        }
    }
}

const COLS: &str = "id, code, severity, description, time_ms, correlation_id, origin, \
    vm_id, host_id, cluster_id, data_center_id, storage_domain_id, user_id, template_id, doc";

/// Advisory lock key serialising event inserts on PostgreSQL ("vireoevt").
const EVENT_LOCK: i64 = 0x7669_7265_6f65_7674;

fn event(r: &Row) -> Result<Event> {
    Ok(Event {
        id: r.int(0)?,
        code: r.int(1)?,
        severity: r.text(2)?,
        description: r.text(3)?,
        time_ms: r.int(4)?,
        correlation_id: r.opt_text(5)?,
        origin: r.opt_text(6)?,
        refs: EventRefs {
            vm_id: r.opt_text(7)?,
            host_id: r.opt_text(8)?,
            cluster_id: r.opt_text(9)?,
            data_center_id: r.opt_text(10)?,
            storage_domain_id: r.opt_text(11)?,
            user_id: r.opt_text(12)?,
            template_id: r.opt_text(13)?,
        },
        doc: r.text(14)?,
    })
}

pub(crate) async fn insert(c: &mut Conn<'_>, e: &NewEvent) -> Result<i64> {
    for s in [&e.severity, &e.description, &e.doc] {
        check_text(s)?;
    }
    let optional = [&e.correlation_id, &e.origin].into_iter();
    for s in optional.chain(e.refs.values()).flatten() {
        check_text(s)?;
    }
    if c.dialect() == Dialect::Postgres {
        // A BIGSERIAL value is taken at INSERT time, not at COMMIT, so two
        // concurrent transactions could commit ids out of order and a reader
        // polling `id > from` would skip the later-committed lower id. This
        // transaction-scoped lock makes event-writing transactions commit in
        // id order (SQLite gets that for free from its single writer).
        let mut lock = c.sql();
        lock.push("SELECT pg_advisory_xact_lock(");
        lock.bind(Arg::Int(EVENT_LOCK));
        lock.push(")");
        c.execute(&lock).await?;
    }
    let mut sql = c.sql();
    sql.push("INSERT INTO events (").push(&COLS["id, ".len()..]);
    sql.push(") VALUES (");
    let doc = if e.doc.is_empty() { "{}" } else { &e.doc };
    let mut args = vec![
        Arg::Int(e.code),
        Arg::Text(e.severity.clone()),
        Arg::Text(e.description.clone()),
        Arg::Int(e.time_ms),
        Arg::OptText(e.correlation_id.clone()),
        Arg::OptText(e.origin.clone()),
    ];
    args.extend(e.refs.values().into_iter().map(|v| Arg::OptText(v.clone())));
    args.push(Arg::Text(doc.to_owned()));
    for (i, a) in args.into_iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind(a);
    }
    sql.push(") RETURNING id");
    match c.fetch_optional(&sql).await? {
        Some(row) => row.int(0),
        None => Err(StoreError::invalid("event insert returned no id")),
    }
}

pub(crate) async fn get(c: &mut Conn<'_>, id: i64) -> Result<Option<Event>> {
    let mut sql = c.sql();
    sql.push("SELECT ")
        .push(COLS)
        .push(" FROM events WHERE id = ");
    sql.bind(Arg::Int(id));
    c.fetch_optional(&sql)
        .await?
        .as_ref()
        .map(event)
        .transpose()
}

pub(crate) async fn list(c: &mut Conn<'_>, q: &EventQuery) -> Result<Vec<Event>> {
    if q.max.is_some_and(|m| m < 0) {
        return Err(StoreError::invalid("max must not be negative"));
    }
    let mut sql = c.sql();
    sql.push("SELECT ")
        .push(COLS)
        .push(" FROM events WHERE 1=1");
    if let Some(from) = q.from {
        sql.push(" AND id > ");
        sql.bind(Arg::Int(from));
    }
    for (col, v) in REF_COLS.iter().zip(q.refs.values()) {
        if let Some(v) = v {
            sql.push(" AND ").push(col).push(" = ");
            sql.bind_text(v);
        }
    }
    if let Some(corr) = &q.correlation_id {
        sql.push(" AND correlation_id = ");
        sql.bind_text(corr);
    }
    sql.push(match q.order {
        Order::Asc => " ORDER BY id ASC",
        Order::Desc => " ORDER BY id DESC",
    });
    if let Some(max) = q.max {
        sql.push(" LIMIT ");
        sql.bind(Arg::Int(max));
    }
    c.fetch_all(&sql).await?.iter().map(event).collect()
}

pub(crate) async fn delete(c: &mut Conn<'_>, id: i64) -> Result<bool> {
    let mut sql = c.sql();
    sql.push("DELETE FROM events WHERE id = ");
    sql.bind(Arg::Int(id));
    Ok(c.execute(&sql).await? > 0)
}

pub(crate) async fn delete_before(c: &mut Conn<'_>, time_ms: i64) -> Result<u64> {
    let mut sql = c.sql();
    sql.push("DELETE FROM events WHERE time_ms < ");
    sql.bind(Arg::Int(time_ms));
    c.execute(&sql).await
}
