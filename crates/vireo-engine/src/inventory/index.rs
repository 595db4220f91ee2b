//! What search finds a record by, computed when the record is written, so that every search
//! is one indexed store query (never a join or a scan at read time):
//!
//! - the record's own top-level scalars and the ids of its references (`record::index_attrs`),
//!   and `<list>.id` for each reference in a list (`storage_domains.id` of a disk);
//! - the *names* of the objects it references (`cluster` = `Default` beside `cluster.id`),
//!   for oVirt's cross-entity conditions (`cluster=Default`, `host=h1`, `storage=data1`);
//! - for VMs, hosts, templates and pools: the data center through the cluster
//!   (`data_center`, `data_center.id`);
//! - for objects that can carry tags: `tag`, the names of their tags and of those tags'
//!   ancestors (oVirt's `tag=parent` finds objects tagged with any sub-tag too);
//! - for relation records: `target`, the id of the object attached.
//!
//! Renames keep this true: when a named object is renamed (or a cluster moves to another data
//! center, or a tag moves in the tree) the records that carry its name are re-indexed in the
//! same transaction.
//!
//! Other modules that write inventory records (host monitoring writing a VM's status) use
//! [`write_runtime`], which keeps the derived attributes and recomputes the rest.

use super::{crud, messages, spec, type_of, Unique};
use crate::api::fault::{ApiError, ApiResult};
use crate::api::render::collection_of;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use vireo_model::meta::TypeRef;
use vireo_store::{AttrValue, Filter, NameScope, ObjectWrite, Query, Record, StoreError, Tx};

/// Attribute of relation records: the id of the object they attach.
pub const TARGET: &str = "target";
/// Attribute of records that carry tags: tag names, with ancestors.
pub const TAG: &str = "tag";
const DATA_CENTER: &str = "data_center";
const DATA_CENTER_ID: &str = "data_center.id";

/// Kinds that can carry tags, and the relation holding their tags.
pub fn tag_relation(kind: &str) -> Option<&'static str> {
    match kind {
        "vms" => Some("vms/tags"),
        "hosts" => Some("hosts/tags"),
        "templates" => Some("templates/tags"),
        "users" => Some("users/tags"),
        "groups" => Some("groups/tags"),
        _ => None,
    }
}

/// Kinds whose data center is their cluster's.
fn dc_through_cluster(kind: &str) -> bool {
    matches!(kind, "vms" | "hosts" | "templates" | "vmpools")
}

/// Kinds whose names other records carry. (Permissions carry none: their `user`, `group` and
/// `role` attributes are the ids the auth module looks them up by.)
fn carries_names(kind: &str) -> bool {
    kind != "permissions"
}

/// Kinds whose names other records carry.
fn named(kind: &str) -> bool {
    matches!(
        kind,
        "clusters"
            | "hosts"
            | "datacenters"
            | "templates"
            | "storagedomains"
            | "vms"
            | "networks"
            | "vnicprofiles"
            | "instancetypes"
            | "vmpools"
            | "macpools"
            | "cpuprofiles"
            | "diskprofiles"
            | "users"
            | "groups"
            | "roles"
            | "tags"
            | "affinitylabels"
            | "domains"
    )
}

/// Reads for one write, with the records it has already read.
struct Lookup<'t> {
    tx: &'t mut Tx,
    cache: HashMap<(String, String), Option<Record>>,
}

impl Lookup<'_> {
    async fn get(&mut self, kind: &str, id: &str) -> ApiResult<Option<Record>> {
        let key = (kind.to_string(), id.to_string());
        if let Some(r) = self.cache.get(&key) {
            return Ok(r.clone());
        }
        let r = self.tx.get(kind, id).await?;
        self.cache.insert(key, r.clone());
        Ok(r)
    }
    async fn name(&mut self, kind: &str, id: &str) -> ApiResult<Option<String>> {
        Ok(self.get(kind, id).await?.and_then(|r| r.name))
    }
}

fn ref_id(v: &Value) -> Option<&str> {
    v.get("id").and_then(Value::as_str)
}

/// Everything search needs of a record of `kind` with API id `id`.
pub async fn attrs(
    tx: &mut Tx,
    kind: &str,
    id: &str,
    doc: &Value,
    extra: &[(String, AttrValue)],
) -> ApiResult<Vec<(String, AttrValue)>> {
    let mut look = Lookup {
        tx,
        cache: HashMap::new(),
    };
    attrs_with(&mut look, kind, id, doc, extra, None).await
}

/// `keep`: attributes that are expensive to derive and were derived before (a runtime write).
async fn attrs_with(
    look: &mut Lookup<'_>,
    kind: &str,
    id: &str,
    doc: &Value,
    extra: &[(String, AttrValue)],
    keep: Option<&[(String, AttrValue)]>,
) -> ApiResult<Vec<(String, AttrValue)>> {
    let mut out = Vec::new();
    if let Some(t) = type_of(kind) {
        out = super::record::index_attrs(t, doc);
        for a in t.attributes.iter().filter(|_| carries_names(kind)) {
            let TypeRef::Struct(target) = a.ty else {
                continue;
            };
            let Some(coll) = collection_of(target) else {
                continue;
            };
            let Some(v) = doc.get(a.xml) else { continue };
            if a.list {
                let items = v
                    .get(a.item.unwrap_or_default())
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for item in &items {
                    let Some(rid) = ref_id(item) else { continue };
                    out.push((format!("{}.id", a.xml), AttrValue::Text(rid.to_string())));
                    if named(coll) {
                        if let Some(n) = look.name(coll, rid).await? {
                            out.push((a.xml.to_string(), AttrValue::Text(n)));
                        }
                    }
                }
            } else if let Some(rid) = ref_id(v) {
                if named(coll) && a.xml != "name" {
                    if let Some(n) = look.name(coll, rid).await? {
                        out.push((a.xml.to_string(), AttrValue::Text(n)));
                    }
                }
            }
        }
    }
    // A NIC's address: what MAC allocation checks for being in use.
    if kind == "vms/nics" {
        if let Some(mac) = doc
            .get("mac")
            .and_then(|m| m.get("address"))
            .and_then(Value::as_str)
        {
            out.push((
                super::rules::macpools::MAC_ATTR.into(),
                AttrValue::Text(mac.to_ascii_lowercase()),
            ));
        }
    }
    // oVirt searches VMs and templates by their OS type (`os=rhel*`).
    if matches!(kind, "vms" | "templates" | "instancetypes") {
        if let Some(os) = doc
            .get("os")
            .and_then(|o| o.get("type"))
            .and_then(Value::as_str)
        {
            out.push(("os".into(), AttrValue::Text(os.to_string())));
        }
    }
    // A template's versions point at their base.
    if kind == "templates" {
        if let Some(b) = doc
            .get("version")
            .and_then(|v| v.get("base_template"))
            .and_then(ref_id)
        {
            out.push((
                "version.base_template.id".into(),
                AttrValue::Text(b.to_string()),
            ));
        }
    }
    let kept = |field: &str| {
        keep.map(|k| {
            k.iter()
                .filter(|(f, _)| f == field)
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    if dc_through_cluster(kind) {
        match kept(DATA_CENTER_ID) {
            Some(k) if !k.is_empty() => {
                out.extend(k);
                out.extend(kept(DATA_CENTER).unwrap_or_default());
            }
            _ => {
                if let Some(cluster) = doc.get("cluster").and_then(ref_id) {
                    if let Some(c) = look.get("clusters", cluster).await? {
                        let cdoc = crud::doc_of(&c)?;
                        if let Some(dc) = cdoc.get("data_center").and_then(ref_id) {
                            out.push((DATA_CENTER_ID.into(), AttrValue::Text(dc.to_string())));
                            if let Some(n) = look.name("datacenters", dc).await? {
                                out.push((DATA_CENTER.into(), AttrValue::Text(n)));
                            }
                        }
                    }
                }
            }
        }
    }
    if let Some(rel) = tag_relation(kind) {
        match kept(TAG) {
            Some(k) => out.extend(k),
            None => {
                for name in tag_names(look, rel, id).await? {
                    out.push((TAG.into(), AttrValue::Text(name)));
                }
            }
        }
    }
    if spec::relation(kind).is_some() {
        if let Some(t) = ref_id(doc) {
            out.push((TARGET.into(), AttrValue::Text(t.to_string())));
        }
    }
    out.extend(extra.iter().cloned());
    Ok(out)
}

/// The names of an object's tags and of their ancestors (the root tag excluded).
async fn tag_names(look: &mut Lookup<'_>, rel: &str, owner: &str) -> ApiResult<Vec<String>> {
    let recs = look
        .tx
        .list(rel, &Query::new(Filter::ParentIs(owner.to_string())))
        .await?;
    let mut names = Vec::new();
    let mut seen = HashSet::new();
    for r in recs {
        let d = crud::doc_of(&r)?;
        let mut cur = ref_id(&d).map(str::to_string);
        // The tree is shallow; the bound guards against a cycle in stored data.
        for _ in 0..64 {
            let Some(tid) = cur.take() else { break };
            if tid == crate::bootstrap::ids::ROOT_TAG || !seen.insert(tid.clone()) {
                break;
            }
            let Some(t) = look.get("tags", &tid).await? else {
                break;
            };
            let td = crud::doc_of(&t)?;
            if let Some(n) = t.name {
                names.push(n);
            }
            cur = td.get("parent").and_then(ref_id).map(str::to_string);
        }
    }
    Ok(names)
}

/// Where the record's name must be unique.
pub fn scope(kind: &str, doc: &Value) -> NameScope {
    let by = |attr: &str| {
        doc.get(attr)
            .and_then(ref_id)
            .map(|id| NameScope::Custom(id.to_string()))
            .unwrap_or_default()
    };
    match super::kind(kind).map(|k| k.unique).unwrap_or(Unique::None) {
        Unique::None => NameScope::None,
        Unique::Global => NameScope::Global,
        Unique::Parent => NameScope::Parent,
        Unique::DataCenter => by("data_center"),
        Unique::Network => by("network"),
        Unique::Cluster => by("cluster"),
        Unique::StorageDomain => by("storage_domain"),
    }
}

fn write_of(
    kind: &str,
    record_id: &str,
    doc: &Value,
    parent: Option<&str>,
    attrs: Vec<(String, AttrValue)>,
) -> ObjectWrite {
    let mut w = ObjectWrite::new(kind, record_id, doc.to_string());
    if let Some(p) = parent {
        w = w.parent(p);
    }
    if let Some(n) = doc.get("name").and_then(Value::as_str) {
        w = w.name(n);
    }
    w.attrs = attrs;
    w.name_scope = scope(kind, doc);
    w
}

/// Inserts a new record with everything search needs.
pub async fn insert(
    tx: &mut Tx,
    kind: &str,
    record_id: &str,
    doc: &Value,
    parent: Option<&str>,
    extra: &[(String, AttrValue)],
) -> Result<Record, WriteError> {
    let id = doc
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or(record_id)
        .to_string();
    let attrs = attrs(tx, kind, &id, doc, extra).await?;
    let rec = tx
        .insert(&write_of(kind, record_id, doc, parent, attrs))
        .await?;
    after_write(tx, kind, &id, None, doc).await?;
    Ok(rec)
}

/// Replaces a record's document (and attributes). With `generation`, refuses when another
/// request changed it meanwhile.
pub async fn update(
    tx: &mut Tx,
    rec: &Record,
    doc: &Value,
    generation: Option<i64>,
) -> Result<Record, WriteError> {
    let id = doc
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or(&rec.id)
        .to_string();
    let extra = preserved(tx, rec).await?;
    let attrs = attrs(tx, &rec.kind, &id, doc, &extra).await?;
    let mut w = write_of(&rec.kind, &rec.id, doc, rec.parent_id.as_deref(), attrs);
    // A record's name follows its document's only when that changed: some kinds keep another
    // name in the column (a user's is its `user_name`, which the auth module looks up).
    let old_name = serde_json::from_str::<Value>(&rec.doc)
        .ok()
        .and_then(|d| d.get("name").cloned());
    if old_name.as_ref() == doc.get("name") {
        w.name = rec.name.clone();
    }
    Ok(tx.update(&w, generation).await?)
}

/// Attributes a kind's own module keeps beside the document (a job's correlation id, a
/// permission's object) survive re-indexing.
const PRESERVED: &[&str] = &[
    "correlation_id",
    "object",
    "object_type",
    "user",
    "group",
    "role",
    "connected_host",
];

async fn preserved(tx: &mut Tx, rec: &Record) -> ApiResult<Vec<(String, AttrValue)>> {
    let all = tx.get_attrs(&rec.kind, &rec.id).await?;
    let t = type_of(&rec.kind);
    Ok(all
        .into_iter()
        .filter(|(f, _)| PRESERVED.contains(&f.as_str()) || foreign(t, f))
        .collect())
}

/// Attributes this module derives beyond the type's own members.
const DERIVED: &[&str] = &[
    DATA_CENTER,
    DATA_CENTER_ID,
    TAG,
    TARGET,
    "os",
    "mac",
    "version.base_template.id",
];

/// An attribute another module wrote (a user's `principal`, a job's correlation id): nothing
/// here computes it, so it must survive re-indexing.
fn foreign(t: Option<&'static vireo_model::meta::TypeDef>, field: &str) -> bool {
    let Some(t) = t else { return true };
    let base = field.strip_suffix(".id").unwrap_or(field);
    t.attribute_by_xml(base).is_none() && !DERIVED.contains(&field)
}

/// A write by the runtime side (monitoring): the document changed, its tags and data center
/// did not; names of references are looked up again only when a reference changed.
pub async fn write_runtime(tx: &mut Tx, rec: &Record, doc: &Value) -> ApiResult<Record> {
    let id = doc
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or(&rec.id)
        .to_string();
    let old = tx.get_attrs(&rec.kind, &rec.id).await?;
    let mut look = Lookup {
        tx,
        cache: HashMap::new(),
    };
    let attrs = attrs_with(&mut look, &rec.kind, &id, doc, &[], Some(&old)).await?;
    let w = write_of(&rec.kind, &rec.id, doc, rec.parent_id.as_deref(), attrs);
    Ok(tx.update(&w, None).await?)
}

/// Recomputes one record's attributes (its document unchanged).
pub async fn reindex(tx: &mut Tx, rec: &Record) -> ApiResult<()> {
    let doc = crud::doc_of(rec)?;
    update(tx, rec, &doc, None).await.map_err(ApiError::from)?;
    Ok(())
}

fn renamed(before: Option<&Value>, doc: &Value) -> bool {
    before
        .map(|b| b.get("name") != doc.get("name"))
        .unwrap_or(false)
}

fn moved(before: Option<&Value>, doc: &Value, attr: &str) -> bool {
    before
        .map(|b| b.get(attr).and_then(ref_id) != doc.get(attr).and_then(ref_id))
        .unwrap_or(false)
}

/// Keeps other records' derived attributes true after `kind`/`id` was written.
pub async fn after_write(
    tx: &mut Tx,
    kind: &str,
    id: &str,
    before: Option<&Value>,
    doc: &Value,
) -> ApiResult<()> {
    // A tag given or taken: the owner's `tag` attribute.
    if let Some(owner_kind) = tag_owner_of(kind) {
        if before.is_none() {
            reindex_owner_of(tx, owner_kind, kind, doc).await?;
        }
    }
    if named(kind) && renamed(before, doc) {
        reindex_referrers(tx, kind, id).await?;
    }
    if kind == "clusters" && moved(before, doc, "data_center") {
        for k in ["vms", "hosts", "templates", "vmpools"] {
            reindex_where(tx, k, Filter::eq("cluster.id", id)).await?;
        }
    }
    if kind == "tags" && (renamed(before, doc) || moved(before, doc, "parent")) {
        reindex_tagged(tx, id).await?;
    }
    Ok(())
}

/// After a record is removed: a tag taken away changes its owner's attributes.
pub async fn after_remove(tx: &mut Tx, kind: &str, rec: &Record, doc: &Value) -> ApiResult<()> {
    if let Some(owner_kind) = tag_owner_of(kind) {
        if let Some(owner) = &rec.parent_id {
            if let Some(o) = tx.get(owner_kind, owner).await? {
                reindex(tx, &o).await?;
            }
        }
    }
    let _ = doc;
    Ok(())
}

fn tag_owner_of(kind: &str) -> Option<&'static str> {
    ["vms", "hosts", "templates", "users", "groups"]
        .into_iter()
        .find(|k| tag_relation(k) == Some(kind))
}

async fn reindex_owner_of(tx: &mut Tx, owner_kind: &str, _rel: &str, doc: &Value) -> ApiResult<()> {
    let owner_ref = match owner_kind {
        "vms" => "vm",
        "hosts" => "host",
        "templates" => "template",
        "users" => "user",
        _ => "group",
    };
    if let Some(owner) = doc.get(owner_ref).and_then(ref_id) {
        if let Some(o) = tx.get(owner_kind, owner).await? {
            reindex(tx, &o).await?;
        }
    }
    Ok(())
}

async fn reindex_where(tx: &mut Tx, kind: &str, filter: Filter) -> ApiResult<()> {
    for r in tx.list(kind, &Query::new(filter)).await? {
        reindex(tx, &r).await?;
    }
    Ok(())
}

/// Every record that references `kind`/`id` carries its name: re-index them all.
async fn reindex_referrers(tx: &mut Tx, kind: &str, id: &str) -> ApiResult<()> {
    for k in super::KINDS {
        let Some(t) = type_of(k.kind) else { continue };
        for a in t.attributes {
            let TypeRef::Struct(target) = a.ty else {
                continue;
            };
            if collection_of(target) != Some(kind) {
                continue;
            }
            reindex_where(tx, k.kind, Filter::eq(format!("{}.id", a.xml), id)).await?;
        }
    }
    if kind == "datacenters" {
        for k in ["vms", "hosts", "templates", "vmpools"] {
            reindex_where(tx, k, Filter::eq(DATA_CENTER_ID, id)).await?;
        }
    }
    Ok(())
}

/// Objects tagged with `tag` or one of its descendants.
async fn reindex_tagged(tx: &mut Tx, tag: &str) -> ApiResult<()> {
    let mut ids = vec![tag.to_string()];
    let mut i = 0;
    while i < ids.len() && ids.len() < 10_000 {
        let children = tx
            .list(
                "tags",
                &Query::new(Filter::eq("parent.id", ids[i].as_str())),
            )
            .await?;
        ids.extend(children.into_iter().map(|c| c.id));
        i += 1;
    }
    for owner_kind in ["vms", "hosts", "templates", "users", "groups"] {
        let rel = tag_relation(owner_kind).unwrap_or_default();
        let recs = tx
            .list(
                rel,
                &Query::new(Filter::Or(
                    ids.iter().map(|t| Filter::eq(TARGET, t.as_str())).collect(),
                )),
            )
            .await?;
        let owners: HashSet<String> = recs.into_iter().filter_map(|r| r.parent_id).collect();
        if owners.is_empty() {
            continue;
        }
        reindex_where(tx, owner_kind, Filter::IdIn(owners.into_iter().collect())).await?;
    }
    Ok(())
}

/// A failed write: a name (or id) conflict the caller words for its kind, or anything else.
#[derive(Debug)]
pub enum WriteError {
    Conflict(String),
    Api(ApiError),
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { what } => WriteError::Conflict(what),
            other => WriteError::Api(other.into()),
        }
    }
}

impl From<ApiError> for WriteError {
    fn from(e: ApiError) -> Self {
        WriteError::Api(e)
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Conflict(what) => ApiError::conflict(what),
            WriteError::Api(e) => e,
        }
    }
}

/// oVirt's words for a name already in use by another object of the kind.
pub fn conflict(e: WriteError, action: &str, kind: &str, doc: &Value) -> ApiError {
    match e {
        WriteError::Conflict(_) if doc.get("name").is_some() => {
            messages::name_in_use(if action == "update" { "edit" } else { action }, kind)
        }
        other => other.into(),
    }
}

/// The version of what [`attrs`] computes. Records written by an older engine (or by the
/// bootstrap, which indexes only a record's own members) are re-indexed once when an engine
/// first serves the inventory; bump this when `attrs` changes.
pub const INDEX_VERSION: i64 = 1;
const MARKER_KIND: &str = "_index";
const MARKER_ID: &str = "version";

/// Brings every record's attributes to [`INDEX_VERSION`], once per store and process.
pub async fn ensure_current(store: &vireo_store::Store, instance: &str) -> ApiResult<()> {
    use std::sync::{Arc, Mutex, OnceLock};
    type Cells = Mutex<HashMap<String, Arc<tokio::sync::OnceCell<()>>>>;
    static DONE: OnceLock<Cells> = OnceLock::new();
    let cell = DONE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(instance.to_string())
        .or_default()
        .clone();
    cell.get_or_try_init(|| upgrade(store)).await?;
    Ok(())
}

async fn upgrade(store: &vireo_store::Store) -> ApiResult<()> {
    let current = store
        .get(MARKER_KIND, MARKER_ID)
        .await?
        .and_then(|r| serde_json::from_str::<Value>(&r.doc).ok())
        .and_then(|d| d.get("version").and_then(Value::as_i64));
    if current == Some(INDEX_VERSION) {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let mut n = 0usize;
    for k in super::KINDS {
        let recs = store.list(k.kind, &Query::new(Filter::All)).await?;
        // Batches keep each transaction (and SQLite's one writer) short.
        for chunk in recs.chunks(500) {
            let mut tx = store.begin().await?;
            for r in chunk {
                reindex(&mut tx, r).await?;
            }
            tx.commit().await?;
            n += chunk.len();
        }
    }
    let mut tx = store.begin().await?;
    let w = ObjectWrite::new(
        MARKER_KIND,
        MARKER_ID,
        serde_json::json!({ "version": INDEX_VERSION }).to_string(),
    );
    match tx.get(MARKER_KIND, MARKER_ID).await? {
        Some(_) => tx.update(&w, None).await?,
        None => tx.insert(&w).await?,
    };
    tx.commit().await?;
    tracing::info!(
        records = n,
        ms = started.elapsed().as_millis() as u64,
        version = INDEX_VERSION,
        "search attributes re-indexed"
    );
    Ok(())
}
