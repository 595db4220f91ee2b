//! Query (and matrix) parameters every list/get takes, parsed once per request.

use super::fault::ApiError;
use axum::http::HeaderMap;

#[derive(Debug, Default, Clone)]
pub struct Params {
    pub raw: Vec<(String, String)>,
    pub search: Option<String>,
    pub max: Option<i64>,
    pub follow: Vec<String>,
    pub case_sensitive: bool,
    pub all_content: bool,
    pub filter: Option<bool>,
    pub accept: Option<String>,
    pub correlation_id: Option<String>,
}

/// oVirt's spellings of a boolean; a parameter without a value means true.
pub fn parse_bool(name: &str, v: &str) -> Result<bool, ApiError> {
    match v.to_ascii_lowercase().as_str() {
        "" | "t" | "true" | "y" | "yes" | "1" => Ok(true),
        "f" | "false" | "n" | "no" | "0" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "the value '{v}' of parameter '{name}' is not a boolean"
        ))),
    }
}

impl Params {
    /// `query` is the URL's query string; `matrix` the `;a=b` parameters of the last segment.
    pub fn parse(
        query: Option<&str>,
        matrix: &[(String, String)],
        headers: &HeaderMap,
    ) -> Result<Params, ApiError> {
        let mut p = Params::default();
        let mut raw: Vec<(String, String)> = query
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        raw.extend(matrix.iter().cloned());
        for (k, v) in &raw {
            match k.as_str() {
                "search" => p.search = Some(v.clone()),
                "max" => {
                    let n: i64 = v.trim().parse().map_err(|_| {
                        ApiError::bad_request(format!(
                            "the value '{v}' of parameter 'max' is not a number"
                        ))
                    })?;
                    // oVirt treats a negative max as "no limit"
                    p.max = if n < 0 { None } else { Some(n) };
                }
                "follow" => p.follow.extend(
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from),
                ),
                "case_sensitive" => p.case_sensitive = parse_bool(k, v)?,
                "all_content" => p.all_content = parse_bool(k, v)?,
                "filter" => p.filter = Some(parse_bool(k, v)?),
                "accept" => p.accept = Some(v.clone()),
                "correlation_id" => p.correlation_id = Some(v.clone()),
                _ => {}
            }
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(v) = header("all-content") {
            p.all_content = parse_bool("All-Content", v)?;
        }
        if let Some(v) = header("filter") {
            p.filter = Some(parse_bool("Filter", v)?);
        }
        if let Some(v) = header("correlation-id") {
            p.correlation_id = Some(v.to_string());
        }
        p.correlation_id = p
            .correlation_id
            .map(|c| clean_correlation_id(&c))
            .filter(|c| !c.is_empty());
        p.raw = raw;
        Ok(p)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.raw
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn flag(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.get(name).map(|v| parse_bool(name, v)).transpose()
    }
}

/// oVirt keeps `[0-9A-Za-z_-]` and cuts to 36 characters.
pub fn clean_correlation_id(c: &str) -> String {
    c.chars()
        .filter(|ch| ch.is_ascii_alphanumeric() || *ch == '_' || *ch == '-')
        .take(36)
        .collect()
}
