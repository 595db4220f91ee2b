//! XML as oVirt writes it: no namespace, `id`/`href` as attributes, everything else elements.

mod reader;
mod writer;

pub use reader::{Limits, XmlReader};
pub use writer::XmlWriter;

pub use quick_xml::events::BytesStart;
