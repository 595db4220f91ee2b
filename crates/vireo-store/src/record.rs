//! Object records (the inventory) and what callers write into them.

use crate::error::{Result, StoreError};

/// One stored object: a VM, host, cluster, job, user ...
///
/// `doc` is the object's JSON text; the store never parses it. Searchable
/// facts are passed separately as indexed attributes ([`ObjectWrite::attrs`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub kind: String,
    /// UUID text; unique per kind.
    pub id: String,
    pub parent_id: Option<String>,
    pub name: Option<String>,
    pub doc: String,
    /// 1 on insert, +1 on every update; used for optimistic concurrency.
    pub generation: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// The value of an indexed attribute.
///
/// Text compares byte-wise (binary/"C" collation on both backends); case-
/// insensitive matching goes through [`Filter::Like`](crate::Filter::Like),
/// which uses a stored lower-cased copy. Int and Real live in separate
/// columns: a filter on `Int` only sees attributes stored as `Int`.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Text(String),
    Int(i64),
    Real(f64),
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        AttrValue::Text(s.to_owned())
    }
}
impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::Text(s)
    }
}
impl From<i64> for AttrValue {
    fn from(i: i64) -> Self {
        AttrValue::Int(i)
    }
}
impl From<f64> for AttrValue {
    fn from(f: f64) -> Self {
        AttrValue::Real(f)
    }
}

/// Where a record's name must be unique (within its kind).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NameScope {
    /// Names may repeat.
    #[default]
    None,
    /// Unique among all records of the kind.
    Global,
    /// Unique among the records of the kind with the same `parent_id`.
    Parent,
    /// Unique among the records of the kind that use the same custom key
    /// (e.g. a data center id for objects whose parent is a cluster).
    Custom(String),
}

/// Field names that mean record columns in filters and ordering, so they
/// cannot be used as attribute names.
pub const RESERVED_FIELDS: &[&str] = &["name", "id", "created", "updated"];

/// Everything a caller writes for an insert or (full-replace) update.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectWrite {
    pub kind: String,
    pub id: String,
    pub parent_id: Option<String>,
    pub name: Option<String>,
    pub doc: String,
    /// Indexed attributes; a field may repeat (several tags).
    pub attrs: Vec<(String, AttrValue)>,
    pub name_scope: NameScope,
}

impl ObjectWrite {
    pub fn new(kind: impl Into<String>, id: impl Into<String>, doc: impl Into<String>) -> Self {
        ObjectWrite {
            kind: kind.into(),
            id: id.into(),
            parent_id: None,
            name: None,
            doc: doc.into(),
            attrs: Vec::new(),
            name_scope: NameScope::None,
        }
    }

    pub fn parent(mut self, parent_id: impl Into<String>) -> Self {
        self.parent_id = Some(parent_id.into());
        self
    }

    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub fn attr(mut self, field: impl Into<String>, value: impl Into<AttrValue>) -> Self {
        self.attrs.push((field.into(), value.into()));
        self
    }

    pub fn unique(mut self, scope: NameScope) -> Self {
        self.name_scope = scope;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.kind.is_empty() || self.id.is_empty() {
            return Err(StoreError::invalid("kind and id must not be empty"));
        }
        check_text(&self.kind)?;
        check_text(&self.id)?;
        check_text(&self.doc)?;
        for s in [&self.parent_id, &self.name].into_iter().flatten() {
            check_text(s)?;
        }
        if let NameScope::Custom(key) = &self.name_scope {
            check_text(key)?;
        }
        for (field, value) in &self.attrs {
            check_text(field)?;
            if let AttrValue::Text(t) = value {
                check_text(t)?;
            }
            if field.is_empty() {
                return Err(StoreError::invalid("attribute name must not be empty"));
            }
            if RESERVED_FIELDS.contains(&field.as_str()) {
                return Err(StoreError::invalid(format!(
                    "attribute name {field:?} is reserved (it names a record column)"
                )));
            }
            if let AttrValue::Real(f) = value {
                if !f.is_finite() {
                    return Err(StoreError::invalid(format!(
                        "attribute {field:?} is not a finite number"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The value stored in the `name_scope` column: NULL means "not unique"
    /// (NULLs never collide in a UNIQUE index on either backend).
    pub(crate) fn scope_key(&self) -> Option<String> {
        self.name.as_ref()?;
        match &self.name_scope {
            NameScope::None => None,
            NameScope::Global => Some("g:".to_owned()),
            NameScope::Parent => Some(format!("p:{}", self.parent_id.as_deref().unwrap_or(""))),
            NameScope::Custom(key) => Some(format!("c:{key}")),
        }
    }
}

/// Case folding used for both stored copies and patterns. Per-char mapping
/// (not `str::to_lowercase`) so that a value and a pattern containing the
/// same text always fold identically, whatever surrounds them.
pub(crate) fn fold_case(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

/// PostgreSQL text cannot hold NUL characters; refuse them on both backends
/// so the same input behaves the same everywhere (and never fails midway
/// through a transaction).
pub(crate) fn check_text(s: &str) -> Result<()> {
    if s.contains('\0') {
        return Err(StoreError::invalid("text must not contain NUL characters"));
    }
    Ok(())
}
