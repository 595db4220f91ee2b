//! The oVirt REST API v4 model, generated from `model/ovirt-api.json`: every type and enum as
//! Rust, XML and JSON readers and writers for each, and the service tree as data.

pub mod error;
pub mod json;
pub mod meta;
pub mod sample;
pub mod scalar;
pub mod xml;

mod codec;
mod generated;
mod rt;

pub use codec::{
    from_json, from_json_value, from_xml, read_xml_list, to_json, to_json_list, to_xml,
    to_xml_list, Link, Model,
};
pub use error::{CodecError, ErrorKind};
pub use generated::types::*;
pub use scalar::Date;
pub use xml::Limits;

/// Types, enums, services and methods in the model, as the extractor counted them.
pub const COUNTS: Counts = Counts {
    types: generated::COUNTS.0,
    enums: generated::COUNTS.1,
    services: generated::COUNTS.2,
    methods: generated::COUNTS.3,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub types: usize,
    pub enums: usize,
    pub services: usize,
    pub methods: usize,
}
