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
