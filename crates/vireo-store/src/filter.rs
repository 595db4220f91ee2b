//! The search AST and its compilation into one parameterised SQL statement.
//!
//! Attribute predicates compile to `o.seq IN (SELECT a.obj FROM attrs a
//! WHERE a.kind = .. AND a.field = .. AND a.<col> <op> ..)`. The subquery is
//! uncorrelated, so both planners evaluate it once from the
//! `(kind, field, value, obj)` index and then fetch the matching objects by
//! key; a correlated `EXISTS` would make SQLite probe attrs once per object
//! of the kind, i.e. walk the kind. Several attribute predicates under one
//! `And` share one `IN (.. INTERSECT ..)`. Only negations (`Not`, `Ne`)
//! inherently need to look at every object of the kind.
//!
//! All predicates are two-valued (never SQL NULL), so `Not` is an exact
//! complement: objects lacking a field match `Not(Cmp{field, Eq, ..})`.

use crate::error::{Result, StoreError};
use crate::pattern::{parse_pattern, push_match};
use crate::record::{check_text, AttrValue};
use crate::sql::{Arg, Dialect, Sql};

/// Comparison operators. `Ne` is exactly `Not(Eq)`: "no value of the field
/// equals v" (so a multi-valued tag field with {a, b} is not `Ne a`). The
/// others are existential: "some value of the field satisfies the op".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// A search filter over the records of one kind.
///
/// The field `"name"` means the record's name column; every other field is
/// an indexed attribute.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Filter {
    #[default]
    All,
    Cmp {
        field: String,
        op: CmpOp,
        value: AttrValue,
    },
    /// `*` matches any run of characters; `\*` is a literal star and `\\` a
    /// literal backslash (a backslash before anything else is literal).
    /// `%` and `_` are ordinary characters.
    Like {
        field: String,
        pattern: String,
        case_sensitive: bool,
    },
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    IdIn(Vec<String>),
    ParentIs(String),
}

impl Filter {
    pub fn cmp(field: impl Into<String>, op: CmpOp, value: impl Into<AttrValue>) -> Self {
        Filter::Cmp {
            field: field.into(),
            op,
            value: value.into(),
        }
    }
    pub fn eq(field: impl Into<String>, value: impl Into<AttrValue>) -> Self {
        Self::cmp(field, CmpOp::Eq, value)
    }
    /// Case-sensitive wildcard match.
    pub fn like(field: impl Into<String>, pattern: impl Into<String>) -> Self {
        Filter::Like {
            field: field.into(),
            pattern: pattern.into(),
            case_sensitive: true,
        }
    }
    /// Case-insensitive wildcard match.
    pub fn ilike(field: impl Into<String>, pattern: impl Into<String>) -> Self {
        Filter::Like {
            field: field.into(),
            pattern: pattern.into(),
            case_sensitive: false,
        }
    }
    #[allow(clippy::should_implement_trait)]
    pub fn not(f: Filter) -> Self {
        Filter::Not(Box::new(f))
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    #[default]
    Asc,
    Desc,
}

/// A list query: filter, ordering and paging.
///
/// `order_by` names `"name"`, `"created"`, `"updated"`, `"id"` or an
/// attribute (multi-valued attributes sort by their smallest value when
/// ascending, largest when descending). Missing values sort last; ties are
/// broken by insertion order. Without `order_by`, insertion order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    pub filter: Filter,
    pub order_by: Option<(String, Order)>,
    pub limit: Option<i64>,
    pub offset: i64,
}

impl Query {
    pub fn new(filter: Filter) -> Self {
        Query {
            filter,
            ..Default::default()
        }
    }
    pub fn order_by(mut self, field: impl Into<String>, order: Order) -> Self {
        self.order_by = Some((field.into(), order));
        self
    }
    pub fn limit(mut self, limit: i64) -> Self {
        self.limit = Some(limit);
        self
    }
    pub fn offset(mut self, offset: i64) -> Self {
        self.offset = offset;
        self
    }
}

/// Deeper filters are refused rather than risking stack exhaustion.
const MAX_DEPTH: usize = 64;

/// Append the SQL for `filter` (a boolean expression over `objects o`);
/// `kind` is the placeholder already bound to the kind.
pub(crate) fn push_filter(sql: &mut Sql, kind: usize, filter: &Filter) -> Result<()> {
    push(sql, kind, filter, 0)
}

fn push(sql: &mut Sql, kind: usize, filter: &Filter, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(StoreError::invalid("filter nested too deeply"));
    }
    match filter {
        Filter::All => {
            sql.push("1=1");
        }
        Filter::And(fs) | Filter::Or(fs) if fs.is_empty() => {
            sql.push(if matches!(filter, Filter::And(_)) {
                "1=1"
            } else {
                "1=0"
            });
        }
        Filter::And(fs) => push_and(sql, kind, fs, depth)?,
        Filter::Or(fs) => {
            sql.push("(");
            for (i, f) in fs.iter().enumerate() {
                if i > 0 {
                    sql.push(" OR ");
                }
                push(sql, kind, f, depth + 1)?;
            }
            sql.push(")");
        }
        Filter::Not(f) => {
            sql.push("NOT (");
            push(sql, kind, f, depth + 1)?;
            sql.push(")");
        }
        Filter::IdIn(ids) if ids.is_empty() => {
            sql.push("1=0");
        }
        Filter::IdIn(ids) => {
            for id in ids {
                check_text(id)?;
            }
            sql.push(match sql.dialect {
                Dialect::Sqlite => "o.id IN (SELECT value FROM json_each(",
                Dialect::Postgres => "o.id = ANY((",
            });
            sql.bind(Arg::TextList(ids.clone()));
            sql.push("))");
        }
        Filter::ParentIs(p) => {
            check_text(p)?;
            sql.push("(o.parent_id IS NOT NULL AND o.parent_id = ");
            sql.bind_text(p);
            sql.push(")");
        }
        Filter::Cmp { field, op, value } if field == "name" => push_name_cmp(sql, *op, value)?,
        Filter::Like {
            field,
            pattern,
            case_sensitive,
        } if field == "name" => {
            check_text(pattern)?;
            let col = if *case_sensitive {
                "o.name"
            } else {
                "o.name_lc"
            };
            sql.push("(").push(col).push(" IS NOT NULL AND ");
            push_match(sql, col, &parse_pattern(pattern, *case_sensitive));
            sql.push(")");
        }
        Filter::Cmp {
            field,
            op: CmpOp::Ne,
            value,
        } => {
            // Ne is Not(Eq): see CmpOp.
            sql.push("o.seq NOT IN (");
            push_attr_select(sql, kind, field, &AttrCond::Cmp(CmpOp::Eq, value))?;
            sql.push(")");
        }
        Filter::Cmp { .. } | Filter::Like { .. } => {
            let Some((field, cond)) = attr_pred(filter) else {
                return Err(StoreError::invalid("unsupported attribute predicate"));
            };
            sql.push("o.seq IN (");
            push_attr_select(sql, kind, field, &cond)?;
            sql.push(")");
        }
    }
    Ok(())
}

/// AND. Several positive attribute predicates become ONE
/// `o.seq IN (SELECT .. INTERSECT SELECT ..)`: each side is an index-only
/// range scan, and only objects matching all of them are fetched. Left to
/// themselves, planners drive from one predicate (often not the most
/// selective: per-value statistics are unknown) and probe the others per
/// object.
fn push_and(sql: &mut Sql, kind: usize, fs: &[Filter], depth: usize) -> Result<()> {
    let (attrs, rest): (Vec<&Filter>, Vec<&Filter>) =
        fs.iter().partition(|f| attr_pred(f).is_some());
    sql.push("(");
    let mut first = true;
    if attrs.len() >= 2 {
        sql.push("o.seq IN (");
        for (i, f) in attrs.iter().enumerate() {
            if i > 0 {
                sql.push(" INTERSECT ");
            }
            if let Some((field, cond)) = attr_pred(f) {
                push_attr_select(sql, kind, field, &cond)?;
            }
        }
        sql.push(")");
        first = false;
    }
    let singles = if attrs.len() >= 2 { Vec::new() } else { attrs };
    for f in singles.into_iter().chain(rest) {
        if !first {
            sql.push(" AND ");
        }
        first = false;
        push(sql, kind, f, depth + 1)?;
    }
    sql.push(")");
    Ok(())
}

/// A condition on one attribute value.
enum AttrCond<'a> {
    Cmp(CmpOp, &'a AttrValue),
    Like(&'a str, bool),
}

/// `Some` for predicates that select objects through one attrs index range
/// (positive comparisons and matches on attributes, not on `name`).
fn attr_pred(f: &Filter) -> Option<(&str, AttrCond<'_>)> {
    match f {
        Filter::Cmp { field, op, value } if field != "name" && *op != CmpOp::Ne => {
            Some((field, AttrCond::Cmp(*op, value)))
        }
        Filter::Like {
            field,
            pattern,
            case_sensitive,
        } if field != "name" => Some((field, AttrCond::Like(pattern, *case_sensitive))),
        _ => None,
    }
}

/// `SELECT a.obj FROM attrs a WHERE a.kind = .. AND a.field = .. AND <cond>`
fn push_attr_select(sql: &mut Sql, kind: usize, field: &str, cond: &AttrCond) -> Result<()> {
    check_text(field)?;
    sql.push("SELECT a.obj FROM attrs a WHERE a.kind = ");
    sql.push_param(kind);
    sql.push(" AND a.field = ");
    sql.bind_text(field);
    sql.push(" AND ");
    match cond {
        AttrCond::Cmp(op, value) => {
            let (col, arg) = match value {
                AttrValue::Text(s) => {
                    check_text(s)?;
                    ("a.t", Arg::Text(s.clone()))
                }
                AttrValue::Int(i) => ("a.i", Arg::Int(*i)),
                AttrValue::Real(f) if f.is_finite() => ("a.r", Arg::Real(*f)),
                AttrValue::Real(_) => {
                    return Err(StoreError::invalid("filter value is not a finite number"))
                }
            };
            sql.push(col).push(" ").push(op.sql()).push(" ");
            sql.bind(arg);
        }
        AttrCond::Like(pattern, case_sensitive) => {
            check_text(pattern)?;
            let col = if *case_sensitive { "a.t" } else { "a.t_lc" };
            push_match(sql, col, &parse_pattern(pattern, *case_sensitive));
        }
    }
    Ok(())
}

fn push_name_cmp(sql: &mut Sql, op: CmpOp, value: &AttrValue) -> Result<()> {
    let AttrValue::Text(v) = value else {
        return Err(StoreError::invalid(
            "the name field compares with text only",
        ));
    };
    check_text(v)?;
    if op == CmpOp::Ne {
        sql.push("(o.name IS NULL OR o.name <> ");
    } else {
        sql.push("(o.name IS NOT NULL AND o.name ")
            .push(op.sql())
            .push(" ");
    }
    sql.bind_text(v);
    sql.push(")");
    Ok(())
}

/// Append ` ORDER BY ...` for a query.
pub(crate) fn push_order(sql: &mut Sql, order_by: Option<&(String, Order)>) {
    let Some((field, order)) = order_by else {
        sql.push(" ORDER BY o.seq");
        return;
    };
    let (dir, agg) = match order {
        Order::Asc => (" ASC NULLS LAST", "MIN"),
        Order::Desc => (" DESC NULLS LAST", "MAX"),
    };
    sql.push(" ORDER BY ");
    match field.as_str() {
        "name" => {
            sql.push("o.name").push(dir);
        }
        "created" => {
            sql.push("o.created_ms").push(dir);
        }
        "updated" => {
            sql.push("o.updated_ms").push(dir);
        }
        "id" => {
            sql.push("o.id").push(dir);
        }
        attr => {
            let f = sql.arg(Arg::Text(attr.to_owned()));
            for (i, col) in ["a.i", "a.r", "a.t"].iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push("(SELECT ").push(agg).push("(").push(col);
                sql.push(") FROM attrs a WHERE a.obj = o.seq AND a.field = ");
                sql.push_param(f);
                sql.push(")").push(dir);
            }
        }
    }
    sql.push(match order {
        Order::Asc => ", o.seq ASC",
        Order::Desc => ", o.seq DESC",
    });
}

/// Append ` LIMIT .. OFFSET ..` after validating the numbers.
pub(crate) fn push_paging(sql: &mut Sql, limit: Option<i64>, offset: i64) -> Result<()> {
    if offset < 0 || limit.is_some_and(|l| l < 0) {
        return Err(StoreError::invalid("limit and offset must not be negative"));
    }
    match (limit, sql.dialect) {
        (Some(l), _) => {
            sql.push(" LIMIT ");
            sql.bind(Arg::Int(l));
        }
        // SQLite only accepts OFFSET after a LIMIT; -1 means unbounded.
        (None, Dialect::Sqlite) => {
            sql.push(" LIMIT -1");
        }
        (None, Dialect::Postgres) => {}
    }
    if offset > 0 {
        sql.push(" OFFSET ");
        sql.bind(Arg::Int(offset));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_values_are_never_in_the_text() {
        let mut sql = Sql::new(Dialect::Postgres);
        let k = sql.bind_text("vm");
        let f = Filter::Or(vec![
            Filter::eq("os'; DROP TABLE objects; --", "x' OR 1=1"),
            Filter::ilike("name", "evil'*"),
        ]);
        push_filter(&mut sql, k, &f).unwrap();
        assert!(!sql.text.contains("DROP"), "{}", sql.text);
        assert!(!sql.text.contains("evil"), "{}", sql.text);
    }

    #[test]
    fn deep_filters_are_refused() {
        let mut f = Filter::All;
        for _ in 0..100 {
            f = Filter::not(f);
        }
        let mut sql = Sql::new(Dialect::Sqlite);
        assert!(matches!(
            push_filter(&mut sql, 1, &f),
            Err(StoreError::Invalid(_))
        ));
    }
}
