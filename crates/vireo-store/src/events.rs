//! The audit log.

use crate::backend::{Conn, Row};
use crate::error::{Result, StoreError};
use crate::filter::{CmpOp, Order};
use crate::pattern::{parse_pattern, push_match};
use crate::record::check_text;
use crate::sql::{Arg, Dialect, Sql};

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
    /// Conditions on the events' columns, in the same statement.
    pub filter: EventFilter,
}

impl Default for EventQuery {
    fn default() -> Self {
        EventQuery {
            from: None,
            max: None,
            order: Order::Desc,
            refs: EventRefs::default(),
            correlation_id: None,
            filter: EventFilter::All,
        }
    }
}

/// A column of the events table a filter can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventField {
    Id,
    Code,
    TimeMs,
    /// `custom_id` of the event's document; -1 when it has none.
    CustomId,
    Severity,
    Description,
    Origin,
    CorrelationId,
    VmId,
    HostId,
    ClusterId,
    DataCenterId,
    StorageDomainId,
    UserId,
    TemplateId,
}

impl EventField {
    fn is_int(self) -> bool {
        matches!(
            self,
            EventField::Id | EventField::Code | EventField::TimeMs | EventField::CustomId
        )
    }
    fn column(self) -> &'static str {
        match self {
            EventField::Id => "id",
            EventField::Code => "code",
            EventField::TimeMs => "time_ms",
            EventField::CustomId => "custom_id",
            EventField::Severity => "severity",
            EventField::Description => "description",
            EventField::Origin => "origin",
            EventField::CorrelationId => "correlation_id",
            EventField::VmId => "vm_id",
            EventField::HostId => "host_id",
            EventField::ClusterId => "cluster_id",
            EventField::DataCenterId => "data_center_id",
            EventField::StorageDomainId => "storage_domain_id",
            EventField::UserId => "user_id",
            EventField::TemplateId => "template_id",
        }
    }
}

/// A condition on events, compiled into the list statement (never checked after loading).
///
/// Every predicate is two-valued: a missing text column reads as `""`, so `Not` is the
/// exact complement. Case-insensitive text matching folds ASCII letters only (SQL
/// `lower()` on both backends).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum EventFilter {
    #[default]
    All,
    And(Vec<EventFilter>),
    Or(Vec<EventFilter>),
    Not(Box<EventFilter>),
    /// An integer column (`Id`, `Code`, `TimeMs`, `CustomId`) compared with a value.
    Int {
        field: EventField,
        op: CmpOp,
        value: i64,
    },
    /// A text column matched against a pattern (`*` any run of characters, `\*` a star).
    Like {
        field: EventField,
        pattern: String,
        case_sensitive: bool,
    },
    /// A text column compared with a value (`<`, `>=`, ...; `Eq`/`Ne` exactly).
    Text {
        field: EventField,
        op: CmpOp,
        value: String,
        case_sensitive: bool,
    },
    /// The severity is one of these (`normal`, `warning`, `error`, `alert`; oVirt's
    /// severities are ordered, so `severity>normal` is the set above it).
    SeverityIn(Vec<String>),
    /// The object `field` references (e.g. `VmId`) is an object of `kind` whose name
    /// matches `pattern`; or, for events whose object is gone (or that name none), the
    /// description contains the pattern — the only place a removed object's name survives.
    RefNamed {
        field: EventField,
        kind: String,
        pattern: String,
        case_sensitive: bool,
    },
}

/// Deeper filters are refused rather than risking stack exhaustion.
const MAX_DEPTH: usize = 64;

/// Byte order on both backends (PostgreSQL's description and origin use the database's
/// collation otherwise).
fn text_col(dialect: Dialect, field: EventField, case_sensitive: bool) -> String {
    let c = field.column();
    let collate = match dialect {
        Dialect::Sqlite => "",
        Dialect::Postgres => " COLLATE \"C\"",
    };
    if case_sensitive {
        format!("(COALESCE(e.{c}, ''){collate})")
    } else {
        format!("(lower(COALESCE(e.{c}, '')){collate})")
    }
}

fn fold(s: &str, case_sensitive: bool) -> String {
    if case_sensitive {
        s.to_owned()
    } else {
        s.to_ascii_lowercase()
    }
}

fn int_col(dialect: Dialect, field: EventField) -> String {
    match (field, dialect) {
        (EventField::CustomId, Dialect::Sqlite) => {
            "(CASE WHEN json_type(e.doc, '$.custom_id') = 'integer' \
             THEN json_extract(e.doc, '$.custom_id') ELSE -1 END)"
                .into()
        }
        (EventField::CustomId, Dialect::Postgres) => {
            "(CASE WHEN jsonb_typeof(e.doc::jsonb -> 'custom_id') = 'number' \
             THEN (e.doc::jsonb ->> 'custom_id')::numeric::bigint ELSE -1 END)"
                .into()
        }
        (f, _) => format!("e.{}", f.column()),
    }
}

fn push_event_filter(sql: &mut Sql, f: &EventFilter, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(StoreError::invalid("filter nested too deeply"));
    }
    match f {
        EventFilter::All => {
            sql.push("1=1");
        }
        EventFilter::And(fs) | EventFilter::Or(fs) if fs.is_empty() => {
            sql.push(if matches!(f, EventFilter::And(_)) {
                "1=1"
            } else {
                "1=0"
            });
        }
        EventFilter::And(fs) | EventFilter::Or(fs) => {
            let join = if matches!(f, EventFilter::And(_)) {
                " AND "
            } else {
                " OR "
            };
            sql.push("(");
            for (i, x) in fs.iter().enumerate() {
                if i > 0 {
                    sql.push(join);
                }
                push_event_filter(sql, x, depth + 1)?;
            }
            sql.push(")");
        }
        EventFilter::Not(x) => {
            sql.push("NOT (");
            push_event_filter(sql, x, depth + 1)?;
            sql.push(")");
        }
        EventFilter::Int { field, op, value } => {
            if !field.is_int() {
                return Err(StoreError::invalid(format!(
                    "{} is not an integer column",
                    field.column()
                )));
            }
            let col = int_col(sql.dialect, *field);
            sql.push(&col).push(" ").push(op.sql()).push(" ");
            sql.bind(Arg::Int(*value));
        }
        EventFilter::Like {
            field,
            pattern,
            case_sensitive,
        } => {
            if field.is_int() {
                return Err(StoreError::invalid(format!(
                    "{} is not a text column",
                    field.column()
                )));
            }
            check_text(pattern)?;
            let toks = parse_pattern(&fold(pattern, *case_sensitive), true);
            if *case_sensitive && !pattern.is_empty() && !pattern.contains(['*', '\\']) {
                // The plain column, so its index can serve an exact match.
                sql.push("(e.")
                    .push(field.column())
                    .push(" IS NOT NULL AND e.")
                    .push(field.column())
                    .push(" = ");
                sql.bind_text(pattern);
                sql.push(")");
            } else {
                sql.push("(");
                let col = text_col(sql.dialect, *field, *case_sensitive);
                push_match(sql, &col, &toks);
                sql.push(")");
            }
        }
        EventFilter::Text {
            field,
            op,
            value,
            case_sensitive,
        } => {
            if field.is_int() {
                return Err(StoreError::invalid(format!(
                    "{} is not a text column",
                    field.column()
                )));
            }
            check_text(value)?;
            let col = text_col(sql.dialect, *field, *case_sensitive);
            sql.push(&col).push(" ").push(op.sql()).push(" ");
            sql.bind(Arg::Text(fold(value, *case_sensitive)));
        }
        EventFilter::SeverityIn(set) => {
            for s in set {
                check_text(s)?;
            }
            // Severities are stored as the API spells them. Anything else counts as normal
            // (as the API shows it), so a set with normal is the complement of the others.
            const ALL: [&str; 4] = ["normal", "warning", "error", "alert"];
            let has = |s: &str| set.iter().any(|x| x.eq_ignore_ascii_case(s));
            let (neg, list): (bool, Vec<&str>) = if has("normal") {
                (true, ALL[1..].iter().copied().filter(|s| !has(s)).collect())
            } else {
                (false, ALL[1..].iter().copied().filter(|s| has(s)).collect())
            };
            if list.is_empty() {
                sql.push(if neg { "1=1" } else { "1=0" });
                return Ok(());
            }
            sql.push("e.severity ")
                .push(if neg { "NOT IN (" } else { "IN (" });
            for (i, s) in list.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.bind_text(s);
            }
            sql.push(")");
        }
        EventFilter::RefNamed {
            field,
            kind,
            pattern,
            case_sensitive,
        } => {
            if !matches!(
                field,
                EventField::VmId
                    | EventField::HostId
                    | EventField::ClusterId
                    | EventField::DataCenterId
                    | EventField::StorageDomainId
                    | EventField::UserId
                    | EventField::TemplateId
            ) {
                return Err(StoreError::invalid(format!(
                    "{} is not a reference column",
                    field.column()
                )));
            }
            check_text(kind)?;
            check_text(pattern)?;
            let col = field.column();
            let k = sql.arg(Arg::Text(kind.clone()));
            let name_col = if *case_sensitive {
                "o.name"
            } else {
                "o.name_lc"
            };
            let name_toks = parse_pattern(pattern, *case_sensitive);
            sql.push("((e.")
                .push(col)
                .push(" IS NOT NULL AND e.")
                .push(col);
            sql.push(" IN (SELECT o.id FROM objects o WHERE o.kind = ")
                .push_param(k);
            sql.push(" AND ").push(name_col).push(" IS NOT NULL AND ");
            push_match(sql, name_col, &name_toks);
            sql.push(")) OR (NOT EXISTS (SELECT 1 FROM objects o WHERE o.kind = ")
                .push_param(k);
            sql.push(" AND e.")
                .push(col)
                .push(" IS NOT NULL AND o.id = e.")
                .push(col);
            sql.push(") AND ");
            let inner = pattern.trim_matches('*');
            let contains = format!("*{inner}*");
            let desc = text_col(sql.dialect, EventField::Description, *case_sensitive);
            push_match(
                sql,
                &desc,
                &parse_pattern(&fold(&contains, *case_sensitive), true),
            );
            sql.push("))");
        }
    }
    Ok(())
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
        .push(" FROM events e WHERE 1=1");
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
    if q.filter != EventFilter::All {
        sql.push(" AND ");
        push_event_filter(&mut sql, &q.filter, 0)?;
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
