//! oVirt's search language: `[Entity:] cond {and|or cond} [sortby field [asc|desc]] [page N]`
//! where a condition is `field op value` (`=`, `!=`, `<`, `<=`, `>`, `>=`), values may be
//! quoted and hold `*` wildcards, `and` binds tighter than `or`, parentheses group, and
//! juxtaposed conditions mean `and`. Fields are the entity's own (`name`, `status`, `memory`)
//! and cross-entity ones (`cluster=Default`, `host.name=h1`, `datacenter=dc1`,
//! `storage.name=data1`, `tag=web`), which the inventory indexes at write time: a query
//! compiles to ONE store filter, never a scan.
//!
//! [`parse`] gives the syntax tree (events use it too); [`parse_for`] compiles it for a kind.
//! Whatever is wrong is a 400 fault naming the position (1-based) of the problem.

use super::fault::ApiError;
use vireo_model::meta::{Scalar, TypeDef, TypeRef};
use vireo_store::{AttrValue, CmpOp, Filter, Order};

/// oVirt's `SearchResultsLimit`: the page size of `page N` when no `max` is given.
pub const DEFAULT_PAGE_SIZE: i64 = 100;

#[derive(Debug, Default)]
pub struct Search {
    pub filter: Option<Filter>,
    pub sort: Option<(String, Order)>,
    pub page: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn cmp(self) -> CmpOp {
        match self {
            Op::Eq => CmpOp::Eq,
            Op::Ne => CmpOp::Ne,
            Op::Lt => CmpOp::Lt,
            Op::Le => CmpOp::Le,
            Op::Gt => CmpOp::Gt,
            Op::Ge => CmpOp::Ge,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Cond {
    /// Lower-cased, possibly dotted (`cluster.name`).
    pub field: String,
    pub op: Op,
    pub value: String,
    /// 0-based position of the field in the query.
    pub pos: usize,
}

#[derive(Debug, Clone)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Cond(Cond),
}

#[derive(Debug, Default)]
pub struct Parsed {
    /// `Vms` of `Vms: name=x`.
    pub entity: Option<String>,
    pub expr: Option<Expr>,
    pub sort: Option<(String, Order, usize)>,
    pub page: Option<i64>,
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String, usize),
    Quoted(String, usize),
    Op(Op, usize),
    Open(usize),
    Close(usize),
}

pub fn error(pos: usize, what: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("search query: {what} at position {}", pos + 1))
}

fn tokens(q: &str) -> Result<Vec<Tok>, ApiError> {
    const OPS: [(&str, Op); 6] = [
        ("!=", Op::Ne),
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("=", Op::Eq),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];
    let mut out = Vec::new();
    let b = q.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'(' {
            out.push(Tok::Open(i));
            i += 1;
        } else if c == b')' {
            out.push(Tok::Close(i));
            i += 1;
        } else if c == b'"' || c == b'\'' {
            let start = i;
            i += 1;
            let from = i;
            while i < b.len() && b[i] != c {
                i += 1;
            }
            if i >= b.len() {
                return Err(error(start, "unterminated quote"));
            }
            out.push(Tok::Quoted(q[from..i].to_string(), start));
            i += 1;
        } else if let Some((s, op)) = OPS.iter().find(|(s, _)| q[i..].starts_with(*s)) {
            out.push(Tok::Op(*op, i));
            i += s.len();
        } else if c == b'!' {
            return Err(error(i, "'!' must be followed by '='"));
        } else {
            let start = i;
            while i < b.len() && !b[i].is_ascii_whitespace() && !b"()=<>!\"'".contains(&b[i]) {
                i += 1;
            }
            // Multi-byte characters are part of words; `i` always stops on an ASCII byte.
            out.push(Tok::Word(q[start..i].to_string(), start));
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
    len: usize,
}

impl Parser {
    fn peek_word(&self) -> Option<String> {
        match self.toks.get(self.at) {
            Some(Tok::Word(w, _)) => Some(w.to_ascii_lowercase()),
            _ => None,
        }
    }
    fn pos(&self) -> usize {
        match self.toks.get(self.at) {
            Some(
                Tok::Word(_, p) | Tok::Quoted(_, p) | Tok::Op(_, p) | Tok::Open(p) | Tok::Close(p),
            ) => *p,
            None => self.len,
        }
    }
    fn at_end_of_expr(&self) -> bool {
        matches!(self.toks.get(self.at), None | Some(Tok::Close(_)))
            || matches!(self.peek_word().as_deref(), Some("sortby") | Some("page"))
    }
    fn or(&mut self, depth: usize) -> Result<Expr, ApiError> {
        if depth > 32 {
            return Err(error(self.pos(), "parentheses nested too deeply"));
        }
        let mut parts = vec![self.and(depth)?];
        while self.peek_word().as_deref() == Some("or") {
            self.at += 1;
            parts.push(self.and(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::Or(parts)
        })
    }
    fn and(&mut self, depth: usize) -> Result<Expr, ApiError> {
        let mut parts = vec![self.term(depth)?];
        loop {
            if self.at_end_of_expr() || self.peek_word().as_deref() == Some("or") {
                break;
            }
            if self.peek_word().as_deref() == Some("and") {
                self.at += 1;
            }
            // oVirt reads juxtaposed conditions as `and`.
            parts.push(self.term(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::And(parts)
        })
    }
    fn term(&mut self, depth: usize) -> Result<Expr, ApiError> {
        if let Some(Tok::Open(_)) = self.toks.get(self.at) {
            self.at += 1;
            let e = self.or(depth + 1)?;
            match self.toks.get(self.at) {
                Some(Tok::Close(_)) => self.at += 1,
                _ => return Err(error(self.pos(), "expected ')'")),
            }
            return Ok(e);
        }
        let pos = self.pos();
        let field = match self.toks.get(self.at) {
            Some(Tok::Word(w, _)) => w.to_ascii_lowercase(),
            Some(Tok::Close(_)) => return Err(error(pos, "unexpected ')'")),
            _ => return Err(error(pos, "expected a field name")),
        };
        self.at += 1;
        let op = match self.toks.get(self.at) {
            Some(Tok::Op(op, _)) => *op,
            _ => {
                return Err(error(
                    self.pos(),
                    format!("expected an operator after '{field}'"),
                ))
            }
        };
        self.at += 1;
        let value = match self.toks.get(self.at) {
            Some(Tok::Word(w, _) | Tok::Quoted(w, _)) => w.clone(),
            _ => {
                return Err(error(
                    self.pos(),
                    format!("expected a value after '{field}'"),
                ))
            }
        };
        self.at += 1;
        Ok(Expr::Cond(Cond {
            field,
            op,
            value,
            pos,
        }))
    }
}

/// The syntax of a query, whatever it searches.
pub fn parse(query: &str) -> Result<Parsed, ApiError> {
    let mut p = Parser {
        toks: tokens(query)?,
        at: 0,
        len: query.len(),
    };
    let mut out = Parsed::default();
    if let Some(Tok::Word(w, _)) = p.toks.first() {
        if let Some(e) = w.strip_suffix(':') {
            out.entity = Some(e.to_ascii_lowercase());
            p.at = 1;
        }
    }
    if p.at < p.toks.len() && !matches!(p.peek_word().as_deref(), Some("sortby") | Some("page")) {
        out.expr = Some(p.or(0)?);
    }
    while p.at < p.toks.len() {
        match p.peek_word().as_deref() {
            Some("sortby") => {
                p.at += 1;
                let pos = p.pos();
                let field = p
                    .peek_word()
                    .ok_or_else(|| error(pos, "expected a field after sortby"))?;
                p.at += 1;
                let order = match p.peek_word().as_deref() {
                    Some("desc") => {
                        p.at += 1;
                        Order::Desc
                    }
                    Some("asc") => {
                        p.at += 1;
                        Order::Asc
                    }
                    _ => Order::Asc,
                };
                out.sort = Some((field, order, pos));
            }
            Some("page") => {
                p.at += 1;
                let n = p
                    .peek_word()
                    .and_then(|w| w.parse::<i64>().ok())
                    .filter(|n| (1..=1_000_000).contains(n));
                out.page = Some(n.ok_or_else(|| error(p.pos(), "expected a page number"))?);
                p.at += 1;
            }
            _ => {
                return Err(error(
                    p.pos(),
                    "unexpected input (expected 'and', 'or', 'sortby' or 'page')",
                ))
            }
        }
    }
    Ok(out)
}

/// How a field is stored: a record column or an indexed attribute, and its type.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Name,
    Id,
    Attr(String, Kind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Int,
    Real,
    Date,
    /// An integer the user gives in MiB (oVirt's `memory` of VMs); stored in bytes.
    Mebibytes,
}

/// Entity words oVirt accepts before the `:` (and in cross-entity field names), by kind.
fn entity_words(kind: &str) -> &'static [&'static str] {
    match kind {
        "vms" => &["vm", "vms"],
        "hosts" => &["host", "hosts"],
        "clusters" => &["cluster", "clusters"],
        "datacenters" => &["datacenter", "datacenters", "datacenter:"],
        "storagedomains" => &["storage", "storages", "storagedomain", "storagedomains"],
        "templates" => &["template", "templates"],
        "disks" => &["disk", "disks"],
        "networks" => &["network", "networks"],
        "vnicprofiles" => &["vnicprofile", "vnicprofiles"],
        "users" => &["user", "users"],
        "groups" => &["group", "groups"],
        "vmpools" => &["pool", "pools", "vmpool", "vmpools"],
        "events" => &["event", "events"],
        "jobs" => &["job", "jobs"],
        "instancetypes" => &["instancetype", "instancetypes"],
        "quotas" | "datacenters/quotas" => &["quota", "quotas"],
        _ => &[],
    }
}

/// oVirt's field words that differ from the model's attribute names, per kind.
fn alias(kind: &str, field: &str) -> Option<Field> {
    let attr = |a: &str, k: Kind| Some(Field::Attr(a.to_string(), k));
    match (kind, field) {
        (_, "creationdate" | "creation_date") => attr("creation_time", Kind::Date),
        (_, "datacenter" | "datacenter.name" | "data_center.name") => match kind {
            "storagedomains" => attr("data_centers", Kind::Text),
            _ => attr("data_center", Kind::Text),
        },
        (_, "datacenter.id") => match kind {
            "storagedomains" => attr("data_centers.id", Kind::Text),
            _ => attr("data_center.id", Kind::Text),
        },
        (_, "tag" | "tag.name" | "tags" | "tags.name") => attr("tag", Kind::Text),
        ("vms", "memory") => attr("memory", Kind::Mebibytes),
        ("vms" | "templates", "os") => attr("os", Kind::Text),
        ("vms", "pool" | "pool.name") => attr("vm_pool", Kind::Text),
        ("vms", "host" | "host.name" | "on_host") => attr("host", Kind::Text),
        ("disks", "storage" | "storage.name" | "storagedomain" | "storage_domain") => {
            attr("storage_domains", Kind::Text)
        }
        ("disks", "storage.id") => attr("storage_domains.id", Kind::Text),
        ("disks", "alias") => attr("alias", Kind::Text),
        ("disks", "provisioned_size" | "provisionedsize" | "size") => {
            attr("provisioned_size", Kind::Int)
        }
        ("disks", "actual_size" | "actualsize") => attr("actual_size", Kind::Int),
        ("storagedomains", "size" | "available") => attr("available", Kind::Int),
        ("storagedomains", "used") => attr("used", Kind::Int),
        ("storagedomains", "committed") => attr("committed", Kind::Int),
        ("hosts", "address") => attr("address", Kind::Text),
        ("jobs", "correlation_id" | "correlationid") => attr("correlation_id", Kind::Text),
        ("jobs", "start_time" | "starttime") => attr("start_time", Kind::Date),
        ("jobs", "end_time" | "endtime") => attr("end_time", Kind::Date),
        _ => None,
    }
}

fn scalar_kind(ty: TypeRef) -> Kind {
    match ty {
        TypeRef::Scalar(Scalar::Integer) => Kind::Int,
        TypeRef::Scalar(Scalar::Decimal) => Kind::Real,
        TypeRef::Scalar(Scalar::Date) => Kind::Date,
        _ => Kind::Text,
    }
}

/// The stored field a search field means for objects of `kind` (type `t`).
pub fn resolve(kind: &str, t: &TypeDef, field: &str) -> Option<Field> {
    // `vm.name` on /vms is the VM's own name.
    let own = entity_words(kind)
        .iter()
        .find_map(|w| field.strip_prefix(&format!("{w}.")));
    let field = own.unwrap_or(field);
    match field {
        "name" => return Some(Field::Name),
        "id" => return Some(Field::Id),
        _ => {}
    }
    if let Some(f) = alias(kind, field) {
        return Some(f);
    }
    let (head, tail) = field.split_once('.').unwrap_or((field, ""));
    // A reference: by its name (indexed under the reference's own name) or by its id.
    let reference = |xml: &str| {
        t.attributes.iter().find(|a| {
            a.xml.replace('_', "") == xml.replace('_', "") && matches!(a.ty, TypeRef::Struct(_))
        })
    };
    if let Some(a) = reference(head) {
        return match tail {
            "" | "name" => Some(Field::Attr(a.xml.to_string(), Kind::Text)),
            "id" => Some(Field::Attr(format!("{}.id", a.xml), Kind::Text)),
            _ => None,
        };
    }
    if !tail.is_empty() {
        return None;
    }
    let a = t
        .attributes
        .iter()
        .find(|a| a.xml == head && !a.list && !matches!(a.ty, TypeRef::Struct(_)))?;
    Some(Field::Attr(a.xml.to_string(), scalar_kind(a.ty)))
}

/// `2024-05-01`, `2024-05-01T10:00:00Z`, or epoch milliseconds.
pub fn parse_date(v: &str) -> Option<i64> {
    if let Ok(ms) = v.parse::<i64>() {
        return Some(ms);
    }
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(v) {
        return Some(d.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S") {
        return Some(d.and_utc().timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp_millis())
}

fn condition(kind: &str, t: &TypeDef, c: &Cond, case_sensitive: bool) -> Result<Filter, ApiError> {
    let field = resolve(kind, t, &c.field).ok_or_else(|| {
        error(
            c.pos,
            format!("'{}' is not a searchable field of {}", c.field, t.name),
        )
    })?;
    let text = |column: String| match c.op {
        Op::Eq => Ok(Filter::Like {
            field: column,
            pattern: c.value.clone(),
            case_sensitive,
        }),
        Op::Ne => Ok(Filter::not(Filter::Like {
            field: column,
            pattern: c.value.clone(),
            case_sensitive,
        })),
        op => Ok(Filter::cmp(
            column,
            op.cmp(),
            AttrValue::Text(c.value.clone()),
        )),
    };
    let number = |column: String, v: AttrValue| Ok(Filter::cmp(column, c.op.cmp(), v));
    match field {
        Field::Name => text("name".into()),
        Field::Id => match c.op {
            Op::Eq if !c.value.contains('*') => Ok(Filter::IdIn(vec![c.value.clone()])),
            Op::Ne if !c.value.contains('*') => {
                Ok(Filter::not(Filter::IdIn(vec![c.value.clone()])))
            }
            _ => Err(error(
                c.pos,
                "ids compare with '=' or '!=' and no wildcards",
            )),
        },
        Field::Attr(column, Kind::Text) => text(column),
        Field::Attr(column, Kind::Int) => {
            let v: i64 = c
                .value
                .parse()
                .map_err(|_| error(c.pos, format!("'{}' is not an integer", c.value)))?;
            number(column, AttrValue::Int(v))
        }
        Field::Attr(column, Kind::Mebibytes) => {
            let v: i64 = c
                .value
                .parse()
                .map_err(|_| error(c.pos, format!("'{}' is not a number of MiB", c.value)))?;
            number(column, AttrValue::Int(v.saturating_mul(1 << 20)))
        }
        Field::Attr(column, Kind::Real) => {
            let v: f64 = c
                .value
                .parse()
                .map_err(|_| error(c.pos, format!("'{}' is not a number", c.value)))?;
            number(column, AttrValue::Real(v))
        }
        Field::Attr(column, Kind::Date) => {
            let v = parse_date(&c.value)
                .ok_or_else(|| error(c.pos, format!("'{}' is not a date (YYYY-MM-DD)", c.value)))?;
            number(column, AttrValue::Int(v))
        }
    }
}

fn compile(kind: &str, t: &TypeDef, e: &Expr, case_sensitive: bool) -> Result<Filter, ApiError> {
    Ok(match e {
        Expr::And(parts) => Filter::And(
            parts
                .iter()
                .map(|p| compile(kind, t, p, case_sensitive))
                .collect::<Result<_, _>>()?,
        ),
        Expr::Or(parts) => Filter::Or(
            parts
                .iter()
                .map(|p| compile(kind, t, p, case_sensitive))
                .collect::<Result<_, _>>()?,
        ),
        Expr::Cond(c) => condition(kind, t, c, case_sensitive)?,
    })
}

/// A query on the objects of `kind` (type `t`), compiled to one store filter.
pub fn parse_for(
    query: &str,
    kind: &str,
    t: &TypeDef,
    case_sensitive: bool,
) -> Result<Search, ApiError> {
    let p = parse(query)?;
    if let Some(e) = &p.entity {
        let words = entity_words(kind);
        if !words.is_empty() && !words.contains(&e.as_str()) {
            return Err(error(0, format!("'{e}:' does not search this collection")));
        }
    }
    let filter = p
        .expr
        .as_ref()
        .map(|e| compile(kind, t, e, case_sensitive))
        .transpose()?;
    let sort = match p.sort {
        None => None,
        Some((f, order, pos)) => Some((
            match resolve(kind, t, &f) {
                Some(Field::Name) => "name".to_string(),
                Some(Field::Id) => "id".to_string(),
                Some(Field::Attr(a, _)) => a,
                None => {
                    return Err(error(
                        pos,
                        format!("'{f}' is not a field of {} to sort by", t.name),
                    ))
                }
            },
            order,
        )),
    };
    Ok(Search {
        filter,
        sort,
        page: p.page,
    })
}

/// The old entry point: a query on a type's own fields.
pub fn parse_type(query: &str, t: &TypeDef, case_sensitive: bool) -> Result<Search, ApiError> {
    parse_for(query, "", t, case_sensitive)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vireo_model::Model;

    fn vm(q: &str) -> Result<Search, ApiError> {
        parse_for(q, "vms", vireo_model::Vm::meta(), false)
    }

    #[test]
    fn conditions_and_connectives() {
        let s = vm("name=web* and status=up or cluster=Default").unwrap();
        let f = format!("{:?}", s.filter.unwrap());
        assert!(f.starts_with("Or([And([Like"), "{f}");
        assert!(f.contains("field: \"cluster\""), "{f}");
        let s = vm("Vms: name=a status=down sortby name desc page 2").unwrap();
        assert_eq!(s.page, Some(2));
        assert_eq!(s.sort, Some(("name".into(), Order::Desc)));
        assert!(matches!(s.filter, Some(Filter::And(_))));
    }

    #[test]
    fn cross_entity_fields() {
        for (q, attr) in [
            ("cluster.name=Default", "cluster"),
            ("cluster.id=abc", "cluster.id"),
            ("host=h1", "host"),
            ("datacenter=dc1", "data_center"),
            ("tag=web", "tag"),
            ("template.name=Blank", "template"),
        ] {
            let f = format!("{:?}", vm(q).unwrap().filter.unwrap());
            assert!(f.contains(&format!("field: \"{attr}\"")), "{q}: {f}");
        }
        let f = format!("{:?}", vm("memory>1024").unwrap().filter.unwrap());
        assert!(f.contains(&format!("Int({})", 1024i64 << 20)), "{f}");
    }

    #[test]
    fn quoted_values_keep_spaces_and_operators() {
        let f = format!("{:?}", vm("description=\"a b=c\"").unwrap().filter.unwrap());
        assert!(f.contains("pattern: \"a b=c\""), "{f}");
    }

    #[test]
    fn errors_name_the_position() {
        let e = vm("name=a and nosuch=1").unwrap_err();
        assert!(e.detail.contains("position 12"), "{}", e.detail);
        let e = vm("name=").unwrap_err();
        assert!(e.detail.contains("position 6"), "{}", e.detail);
        let e = vm("(name=a").unwrap_err();
        assert!(e.detail.contains("expected ')'"), "{}", e.detail);
        assert!(vm("name=\"x").is_err());
        assert!(vm("memory>lots").is_err());
        assert!(vm("name=a page x").is_err());
        assert!(vm("name=a sortby nosuch").is_err());
        assert!(vm("Hosts: name=a").is_err());
        assert_eq!(
            vm("name=a junk").unwrap_err().status,
            axum::http::StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-02"), Some(86_400_000));
        assert!(parse_date("2024-05-01T10:00:00Z").is_some());
        assert!(vm("creationdate>2024-01-01").is_ok());
    }
}
