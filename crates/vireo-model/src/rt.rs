//! Small helpers the generated readers and writers call, kept out of the generated code so
//! that it stays short.

use crate::codec::Link;
use crate::error::{CodecError, Result};
use crate::json::{self, JsonValue, JsonWriter};
use crate::scalar::Date;
use crate::xml::{BytesStart, XmlReader, XmlWriter};
use quick_xml::events::attributes::{AttrError, Attribute};

pub fn bad_attribute(e: AttrError) -> CodecError {
    CodecError::malformed(format!("bad attribute: {e}"))
}

pub fn attr_value(a: &Attribute<'_>) -> Result<String> {
    a.unescape_value()
        .map(|v| v.into_owned())
        .map_err(|e| CodecError::malformed(format!("bad attribute value: {e}")))
}

pub fn text_string(t: &str) -> Result<String> {
    Ok(t.to_string())
}

pub fn enum_error(type_name: &str, text: &str, values: &[&str]) -> CodecError {
    let shown: Vec<&str> = values.iter().take(12).copied().collect();
    let more = if values.len() > shown.len() {
        ", …"
    } else {
        ""
    };
    CodecError::invalid(format!(
        "'{}' is not a valid {type_name} (one of: {}{more})",
        text.chars().take(64).collect::<String>(),
        shown.join(", ")
    ))
}

pub fn xml_list<'a, T>(
    r: &mut XmlReader<'a>,
    empty: bool,
    mut item: impl FnMut(&mut XmlReader<'a>, &BytesStart<'a>, bool) -> Result<T>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    if empty {
        return Ok(out);
    }
    while let Some((e, emp)) = r.next_child()? {
        out.push(item(r, &e, emp)?);
    }
    Ok(out)
}

pub fn xml_scalar_list<T>(
    r: &mut XmlReader<'_>,
    empty: bool,
    parse: impl Fn(&str) -> Result<T>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    if empty {
        return Ok(out);
    }
    while let Some((_, emp)) = r.next_child()? {
        let t = r.text(emp)?;
        out.push(parse(&t)?);
    }
    Ok(out)
}

pub fn xml_link(e: &BytesStart<'_>) -> Result<Option<Link>> {
    // One pass over the attributes: links are the most frequent element of a representation.
    let (mut rel, mut href) = (None, None);
    for a in e.attributes() {
        let a = a.map_err(bad_attribute)?;
        match a.key.as_ref() {
            b"rel" => rel = Some(attr_value(&a)?),
            b"href" => href = Some(attr_value(&a)?),
            _ => {}
        }
    }
    Ok(match (rel, href) {
        (Some(rel), Some(href)) => Some(Link { rel, href }),
        _ => None,
    })
}

pub fn xml_links(r: &mut XmlReader<'_>, empty: bool) -> Result<Vec<Link>> {
    let mut out = Vec::new();
    if empty {
        return Ok(out);
    }
    while let Some((e, emp)) = r.next_child()? {
        if e.local_name().as_ref() == b"link" {
            if let Some(l) = xml_link(&e)? {
                out.push(l);
            }
        }
        r.skip(emp)?;
    }
    Ok(out)
}

pub fn xml_write_actions(w: &mut XmlWriter, actions: &[Link]) {
    if actions.is_empty() {
        return;
    }
    w.start("actions");
    for l in actions {
        w.link(&l.rel, &l.href);
    }
    w.close("actions");
}

pub fn json_object(v: &JsonValue) -> Result<&serde_json::Map<String, JsonValue>> {
    v.as_object()
        .ok_or_else(|| CodecError::invalid("expected a JSON object"))
}

pub fn json_string(v: &JsonValue) -> Result<String> {
    json::reader::read_string(v)
}
pub fn json_i64(v: &JsonValue) -> Result<i64> {
    json::reader::read_i64(v)
}
pub fn json_bool(v: &JsonValue) -> Result<bool> {
    json::reader::read_bool(v)
}
pub fn json_f64(v: &JsonValue) -> Result<f64> {
    json::reader::read_f64(v)
}
pub fn json_date(v: &JsonValue) -> Result<Date> {
    json::reader::read_date(v)
}

pub fn json_list<T>(
    v: &JsonValue,
    item: &str,
    parse: impl Fn(&JsonValue) -> Result<T>,
) -> Result<Vec<T>> {
    json::list_items(v, item).into_iter().map(parse).collect()
}

pub fn json_links(v: &JsonValue) -> Result<Vec<Link>> {
    let mut out = Vec::new();
    for l in json::list_items(v, "link") {
        let o = json_object(l)?;
        if let (Some(rel), Some(href)) = (json::field(o, "rel"), json::field(o, "href")) {
            out.push(Link {
                rel: json_string(rel)?,
                href: json_string(href)?,
            });
        }
    }
    Ok(out)
}

pub fn json_actions(v: &JsonValue) -> Result<Vec<Link>> {
    match v.as_object().and_then(|o| json::field(o, "link")) {
        Some(l) => json_links(l),
        None => json_links(v),
    }
}

pub fn json_write_links(w: &mut JsonWriter, links: &[Link]) {
    if links.is_empty() {
        return;
    }
    w.key("link");
    w.begin_array();
    for l in links {
        w.link(&l.rel, &l.href);
    }
    w.end_array();
}

pub fn json_write_actions(w: &mut JsonWriter, actions: &[Link]) {
    if actions.is_empty() {
        return;
    }
    w.key("actions");
    w.begin_object();
    json_write_links(w, actions);
    w.end_object();
}
