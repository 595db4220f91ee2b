//! The inventory a fresh oVirt 4.5 engine starts with, written once on first start.
//!
//! [`ensure`] looks for the marker record (kind [`INSTANCE_KIND`], id [`INSTANCE_ID`]). When it
//! is missing, the whole inventory and the marker go into the store in ONE transaction, so a
//! crash part-way leaves nothing behind and the next start simply tries again. Later starts
//! only read the instance id back.
//!
//! The data come from the fact files in `crates/vireo-engine/bootstrap/*.json` (read from
//! oVirt's sources, see the README there), compiled into the binary. The representations
//! follow what oVirt's REST mappers produce for the same database rows.
//!
//! Record conventions (beyond [`crate::inventory::record`]):
//!
//! - top-level objects have no parent; names are unique ([`NameScope::Global`]) for data
//!   centers, clusters, MAC pools, roles, tags, instance types and scheduling policies; network
//!   names are unique per data center ([`NameScope::Custom`] with the data center id) and vNIC
//!   profile names per network (`Custom` with the network id); templates, groups and the
//!   read-only collections have no name rule;
//! - records of a sub-collection kind (one with a `/`: `roles/permits`, `clusters/networks`,
//!   `schedulingpolicies/{filters,weights,balances}`, `templates/graphicsconsoles`,
//!   `instancetypes/graphicsconsoles`, `datacenters/quotas`) have `parent_id` = the owner's id
//!   and RECORD id [`sub_record_id`]`(parent, api_id)`, because their API ids repeat under
//!   different owners (permit `1` is in many roles, a network is attached to many clusters);
//!   the doc keeps the API id;
//! - `permissions` follow the auth module's records (`auth::users::permission_write`): no
//!   parent, and indexed attributes `role`, `object_type` (`system`, `template`,
//!   `vnic_profile`, `mac_pool`, `cpu_profile`, ...), `object` (the object's id; the system
//!   object [`ids::SYSTEM`] for system-wide ones) and the holder: `group` here (`user` for a
//!   user's). The API's `Permission` has no field for some object types, so `object` is where
//!   to look.
//!
//! The admin user, its password and its SuperUser permission belong to the auth module.

use crate::inventory::record::object_write;
use anyhow::Context;
use rand::Rng;
use serde::Deserialize;
use vireo_model as m;
use vireo_model::Model;
use vireo_store::{NameScope, ObjectWrite, Store, StoreError};

/// Kind of the marker record that says the bootstrap inventory exists.
pub const INSTANCE_KIND: &str = "engine";
/// Id of the marker record; its doc is `{"instance_id": "<uuid>"}`.
pub const INSTANCE_ID: &str = "instance";

/// Well-known ids of the bootstrap inventory.
pub mod ids {
    /// The system object that system-wide permissions are given on.
    pub const SYSTEM: &str = "aaa00000-0000-0000-0000-123456789aaa";
    /// The group every user belongs to.
    pub const EVERYONE: &str = "eee00000-0000-0000-0000-123456789eee";
    pub const EMPTY: &str = "00000000-0000-0000-0000-000000000000";
    /// Deterministic here; random on a real engine (no client can rely on it).
    pub const DATA_CENTER: &str = "58cfb470-02f3-03d7-0386-0000000003bc";
    /// Deterministic here; random on a real engine (no client can rely on it).
    pub const CLUSTER: &str = "58cfb470-03b9-01d0-03b9-0000000001e7";
    pub const MAC_POOL: &str = "58ca604b-017d-0374-0220-00000000014e";
    pub const MANAGEMENT_NETWORK: &str = "00000000-0000-0000-0000-000000000009";
    pub const MANAGEMENT_VNIC_PROFILE: &str = "0000000a-000a-000a-000a-000000000398";
    pub const CPU_PROFILE: &str = "58ca604e-01a7-003f-01de-000000000250";
    pub const BLANK_TEMPLATE: &str = "00000000-0000-0000-0000-000000000000";
    pub const ROOT_TAG: &str = "00000000-0000-0000-0000-000000000000";
    pub const SUPER_USER_ROLE: &str = "00000000-0000-0000-0000-000000000001";
    pub const SCHEDULING_POLICY_NONE: &str = "b4ed2332-a7ac-4d5f-9596-99a439cb2812";
    pub const MIGRATION_POLICY_MINIMAL_DOWNTIME: &str = "80554327-0569-496b-bdeb-fcbbf52b827b";
    pub const NETWORK_FILTER_NO_MAC_SPOOFING: &str = "d2370ab4-fee3-11e9-a310-8c1645ce738e";
    /// `internal-authz` as the API spells a domain id (upper-case hex of the name).
    pub const INTERNAL_DOMAIN: &str = "696E7465726E616C2D617574687A";
    pub const INTERNAL_DOMAIN_NAME: &str = "internal-authz";
}

/// The record id of a sub-object whose API id is only unique under its owner.
pub fn sub_record_id(parent_id: &str, id: &str) -> String {
    format!("{parent_id}/{id}")
}

/// How oVirt spells directory ids in the API (`DirectoryEntryIdUtils.encode`): the upper-case
/// hex of the UTF-8 bytes.
pub fn directory_id(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02X}")).collect()
}

/// Creates the bootstrap inventory on first start; returns the engine's instance id.
pub async fn ensure(store: &Store) -> anyhow::Result<String> {
    if let Some(id) = stored_instance_id(store).await? {
        return Ok(id);
    }
    // Everything is built before the transaction: it holds SQLite's only writer.
    let instance_id = uuid::Uuid::new_v4().to_string();
    let mut writes = vec![ObjectWrite::new(
        INSTANCE_KIND,
        INSTANCE_ID,
        serde_json::json!({ "instance_id": instance_id }).to_string(),
    )];
    writes.extend(inventory(&mut rand::thread_rng())?);
    let outcome = store
        .write(move |tx| {
            Box::pin(async move {
                // Another replica may have won the race between our read and this transaction.
                if let Some(rec) = tx.get(INSTANCE_KIND, INSTANCE_ID).await? {
                    return Ok(Some(rec.doc));
                }
                for w in &writes {
                    tx.insert(w).await?;
                }
                Ok(None)
            })
        })
        .await;
    match outcome {
        Ok(None) => {
            tracing::info!(instance_id = %instance_id, "bootstrap inventory created");
            Ok(instance_id)
        }
        Ok(Some(doc)) => parse_marker(&doc),
        // A concurrent first start committed the marker before us (PostgreSQL replicas).
        Err(StoreError::Conflict { what }) => match stored_instance_id(store).await? {
            Some(id) => Ok(id),
            None => Err(anyhow::anyhow!("bootstrap inventory: conflict: {what}")),
        },
        Err(e) => Err(anyhow::Error::new(e).context("writing the bootstrap inventory")),
    }
}

async fn stored_instance_id(store: &Store) -> anyhow::Result<Option<String>> {
    let rec = store
        .get(INSTANCE_KIND, INSTANCE_ID)
        .await
        .context("reading the engine instance marker")?;
    rec.map(|r| parse_marker(&r.doc)).transpose()
}

fn parse_marker(doc: &str) -> anyhow::Result<String> {
    let v: serde_json::Value = serde_json::from_str(doc).context("engine instance marker")?;
    v.get("instance_id")
        .and_then(|i| i.as_str())
        .map(str::to_owned)
        .context("engine instance marker has no instance_id")
}

// ---- fact files ---------------------------------------------------------------------------

const ROLES_JSON: &str = include_str!("../bootstrap/roles.json");
const PERMITS_JSON: &str = include_str!("../bootstrap/permits.json");
const CLUSTER_LEVELS_JSON: &str = include_str!("../bootstrap/cluster_levels.json");
const OPERATING_SYSTEMS_JSON: &str = include_str!("../bootstrap/operating_systems.json");
const INSTANCE_TYPES_JSON: &str = include_str!("../bootstrap/instance_types.json");
const SCHEDULING_JSON: &str = include_str!("../bootstrap/scheduling_policies.json");
const WELL_KNOWN_JSON: &str = include_str!("../bootstrap/well_known.json");

#[derive(Deserialize)]
struct RolesFile {
    roles: Vec<RoleFact>,
}

#[derive(Deserialize)]
struct RoleFact {
    id: String,
    name: String,
    description: String,
    administrative: bool,
    mutable: bool,
    permits: Vec<PermitFact>,
}

#[derive(Deserialize)]
struct PermitsFile {
    permits: Vec<PermitFact>,
}

#[derive(Deserialize)]
struct PermitFact {
    id: String,
    name: String,
    administrative: bool,
}

#[derive(Deserialize)]
struct ClusterLevelsFile {
    cluster_levels: Vec<ClusterLevelFact>,
}

#[derive(Deserialize)]
struct ClusterLevelFact {
    id: String,
    cpu_types: Vec<CpuTypeFact>,
}

#[derive(Deserialize)]
struct CpuTypeFact {
    name: String,
    level: i64,
    architecture: String,
}

#[derive(Deserialize)]
struct OperatingSystemsFile {
    operating_systems: Vec<OsFact>,
}

#[derive(Deserialize)]
struct OsFact {
    id: i64,
    name: String,
    description: String,
    architecture: String,
    tpm_support: String,
}

#[derive(Deserialize)]
struct InstanceTypesFile {
    instance_types: Vec<InstanceTypeFact>,
}

#[derive(Deserialize)]
struct InstanceTypeFact {
    id: String,
    name: String,
    description: String,
    memory_bytes: i64,
    guaranteed_memory_bytes: i64,
    max_memory_bytes: i64,
    cpu_topology: TopologyFact,
    io_threads: i64,
    creation_date: String,
    devices: Vec<DeviceFact>,
}

#[derive(Deserialize)]
struct TopologyFact {
    sockets: i64,
    cores: i64,
    threads: i64,
}

#[derive(Deserialize)]
struct DeviceFact {
    #[serde(rename = "type")]
    kind: String,
    device: String,
}

#[derive(Deserialize)]
struct SchedulingFile {
    policies: Vec<PolicyFact>,
    policy_units: Vec<UnitFact>,
}

#[derive(Deserialize)]
struct PolicyFact {
    id: String,
    name: String,
    description: Option<String>,
    locked: bool,
    default_policy: bool,
    balance: Option<UnitRefFact>,
    filters: Vec<FilterFact>,
    weights: Vec<WeightFact>,
    #[serde(default)]
    properties: Vec<PropertyFact>,
}

#[derive(Deserialize)]
struct UnitRefFact {
    id: String,
}

#[derive(Deserialize)]
struct FilterFact {
    id: String,
    position: i64,
}

#[derive(Deserialize)]
struct WeightFact {
    id: String,
    factor: i64,
}

#[derive(Deserialize)]
struct PropertyFact {
    name: String,
    value: String,
}

#[derive(Deserialize)]
struct UnitFact {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    description: Option<String>,
    internal: bool,
    enabled: bool,
    #[serde(default)]
    properties: Vec<PropertyFact>,
}

#[derive(Deserialize)]
struct WellKnownFile {
    data_center: NamedFact,
    cluster: NamedFact,
    mac_pool: NamedFact,
    network: NamedFact,
    network_filters: NetworkFiltersFact,
    blank_template: BlankFact,
    quota: QuotaFact,
    cpu_profile: CpuProfileFact,
    permissions_from_db_scripts: Vec<PermissionFact>,
}

#[derive(Deserialize)]
struct NamedFact {
    name: String,
    description: String,
}

#[derive(Deserialize)]
struct NetworkFiltersFact {
    filters: Vec<NetworkFilterFact>,
}

#[derive(Deserialize)]
struct NetworkFilterFact {
    name: String,
    version: String,
    id: Option<String>,
}

#[derive(Deserialize)]
struct BlankFact {
    name: String,
    description: String,
    memory_bytes: i64,
    guaranteed_memory_bytes: i64,
    max_memory_bytes: i64,
    cpu_topology: TopologyFact,
    io_threads: i64,
    creation_date: String,
    origin: String,
    devices: Vec<DeviceFact>,
}

#[derive(Deserialize)]
struct QuotaFact {
    name: String,
    description: String,
    threshold_cluster_percentage: i64,
    threshold_storage_percentage: i64,
    grace_cluster_percentage: i64,
    grace_storage_percentage: i64,
}

#[derive(Deserialize)]
struct CpuProfileFact {
    name: String,
}

#[derive(Deserialize)]
struct PermissionFact {
    id: String,
    role_id: String,
    principal_id: String,
    object_id: String,
    object_type: String,
}

fn facts<'a, T: Deserialize<'a>>(file: &str, text: &'a str) -> anyhow::Result<T> {
    serde_json::from_str(text).with_context(|| format!("bootstrap fact file {file}"))
}

// ---- building the records -----------------------------------------------------------------

/// The records of the bootstrap inventory (without the marker). `rng` draws the MAC range bytes;
/// the ids oVirt generates at install time are random UUIDs.
fn inventory(rng: &mut impl Rng) -> anyhow::Result<Vec<ObjectWrite>> {
    let well_known: WellKnownFile = facts("well_known.json", WELL_KNOWN_JSON)?;
    let roles: RolesFile = facts("roles.json", ROLES_JSON)?;
    let permits: PermitsFile = facts("permits.json", PERMITS_JSON)?;
    let levels: ClusterLevelsFile = facts("cluster_levels.json", CLUSTER_LEVELS_JSON)?;
    let oses: OperatingSystemsFile = facts("operating_systems.json", OPERATING_SYSTEMS_JSON)?;
    let instance_types: InstanceTypesFile = facts("instance_types.json", INSTANCE_TYPES_JSON)?;
    let scheduling: SchedulingFile = facts("scheduling_policies.json", SCHEDULING_JSON)?;

    let mut inv = Inventory::default();
    data_center(&mut inv, &well_known);
    cluster(&mut inv, &well_known);
    mac_pool(&mut inv, &well_known, rng);
    network(&mut inv, &well_known)?;
    blank_template(&mut inv, &well_known.blank_template)?;
    for it in &instance_types.instance_types {
        instance_type(&mut inv, it)?;
    }
    tags_groups_domains(&mut inv);
    permissions(&mut inv, &well_known.permissions_from_db_scripts)?;
    self::roles(&mut inv, &roles.roles);
    cluster_levels(&mut inv, &levels.cluster_levels, &permits.permits)?;
    operating_systems(&mut inv, &oses.operating_systems)?;
    scheduling_policies(&mut inv, &scheduling)?;
    Ok(inv.writes)
}

#[derive(Default)]
struct Inventory {
    writes: Vec<ObjectWrite>,
}

impl Inventory {
    /// A top-level object.
    fn add<T: Model>(&mut self, kind: &str, value: &T, scope: NameScope) {
        self.writes
            .push(object_write(kind, value, None).unique(scope));
    }

    /// A sub-object under `parent` (record id made unique with [`sub_record_id`]).
    fn add_sub<T: Model>(&mut self, kind: &str, parent: &str, value: &T) {
        let mut w = object_write(kind, value, Some(parent));
        w.id = sub_record_id(parent, value.id().unwrap_or_default());
        self.writes.push(w);
    }
}

/// A reference: an object with only its id.
fn reference<T: Model>(id: &str) -> Option<Box<T>> {
    let mut v = T::default();
    v.set_id(Some(id.to_owned()));
    Some(Box::new(v))
}

fn version(major: i64, minor: i64) -> m::Version {
    m::Version {
        major: Some(major),
        minor: Some(minor),
        ..Default::default()
    }
}

/// `"4.8"` → 4.8
fn parse_version(s: &str) -> anyhow::Result<m::Version> {
    let (major, minor) = s
        .split_once('.')
        .with_context(|| format!("version {s:?}"))?;
    Ok(version(major.parse()?, minor.parse()?))
}

fn date(s: &str) -> anyhow::Result<m::Date> {
    chrono::DateTime::parse_from_rfc3339(s).with_context(|| format!("date {s:?}"))
}

fn random_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn data_center(inv: &mut Inventory, wk: &WellKnownFile) {
    let dc = m::DataCenter {
        id: Some(ids::DATA_CENTER.into()),
        name: Some(wk.data_center.name.clone()),
        description: Some(wk.data_center.description.clone()),
        local: Some(false),
        status: Some(m::DataCenterStatus::Uninitialized),
        quota_mode: Some(m::QuotaModeType::Disabled),
        // No storage format until the first storage domain is attached (NULL in the row).
        version: Some(Box::new(version(4, 8))),
        // GetAvailableStoragePoolVersions: the levels >= the data center's and <= every
        // cluster's; both are 4.8.
        supported_versions: Some(vec![version(4, 8)]),
        mac_pool: reference(ids::MAC_POOL),
        ..Default::default()
    };
    inv.add("datacenters", &dc, NameScope::Global);

    let quota = m::Quota {
        id: Some(random_id()),
        name: Some(wk.quota.name.clone()),
        description: Some(wk.quota.description.clone()),
        data_center: reference(ids::DATA_CENTER),
        cluster_hard_limit_pct: Some(wk.quota.grace_cluster_percentage),
        storage_hard_limit_pct: Some(wk.quota.grace_storage_percentage),
        cluster_soft_limit_pct: Some(wk.quota.threshold_cluster_percentage),
        storage_soft_limit_pct: Some(wk.quota.threshold_storage_percentage),
        ..Default::default()
    };
    inv.add_sub("datacenters/quotas", ids::DATA_CENTER, &quota);
}

fn cluster(inv: &mut Inventory, wk: &WellKnownFile) {
    let cl = m::Cluster {
        id: Some(ids::CLUSTER.into()),
        name: Some(wk.cluster.name.clone()),
        description: Some(wk.cluster.description.clone()),
        comment: Some(String::new()),
        data_center: reference(ids::DATA_CENTER),
        version: Some(Box::new(version(4, 8))),
        // cpu_name is empty until the first host joins; the architecture is undefined.
        cpu: Some(Box::new(m::Cpu {
            architecture: Some(m::Architecture::Undefined),
            ..Default::default()
        })),
        scheduling_policy: reference(ids::SCHEDULING_POLICY_NONE),
        mac_pool: reference(ids::MAC_POOL),
        memory_policy: Some(Box::new(m::MemoryPolicy {
            over_commit: Some(Box::new(m::MemoryOverCommit {
                percent: Some(100),
                ..Default::default()
            })),
            transparent_huge_pages: Some(Box::new(m::TransparentHugePages {
                enabled: Some(true),
                ..Default::default()
            })),
            ..Default::default()
        })),
        error_handling: Some(Box::new(m::ErrorHandling {
            on_error: Some(m::MigrateOnError::Migrate),
            ..Default::default()
        })),
        virt_service: Some(true),
        gluster_service: Some(false),
        threads_as_cores: Some(false),
        tunnel_migration: Some(false),
        trusted_service: Some(false),
        ha_reservation: Some(false),
        ballooning_enabled: Some(true),
        vnc_encryption: Some(false),
        ksm: Some(Box::new(m::Ksm {
            enabled: Some(true),
            merge_across_nodes: Some(true),
            ..Default::default()
        })),
        required_rng_sources: Some(vec![m::RngSource::Urandom]),
        migration: Some(Box::new(m::MigrationOptions {
            auto_converge: Some(m::InheritableBoolean::Inherit),
            compressed: Some(m::InheritableBoolean::Inherit),
            encrypted: Some(m::InheritableBoolean::Inherit),
            parallel_migrations_policy: Some(m::ParallelMigrationsPolicy::Disabled),
            policy: reference(ids::MIGRATION_POLICY_MINIMAL_DOWNTIME),
            bandwidth: Some(Box::new(m::MigrationBandwidth {
                assignment_method: Some(m::MigrationBandwidthAssignmentMethod::Auto),
                ..Default::default()
            })),
            ..Default::default()
        })),
        fencing_policy: Some(Box::new(m::FencingPolicy {
            enabled: Some(true),
            skip_if_sd_active: Some(Box::new(m::SkipIfSdActive {
                enabled: Some(false),
                ..Default::default()
            })),
            skip_if_connectivity_broken: Some(Box::new(m::SkipIfConnectivityBroken {
                enabled: Some(false),
                threshold: Some(50),
                ..Default::default()
            })),
            skip_if_gluster_bricks_up: Some(false),
            skip_if_gluster_quorum_not_met: Some(false),
            ..Default::default()
        })),
        switch_type: Some(m::SwitchType::Legacy),
        firewall_type: Some(m::FirewallType::Firewalld),
        log_max_memory_used_threshold: Some(95),
        log_max_memory_used_threshold_type: Some(m::LogMaxMemoryUsedThresholdType::Percentage),
        // bios_type 0 in the row maps to no value; it is chosen when the first host joins.
        fips_mode: Some(m::FipsMode::Undefined),
        upgrade_in_progress: Some(false),
        upgrade_percent_complete: Some(0),
        ..Default::default()
    };
    inv.add("clusters", &cl, NameScope::Global);

    let profile = m::CpuProfile {
        id: Some(ids::CPU_PROFILE.into()),
        name: Some(wk.cpu_profile.name.clone()),
        cluster: reference(ids::CLUSTER),
        ..Default::default()
    };
    inv.add(
        "cpuprofiles",
        &profile,
        NameScope::Custom(ids::CLUSTER.into()),
    );
}

fn mac_pool(inv: &mut Inventory, wk: &WellKnownFile, rng: &mut impl Rng) {
    // engine-setup: 56:6f:XX:YY:00:00-56:6f:XX:YY:ff:ff, XX and YY = random.randrange(255).
    let (xx, yy): (u8, u8) = (rng.gen_range(0..255), rng.gen_range(0..255));
    let pool = m::MacPool {
        id: Some(ids::MAC_POOL.into()),
        name: Some(wk.mac_pool.name.clone()),
        description: Some(wk.mac_pool.description.clone()),
        allow_duplicates: Some(false),
        default_pool: Some(true),
        ranges: Some(vec![m::Range {
            from_: Some(format!("56:6f:{xx:02x}:{yy:02x}:00:00")),
            to: Some(format!("56:6f:{xx:02x}:{yy:02x}:ff:ff")),
            ..Default::default()
        }]),
        ..Default::default()
    };
    inv.add("macpools", &pool, NameScope::Global);
}

fn network(inv: &mut Inventory, wk: &WellKnownFile) -> anyhow::Result<()> {
    // /networks: the data center's view. Usages other than `vm` (and `required`, `display`,
    // `status`) live on the cluster attachment; oVirt shows them only under /clusters/{id}.
    let net = m::Network {
        id: Some(ids::MANAGEMENT_NETWORK.into()),
        name: Some(wk.network.name.clone()),
        description: Some(wk.network.description.clone()),
        comment: Some(String::new()),
        data_center: reference(ids::DATA_CENTER),
        stp: Some(false),
        mtu: Some(0),
        usages: Some(vec![m::NetworkUsage::Vm]),
        vdsm_name: Some(wk.network.name.clone()),
        port_isolation: Some(false),
        ..Default::default()
    };
    inv.add("networks", &net, NameScope::Custom(ids::DATA_CENTER.into()));

    let attached = m::Network {
        cluster: reference(ids::CLUSTER),
        usages: Some(vec![
            m::NetworkUsage::Vm,
            m::NetworkUsage::Display,
            m::NetworkUsage::Migration,
            m::NetworkUsage::Management,
            m::NetworkUsage::DefaultRoute,
        ]),
        display: Some(true),
        required: Some(true),
        status: Some(m::NetworkStatus::Operational),
        ..net
    };
    inv.add_sub("clusters/networks", ids::CLUSTER, &attached);

    let profile = m::VnicProfile {
        id: Some(ids::MANAGEMENT_VNIC_PROFILE.into()),
        name: Some(wk.network.name.clone()),
        network: reference(ids::MANAGEMENT_NETWORK),
        port_mirroring: Some(false),
        pass_through: Some(Box::new(m::VnicPassThrough {
            mode: Some(m::VnicPassThroughMode::Disabled),
            ..Default::default()
        })),
        network_filter: reference(ids::NETWORK_FILTER_NO_MAC_SPOOFING),
        ..Default::default()
    };
    inv.add(
        "vnicprofiles",
        &profile,
        NameScope::Custom(ids::MANAGEMENT_NETWORK.into()),
    );

    for f in &wk.network_filters.filters {
        // Only vdsm-no-mac-spoofing has a fixed id; oVirt makes the others at install.
        let id = f.id.clone().unwrap_or_else(random_id);
        let filter = m::NetworkFilter {
            id: Some(id),
            name: Some(f.name.clone()),
            version: Some(Box::new(parse_version(&f.version)?)),
            ..Default::default()
        };
        inv.add("networkfilters", &filter, NameScope::None);
    }
    Ok(())
}

fn has_device(devices: &[DeviceFact], kind: &str, device: &str) -> bool {
    devices.iter().any(|d| d.kind == kind && d.device == device)
}

/// Display as the REST layer shows it: the protocol from the graphics devices (SPICE wins),
/// the video type from `default_display_type` (VGA for all bootstrap entities).
fn display(devices: &[DeviceFact]) -> m::Display {
    let protocol = if has_device(devices, "graphics", "spice") {
        m::DisplayType::Spice
    } else {
        m::DisplayType::Vnc
    };
    m::Display {
        r#type: Some(protocol),
        monitors: Some(1),
        allow_override: Some(false),
        smartcard_enabled: Some(false),
        file_transfer_enabled: Some(true),
        copy_paste_enabled: Some(true),
        disconnect_action: Some("LOCK_SCREEN".into()),
        disconnect_action_delay: Some(0),
        video_type: Some(m::VideoType::Vga),
        ..Default::default()
    }
}

/// The graphics consoles of a template or instance type: id = hex of the protocol name.
fn graphics_consoles(devices: &[DeviceFact]) -> Vec<m::GraphicsConsole> {
    [
        ("spice", m::GraphicsType::Spice),
        ("vnc", m::GraphicsType::Vnc),
    ]
    .into_iter()
    .filter(|(name, _)| has_device(devices, "graphics", name))
    .map(|(name, protocol)| m::GraphicsConsole {
        id: Some(name.bytes().map(|b| format!("{b:02x}")).collect()),
        protocol: Some(protocol),
        ..Default::default()
    })
    .collect()
}

fn topology(t: &TopologyFact) -> Option<Box<m::Cpu>> {
    Some(Box::new(m::Cpu {
        topology: Some(Box::new(m::CpuTopology {
            sockets: Some(t.sockets),
            cores: Some(t.cores),
            threads: Some(t.threads),
            ..Default::default()
        })),
        ..Default::default()
    }))
}

fn memory_policy(guaranteed: i64, max: i64) -> Option<Box<m::MemoryPolicy>> {
    Some(Box::new(m::MemoryPolicy {
        guaranteed: Some(guaranteed),
        max: Some(max),
        ballooning: Some(true),
        ..Default::default()
    }))
}

fn vm_migration() -> Option<Box<m::MigrationOptions>> {
    Some(Box::new(m::MigrationOptions {
        auto_converge: Some(m::InheritableBoolean::Inherit),
        compressed: Some(m::InheritableBoolean::Inherit),
        encrypted: Some(m::InheritableBoolean::Inherit),
        parallel_migrations_policy: Some(m::ParallelMigrationsPolicy::Inherit),
        ..Default::default()
    }))
}

fn boot_from_disk() -> Option<Box<m::Boot>> {
    Some(Box::new(m::Boot {
        devices: Some(vec![m::BootDevice::Hd]),
        ..Default::default()
    }))
}

fn rng_device(devices: &[DeviceFact]) -> Option<Box<m::RngDevice>> {
    has_device(devices, "rng", "virtio").then(|| {
        Box::new(m::RngDevice {
            source: Some(m::RngSource::Urandom),
            ..Default::default()
        })
    })
}

fn blank_template(inv: &mut Inventory, b: &BlankFact) -> anyhow::Result<()> {
    let t = m::Template {
        id: Some(ids::BLANK_TEMPLATE.into()),
        name: Some(b.name.clone()),
        description: Some(b.description.clone()),
        comment: Some(String::new()),
        memory: Some(b.memory_bytes),
        io: Some(Box::new(m::Io {
            threads: Some(b.io_threads),
            ..Default::default()
        })),
        creation_time: Some(date(&b.creation_date)?),
        usb: Some(Box::new(m::Usb {
            enabled: Some(false),
            ..Default::default()
        })),
        cpu: topology(&b.cpu_topology),
        high_availability: Some(Box::new(m::HighAvailability {
            enabled: Some(false),
            priority: Some(0),
            ..Default::default()
        })),
        migration_downtime: Some(-1),
        migration: vm_migration(),
        memory_policy: memory_policy(b.guaranteed_memory_bytes, b.max_memory_bytes),
        placement_policy: Some(Box::new(m::VmPlacementPolicy {
            affinity: Some(m::VmAffinity::Migratable),
            ..Default::default()
        })),
        display: Some(Box::new(display(&b.devices))),
        r#type: Some(m::VmType::Server),
        storage_error_resume_behaviour: Some(m::VmStorageErrorResumeBehaviour::AutoResume),
        origin: Some(b.origin.clone()),
        bios: Some(Box::new(m::Bios {
            boot_menu: Some(Box::new(m::BootMenu {
                enabled: Some(false),
                ..Default::default()
            })),
            ..Default::default()
        })),
        stateless: Some(false),
        delete_protected: Some(false),
        sso: Some(Box::new(m::Sso {
            methods: Some(vec![m::Method {
                id: Some("guest_agent".into()),
                ..Default::default()
            }]),
            ..Default::default()
        })),
        start_paused: Some(false),
        cpu_shares: Some(0),
        multi_queues_enabled: Some(true),
        virtio_scsi_multi_queues_enabled: Some(false),
        auto_pinning_policy: Some(m::AutoPinningPolicy::Disabled),
        cpu_pinning_policy: Some(m::CpuPinningPolicy::None),
        status: Some(m::TemplateStatus::Ok),
        os: Some(Box::new(m::OperatingSystem {
            r#type: Some("other".into()),
            boot: boot_from_disk(),
            ..Default::default()
        })),
        // template_version_number is NULL in the row and read with getInt: 0.
        version: Some(Box::new(m::TemplateVersion {
            version_name: Some(String::new()),
            version_number: Some(0),
            base_template: reference(ids::BLANK_TEMPLATE),
            ..Default::default()
        })),
        // What `all_content` adds, from the devices.
        console: Some(Box::new(m::Console {
            enabled: Some(false),
            ..Default::default()
        })),
        virtio_scsi: Some(Box::new(m::VirtioScsi {
            enabled: Some(has_device(&b.devices, "controller", "virtio-scsi")),
            ..Default::default()
        })),
        soundcard_enabled: Some(false),
        tpm_enabled: Some(false),
        rng_device: rng_device(&b.devices),
        ..Default::default()
    };
    inv.add("templates", &t, NameScope::None);
    for mut gc in graphics_consoles(&b.devices) {
        gc.template = reference(ids::BLANK_TEMPLATE);
        inv.add_sub("templates/graphicsconsoles", ids::BLANK_TEMPLATE, &gc);
    }
    Ok(())
}

fn instance_type(inv: &mut Inventory, f: &InstanceTypeFact) -> anyhow::Result<()> {
    // InstanceTypeMapper maps only the common VM-base part, plus the boot order.
    let it = m::InstanceType {
        id: Some(f.id.clone()),
        name: Some(f.name.clone()),
        description: Some(f.description.clone()),
        memory: Some(f.memory_bytes),
        io: Some(Box::new(m::Io {
            threads: Some(f.io_threads),
            ..Default::default()
        })),
        creation_time: Some(date(&f.creation_date)?),
        usb: Some(Box::new(m::Usb {
            enabled: Some(false),
            ..Default::default()
        })),
        cpu: topology(&f.cpu_topology),
        high_availability: Some(Box::new(m::HighAvailability {
            enabled: Some(false),
            priority: Some(0),
            ..Default::default()
        })),
        migration_downtime: Some(-1),
        migration: vm_migration(),
        memory_policy: memory_policy(f.guaranteed_memory_bytes, f.max_memory_bytes),
        placement_policy: Some(Box::new(m::VmPlacementPolicy {
            affinity: Some(m::VmAffinity::Migratable),
            ..Default::default()
        })),
        display: Some(Box::new(display(&f.devices))),
        os: Some(Box::new(m::OperatingSystem {
            boot: boot_from_disk(),
            ..Default::default()
        })),
        console: Some(Box::new(m::Console {
            enabled: Some(false),
            ..Default::default()
        })),
        virtio_scsi: Some(Box::new(m::VirtioScsi {
            enabled: Some(has_device(&f.devices, "controller", "virtio-scsi")),
            ..Default::default()
        })),
        soundcard_enabled: Some(false),
        tpm_enabled: Some(false),
        rng_device: rng_device(&f.devices),
        ..Default::default()
    };
    inv.add("instancetypes", &it, NameScope::Global);
    for mut gc in graphics_consoles(&f.devices) {
        gc.instance_type = reference(&f.id);
        inv.add_sub("instancetypes/graphicsconsoles", &f.id, &gc);
    }
    Ok(())
}

fn tags_groups_domains(inv: &mut Inventory) {
    // Not a row in oVirt's tags table, but GET /tags lists it first.
    let root = m::Tag {
        id: Some(ids::ROOT_TAG.into()),
        name: Some("root".into()),
        description: Some("root".into()),
        ..Default::default()
    };
    inv.add("tags", &root, NameScope::Global);

    // Everyone's domain is '' in the row, so the API shows no domain for it.
    let everyone = m::Group {
        id: Some(ids::EVERYONE.into()),
        name: Some("Everyone".into()),
        domain_entry_id: Some(directory_id(ids::EVERYONE)),
        namespace: Some("*".into()),
        ..Default::default()
    };
    inv.add("groups", &everyone, NameScope::None);

    // engine-setup's attach_group_to_role('ovirt-administrator', 'SuperUser') (for Keycloak).
    let admins_id = random_id();
    let admins = m::Group {
        id: Some(admins_id.clone()),
        name: Some("ovirt-administrator".into()),
        domain_entry_id: Some(directory_id(&random_id())),
        ..Default::default()
    };
    inv.add("groups", &admins, NameScope::None);
    let p = m::Permission {
        id: Some(random_id()),
        role: reference(ids::SUPER_USER_ROLE),
        group: reference(&admins_id),
        ..Default::default()
    };
    add_permission(inv, &p, ids::SYSTEM, "system");

    let domain = m::Domain {
        id: Some(ids::INTERNAL_DOMAIN.into()),
        name: Some(ids::INTERNAL_DOMAIN_NAME.into()),
        ..Default::default()
    };
    inv.add("domains", &domain, NameScope::None);
}

fn add_permission(inv: &mut Inventory, p: &m::Permission, object_id: &str, object_type: &str) {
    // The attribute names of `auth::users` (PERM_ROLE, PERM_OBJECT_TYPE, PERM_OBJECT).
    let role = p
        .role
        .as_ref()
        .and_then(|r| r.id.clone())
        .unwrap_or_default();
    let group = p
        .group
        .as_ref()
        .and_then(|g| g.id.clone())
        .unwrap_or_default();
    let w = object_write("permissions", p, None)
        .attr("role", role)
        .attr("group", group)
        .attr("object_type", object_type)
        .attr("object", object_id);
    inv.writes.push(w);
}

fn permissions(inv: &mut Inventory, facts: &[PermissionFact]) -> anyhow::Result<()> {
    for f in facts {
        let mut p = m::Permission {
            id: Some(f.id.clone()),
            role: reference(&f.role_id),
            group: reference(&f.principal_id),
            ..Default::default()
        };
        // PermissionMapper sets a reference only for these object types.
        match f.object_type.as_str() {
            "template" => p.template = reference(&f.object_id),
            "system" | "vnic_profile" | "mac_pool" | "cpu_profile" => {}
            other => anyhow::bail!("bootstrap permission {}: object type {other}", f.id),
        }
        add_permission(inv, &p, &f.object_id, &f.object_type);
    }
    Ok(())
}

fn permit(p: &PermitFact) -> m::Permit {
    m::Permit {
        id: Some(p.id.clone()),
        name: Some(p.name.clone()),
        administrative: Some(p.administrative),
        ..Default::default()
    }
}

fn roles(inv: &mut Inventory, roles: &[RoleFact]) {
    for r in roles {
        let role = m::Role {
            id: Some(r.id.clone()),
            name: Some(r.name.clone()),
            description: Some(r.description.clone()),
            administrative: Some(r.administrative),
            mutable: Some(r.mutable),
            ..Default::default()
        };
        inv.add("roles", &role, NameScope::Global);
        for p in &r.permits {
            let p = m::Permit {
                role: reference(&r.id),
                ..permit(p)
            };
            inv.add_sub("roles/permits", &r.id, &p);
        }
    }
}

fn architecture(s: &str) -> anyhow::Result<m::Architecture> {
    m::Architecture::parse(s).with_context(|| format!("architecture {s:?}"))
}

fn cluster_levels(
    inv: &mut Inventory,
    levels: &[ClusterLevelFact],
    permits: &[PermitFact],
) -> anyhow::Result<()> {
    let permits: Vec<m::Permit> = permits.iter().map(permit).collect();
    for l in levels {
        let cpu_types = l
            .cpu_types
            .iter()
            .map(|c| {
                Ok(m::CpuType {
                    name: Some(c.name.clone()),
                    level: Some(c.level),
                    architecture: Some(architecture(&c.architecture)?),
                    ..Default::default()
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let level = m::ClusterLevel {
            id: Some(l.id.clone()),
            cpu_types: Some(cpu_types),
            permits: Some(permits.clone()),
            ..Default::default()
        };
        inv.add("clusterlevels", &level, NameScope::None);
    }
    Ok(())
}

fn operating_systems(inv: &mut Inventory, oses: &[OsFact]) -> anyhow::Result<()> {
    for o in oses {
        let os = m::OperatingSystemInfo {
            id: Some(o.id.to_string()),
            name: Some(o.name.clone()),
            description: Some(o.description.clone()),
            architecture: Some(architecture(&o.architecture)?),
            tpm_support: Some(
                m::TpmSupport::parse(&o.tpm_support)
                    .with_context(|| format!("tpm support {:?}", o.tpm_support))?,
            ),
            ..Default::default()
        };
        inv.add("operatingsystems", &os, NameScope::None);
    }
    Ok(())
}

fn properties(props: &[PropertyFact]) -> Option<Vec<m::Property>> {
    (!props.is_empty()).then(|| {
        props
            .iter()
            .map(|p| m::Property {
                name: Some(p.name.clone()),
                value: Some(p.value.clone()),
                ..Default::default()
            })
            .collect()
    })
}

fn scheduling_policies(inv: &mut Inventory, s: &SchedulingFile) -> anyhow::Result<()> {
    for p in &s.policies {
        let policy = m::SchedulingPolicy {
            id: Some(p.id.clone()),
            name: Some(p.name.clone()),
            description: p.description.clone(),
            locked: Some(p.locked),
            default_policy: Some(p.default_policy),
            properties: properties(&p.properties),
            ..Default::default()
        };
        inv.add("schedulingpolicies", &policy, NameScope::Global);
        // SchedulingPolicyMapper: id = the unit's id, plus a reference to the unit.
        for f in &p.filters {
            let filter = m::Filter {
                id: Some(f.id.clone()),
                scheduling_policy_unit: reference(&f.id),
                position: Some(f.position),
                ..Default::default()
            };
            inv.add_sub("schedulingpolicies/filters", &p.id, &filter);
        }
        for w in &p.weights {
            let weight = m::Weight {
                id: Some(w.id.clone()),
                scheduling_policy_unit: reference(&w.id),
                factor: Some(w.factor),
                ..Default::default()
            };
            inv.add_sub("schedulingpolicies/weights", &p.id, &weight);
        }
        if let Some(b) = &p.balance {
            let balance = m::Balance {
                id: Some(b.id.clone()),
                scheduling_policy_unit: reference(&b.id),
                ..Default::default()
            };
            inv.add_sub("schedulingpolicies/balances", &p.id, &balance);
        }
    }
    for u in &s.policy_units {
        let kind = match u.kind.as_deref() {
            // Selector units: PolicyUnitMapper has no API type for them.
            None => None,
            Some(k) => Some(
                m::PolicyUnitType::parse(k).with_context(|| format!("policy unit type {k:?}"))?,
            ),
        };
        let unit = m::SchedulingPolicyUnit {
            id: Some(u.id.clone()),
            name: Some(u.name.clone()),
            description: u.description.clone(),
            r#type: kind,
            enabled: Some(u.enabled),
            internal: Some(u.internal),
            properties: properties(&u.properties),
            ..Default::default()
        };
        inv.add("schedulingpolicyunits", &unit, NameScope::None);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Instant;
    use vireo_model::Limits;
    use vireo_store::{Filter, Query};

    /// Every kind the bootstrap writes, with how many records of it.
    const EXPECTED: &[(&str, usize)] = &[
        ("engine", 1),
        ("datacenters", 1),
        ("datacenters/quotas", 1),
        ("clusters", 1),
        ("clusters/networks", 1),
        ("cpuprofiles", 1),
        ("macpools", 1),
        ("networks", 1),
        ("vnicprofiles", 1),
        ("networkfilters", 18),
        ("templates", 1),
        ("templates/graphicsconsoles", 1),
        ("instancetypes", 5),
        ("instancetypes/graphicsconsoles", 10),
        ("tags", 1),
        ("groups", 2),
        ("domains", 1),
        ("permissions", 11),
        ("roles", 37),
        ("roles/permits", 488),
        ("clusterlevels", 7),
        ("operatingsystems", 61),
        ("schedulingpolicies", 5),
        ("schedulingpolicies/filters", 76),
        ("schedulingpolicies/weights", 44),
        ("schedulingpolicies/balances", 5),
        ("schedulingpolicyunits", 37),
    ];

    fn read<T: Model>(doc: &str) -> T {
        vireo_model::from_json::<T>(doc.as_bytes(), Limits::default())
            .unwrap_or_else(|e| panic!("{} does not read back: {e}\n{doc}", T::NAME))
    }

    fn check<T: Model>(doc: &str) {
        read::<T>(doc);
    }

    /// Reads a doc back as the type its kind holds; false for an unknown kind.
    fn read_back(kind: &str, doc: &str) -> bool {
        match kind {
            "datacenters" => check::<m::DataCenter>(doc),
            "datacenters/quotas" => check::<m::Quota>(doc),
            "clusters" => check::<m::Cluster>(doc),
            "clusters/networks" | "networks" => check::<m::Network>(doc),
            "cpuprofiles" => check::<m::CpuProfile>(doc),
            "macpools" => check::<m::MacPool>(doc),
            "vnicprofiles" => check::<m::VnicProfile>(doc),
            "networkfilters" => check::<m::NetworkFilter>(doc),
            "templates" => check::<m::Template>(doc),
            "templates/graphicsconsoles" | "instancetypes/graphicsconsoles" => {
                check::<m::GraphicsConsole>(doc)
            }
            "instancetypes" => check::<m::InstanceType>(doc),
            "tags" => check::<m::Tag>(doc),
            "groups" => check::<m::Group>(doc),
            "domains" => check::<m::Domain>(doc),
            "permissions" => check::<m::Permission>(doc),
            "roles" => check::<m::Role>(doc),
            "roles/permits" => check::<m::Permit>(doc),
            "clusterlevels" => check::<m::ClusterLevel>(doc),
            "operatingsystems" => check::<m::OperatingSystemInfo>(doc),
            "schedulingpolicies" => check::<m::SchedulingPolicy>(doc),
            "schedulingpolicies/filters" => check::<m::Filter>(doc),
            "schedulingpolicies/weights" => check::<m::Weight>(doc),
            "schedulingpolicies/balances" => check::<m::Balance>(doc),
            "schedulingpolicyunits" => check::<m::SchedulingPolicyUnit>(doc),
            _ => return false,
        }
        true
    }

    async fn open(dir: &tempfile::TempDir) -> Store {
        Store::open(dir.path().join("vireo.db").to_str().unwrap())
            .await
            .unwrap()
    }

    async fn count(store: &Store, kind: &str) -> usize {
        store.count(kind, &Filter::All).await.unwrap() as usize
    }

    #[tokio::test]
    async fn first_start_writes_everything_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;

        let started = Instant::now();
        let id = ensure(&store).await.unwrap();
        let took = started.elapsed();
        let records: usize = EXPECTED.iter().map(|(_, n)| n).sum();
        println!("bootstrap::ensure (first start, SQLite): {records} records in {took:?}");
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "instance id {id}");

        for (kind, n) in EXPECTED {
            assert_eq!(count(&store, kind).await, *n, "records of kind {kind}");
        }
        assert_eq!(
            inventory(&mut rand::thread_rng()).unwrap().len() + 1,
            records
        );

        // Every doc reads back as its type.
        for (kind, _) in EXPECTED.iter().filter(|(k, _)| *k != INSTANCE_KIND) {
            for rec in store.list(kind, &Query::default()).await.unwrap() {
                assert!(read_back(kind, &rec.doc), "no type for kind {kind}");
            }
        }

        // A second start changes nothing and answers the same id.
        let again = ensure(&store).await.unwrap();
        assert_eq!(again, id);
        for (kind, n) in EXPECTED {
            assert_eq!(
                count(&store, kind).await,
                *n,
                "records of kind {kind} after restart"
            );
        }
        store.close().await;

        // And so does a restart of the process (a new store handle on the same file).
        let store = open(&dir).await;
        assert_eq!(ensure(&store).await.unwrap(), id);
        store.close().await;
    }

    #[tokio::test]
    async fn well_known_objects() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        ensure(&store).await.unwrap();
        let get = |kind: &'static str, id: String| {
            let store = store.clone();
            async move {
                store
                    .get(kind, &id)
                    .await
                    .unwrap()
                    .unwrap_or_else(|| panic!("{kind} {id} missing"))
            }
        };

        let dc: m::DataCenter = read(&get("datacenters", ids::DATA_CENTER.into()).await.doc);
        assert_eq!(dc.name.as_deref(), Some("Default"));
        assert_eq!(dc.local, Some(false));
        assert_eq!(dc.version.as_ref().and_then(|v| v.minor), Some(8));
        assert_eq!(dc.supported_versions.as_ref().map(Vec::len), Some(1));
        assert_eq!(
            store
                .get_by_name("datacenters", "Default", None)
                .await
                .unwrap()
                .map(|r| r.id),
            Some(ids::DATA_CENTER.to_string())
        );

        let cl: m::Cluster = read(&get("clusters", ids::CLUSTER.into()).await.doc);
        assert_eq!(
            cl.data_center.and_then(|d| d.id).as_deref(),
            Some(ids::DATA_CENTER)
        );
        assert_eq!(
            cl.scheduling_policy.and_then(|p| p.id).as_deref(),
            Some(ids::SCHEDULING_POLICY_NONE)
        );
        assert_eq!(
            cl.cpu.and_then(|c| c.architecture),
            Some(m::Architecture::Undefined)
        );
        let attrs = store.get_attrs("clusters", ids::CLUSTER).await.unwrap();
        assert!(attrs.contains(&("data_center.id".into(), ids::DATA_CENTER.into())));

        let rec = get(
            "clusters/networks",
            sub_record_id(ids::CLUSTER, ids::MANAGEMENT_NETWORK),
        )
        .await;
        assert_eq!(rec.parent_id.as_deref(), Some(ids::CLUSTER));
        let attached: m::Network = read(&rec.doc);
        assert_eq!(attached.id.as_deref(), Some(ids::MANAGEMENT_NETWORK));
        assert_eq!(attached.required, Some(true));
        assert!(attached
            .usages
            .unwrap()
            .contains(&m::NetworkUsage::Management));

        let pool: m::MacPool = read(&get("macpools", ids::MAC_POOL.into()).await.doc);
        let range = &pool.ranges.unwrap()[0];
        let (from, to) = (range.from_.clone().unwrap(), range.to.clone().unwrap());
        assert!(
            from.starts_with("56:6f:") && from.ends_with(":00:00"),
            "{from}"
        );
        assert_eq!(&from[..11], &to[..11]);
        assert!(to.ends_with(":ff:ff"), "{to}");

        let blank: m::Template = read(&get("templates", ids::BLANK_TEMPLATE.into()).await.doc);
        assert_eq!(blank.name.as_deref(), Some("Blank"));
        assert_eq!(blank.memory, Some(1 << 30));

        let tiny: m::InstanceType = read(
            &get(
                "instancetypes",
                "00000003-0003-0003-0003-0000000000be".into(),
            )
            .await
            .doc,
        );
        assert_eq!(tiny.name.as_deref(), Some("Tiny"));
        assert_eq!(tiny.memory, Some(512 << 20));

        let role: m::Role = read(&get("roles", ids::SUPER_USER_ROLE.into()).await.doc);
        assert_eq!(
            (role.administrative, role.mutable),
            (Some(true), Some(false))
        );
        let permits = store
            .list(
                "roles/permits",
                &Query::new(Filter::ParentIs(ids::SUPER_USER_ROLE.into())),
            )
            .await
            .unwrap();
        assert_eq!(permits.len(), 97);
        let first: m::Permit = read(&permits[0].doc);
        assert_eq!(
            (first.id.as_deref(), first.name.as_deref()),
            (Some("1"), Some("create_vm"))
        );

        let level: m::ClusterLevel = read(&get("clusterlevels", "4.8".into()).await.doc);
        assert_eq!(level.cpu_types.map(|c| c.len()), Some(38));
        assert_eq!(level.permits.map(|p| p.len()), Some(99));

        let os: m::OperatingSystemInfo = read(&get("operatingsystems", "34".into()).await.doc);
        assert_eq!(os.name.as_deref(), Some("rhel_9x64"));

        let on_blank = store
            .list(
                "permissions",
                &Query::new(Filter::eq("object", ids::BLANK_TEMPLATE)),
            )
            .await
            .unwrap();
        let everyone: Vec<m::Permission> = on_blank.iter().map(|r| read(&r.doc)).collect();
        assert!(everyone.iter().any(|p| {
            p.group.as_ref().and_then(|g| g.id.as_deref()) == Some(ids::EVERYONE)
                && p.template.as_ref().and_then(|t| t.id.as_deref()) == Some(ids::BLANK_TEMPLATE)
        }));

        // System-wide: UserProfileEditor for Everyone, SuperUser for ovirt-administrator.
        let system = Filter::And(vec![
            Filter::eq("object_type", "system"),
            Filter::eq("object", ids::SYSTEM),
        ]);
        assert_eq!(store.count("permissions", &system).await.unwrap(), 2);
        let super_users = Filter::And(vec![system, Filter::eq("role", ids::SUPER_USER_ROLE)]);
        assert_eq!(store.count("permissions", &super_users).await.unwrap(), 1);

        let mut by_policy = BTreeMap::new();
        for rec in store
            .list("schedulingpolicies/weights", &Query::default())
            .await
            .unwrap()
        {
            *by_policy.entry(rec.parent_id.unwrap()).or_insert(0) += 1;
        }
        assert_eq!(by_policy.len(), 5);
        store.close().await;
    }

    #[test]
    fn directory_ids_are_upper_hex() {
        assert_eq!(
            directory_id(ids::INTERNAL_DOMAIN_NAME),
            ids::INTERNAL_DOMAIN
        );
    }
}
