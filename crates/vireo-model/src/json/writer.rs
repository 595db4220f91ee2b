//! Appends JSON to a byte buffer, tracking only whether a comma is due.

use crate::scalar::{self, Date};

#[derive(Default)]
pub struct JsonWriter {
    pub buf: Vec<u8>,
    /// One flag per open object or array: has it got a member yet?
    has_member: Vec<bool>,
    /// A key was just written: the next value follows it without a comma.
    pending_value: bool,
}

impl JsonWriter {
    pub fn new() -> Self {
        JsonWriter {
            buf: Vec::with_capacity(4096),
            has_member: Vec::with_capacity(16),
            pending_value: false,
        }
    }

    fn comma(&mut self) {
        if let Some(last) = self.has_member.last_mut() {
            if *last {
                self.buf.push(b',');
            }
            *last = true;
        }
    }

    pub fn key(&mut self, k: &str) {
        self.comma();
        write_str(k, &mut self.buf);
        self.buf.push(b':');
        self.pending_value = true;
    }

    fn value_prefix(&mut self) {
        if self.pending_value {
            self.pending_value = false;
        } else {
            self.comma();
        }
    }

    pub fn begin_object(&mut self) {
        self.value_prefix();
        self.buf.push(b'{');
        self.has_member.push(false);
    }

    pub fn end_object(&mut self) {
        self.has_member.pop();
        self.buf.push(b'}');
    }

    pub fn begin_array(&mut self) {
        self.value_prefix();
        self.buf.push(b'[');
        self.has_member.push(false);
    }

    pub fn end_array(&mut self) {
        self.has_member.pop();
        self.buf.push(b']');
    }

    pub fn string(&mut self, v: &str) {
        self.value_prefix();
        write_str(v, &mut self.buf);
    }

    /// Integers (and booleans) travel as strings, as the engine's converters write them.
    pub fn integer(&mut self, v: i64) {
        self.value_prefix();
        self.buf.push(b'"');
        scalar::write_i64(v, &mut self.buf);
        self.buf.push(b'"');
    }

    /// Decimals are JSON numbers: the engine has no string converter for them.
    pub fn decimal(&mut self, v: f64) {
        self.value_prefix();
        scalar::write_f64(v, &mut self.buf);
    }

    pub fn boolean(&mut self, v: bool) {
        self.value_prefix();
        self.buf
            .extend_from_slice(if v { b"\"true\"" } else { b"\"false\"" });
    }

    /// Dates travel as epoch milliseconds (a JSON number).
    pub fn date(&mut self, v: &Date) {
        self.value_prefix();
        scalar::write_i64(v.timestamp_millis(), &mut self.buf);
    }

    pub fn link(&mut self, rel: &str, href: &str) {
        self.begin_object();
        self.key("href");
        self.string(href);
        self.key("rel");
        self.string(rel);
        self.end_object();
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut last = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&bytes[last..i]);
                out.extend_from_slice(format!("\\u{c:04x}").as_bytes());
                last = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[last..i]);
        out.extend_from_slice(esc);
        last = i + 1;
    }
    out.extend_from_slice(&bytes[last..]);
    out.push(b'"');
}
