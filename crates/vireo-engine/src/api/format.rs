//! Content negotiation: XML unless the client asks for JSON (`Accept` or `?accept=`).

use axum::http::{header, HeaderMap, HeaderValue};
use vireo_model::{Limits, Model};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Xml,
    Json,
}

pub const BODY_LIMITS: Limits = Limits {
    max_bytes: 64 << 20,
    max_depth: 64,
};

impl Format {
    pub fn of_response(headers: &HeaderMap, accept_param: Option<&str>) -> Format {
        let accept = accept_param
            .or_else(|| headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()))
            .unwrap_or("");
        if accept.contains("json") && !accept.contains("xml") {
            Format::Json
        } else {
            Format::Xml
        }
    }

    pub fn of_request(headers: &HeaderMap) -> Format {
        match headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        {
            Some(ct) if ct.contains("json") => Format::Json,
            _ => Format::Xml,
        }
    }

    pub fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Format::Xml => "application/xml",
            Format::Json => "application/json",
        })
    }

    pub fn render<T: Model>(self, v: &T) -> Vec<u8> {
        match self {
            Format::Xml => vireo_model::to_xml(v),
            Format::Json => vireo_model::to_json(v),
        }
    }

    pub fn render_list<T: Model>(self, items: &[T]) -> Vec<u8> {
        match self {
            Format::Xml => vireo_model::to_xml_list(items),
            Format::Json => vireo_model::to_json_list(items),
        }
    }

    pub fn parse<T: Model>(self, body: &[u8]) -> Result<T, vireo_model::CodecError> {
        match self {
            Format::Xml => vireo_model::from_xml(body, BODY_LIMITS),
            Format::Json => vireo_model::from_json(body, BODY_LIMITS),
        }
    }
}

impl Format {
    /// One member as it appears inside a list document (no separator).
    pub fn render_item<T: Model>(self, v: &T) -> Vec<u8> {
        match self {
            Format::Xml => {
                let mut w = vireo_model::xml::XmlWriter::new();
                v.write_xml(&mut w, T::XML);
                w.buf
            }
            Format::Json => {
                let mut w = vireo_model::json::JsonWriter::new();
                v.write_json(&mut w);
                w.buf
            }
        }
    }

    /// The list document of members rendered by [`Format::render_item`]: the same bytes
    /// [`Format::render_list`] writes, sized once instead of grown by doubling.
    pub fn join_items<T: Model, B: AsRef<[u8]>>(self, items: &[B]) -> Vec<u8> {
        const DECL: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n";
        let size: usize = items.iter().map(|i| i.as_ref().len() + 1).sum();
        let mut out = Vec::with_capacity(size + 2 * T::XML_PLURAL.len() + DECL.len() + 16);
        match self {
            Format::Xml => {
                out.extend_from_slice(DECL);
                if items.is_empty() {
                    out.extend_from_slice(format!("<{}/>", T::XML_PLURAL).as_bytes());
                    return out;
                }
                out.extend_from_slice(format!("<{}>", T::XML_PLURAL).as_bytes());
                for i in items {
                    out.extend_from_slice(i.as_ref());
                }
                out.extend_from_slice(format!("</{}>", T::XML_PLURAL).as_bytes());
            }
            Format::Json => {
                if items.is_empty() {
                    out.extend_from_slice(b"{}");
                    return out;
                }
                // Element names are plain ASCII words: nothing to escape.
                out.extend_from_slice(format!("{{\"{}\":[", T::XML).as_bytes());
                for (n, i) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(i.as_ref());
                }
                out.extend_from_slice(b"]}");
            }
        }
        out
    }
}

/// A list document streamed from members rendered by [`Format::render_item`], in chunks of
/// about `CHUNK` bytes: the same bytes as [`Format::join_items`] without building the whole
/// document first (a 10,000-VM list is 60–70 MiB; a fresh buffer that size costs more in
/// page faults than the copy into it).
pub struct ListBody {
    parts: std::vec::IntoIter<std::sync::Arc<[u8]>>,
    head: Option<Vec<u8>>,
    tail: Option<Vec<u8>>,
    sep: &'static [u8],
    first: bool,
    remaining: u64,
}

impl ListBody {
    const CHUNK: usize = 64 << 10;

    pub fn new<T: Model>(format: Format, parts: Vec<std::sync::Arc<[u8]>>) -> ListBody {
        const DECL: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n";
        let (head, tail, sep): (Vec<u8>, Vec<u8>, &'static [u8]) = match (format, parts.is_empty())
        {
            (Format::Xml, true) => (
                [DECL, format!("<{}/>", T::XML_PLURAL).as_bytes()].concat(),
                Vec::new(),
                b"",
            ),
            (Format::Xml, false) => (
                [DECL, format!("<{}>", T::XML_PLURAL).as_bytes()].concat(),
                format!("</{}>", T::XML_PLURAL).into_bytes(),
                b"",
            ),
            (Format::Json, true) => (b"{}".to_vec(), Vec::new(), b","),
            (Format::Json, false) => (
                format!("{{\"{}\":[", T::XML).into_bytes(),
                b"]}".to_vec(),
                b",",
            ),
        };
        let items: usize = parts.iter().map(|p| p.len()).sum();
        let seps = parts.len().saturating_sub(1) * sep.len();
        ListBody {
            remaining: (head.len() + items + seps + tail.len()) as u64,
            parts: parts.into_iter(),
            head: Some(head),
            tail: Some(tail),
            sep,
            first: true,
        }
    }

    /// A document already whole (sent as it is).
    pub fn raw(doc: Vec<u8>) -> ListBody {
        ListBody {
            remaining: doc.len() as u64,
            parts: Vec::new().into_iter(),
            head: Some(doc),
            tail: None,
            sep: b"",
            first: true,
        }
    }

    pub fn len(&self) -> u64 {
        self.remaining
    }

    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    fn next_chunk(&mut self) -> Option<Vec<u8>> {
        let mut buf = match self.head.take() {
            Some(h) if h.len() >= Self::CHUNK => return Some(h),
            Some(h) => {
                let mut b = Vec::with_capacity(Self::CHUNK + 8192);
                b.extend_from_slice(&h);
                b
            }
            None => Vec::with_capacity(Self::CHUNK + 8192),
        };
        while buf.len() < Self::CHUNK {
            match self.parts.next() {
                Some(p) => {
                    if !self.first {
                        buf.extend_from_slice(self.sep);
                    }
                    self.first = false;
                    buf.extend_from_slice(&p);
                }
                None => {
                    if let Some(t) = self.tail.take() {
                        buf.extend_from_slice(&t);
                    }
                    break;
                }
            }
        }
        (!buf.is_empty()).then_some(buf)
    }
}

impl hyper::body::Body for ListBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let chunk = this.next_chunk();
        if let Some(c) = &chunk {
            this.remaining = this.remaining.saturating_sub(c.len() as u64);
        }
        std::task::Poll::Ready(chunk.map(|c| Ok(hyper::body::Frame::data(c.into()))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vireo_model::sample::Gen;

    fn sample<T: Model>(seed: u64) -> T {
        T::sample(&mut Gen::new(seed), 3)
    }

    fn same<T: Model>(items: &[T]) {
        for f in [Format::Xml, Format::Json] {
            let parts: Vec<Vec<u8>> = items.iter().map(|i| f.render_item(i)).collect();
            assert_eq!(
                String::from_utf8_lossy(&f.join_items::<T, _>(&parts)),
                String::from_utf8_lossy(&f.render_list(items)),
                "{f:?}"
            );
            let shared: Vec<std::sync::Arc<[u8]>> = parts.iter().map(|p| p[..].into()).collect();
            let mut body = ListBody::new::<T>(f, shared);
            let len = body.len();
            let mut streamed = Vec::new();
            while let Some(c) = body.next_chunk() {
                streamed.extend(c);
            }
            assert_eq!(streamed.len() as u64, len);
            assert_eq!(streamed, f.render_list(items), "{f:?}");
        }
    }

    #[test]
    fn joined_items_are_the_list_document() {
        same::<vireo_model::Vm>(&[]);
        same(&[sample::<vireo_model::Vm>(1)]);
        same(&[
            sample::<vireo_model::Vm>(2),
            vireo_model::Vm::default(),
            sample::<vireo_model::Vm>(3),
        ]);
        same(&[
            sample::<vireo_model::Host>(4),
            sample::<vireo_model::Host>(5),
        ]);
        // More than one chunk.
        let many: Vec<vireo_model::Vm> = (10..14).map(sample).collect();
        assert!(Format::Json.render_list(&many).len() > 2 * ListBody::CHUNK);
        same(&many);
    }
}
