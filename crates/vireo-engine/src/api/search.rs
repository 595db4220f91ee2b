//! oVirt's search language, compiled to one store filter: `field op value` joined by `and`/`or`
//! (and binds tighter), `*` wildcards, quoted values, `sortby f [asc|desc]`, `page N`.
//! Fields are the type's scalar attributes; cross-entity conditions come with the inventory.

use super::fault::ApiError;
use vireo_model::meta::{Scalar, TypeDef, TypeRef};
use vireo_store::{AttrValue, CmpOp, Filter, Order};

#[derive(Debug, Default)]
pub struct Search {
    pub filter: Option<Filter>,
    pub sort: Option<(String, Order)>,
    pub page: Option<i64>,
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String, usize),
    Quoted(String, usize),
    Op(&'static str, usize),
    Open(usize),
    Close(usize),
}

fn error(pos: usize, what: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("search query: {what} at position {}", pos + 1))
}

fn tokens(q: &str) -> Result<Vec<Tok>, ApiError> {
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
        } else if let Some(op) = ["!=", "<=", ">=", "=", "<", ">"].iter().find(|op| q[i..].starts_with(**op)) {
            out.push(Tok::Op(op, i));
            i += op.len();
        } else {
            let start = i;
            while i < b.len() && !b[i].is_ascii_whitespace() && !b"()=<>!\"'".contains(&b[i]) {
                i += 1;
            }
            out.push(Tok::Word(q[start..i].to_string(), start));
        }
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<Tok>,
    at: usize,
    t: &'a TypeDef,
    case_sensitive: bool,
    len: usize,
}

impl Parser<'_> {
    fn peek_word(&self) -> Option<String> {
        match self.toks.get(self.at) {
            Some(Tok::Word(w, _)) => Some(w.to_ascii_lowercase()),
            _ => None,
        }
    }
    fn pos(&self) -> usize {
        match self.toks.get(self.at) {
            Some(Tok::Word(_, p) | Tok::Quoted(_, p) | Tok::Op(_, p) | Tok::Open(p) | Tok::Close(p)) => *p,
            None => self.len,
        }
    }
    fn or(&mut self) -> Result<Filter, ApiError> {
        let mut parts = vec![self.and()?];
        while self.peek_word().as_deref() == Some("or") {
            self.at += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 { parts.pop().unwrap() } else { Filter::Or(parts) })
    }
    fn and(&mut self) -> Result<Filter, ApiError> {
        let mut parts = vec![self.term()?];
        loop {
            match self.peek_word().as_deref() {
                Some("and") => {
                    self.at += 1;
                    parts.push(self.term()?);
                }
                Some("or") | Some("sortby") | Some("page") | None => break,
                // oVirt reads juxtaposed conditions as `and`
                Some(_) => parts.push(self.term()?),
            }
            if matches!(self.toks.get(self.at), Some(Tok::Close(_)) | None) {
                break;
            }
        }
        Ok(if parts.len() == 1 { parts.pop().unwrap() } else { Filter::And(parts) })
    }
    fn term(&mut self) -> Result<Filter, ApiError> {
        if let Some(Tok::Open(_)) = self.toks.get(self.at) {
            self.at += 1;
            let f = self.or()?;
            match self.toks.get(self.at) {
                Some(Tok::Close(_)) => self.at += 1,
                _ => return Err(error(self.pos(), "expected ')'")),
            }
            return Ok(f);
        }
        let pos = self.pos();
        let field = match self.toks.get(self.at) {
            Some(Tok::Word(w, _)) => w.to_ascii_lowercase(),
            _ => return Err(error(pos, "expected a field name")),
        };
        self.at += 1;
        let op = match self.toks.get(self.at) {
            Some(Tok::Op(op, _)) => *op,
            _ => return Err(error(self.pos(), format!("expected an operator after '{field}'"))),
        };
        self.at += 1;
        let value = match self.toks.get(self.at) {
            Some(Tok::Word(w, _) | Tok::Quoted(w, _)) => w.clone(),
            _ => return Err(error(self.pos(), format!("expected a value after '{field}{op}'"))),
        };
        self.at += 1;
        self.condition(&field, op, value, pos)
    }
    fn condition(&self, field: &str, op: &str, value: String, pos: usize) -> Result<Filter, ApiError> {
        let (column, ty) = if field == "name" || field == "id" {
            (field.to_string(), TypeRef::Scalar(Scalar::String))
        } else {
            let a = self
                .t
                .attributes
                .iter()
                .find(|a| a.xml == field && !a.list && !matches!(a.ty, TypeRef::Struct(_)))
                .ok_or_else(|| error(pos, format!("'{field}' is not a searchable field of {}", self.t.name)))?;
            (a.xml.to_string(), a.ty)
        };
        let cmp = match op {
            "=" => CmpOp::Eq,
            "!=" => CmpOp::Ne,
            "<" => CmpOp::Lt,
            "<=" => CmpOp::Le,
            ">" => CmpOp::Gt,
            _ => CmpOp::Ge,
        };
        let numeric = matches!(ty, TypeRef::Scalar(Scalar::Integer) | TypeRef::Scalar(Scalar::Decimal));
        if numeric {
            let v: f64 = value.parse().map_err(|_| error(pos, format!("'{value}' is not a number")))?;
            let av = if v.fract() == 0.0 { AttrValue::Int(v as i64) } else { AttrValue::Real(v) };
            return Ok(Filter::cmp(column, cmp, av));
        }
        match cmp {
            CmpOp::Eq | CmpOp::Ne => {
                let like = Filter::Like { field: column, pattern: value, case_sensitive: self.case_sensitive };
                Ok(if cmp == CmpOp::Ne { Filter::not(like) } else { like })
            }
            _ => Ok(Filter::cmp(column, cmp, AttrValue::Text(value))),
        }
    }
}

pub fn parse(query: &str, t: &TypeDef, case_sensitive: bool) -> Result<Search, ApiError> {
    let mut p = Parser { toks: tokens(query)?, at: 0, t, case_sensitive, len: query.len() };
    let mut s = Search::default();
    // An optional `Vms:`-style prefix names the entity, as oVirt's own queries do.
    if let Some(Tok::Word(w, _)) = p.toks.first() {
        if w.ends_with(':') {
            p.at = 1;
        }
    }
    if p.at < p.toks.len() && !matches!(p.peek_word().as_deref(), Some("sortby") | Some("page")) {
        s.filter = Some(p.or()?);
    }
    while p.at < p.toks.len() {
        match p.peek_word().as_deref() {
            Some("sortby") => {
                p.at += 1;
                let field = p.peek_word().ok_or_else(|| error(p.pos(), "expected a field after sortby"))?;
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
                s.sort = Some((field, order));
            }
            Some("page") => {
                p.at += 1;
                let n = p.peek_word().and_then(|w| w.parse::<i64>().ok()).filter(|n| *n >= 1);
                s.page = Some(n.ok_or_else(|| error(p.pos(), "expected a page number"))?);
                p.at += 1;
            }
            _ => return Err(error(p.pos(), "unexpected input")),
        }
    }
    Ok(s)
}
