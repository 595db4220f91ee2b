//! Emits Rust source for the model.

use crate::model::{Attribute, Enum, Index, Kind, Model, Type};
use std::fmt::Write as _;

const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub",
    "ref", "return", "static", "struct", "super", "trait", "true", "type", "unsafe", "use",
    "where", "while", "abstract", "become", "box", "do", "final", "macro", "override", "priv",
    "typeof", "unsized", "virtual", "yield", "try",
];

pub fn field(name: &str) -> String {
    if KEYWORDS.contains(&name) {
        format!("r#{name}")
    } else {
        name.to_string()
    }
}

/// The model's type names are kept, except one that would shadow the prelude's `Option`.
pub fn type_ident(name: &str) -> String {
    match name {
        "Option" => "ModelOption".to_string(),
        n => n.to_string(),
    }
}

pub fn snake(name: &str) -> String {
    let mut s = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                s.push('_');
            }
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

fn variant(value: &str) -> String {
    let mut s = String::new();
    for part in value.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut cs = part.chars();
        if let Some(f) = cs.next() {
            s.extend(f.to_uppercase());
            s.push_str(cs.as_str());
        }
    }
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, 'V');
    }
    s
}

pub fn enum_type(out: &mut String, e: &Enum) {
    let variants: Vec<String> = e.values.iter().map(|v| variant(v)).collect();
    let mut seen = std::collections::HashSet::new();
    for v in &variants {
        assert!(
            seen.insert(v.clone()),
            "enum {} has two values named {v}",
            e.name
        );
    }
    let n = &e.name;
    writeln!(
        out,
        "#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]\npub enum {n} {{"
    )
    .unwrap();
    for v in &variants {
        writeln!(out, "    {v},").unwrap();
    }
    writeln!(out, "}}\nimpl {n} {{").unwrap();
    write!(out, "    pub const ALL: &'static [{n}] = &[").unwrap();
    for v in &variants {
        write!(out, "{n}::{v}, ").unwrap();
    }
    writeln!(out, "];").unwrap();
    writeln!(
        out,
        "    pub const VALUES: &'static [&'static str] = &{:?};",
        e.values
    )
    .unwrap();
    writeln!(out, "    /// The value as the wire carries it (lower case).\n    pub fn as_str(self) -> &'static str {{\n        match self {{").unwrap();
    for (v, s) in variants.iter().zip(&e.values) {
        writeln!(out, "            {n}::{v} => {s:?},").unwrap();
    }
    writeln!(out, "        }}\n    }}").unwrap();
    writeln!(out, "    /// Exact wire value first, then case-insensitively, as the engine accepts it.\n    pub fn parse(text: &str) -> Option<Self> {{\n        match text {{").unwrap();
    for (v, s) in variants.iter().zip(&e.values) {
        writeln!(out, "            {s:?} => Some({n}::{v}),").unwrap();
    }
    writeln!(out, "            other => {{ let t = other.trim(); if t.len() != other.len() || t.bytes().any(|b| b.is_ascii_uppercase()) {{ Self::parse_folded(&t.to_ascii_lowercase()) }} else {{ None }} }}\n        }}\n    }}").unwrap();
    writeln!(out, "    fn parse_folded(text: &str) -> Option<Self> {{ Self::VALUES.iter().position(|v| *v == text).map(|i| Self::ALL[i]) }}").unwrap();
    writeln!(out, "    pub fn parse_wire(text: &str) -> Result<Self> {{ Self::parse(text).ok_or_else(|| rt::enum_error({n:?}, text, Self::VALUES)) }}").unwrap();
    writeln!(out, "    pub fn read_json(x: &JsonValue) -> Result<Self> {{ rt::json_string(x).and_then(|t| Self::parse_wire(&t)) }}").unwrap();
    writeln!(out, "}}").unwrap();
    writeln!(out, "impl std::fmt::Display for {n} {{ fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {{ f.write_str(self.as_str()) }} }}").unwrap();
}

fn scalar_rust(s: &str) -> &'static str {
    match s {
        "String" => "String",
        "Integer" => "i64",
        "Boolean" => "bool",
        "Decimal" => "f64",
        "Date" => "Date",
        _ => unreachable!(),
    }
}

fn field_type(a: &Attribute, ix: &Index) -> String {
    let inner = match ix.kind(&a.ty) {
        Kind::Scalar(s) => scalar_rust(s).to_string(),
        Kind::Enum => a.ty.clone(),
        Kind::Struct if a.list => type_ident(&a.ty),
        Kind::Struct => format!("Box<{}>", type_ident(&a.ty)),
    };
    if a.list {
        format!("Option<Vec<{inner}>>")
    } else {
        format!("Option<{inner}>")
    }
}

/// Expression writing the scalar/enum value `v` (a reference) as the element `name`.
fn xml_write_scalar(kind: &Kind, name: &str, v: &str) -> String {
    match kind {
        Kind::Scalar("String") => format!("w.string({name:?}, {v})"),
        Kind::Scalar("Integer") => format!("w.integer({name:?}, *{v})"),
        Kind::Scalar("Boolean") => format!("w.boolean({name:?}, *{v})"),
        Kind::Scalar("Decimal") => format!("w.decimal({name:?}, *{v})"),
        Kind::Scalar("Date") => format!("w.date({name:?}, {v})"),
        Kind::Enum => format!("w.string({name:?}, {v}.as_str())"),
        _ => unreachable!(),
    }
}

fn json_write_scalar(kind: &Kind, v: &str) -> String {
    match kind {
        Kind::Scalar("String") => format!("w.string({v})"),
        Kind::Scalar("Integer") => format!("w.integer(*{v})"),
        Kind::Scalar("Boolean") => format!("w.boolean(*{v})"),
        Kind::Scalar("Decimal") => format!("w.decimal(*{v})"),
        Kind::Scalar("Date") => format!("w.date({v})"),
        Kind::Enum => format!("w.string({v}.as_str())"),
        _ => unreachable!(),
    }
}

/// A function `fn(&str) -> Result<T>` parsing element text.
fn text_parser(kind: &Kind, ty: &str) -> String {
    match kind {
        Kind::Scalar("String") => "rt::text_string".to_string(),
        Kind::Scalar("Integer") => "crate::scalar::parse_i64".to_string(),
        Kind::Scalar("Boolean") => "crate::scalar::parse_bool".to_string(),
        Kind::Scalar("Decimal") => "crate::scalar::parse_f64".to_string(),
        Kind::Scalar("Date") => "crate::scalar::parse_date".to_string(),
        Kind::Enum => format!("{ty}::parse_wire"),
        _ => unreachable!(),
    }
}

/// A function `fn(&JsonValue) -> Result<T>`.
fn json_parser(kind: &Kind, ty: &str) -> String {
    match kind {
        Kind::Scalar("String") => "rt::json_string".to_string(),
        Kind::Scalar("Integer") => "rt::json_i64".to_string(),
        Kind::Scalar("Boolean") => "rt::json_bool".to_string(),
        Kind::Scalar("Decimal") => "rt::json_f64".to_string(),
        Kind::Scalar("Date") => "rt::json_date".to_string(),
        Kind::Enum => format!("{ty}::read_json"),
        Kind::Struct => format!("{}::read_json", type_ident(ty)),
        _ => unreachable!(),
    }
}

fn sample_scalar(kind: &Kind, ty: &str, name: &str) -> String {
    match kind {
        Kind::Scalar("String") => format!("g.string({name:?})"),
        Kind::Scalar("Integer") => "g.integer()".to_string(),
        Kind::Scalar("Boolean") => "g.boolean()".to_string(),
        Kind::Scalar("Decimal") => "g.decimal()".to_string(),
        Kind::Scalar("Date") => "g.date()".to_string(),
        Kind::Enum => format!("{ty}::ALL[g.below({ty}::ALL.len())]"),
        _ => unreachable!(),
    }
}

pub fn struct_type(out: &mut String, t: &Type, ix: &Index) {
    let name = type_ident(&t.name);
    let identified = t.xml_attributes.iter().any(|a| a == "id");
    let index = ix.types[&t.name];

    // -- the struct
    writeln!(out, "/// `<{}>`", t.xml).unwrap();
    writeln!(out, "#[derive(Debug, Clone, Default, PartialEq)]\npub struct {name} {{\n    pub href: Option<String>,").unwrap();
    if identified {
        writeln!(out, "    pub id: Option<String>,").unwrap();
    }
    for a in &t.attributes {
        writeln!(out, "    pub {}: {},", field(&a.name), field_type(a, ix)).unwrap();
    }
    // Every type may carry links: entities for their sub-collections, the API entry point for
    // its collections.
    writeln!(out, "    /// Sub-collections as `<link rel href>`.\n    pub links: Vec<Link>,\n    /// `<actions>`: one link per action of the entity's service.\n    pub actions: Vec<Link>,").unwrap();
    writeln!(out, "}}").unwrap();

    writeln!(out, "impl Model for {name} {{").unwrap();
    writeln!(out, "    const NAME: &'static str = {:?};\n    const XML: &'static str = {:?};\n    const XML_PLURAL: &'static str = {:?};", t.name, t.xml, t.xml_plural).unwrap();
    writeln!(
        out,
        "    fn meta() -> &'static crate::meta::TypeDef {{ &super::meta::TYPES[{index}] }}"
    )
    .unwrap();
    if identified {
        writeln!(out, "    fn id(&self) -> Option<&str> {{ self.id.as_deref() }}\n    fn set_id(&mut self, id: Option<String>) {{ self.id = id; }}").unwrap();
    } else {
        writeln!(out, "    fn id(&self) -> Option<&str> {{ None }}\n    fn set_id(&mut self, _id: Option<String>) {{}}").unwrap();
    }
    if t.attributes
        .iter()
        .any(|a| a.name == "name" && a.ty == "string" && !a.list)
    {
        writeln!(
            out,
            "    fn name(&self) -> Option<&str> {{ self.name.as_deref() }}"
        )
        .unwrap();
    } else {
        writeln!(out, "    fn name(&self) -> Option<&str> {{ None }}").unwrap();
    }
    writeln!(out, "    fn href_mut(&mut self) -> &mut Option<String> {{ &mut self.href }}\n    fn links_mut(&mut self) -> &mut Vec<Link> {{ &mut self.links }}\n    fn actions_mut(&mut self) -> &mut Vec<Link> {{ &mut self.actions }}").unwrap();

    // -- XML writer
    writeln!(out, "    fn write_xml(&self, w: &mut XmlWriter, tag: &str) {{\n        w.open(tag);\n        if let Some(v) = &self.href {{ w.attr(\"href\", v); }}").unwrap();
    if identified {
        writeln!(
            out,
            "        if let Some(v) = &self.id {{ w.attr(\"id\", v); }}"
        )
        .unwrap();
    }
    let mut empty_checks: Vec<String> = t
        .attributes
        .iter()
        .map(|a| format!("self.{}.is_none()", field(&a.name)))
        .collect();
    empty_checks.push("self.links.is_empty()".into());
    empty_checks.push("self.actions.is_empty()".into());
    writeln!(
        out,
        "        if {} {{ w.empty_end(); return; }}\n        w.open_end();",
        empty_checks.join(" && ")
    )
    .unwrap();
    writeln!(out, "        rt::xml_write_actions(w, &self.actions);").unwrap();
    for a in &t.attributes {
        let f = field(&a.name);
        let kind = ix.kind(&a.ty);
        let body = match (&kind, a.list) {
            (Kind::Struct, false) => format!("v.write_xml(w, {:?});", a.xml),
            (Kind::Struct, true) => format!(
                "w.start({x:?}); for it in v {{ it.write_xml(w, {i:?}); }} w.close({x:?});",
                x = a.xml,
                i = a.item.as_deref().unwrap()
            ),
            (_, false) => format!("{};", xml_write_scalar(&kind, &a.xml, "v")),
            (_, true) => format!(
                "w.start({x:?}); for it in v {{ {}; }} w.close({x:?});",
                xml_write_scalar(&kind, a.item.as_deref().unwrap(), "it"),
                x = a.xml
            ),
        };
        writeln!(out, "        if let Some(v) = &self.{f} {{ {body} }}").unwrap();
    }
    writeln!(
        out,
        "        for l in &self.links {{ w.link(&l.rel, &l.href); }}"
    )
    .unwrap();
    writeln!(out, "        w.close(tag);\n    }}").unwrap();

    // -- XML reader
    writeln!(out, "    fn read_xml(r: &mut XmlReader<'_>, start: &BytesStart<'_>, empty: bool) -> Result<Self> {{\n        let mut v = Self::default();").unwrap();
    writeln!(out, "        for a in start.attributes() {{\n            let a = a.map_err(rt::bad_attribute)?;\n            match a.key.as_ref() {{").unwrap();
    writeln!(
        out,
        "                b\"href\" => v.href = Some(rt::attr_value(&a)?),"
    )
    .unwrap();
    if identified {
        writeln!(
            out,
            "                b\"id\" => v.id = Some(rt::attr_value(&a)?),"
        )
        .unwrap();
    }
    writeln!(out, "                _ => {{}}\n            }}\n        }}\n        if empty {{ return Ok(v); }}").unwrap();
    writeln!(out, "        while let Some((e, emp)) = r.next_child()? {{\n            match e.local_name().as_ref() {{").unwrap();
    for a in &t.attributes {
        let f = field(&a.name);
        let kind = ix.kind(&a.ty);
        let x = &a.xml;
        let expr = match (&kind, a.list) {
            (Kind::Struct, false) => {
                format!("{}::read_xml(r, &e, emp).map(Box::new)", type_ident(&a.ty))
            }
            (Kind::Struct, true) => {
                format!("rt::xml_list(r, emp, {}::read_xml)", type_ident(&a.ty))
            }
            (_, false) => format!(
                "r.text(emp).and_then(|t| {}(&t))",
                text_parser(&kind, &a.ty)
            ),
            (_, true) => format!("rt::xml_scalar_list(r, emp, {})", text_parser(&kind, &a.ty)),
        };
        writeln!(
            out,
            "                b{x:?} => v.{f} = Some({expr}.map_err(|err| err.within({x:?}))?),"
        )
        .unwrap();
    }
    writeln!(out, "                b\"link\" => {{ if let Some(l) = rt::xml_link(&e)? {{ v.links.push(l); }} r.skip(emp)?; }}").unwrap();
    writeln!(out, "                b\"actions\" => v.actions = rt::xml_links(r, emp).map_err(|err| err.within(\"actions\"))?,").unwrap();
    writeln!(
        out,
        "                _ => r.skip(emp)?,\n            }}\n        }}\n        Ok(v)\n    }}"
    )
    .unwrap();

    // -- JSON writer
    writeln!(out, "    fn write_json(&self, w: &mut JsonWriter) {{\n        w.begin_object();\n        if let Some(v) = &self.href {{ w.key(\"href\"); w.string(v); }}").unwrap();
    if identified {
        writeln!(
            out,
            "        if let Some(v) = &self.id {{ w.key(\"id\"); w.string(v); }}"
        )
        .unwrap();
    }
    writeln!(out, "        rt::json_write_actions(w, &self.actions);").unwrap();
    for a in &t.attributes {
        let f = field(&a.name);
        let kind = ix.kind(&a.ty);
        let body = match (&kind, a.list) {
            (Kind::Struct, false) => "v.write_json(w);".to_string(),
            (Kind::Struct, true) => format!(
                "w.begin_object(); w.key({:?}); w.begin_array(); for it in v {{ it.write_json(w); }} w.end_array(); w.end_object();",
                a.item.as_deref().unwrap()
            ),
            (_, false) => format!("{};", json_write_scalar(&kind, "v")),
            (_, true) => format!(
                "w.begin_object(); w.key({:?}); w.begin_array(); for it in v {{ {}; }} w.end_array(); w.end_object();",
                a.item.as_deref().unwrap(),
                json_write_scalar(&kind, "it")
            ),
        };
        writeln!(
            out,
            "        if let Some(v) = &self.{f} {{ w.key({:?}); {body} }}",
            a.xml
        )
        .unwrap();
    }
    writeln!(out, "        rt::json_write_links(w, &self.links);").unwrap();
    writeln!(out, "        w.end_object();\n    }}").unwrap();

    // -- JSON reader
    writeln!(out, "    fn read_json(j: &JsonValue) -> Result<Self> {{\n        let o = rt::json_object(j)?;\n        let mut v = Self::default();").unwrap();
    writeln!(out, "        if let Some(x) = crate::json::field(o, \"href\") {{ v.href = Some(rt::json_string(x).map_err(|err| err.within(\"href\"))?); }}").unwrap();
    if identified {
        writeln!(out, "        if let Some(x) = crate::json::field(o, \"id\") {{ v.id = Some(rt::json_string(x).map_err(|err| err.within(\"id\"))?); }}").unwrap();
    }
    writeln!(out, "        if let Some(x) = crate::json::field(o, \"link\") {{ v.links = rt::json_links(x).map_err(|err| err.within(\"link\"))?; }}").unwrap();
    writeln!(out, "        if let Some(x) = crate::json::field(o, \"actions\") {{ v.actions = rt::json_actions(x).map_err(|err| err.within(\"actions\"))?; }}").unwrap();
    for a in &t.attributes {
        let f = field(&a.name);
        let kind = ix.kind(&a.ty);
        let parser = json_parser(&kind, &a.ty);
        let expr = match (&kind, a.list) {
            (Kind::Struct, false) => format!("{parser}(x).map(Box::new)"),
            (_, false) => format!("{parser}(x)"),
            (_, true) => format!(
                "rt::json_list(x, {:?}, {parser})",
                a.item.as_deref().unwrap()
            ),
        };
        writeln!(out, "        if let Some(x) = crate::json::field(o, {x:?}) {{ v.{f} = Some({expr}.map_err(|err| err.within({x:?}))?); }}", x = a.xml).unwrap();
    }
    writeln!(out, "        Ok(v)\n    }}\n}}").unwrap();

    // -- sample
    writeln!(out, "impl Sample for {name} {{\n    fn sample(g: &mut Gen, depth: u32) -> Self {{\n        let mut v = Self::default();").unwrap();
    if identified {
        writeln!(out, "        let id = g.id();\n        v.href = Some(format!(\"/ovirt-engine/api/{}/{{id}}\"));\n        v.id = Some(id);", t.xml_plural).unwrap();
        writeln!(out, "        v.links = vec![Link {{ rel: \"samplelinks\".into(), href: format!(\"{{}}/samplelinks\", v.href.as_deref().unwrap_or_default()) }}];").unwrap();
        writeln!(out, "        v.actions = vec![Link {{ rel: \"sampleaction\".into(), href: format!(\"{{}}/sampleaction\", v.href.as_deref().unwrap_or_default()) }}];").unwrap();
    }
    for a in &t.attributes {
        let f = field(&a.name);
        let kind = ix.kind(&a.ty);
        let expr = match (&kind, a.list) {
            (Kind::Struct, false) => format!("if depth > 0 {{ Some(Box::new({}::sample(g, depth - 1))) }} else {{ None }}", type_ident(&a.ty)),
            (Kind::Struct, true) => format!(
                "if depth > 0 {{ Some(vec![{t}::sample(g, depth - 1), {t}::sample(g, depth - 1)]) }} else {{ None }}",
                t = type_ident(&a.ty)
            ),
            (_, false) => format!("Some({})", sample_scalar(&kind, &a.ty, &a.name)),
            (_, true) => format!(
                "Some(vec![{}, {}])",
                sample_scalar(&kind, &a.ty, &a.name),
                sample_scalar(&kind, &a.ty, &a.name)
            ),
        };
        writeln!(out, "        v.{f} = {expr};").unwrap();
    }
    writeln!(out, "        v\n    }}\n}}").unwrap();
}

fn type_ref(ty: &str, ix: &Index) -> String {
    match ix.kind(ty) {
        Kind::Scalar(s) => format!("TypeRef::Scalar(Scalar::{s})"),
        Kind::Enum => format!("TypeRef::Enum({ty:?})"),
        Kind::Struct => format!("TypeRef::Struct({ty:?})"),
    }
}

fn opt(s: &Option<String>) -> String {
    match s {
        Some(v) => format!("Some({v:?})"),
        None => "None".into(),
    }
}

pub fn meta(out: &mut String, m: &Model, ix: &Index) {
    out.push_str("pub mod meta {\nuse crate::meta::*;\n");
    writeln!(out, "pub static TYPES: [TypeDef; {}] = [", m.types.len()).unwrap();
    for t in &m.types {
        let identified = t.xml_attributes.iter().any(|a| a == "id");
        let base = if t.base == "Struct" {
            None
        } else {
            Some(t.base.clone())
        };
        write!(out, "TypeDef {{ name: {:?}, base: {}, xml: {:?}, xml_plural: {:?}, identified: {identified}, attributes: &[", t.name, opt(&base), t.xml, t.xml_plural).unwrap();
        for a in &t.attributes {
            write!(
                out,
                "AttrDef {{ name: {:?}, xml: {:?}, ty: {}, list: {}, item: {}, link: {} }}, ",
                a.name,
                a.xml,
                type_ref(&a.ty, ix),
                a.list,
                opt(&a.item),
                opt(&a.link)
            )
            .unwrap();
        }
        writeln!(out, "] }},").unwrap();
    }
    writeln!(out, "];").unwrap();
    writeln!(out, "pub static ENUMS: [EnumDef; {}] = [", m.enums.len()).unwrap();
    for e in &m.enums {
        writeln!(
            out,
            "EnumDef {{ name: {:?}, values: &{:?} }},",
            e.name, e.values
        )
        .unwrap();
    }
    writeln!(out, "];").unwrap();
    writeln!(
        out,
        "pub static SERVICES: [ServiceDef; {}] = [",
        m.services.len()
    )
    .unwrap();
    for s in &m.services {
        write!(
            out,
            "ServiceDef {{ name: {:?}, base: {}, item: {}, locators: &[",
            s.name,
            opt(&s.base),
            match &s.item {
                Some(i) => format!("Some({})", ix.services[i]),
                None => "None".into(),
            }
        )
        .unwrap();
        for l in &s.locators {
            write!(
                out,
                "LocatorDef {{ segment: {:?}, service: {} }}, ",
                l.segment, ix.services[&l.service]
            )
            .unwrap();
        }
        write!(out, "], methods: &[").unwrap();
        for me in &s.methods {
            let kind = match (me.kind.as_str(), me.sdk.as_str()) {
                ("get", "list") => "List",
                ("get", _) => "Get",
                ("add", _) => "Add",
                ("update", _) => "Update",
                ("remove", _) => "Remove",
                ("action", _) => "Action",
                (k, _) => panic!("unknown method kind {k}"),
            };
            write!(out, "MethodDef {{ sdk_name: {:?}, kind: MethodKind::{kind}, http: {:?}, path: {}, member: {}, params: &[", me.sdk, me.http, opt(&me.path), opt(&me.member)).unwrap();
            for p in &me.params {
                let loc = match p.location.as_str() {
                    "body" => "Body",
                    "query" => "Query",
                    "action" => "Action",
                    l => panic!("unknown parameter location {l}"),
                };
                write!(
                    out,
                    "ParamDef {{ name: {:?}, ty: {}, list: {}, location: ParamIn::{loc} }}, ",
                    p.name,
                    type_ref(&p.ty, ix),
                    p.list
                )
                .unwrap();
            }
            write!(out, "], outputs: &[").unwrap();
            for o in &me.outputs {
                write!(
                    out,
                    "OutputDef {{ name: {:?}, ty: {}, list: {} }}, ",
                    o.name,
                    type_ref(&o.ty, ix),
                    o.list
                )
                .unwrap();
            }
            write!(out, "], requirements: &[").unwrap();
            for g in &me.requirements {
                write!(out, "&{g:?}, ").unwrap();
            }
            write!(out, "] }}, ").unwrap();
        }
        writeln!(out, "] }},").unwrap();
    }
    writeln!(out, "];").unwrap();
    writeln!(
        out,
        "pub const ROOT_SERVICE: usize = {};\n}}",
        ix.services[&m.root]
    )
    .unwrap();
}

pub fn with_type_macro(out: &mut String, m: &Model) {
    out.push_str("/// Binds `$T` to the generated type named `$name` and evaluates `$body`; `$none` if no such type.\n#[macro_export]\nmacro_rules! with_type {\n    ($name:expr, $T:ident => $body:expr, $none:expr) => {\n        match $name {\n");
    for t in &m.types {
        writeln!(
            out,
            "            {:?} => {{ type $T = $crate::{}; $body }}",
            t.name,
            type_ident(&t.name)
        )
        .unwrap();
    }
    out.push_str("            _ => $none,\n        }\n    };\n}\n");
}
