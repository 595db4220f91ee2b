//! Wildcard patterns (`*` = any run of characters, `\*` a literal star,
//! `\\` a literal backslash) and their translation: GLOB on SQLite, LIKE with
//! an ESCAPE clause on PostgreSQL, plus a literal-prefix range for indexes.

use crate::record::fold_case;
use crate::sql::{Arg, Dialect, Sql};

/// `<col>` matches the wildcard pattern.
pub(crate) fn push_match(sql: &mut Sql, col: &str, toks: &[Tok]) {
    if !toks.contains(&Tok::Star) {
        // No wildcard: plain equality, the cheapest index lookup.
        sql.push(col).push(" = ");
        sql.bind(Arg::Text(literal_prefix(toks)));
        return;
    }
    match sql.dialect {
        // GLOB is always case-sensitive and has no ESCAPE clause, which
        // avoids SQLite's ASCII-case-insensitive LIKE (and the deprecated
        // case_sensitive_like pragma). The lower-cased column makes it
        // case-insensitive when asked.
        Dialect::Sqlite => {
            sql.push(col).push(" GLOB ");
            sql.bind(Arg::Text(to_glob(toks)));
        }
        Dialect::Postgres => {
            sql.push(col).push(" LIKE ");
            sql.bind(Arg::Text(to_like(toks)));
            sql.push(" ESCAPE '\\'");
        }
    }
    // An explicit range on the literal prefix lets the btree narrow the
    // scan even when the planner cannot look into the pattern (generic
    // plans for prepared statements on PostgreSQL).
    let prefix = literal_prefix(toks);
    if !prefix.is_empty() {
        sql.push(" AND ").push(col).push(" >= ");
        if let Some(upper) = prefix_upper(&prefix) {
            sql.bind(Arg::Text(prefix));
            sql.push(" AND ").push(col).push(" < ");
            sql.bind(Arg::Text(upper));
        } else {
            sql.bind(Arg::Text(prefix));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    Lit(char),
    Star,
}

pub(crate) fn parse_pattern(pattern: &str, case_sensitive: bool) -> Vec<Tok> {
    let mut out = Vec::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    let lit = |out: &mut Vec<Tok>, c: char| {
        if case_sensitive {
            out.push(Tok::Lit(c));
        } else {
            out.extend(fold_case(c.encode_utf8(&mut [0; 4])).chars().map(Tok::Lit));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push(Tok::Star),
            '\\' if matches!(chars.peek(), Some('*') | Some('\\')) => {
                let next = chars.next().unwrap_or('\\');
                lit(&mut out, next);
            }
            c => lit(&mut out, c),
        }
    }
    out
}

fn literal_prefix(toks: &[Tok]) -> String {
    toks.iter()
        .map_while(|t| match t {
            Tok::Lit(c) => Some(*c),
            Tok::Star => None,
        })
        .collect()
}

fn to_like(toks: &[Tok]) -> String {
    let mut s = String::new();
    for t in toks {
        match t {
            Tok::Star => s.push('%'),
            Tok::Lit(c @ ('%' | '_' | '\\')) => {
                s.push('\\');
                s.push(*c);
            }
            Tok::Lit(c) => s.push(*c),
        }
    }
    s
}

fn to_glob(toks: &[Tok]) -> String {
    let mut s = String::new();
    for t in toks {
        match t {
            Tok::Star => s.push('*'),
            Tok::Lit(c @ ('*' | '?' | '[')) => {
                s.push('[');
                s.push(*c);
                s.push(']');
            }
            Tok::Lit(c) => s.push(*c),
        }
    }
    s
}

/// The smallest string greater than every string starting with `prefix`,
/// in byte (= code point) order; None if there is none.
fn prefix_upper(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last as u32 + 1 {
            0xD800 => Some('\u{E000}'),
            n => char::from_u32(n),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_and_glob_escaping() {
        let t = parse_pattern(r"a%b_c*\*d\\e\x", true);
        assert_eq!(to_like(&t), r"a\%b\_c%*d\\e\\x");
        assert_eq!(to_glob(&t), r"a%b_c*[*]d\e\x");
        assert_eq!(literal_prefix(&t), "a%b_c");
        let t = parse_pattern("Vm-[1]?*", false);
        assert_eq!(to_glob(&t), "vm-[[]1][?]*");
    }

    #[test]
    fn prefix_upper_bounds() {
        assert_eq!(prefix_upper("vm-1").as_deref(), Some("vm-2"));
        assert_eq!(prefix_upper("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_upper("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper("\u{10FFFF}"), None);
    }
}
