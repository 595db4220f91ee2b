//! The shape of model/ovirt-api.json (see tools/extract-model).

use serde::Deserialize;
use std::collections::HashMap;

#[derive(Deserialize)]
pub struct Model {
    pub root: String,
    pub enums: Vec<Enum>,
    pub types: Vec<Type>,
    pub services: Vec<Service>,
}

#[derive(Deserialize)]
pub struct Enum {
    pub name: String,
    pub values: Vec<String>,
}

#[derive(Deserialize)]
pub struct Type {
    pub name: String,
    pub base: String,
    pub xml: String,
    pub xml_plural: String,
    pub xml_attributes: Vec<String>,
    pub attributes: Vec<Attribute>,
}

#[derive(Deserialize)]
pub struct Attribute {
    pub name: String,
    pub xml: String,
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default)]
    pub list: bool,
    pub item: Option<String>,
    pub link: Option<String>,
}

#[derive(Deserialize)]
pub struct Service {
    pub name: String,
    pub base: Option<String>,
    pub methods: Vec<Method>,
    pub locators: Vec<Locator>,
    pub item: Option<String>,
}

#[derive(Deserialize)]
pub struct Method {
    pub sdk: String,
    pub kind: String,
    pub http: String,
    pub path: Option<String>,
    pub member: Option<String>,
    pub params: Vec<Param>,
    #[serde(default)]
    pub outputs: Vec<Output>,
    #[serde(default)]
    pub requirements: Vec<Vec<String>>,
}

#[derive(Deserialize)]
pub struct Param {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default)]
    pub list: bool,
    #[serde(rename = "in")]
    pub location: String,
}

#[derive(Deserialize)]
pub struct Output {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default)]
    pub list: bool,
}

#[derive(Deserialize)]
pub struct Locator {
    pub segment: String,
    pub service: String,
}

pub enum Kind {
    Scalar(&'static str),
    Enum,
    Struct,
}

pub struct Index {
    pub enums: HashMap<String, usize>,
    pub types: HashMap<String, usize>,
    pub services: HashMap<String, usize>,
}

impl Index {
    pub fn new(m: &Model) -> Self {
        let mut enums = HashMap::new();
        for (i, e) in m.enums.iter().enumerate() {
            enums.insert(e.name.clone(), i);
        }
        let mut types = HashMap::new();
        for (i, t) in m.types.iter().enumerate() {
            types.insert(t.name.clone(), i);
        }
        let mut services = HashMap::new();
        for (i, s) in m.services.iter().enumerate() {
            services.insert(s.name.clone(), i);
        }
        // the generated metadata is looked up by binary search
        assert!(
            m.types.windows(2).all(|w| w[0].name < w[1].name),
            "types must be sorted"
        );
        assert!(
            m.enums.windows(2).all(|w| w[0].name < w[1].name),
            "enums must be sorted"
        );
        assert!(
            m.services.windows(2).all(|w| w[0].name < w[1].name),
            "services must be sorted"
        );
        Index {
            enums,
            types,
            services,
        }
    }

    pub fn kind(&self, ty: &str) -> Kind {
        match ty {
            "string" => Kind::Scalar("String"),
            "integer" => Kind::Scalar("Integer"),
            "boolean" => Kind::Scalar("Boolean"),
            "decimal" => Kind::Scalar("Decimal"),
            "date" => Kind::Scalar("Date"),
            t if self.enums.contains_key(t) => Kind::Enum,
            t if self.types.contains_key(t) => Kind::Struct,
            t => panic!("unknown type {t}"),
        }
    }
}
