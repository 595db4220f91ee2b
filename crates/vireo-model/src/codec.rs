//! The codec trait every generated type implements, and whole-document entry points.

use crate::error::{CodecError, ErrorKind, Result};
use crate::json::{self, JsonValue, JsonWriter};
use crate::meta::TypeDef;
use crate::sample::Sample;
use crate::xml::{BytesStart, Limits, XmlReader, XmlWriter};

/// A `<link rel href>`: a sub-collection of an entity, or one of its actions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    pub rel: String,
    pub href: String,
}

pub trait Model: Sized + Default + Clone + PartialEq + std::fmt::Debug + Sample {
    const NAME: &'static str;
    /// Element name of one value (`vm`) and of a collection of them (`vms`).
    const XML: &'static str;
    const XML_PLURAL: &'static str;

    fn meta() -> &'static TypeDef;
    /// `None` for types without an `id` attribute.
    fn id(&self) -> Option<&str>;
    fn set_id(&mut self, id: Option<String>);
    /// `None` for types without a `name` attribute.
    fn name(&self) -> Option<&str>;
    fn href_mut(&mut self) -> &mut Option<String>;
    fn links_mut(&mut self) -> &mut Vec<Link>;
    fn actions_mut(&mut self) -> &mut Vec<Link>;
    fn write_xml(&self, w: &mut XmlWriter, tag: &str);
    /// Reads the element whose start tag is `start`, up to and including its end tag.
    fn read_xml(r: &mut XmlReader<'_>, start: &BytesStart<'_>, empty: bool) -> Result<Self>;
    fn write_json(&self, w: &mut JsonWriter);
    fn read_json(v: &JsonValue) -> Result<Self>;
}

pub fn to_xml<T: Model>(v: &T) -> Vec<u8> {
    let mut w = XmlWriter::new();
    w.declaration();
    v.write_xml(&mut w, T::XML);
    w.into_bytes()
}

pub fn to_xml_list<T: Model>(items: &[T]) -> Vec<u8> {
    let mut w = XmlWriter::new();
    w.declaration();
    if items.is_empty() {
        w.open(T::XML_PLURAL);
        w.empty_end();
    } else {
        w.start(T::XML_PLURAL);
        for it in items {
            it.write_xml(&mut w, T::XML);
        }
        w.close(T::XML_PLURAL);
    }
    w.into_bytes()
}

fn root_check(start: &BytesStart<'_>, expected: &str) -> Result<()> {
    let name = start.local_name();
    if name.as_ref() != expected.as_bytes() {
        return Err(CodecError::new(
            ErrorKind::UnexpectedRoot,
            format!(
                "expected a <{expected}> document, got <{}>",
                String::from_utf8_lossy(name.as_ref())
            ),
        ));
    }
    Ok(())
}

pub fn from_xml<T: Model>(input: &[u8], limits: Limits) -> Result<T> {
    let mut r = XmlReader::new(input, limits)?;
    let (start, empty) = r.root()?;
    root_check(&start, T::XML)?;
    let v = T::read_xml(&mut r, &start, empty).map_err(|e| e.within(T::XML))?;
    r.finish()?;
    Ok(v)
}

pub fn read_xml_list<T: Model>(input: &[u8], limits: Limits) -> Result<Vec<T>> {
    let mut r = XmlReader::new(input, limits)?;
    let (start, empty) = r.root()?;
    root_check(&start, T::XML_PLURAL)?;
    let mut out = Vec::new();
    if !empty {
        while let Some((e, emp)) = r.next_child()? {
            if e.local_name().as_ref() == T::XML.as_bytes() {
                out.push(T::read_xml(&mut r, &e, emp).map_err(|err| err.within(T::XML_PLURAL))?);
            } else {
                r.skip(emp)?;
            }
        }
    }
    r.finish()?;
    Ok(out)
}

pub fn to_json<T: Model>(v: &T) -> Vec<u8> {
    let mut w = JsonWriter::new();
    v.write_json(&mut w);
    w.into_bytes()
}

/// `{"vm": [...]}`; an empty collection is `{}`, as the engine sends it.
pub fn to_json_list<T: Model>(items: &[T]) -> Vec<u8> {
    let mut w = JsonWriter::new();
    w.begin_object();
    if !items.is_empty() {
        w.key(T::XML);
        w.begin_array();
        for it in items {
            it.write_json(&mut w);
        }
        w.end_array();
    }
    w.end_object();
    w.into_bytes()
}

pub fn from_json<T: Model>(input: &[u8], limits: Limits) -> Result<T> {
    let v = json::parse_document(input, limits.max_bytes)?;
    from_json_value(&v)
}

pub fn from_json_value<T: Model>(v: &JsonValue) -> Result<T> {
    T::read_json(v)
}
