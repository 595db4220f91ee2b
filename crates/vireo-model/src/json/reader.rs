//! Reading JSON bodies: parsed once into a value tree (serde_json bounds its recursion),
//! then the generated readers pick fields from it.

use crate::error::{CodecError, ErrorKind, Result};
use crate::scalar::{self, Date};
pub use serde_json::Value as JsonValue;

pub fn parse_document(input: &[u8], max_bytes: usize) -> Result<JsonValue> {
    if input.len() > max_bytes {
        return Err(CodecError::new(
            ErrorKind::TooLarge,
            format!(
                "the document has {} bytes, more than the limit of {max_bytes}",
                input.len()
            ),
        ));
    }
    serde_json::from_slice(input).map_err(|e| {
        if e.to_string().contains("recursion limit") {
            CodecError::new(ErrorKind::TooDeep, "JSON nested too deeply")
        } else {
            CodecError::malformed(format!("malformed JSON: {e}"))
        }
    })
}

/// A member of an object, ignoring explicit nulls.
pub fn field<'v>(obj: &'v serde_json::Map<String, JsonValue>, key: &str) -> Option<&'v JsonValue> {
    obj.get(key).filter(|v| !v.is_null())
}

/// The items of a list: `{"nic": [...]}`, a bare array, or one item on its own.
pub fn list_items<'v>(v: &'v JsonValue, item: &str) -> Vec<&'v JsonValue> {
    match v {
        JsonValue::Array(a) => a.iter().collect(),
        JsonValue::Object(o) => match o.get(item) {
            Some(JsonValue::Array(a)) => a.iter().collect(),
            Some(JsonValue::Null) | None if o.is_empty() => Vec::new(),
            Some(one) => vec![one],
            None => vec![v],
        },
        JsonValue::Null => Vec::new(),
        other => vec![other],
    }
}

fn scalar_text(v: &JsonValue) -> Result<std::borrow::Cow<'_, str>> {
    match v {
        JsonValue::String(s) => Ok(std::borrow::Cow::Borrowed(s)),
        JsonValue::Number(n) => Ok(std::borrow::Cow::Owned(n.to_string())),
        JsonValue::Bool(b) => Ok(std::borrow::Cow::Borrowed(if *b {
            "true"
        } else {
            "false"
        })),
        _ => Err(CodecError::invalid("expected a scalar value")),
    }
}

pub fn read_string(v: &JsonValue) -> Result<String> {
    scalar_text(v).map(|c| c.into_owned())
}

pub fn read_i64(v: &JsonValue) -> Result<i64> {
    match v {
        JsonValue::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .ok_or_else(|| CodecError::invalid(format!("{n} is not an integer"))),
        _ => scalar::parse_i64(&scalar_text(v)?),
    }
}

pub fn read_f64(v: &JsonValue) -> Result<f64> {
    match v {
        JsonValue::Number(n) => n
            .as_f64()
            .ok_or_else(|| CodecError::invalid("not a decimal")),
        _ => scalar::parse_f64(&scalar_text(v)?),
    }
}

pub fn read_bool(v: &JsonValue) -> Result<bool> {
    match v {
        JsonValue::Bool(b) => Ok(*b),
        _ => scalar::parse_bool(&scalar_text(v)?),
    }
}

pub fn read_date(v: &JsonValue) -> Result<Date> {
    match v {
        JsonValue::Number(n) => match n.as_i64() {
            Some(ms) => scalar::date_from_millis(ms),
            None => Err(CodecError::invalid(format!(
                "{n} is not a date in epoch milliseconds"
            ))),
        },
        _ => scalar::parse_date(&scalar_text(v)?),
    }
}
