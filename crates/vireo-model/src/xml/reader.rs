//! A pull reader over a complete document in memory, with the safety rules of the API:
//! no DTD (so no external or custom entities), a nesting limit and a size limit.

use crate::error::{CodecError, ErrorKind, Result};
use quick_xml::events::{BytesStart, Event};
use std::borrow::Cow;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // The SDK's biggest real bodies (OVF payloads, icons) stay far below 64 MiB.
        Limits {
            max_bytes: 64 << 20,
            max_depth: 64,
        }
    }
}

pub struct XmlReader<'a> {
    inner: quick_xml::Reader<&'a [u8]>,
    depth: usize,
    max_depth: usize,
}

impl<'a> XmlReader<'a> {
    pub fn new(input: &'a [u8], limits: Limits) -> Result<Self> {
        if input.len() > limits.max_bytes {
            return Err(CodecError::new(
                ErrorKind::TooLarge,
                format!(
                    "the document has {} bytes, more than the limit of {}",
                    input.len(),
                    limits.max_bytes
                ),
            ));
        }
        let mut inner = quick_xml::Reader::from_reader(input);
        inner.config_mut().check_end_names = true;
        Ok(XmlReader {
            inner,
            depth: 0,
            max_depth: limits.max_depth,
        })
    }

    fn event(&mut self) -> Result<Event<'a>> {
        match self.inner.read_event() {
            Ok(Event::DocType(_)) => Err(CodecError::new(
                ErrorKind::Forbidden,
                "document type declarations (DTDs) are not accepted",
            )),
            Ok(e) => Ok(e),
            Err(e) => Err(CodecError::malformed(format!(
                "malformed XML at byte {}: {e}",
                self.inner.error_position()
            ))),
        }
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(CodecError::new(
                ErrorKind::TooDeep,
                format!("elements are nested deeper than {} levels", self.max_depth),
            ));
        }
        Ok(())
    }

    /// The root element; `empty` tells whether it was `<x/>`.
    pub fn root(&mut self) -> Result<(BytesStart<'a>, bool)> {
        loop {
            match self.event()? {
                Event::Start(e) => {
                    self.enter()?;
                    return Ok((e, false));
                }
                Event::Empty(e) => return Ok((e, true)),
                Event::Text(t) if is_blank(&t) => {}
                Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
                Event::Eof => return Err(CodecError::malformed("the document is empty")),
                _ => return Err(CodecError::malformed("text before the root element")),
            }
        }
    }

    /// After the root element: only blanks, comments and processing instructions may follow.
    pub fn finish(&mut self) -> Result<()> {
        loop {
            match self.event()? {
                Event::Eof => return Ok(()),
                Event::Text(t) if is_blank(&t) => {}
                Event::Comment(_) | Event::PI(_) => {}
                _ => return Err(CodecError::malformed("content after the root element")),
            }
        }
    }

    /// The next child element of the current element, or `None` once its end tag is read.
    pub fn next_child(&mut self) -> Result<Option<(BytesStart<'a>, bool)>> {
        loop {
            match self.event()? {
                Event::Start(e) => {
                    self.enter()?;
                    return Ok(Some((e, false)));
                }
                Event::Empty(e) => return Ok(Some((e, true))),
                Event::End(_) => {
                    self.depth -= 1;
                    return Ok(None);
                }
                Event::Eof => {
                    return Err(CodecError::malformed("the document ends inside an element"))
                }
                // Mixed content around child elements carries nothing in this API.
                _ => {}
            }
        }
    }

    /// The text content of a leaf element (entities and CDATA resolved).
    pub fn text(&mut self, empty: bool) -> Result<Cow<'a, str>> {
        if empty {
            return Ok(Cow::Borrowed(""));
        }
        let mut acc: Option<Cow<'a, str>> = None;
        loop {
            let piece: Cow<'a, str> = match self.event()? {
                Event::Text(t) => t
                    .unescape()
                    .map_err(|e| CodecError::malformed(format!("bad text: {e}")))?,
                Event::CData(c) => match c.into_inner() {
                    Cow::Borrowed(b) => {
                        Cow::Borrowed(std::str::from_utf8(b).map_err(CodecError::malformed)?)
                    }
                    Cow::Owned(b) => {
                        Cow::Owned(String::from_utf8(b).map_err(CodecError::malformed)?)
                    }
                },
                Event::End(_) => {
                    self.depth -= 1;
                    return Ok(acc.unwrap_or(Cow::Borrowed("")));
                }
                Event::Start(_) => {
                    self.enter()?;
                    self.skip(false)?;
                    continue;
                }
                Event::Eof => {
                    return Err(CodecError::malformed("the document ends inside an element"))
                }
                _ => continue,
            };
            acc = Some(match acc {
                None => piece,
                Some(prev) => Cow::Owned(prev.into_owned() + &piece),
            });
        }
    }

    /// Skips the rest of an element the model does not know.
    pub fn skip(&mut self, empty: bool) -> Result<()> {
        if empty {
            return Ok(());
        }
        let start = self.depth;
        loop {
            match self.event()? {
                Event::Start(_) => self.enter()?,
                Event::End(_) => {
                    self.depth -= 1;
                    if self.depth < start {
                        return Ok(());
                    }
                }
                Event::Eof => {
                    return Err(CodecError::malformed("the document ends inside an element"))
                }
                _ => {}
            }
        }
    }

    /// The unescaped value of an XML attribute.
    pub fn attribute(e: &BytesStart<'a>, name: &[u8]) -> Result<Option<String>> {
        for a in e.attributes() {
            let a = a.map_err(|err| CodecError::malformed(format!("bad attribute: {err}")))?;
            if a.key.as_ref() == name {
                let v = a
                    .unescape_value()
                    .map_err(|err| CodecError::malformed(format!("bad attribute: {err}")))?;
                return Ok(Some(v.into_owned()));
            }
        }
        Ok(None)
    }
}

fn is_blank(t: &[u8]) -> bool {
    t.iter().all(|b| b.is_ascii_whitespace())
}
