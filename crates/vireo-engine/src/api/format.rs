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
    }
}
