//! The model as data: what the generated code was made from, for code that works on any
//! type or service (routing, links, `follow`, search fields, coverage).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    String,
    Integer,
    Boolean,
    Decimal,
    Date,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeRef {
    Scalar(Scalar),
    Enum(&'static str),
    Struct(&'static str),
}

#[derive(Debug)]
pub struct AttrDef {
    pub name: &'static str,
    pub xml: &'static str,
    pub ty: TypeRef,
    pub list: bool,
    /// Element name of each item of a list.
    pub item: Option<&'static str>,
    /// `rel` of the `<link>` that stands for this list when it is not inlined.
    pub link: Option<&'static str>,
}

#[derive(Debug)]
pub struct TypeDef {
    pub name: &'static str,
    pub base: Option<&'static str>,
    pub xml: &'static str,
    pub xml_plural: &'static str,
    /// Has an `id` (and so links and actions).
    pub identified: bool,
    pub attributes: &'static [AttrDef],
}

impl TypeDef {
    pub fn attribute(&self, name: &str) -> Option<&'static AttrDef> {
        self.attributes.iter().find(|a| a.name == name)
    }
    pub fn attribute_by_xml(&self, xml: &str) -> Option<&'static AttrDef> {
        self.attributes.iter().find(|a| a.xml == xml)
    }
}

#[derive(Debug)]
pub struct EnumDef {
    pub name: &'static str,
    pub values: &'static [&'static str],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodKind {
    Get,
    List,
    Add,
    Update,
    Remove,
    Action,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamIn {
    Body,
    Query,
    Action,
}

#[derive(Debug)]
pub struct ParamDef {
    pub name: &'static str,
    pub ty: TypeRef,
    pub list: bool,
    pub location: ParamIn,
}

#[derive(Debug)]
pub struct OutputDef {
    pub name: &'static str,
    pub ty: TypeRef,
    pub list: bool,
}

#[derive(Debug)]
pub struct MethodDef {
    /// The SDK's method name (`add_from_scratch`); several may share one HTTP route.
    pub sdk_name: &'static str,
    pub kind: MethodKind,
    pub http: &'static str,
    /// Path segment of an action (`commitsnapshot`).
    pub path: Option<&'static str>,
    /// The one field of `<action>` this action answers with, when it answers with one.
    pub member: Option<&'static str>,
    pub params: &'static [ParamDef],
    pub outputs: &'static [OutputDef],
    /// Mandatory inputs: every group must have one of its paths present.
    pub requirements: &'static [&'static [&'static str]],
}

#[derive(Debug)]
pub struct LocatorDef {
    pub segment: &'static str,
    pub service: usize,
}

#[derive(Debug)]
pub struct ServiceDef {
    pub name: &'static str,
    pub base: Option<&'static str>,
    pub methods: &'static [MethodDef],
    pub locators: &'static [LocatorDef],
    /// The service of one member, reached by `/{id}` below a collection service.
    pub item: Option<usize>,
}

impl ServiceDef {
    pub fn locator(&self, segment: &str) -> Option<usize> {
        self.locators
            .iter()
            .find(|l| l.segment == segment)
            .map(|l| l.service)
    }
    pub fn methods_of(&self, kind: MethodKind) -> impl Iterator<Item = &'static MethodDef> {
        self.methods.iter().filter(move |m| m.kind == kind)
    }
    pub fn action<'s>(&'s self, path: &'s str) -> impl Iterator<Item = &'static MethodDef> + 's {
        self.methods
            .iter()
            .filter(move |m| m.kind == MethodKind::Action && m.path == Some(path))
    }
}

pub use crate::generated::meta::{ENUMS, ROOT_SERVICE, SERVICES, TYPES};

pub fn type_def(name: &str) -> Option<&'static TypeDef> {
    TYPES
        .binary_search_by(|t| t.name.cmp(name))
        .ok()
        .map(|i| &TYPES[i])
}

pub fn type_by_xml(xml: &str) -> Option<&'static TypeDef> {
    TYPES.iter().find(|t| t.xml == xml)
}

pub fn enum_def(name: &str) -> Option<&'static EnumDef> {
    ENUMS
        .binary_search_by(|t| t.name.cmp(name))
        .ok()
        .map(|i| &ENUMS[i])
}

pub fn service_index(name: &str) -> Option<usize> {
    SERVICES.binary_search_by(|s| s.name.cmp(name)).ok()
}

pub fn service(index: usize) -> &'static ServiceDef {
    &SERVICES[index]
}
