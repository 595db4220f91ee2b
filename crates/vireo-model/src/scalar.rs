//! Scalar values as the wire writes them: integers, decimals, booleans, dates.

use crate::error::{CodecError, Result};
use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};

pub type Date = DateTime<FixedOffset>;

pub fn parse_i64(text: &str) -> Result<i64> {
    let t = text.trim();
    t.parse::<i64>().or_else(|_| {
        // Some clients send integral values with a fraction or exponent ("1.0", "1e3").
        match t.parse::<f64>() {
            Ok(v) if v.fract() == 0.0 && v.abs() < 9.2e18 => Ok(v as i64),
            _ => Err(CodecError::invalid(format!(
                "'{}' is not an integer",
                clip(t)
            ))),
        }
    })
}

pub fn parse_f64(text: &str) -> Result<f64> {
    let t = text.trim();
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(CodecError::invalid(format!(
            "'{}' is not a decimal number",
            clip(t)
        ))),
    }
}

/// oVirt accepts the usual spellings of a boolean, case-insensitively.
pub fn parse_bool(text: &str) -> Result<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" => Ok(true),
        "false" | "f" | "no" | "n" | "0" => Ok(false),
        other => Err(CodecError::invalid(format!(
            "'{}' is not a boolean",
            clip(other)
        ))),
    }
}

/// ISO 8601 with or without fraction and offset (a missing offset means UTC), or epoch milliseconds.
pub fn parse_date(text: &str) -> Result<Date> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d);
    }
    if let Ok(d) = DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Ok(d);
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(Utc.from_utc_datetime(&n).fixed_offset());
        }
    }
    if let Ok(ms) = t.parse::<i64>() {
        return date_from_millis(ms);
    }
    Err(CodecError::invalid(format!("'{}' is not a date", clip(t))))
}

pub fn date_from_millis(ms: i64) -> Result<Date> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|d| d.fixed_offset())
        .ok_or_else(|| CodecError::invalid(format!("{ms} is out of the range of dates")))
}

/// `2016-12-12T10:00:00.000+02:00`: milliseconds and the value's own offset, as oVirt writes.
pub fn format_date(d: &Date, out: &mut Vec<u8>) {
    use std::io::Write;
    let _ = write!(out, "{}", d.format("%Y-%m-%dT%H:%M:%S%.3f%:z"));
}

pub fn write_f64(v: f64, out: &mut Vec<u8>) {
    let mut b = ryu::Buffer::new();
    let s = b.format(v);
    // ryu writes "1.0" for integral values; keep it: it reads back as a decimal everywhere.
    out.extend_from_slice(s.as_bytes());
}

pub fn write_i64(v: i64, out: &mut Vec<u8>) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(v).as_bytes());
}

fn clip(s: &str) -> String {
    if s.chars().count() > 64 {
        let mut c: String = s.chars().take(64).collect();
        c.push('…');
        c
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_every_form_clients_send() {
        let a = parse_date("2016-12-12T10:00:00.000+02:00").unwrap();
        let b = parse_date("2016-12-12T08:00:00Z").unwrap();
        let c = parse_date("2016-12-12T08:00:00").unwrap();
        let d = parse_date("2016-12-12T10:00:00.123456+02:00").unwrap();
        let e = parse_date("1481529600000").unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(a, e);
        assert_eq!(d.timestamp_subsec_micros(), 123456);
        let mut out = Vec::new();
        format_date(&a, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2016-12-12T10:00:00.000+02:00"
        );
        assert!(parse_date("yesterday").is_err());
    }

    #[test]
    fn scalars() {
        assert_eq!(parse_i64(" 42 ").unwrap(), 42);
        assert!(parse_i64("abc").is_err());
        assert!(parse_bool("Yes").unwrap());
        assert!(!parse_bool("0").unwrap());
        assert!(parse_bool("maybe").is_err());
        assert!(parse_f64("NaN").is_err());
    }
}
