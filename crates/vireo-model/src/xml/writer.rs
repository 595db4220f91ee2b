//! Appends XML to a byte buffer; escaping is the only work it does per value.

use crate::scalar::{self, Date};

#[derive(Default)]
pub struct XmlWriter {
    pub buf: Vec<u8>,
}

impl XmlWriter {
    pub fn new() -> Self {
        XmlWriter {
            buf: Vec::with_capacity(4096),
        }
    }

    pub fn declaration(&mut self) {
        self.buf
            .extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n");
    }

    /// `<name`; follow with `attr` calls, then `open_end` or `empty_end`.
    pub fn open(&mut self, name: &str) {
        self.buf.push(b'<');
        self.buf.extend_from_slice(name.as_bytes());
    }

    pub fn attr(&mut self, key: &str, value: &str) {
        self.buf.push(b' ');
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.extend_from_slice(b"=\"");
        escape(value, true, &mut self.buf);
        self.buf.push(b'"');
    }

    pub fn open_end(&mut self) {
        self.buf.push(b'>');
    }

    pub fn empty_end(&mut self) {
        self.buf.extend_from_slice(b"/>");
    }

    pub fn close(&mut self, name: &str) {
        self.buf.extend_from_slice(b"</");
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(b'>');
    }

    pub fn start(&mut self, name: &str) {
        self.open(name);
        self.open_end();
    }

    fn leaf(&mut self, name: &str, write: impl FnOnce(&mut Vec<u8>)) {
        self.start(name);
        write(&mut self.buf);
        self.close(name);
    }

    pub fn string(&mut self, name: &str, v: &str) {
        self.leaf(name, |b| escape(v, false, b));
    }

    pub fn integer(&mut self, name: &str, v: i64) {
        self.leaf(name, |b| scalar::write_i64(v, b));
    }

    pub fn decimal(&mut self, name: &str, v: f64) {
        self.leaf(name, |b| scalar::write_f64(v, b));
    }

    pub fn boolean(&mut self, name: &str, v: bool) {
        self.leaf(name, |b| {
            b.extend_from_slice(if v { b"true" } else { b"false" })
        });
    }

    pub fn date(&mut self, name: &str, v: &Date) {
        self.leaf(name, |b| scalar::format_date(v, b));
    }

    /// `<link rel="..." href="..."/>`
    pub fn link(&mut self, rel: &str, href: &str) {
        self.open("link");
        self.attr("href", href);
        self.attr("rel", rel);
        self.empty_end();
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Escapes markup characters; control characters XML 1.0 cannot carry become U+FFFD,
/// and CR/TAB/LF in attributes are written as references so that they survive normalisation.
fn escape(s: &str, attribute: bool, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    let mut last = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let rep: &[u8] = match c {
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'&' => b"&amp;",
            b'"' if attribute => b"&quot;",
            b'\r' => b"&#13;",
            b'\n' if attribute => b"&#10;",
            b'\t' if attribute => b"&#9;",
            b'\t' | b'\n' => continue,
            0..=0x1f => "\u{fffd}".as_bytes(),
            _ => continue,
        };
        out.extend_from_slice(&bytes[last..i]);
        out.extend_from_slice(rep);
        last = i + 1;
    }
    out.extend_from_slice(&bytes[last..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        let mut w = XmlWriter::new();
        w.open("a");
        w.attr("href", "x\"<&\n");
        w.open_end();
        w.string("b", "1 < 2 & \"3\" >\r\u{1}");
        w.close("a");
        assert_eq!(
            String::from_utf8(w.buf).unwrap(),
            "<a href=\"x&quot;&lt;&amp;&#10;\"><b>1 &lt; 2 &amp; \"3\" &gt;&#13;\u{fffd}</b></a>"
        );
    }
}
