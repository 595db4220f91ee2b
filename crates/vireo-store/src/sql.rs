//! A tiny SQL text builder: the only way user values reach a statement is
//! through [`Sql::bind`], which appends a `$N` placeholder. Both sqlx-sqlite
//! and PostgreSQL understand `$N`, so most statements are shared verbatim.

use std::fmt::Write as _;

/// Which SQL dialect a statement is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A bound value. Kept backend-neutral so statements can be built once and
/// bound on whichever connection type runs them.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Real(f64),
    OptReal(Option<f64>),
    /// A list of strings, bound as ONE parameter: a `text[]` on PostgreSQL
    /// (`= ANY($n)`), a JSON array on SQLite (`IN (SELECT value FROM
    /// json_each($n))`). This keeps `IdIn` independent of parameter limits.
    TextList(Vec<String>),
}

/// SQL text plus its arguments, in placeholder order.
#[derive(Debug)]
pub(crate) struct Sql {
    pub(crate) dialect: Dialect,
    pub(crate) text: String,
    pub(crate) args: Vec<Arg>,
}

impl Sql {
    pub(crate) fn new(dialect: Dialect) -> Self {
        Sql {
            dialect,
            text: String::with_capacity(256),
            args: Vec::new(),
        }
    }

    /// Append trusted SQL text (never user input).
    pub(crate) fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Bind a value and append its placeholder; returns the placeholder
    /// number so it can be referenced again with [`Sql::push_param`].
    pub(crate) fn bind(&mut self, arg: Arg) -> usize {
        let n = self.arg(arg);
        self.push_param(n);
        n
    }

    /// Add an argument without writing its placeholder (for statements whose
    /// text refers to `$N` explicitly or repeatedly).
    pub(crate) fn arg(&mut self, arg: Arg) -> usize {
        self.args.push(arg);
        self.args.len()
    }

    /// Re-use an already bound placeholder (e.g. the kind in subqueries).
    pub(crate) fn push_param(&mut self, n: usize) -> &mut Self {
        let _ = write!(self.text, "${n}");
        self
    }

    pub(crate) fn bind_text(&mut self, s: &str) -> usize {
        self.bind(Arg::Text(s.to_owned()))
    }
}
