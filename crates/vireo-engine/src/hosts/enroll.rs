//! Adding a host: `POST /hosts` validates and stores it `installing` and answers 201 at once;
//! a background task enrolls the agent (the secret is oVirt's `root_password`), and on
//! success hands the host to the monitor, which reads its capabilities and brings it `up`.
//! A refused secret or an agent that cannot be reached leaves it `install_failed` with an
//! event that says why.

use super::agent::bounded;
use super::docs::{self, text, to_doc};
use super::events::{self, About};
use super::{jobs, monitor, Hosts};
use crate::api::fault::{ApiError, ApiResult};
use crate::api::Ctx;
use crate::bootstrap::ids;
use serde_json::{json, Value};
use std::sync::Arc;
use vireo_agent_proto::{AgentError, ErrorCode};
use vireo_model as m;
use vireo_store::Filter;

/// VDSM's port, oVirt's default for a host.
pub const DEFAULT_PORT: i64 = 54321;

pub async fn prepare_add(ctx: &Ctx<'_>, doc: &mut Value) -> ApiResult<()> {
    let id = text(doc, &["id"]).unwrap_or_default().to_string();
    // The secret travels to the enrollment task in memory only: oVirt never stores or
    // shows a host's root password either.
    let secret = docs::obj(doc)
        .remove("root_password")
        .and_then(|v| v.as_str().map(str::to_string));
    let Some(address) = text(doc, &["address"])
        .map(str::to_string)
        .filter(|a| !a.trim().is_empty())
    else {
        return Err(ApiError::incomplete("Host [address] required for add"));
    };
    let Some(secret) = secret.filter(|s| !s.is_empty()) else {
        return Err(ApiError::incomplete(
            "Host [root_password] required for add",
        ));
    };
    let port = docs::int(doc, &["port"]).unwrap_or(DEFAULT_PORT);
    if !(1..=65535).contains(&port) {
        return Err(ApiError::bad_request(format!(
            "The value {port} of attribute 'port' is outside of range 1 to 65535."
        )));
    }
    if doc.get("cluster").is_none() {
        // oVirt puts a host without a cluster into the Default cluster.
        doc["cluster"] = json!({ "id": ids::CLUSTER });
    }
    crate::inventory::rules::resolve_ref(ctx, doc, "cluster", "clusters").await?;
    // Several agents may share an address (one machine simulating many hosts): the agent
    // is the address and the port together.
    let same = ctx
        .engine
        .store
        .list(
            "hosts",
            &vireo_store::Query::new(Filter::eq("address", address.as_str())),
        )
        .await?;
    if same
        .iter()
        .any(|r| docs::int(&docs::parse(r), &["port"]).unwrap_or(DEFAULT_PORT) == port)
    {
        return Err(ApiError::conflict(
            "Cannot add Host. Host with the same address already exists.",
        ));
    }
    let defaults = m::Host {
        port: Some(port),
        status: Some(m::HostStatus::Installing),
        r#type: Some(m::HostType::Rhel),
        protocol: Some(m::HostProtocol::Stomp),
        external_status: Some(m::ExternalStatus::Ok),
        spm: Some(Box::new(m::Spm {
            priority: Some(5),
            status: Some(m::SpmStatus::None),
            ..Default::default()
        })),
        summary: Some(Box::new(m::VmSummary {
            active: Some(0),
            migrating: Some(0),
            total: Some(0),
            ..Default::default()
        })),
        ksm: Some(Box::new(m::Ksm {
            enabled: Some(false),
            merge_across_nodes: Some(true),
            ..Default::default()
        })),
        kdump_status: Some(m::KdumpStatus::Unknown),
        transparent_huge_pages: Some(Box::new(m::TransparentHugePages {
            enabled: Some(true),
            ..Default::default()
        })),
        device_passthrough: Some(Box::new(m::HostDevicePassthrough {
            enabled: Some(false),
            ..Default::default()
        })),
        power_management: Some(Box::new(m::PowerManagement {
            enabled: Some(false),
            automatic_pm_enabled: Some(true),
            kdump_detection: Some(true),
            ..Default::default()
        })),
        max_scheduling_memory: Some(0),
        memory: Some(0),
        numa_supported: Some(false),
        auto_numa_status: Some(m::AutoNumaStatus::Unknown),
        update_available: Some(false),
        reinstallation_required: Some(false),
        network_operation_in_progress: Some(false),
        vgpu_placement: Some(m::VgpuPlacement::Consolidated),
        ..Default::default()
    };
    // What the client chose wins, except what only the engine decides.
    let mut merged = to_doc(&defaults);
    docs::merge(&mut merged, doc);
    let o = docs::obj(&mut merged);
    o.insert("status".into(), "installing".into());
    o.insert("port".into(), port.to_string().into());
    for runtime_only in [
        "cpu",
        "memory",
        "max_scheduling_memory",
        "summary",
        "version",
        "libvirt_version",
        "hardware_information",
        "os",
        "certificate",
        "status_detail",
    ] {
        if let Some(d) = to_doc(&defaults).get(runtime_only) {
            o.insert(runtime_only.into(), d.clone());
        } else {
            o.remove(runtime_only);
        }
    }
    *doc = merged;
    ctx.engine.hosts.put_secret(&id, secret);
    Ok(())
}

pub async fn after_add(ctx: &Ctx<'_>, id: &str, doc: &Value) -> ApiResult<()> {
    let hosts = ctx.engine.hosts.clone();
    let Some(secret) = hosts.take_secret(id) else {
        return Ok(());
    };
    let name = text(doc, &["name"]).unwrap_or(id).to_string();
    let cluster_id = text(doc, &["cluster", "id"])
        .unwrap_or_default()
        .to_string();
    let cluster_name = match ctx.engine.store.get("clusters", &cluster_id).await? {
        Some(r) => r.name.unwrap_or_default(),
        None => cluster_id.clone(),
    };
    let address = text(doc, &["address"]).unwrap_or_default().to_string();
    let port = docs::int(doc, &["port"]).unwrap_or(DEFAULT_PORT) as u16;
    let user = ctx.principal.user_name.clone();
    let user_id = ctx.principal.user_id.clone();
    let correlation = ctx.params.correlation_id.clone();
    let (hid, n, cid, u, uid, corr) = (
        id.to_string(),
        name.clone(),
        cluster_id.clone(),
        user.clone(),
        user_id.clone(),
        correlation.clone(),
    );
    let job = ctx
        .engine
        .store
        .write(move |tx| {
            Box::pin(async move {
                let about = About {
                    host_id: Some(&hid),
                    cluster_id: Some(&cid),
                    user_id: Some(&uid),
                    correlation_id: corr.as_deref(),
                    ..Default::default()
                };
                tx.insert_event(&events::event(
                    events::USER_ADD_VDS,
                    format!("Host {n} was added by {u}."),
                    about.clone(),
                ))
                .await?;
                tx.insert_event(&events::event(
                    events::VDS_INSTALL_IN_PROGRESS,
                    format!("Installing Host {n}. Enrolling the host agent at {address}:{port}."),
                    about,
                ))
                .await?;
                jobs::start(
                    tx,
                    &format!("Adding new Host {n} to Cluster {cluster_name}"),
                    Some(&uid),
                    corr.as_deref(),
                )
                .await
            })
        })
        .await?;
    let task = Install {
        hosts: hosts.clone(),
        id: id.to_string(),
        name,
        cluster_id,
        address: text(doc, &["address"]).unwrap_or_default().to_string(),
        port,
        secret,
        job,
        correlation,
    };
    hosts.spawn(task.run());
    Ok(())
}

/// The enrollment of one host, off the request.
struct Install {
    hosts: Arc<Hosts>,
    id: String,
    name: String,
    cluster_id: String,
    address: String,
    port: u16,
    secret: String,
    job: jobs::JobRef,
    correlation: Option<String>,
}

impl Install {
    async fn run(self) {
        let h = &self.hosts;
        let enrolled = bounded(
            h.config.enroll_timeout,
            h.connector
                .enroll(&self.address, self.port, &self.secret, &self.id),
        )
        .await;
        let result = match enrolled {
            Ok(()) => Ok(()),
            // Re-adding a host this engine enrolled before: the agent already trusts our CA,
            // which a mutual-TLS call proves.
            Err(e) if e.code == ErrorCode::AlreadyEnrolled => {
                self.already_ours().await.map_err(|_| e)
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => self.installed().await,
            Err(e) => self.failed(&e).await,
        }
    }

    async fn already_ours(&self) -> Result<(), AgentError> {
        let agent = self
            .hosts
            .connector
            .connect(&self.address, self.port, &self.id)?;
        bounded(self.hosts.config.call_timeout * 2, agent.capabilities())
            .await
            .map(|_| ())
    }

    fn about(&self) -> About<'_> {
        About {
            host_id: Some(&self.id),
            cluster_id: Some(&self.cluster_id),
            correlation_id: self.correlation.as_deref(),
            ..Default::default()
        }
    }

    async fn failed(&self, e: &AgentError) {
        let why = match e.code {
            ErrorCode::BadSecret => format!(
                "The host agent at {}:{} refused the enroll secret given as the root password",
                self.address, self.port
            ),
            ErrorCode::Unreachable => format!(
                "Cannot reach the host agent at {}:{}: {}",
                self.address, self.port, e.message
            ),
            ErrorCode::AlreadyEnrolled => {
                format!(
                    "The host agent at {}:{} is already enrolled by another engine",
                    self.address, self.port
                )
            }
            _ => format!(
                "The host agent at {}:{} failed the enrollment: {}",
                self.address, self.port, e.message
            ),
        };
        tracing::warn!(host = %self.name, error = %e, "host installation failed");
        let (id, job) = (self.id.clone(), self.job.clone());
        let ev = events::event(
            events::VDS_INSTALL_FAILED,
            format!("Host {} installation failed. {why}.", self.name),
            self.about(),
        );
        let detail = why.clone();
        let r = self
            .hosts
            .store
            .write(move |tx| {
                Box::pin(async move {
                    docs::update_in(tx, "hosts", &id, |d| {
                        let o = docs::obj(d);
                        o.insert("status".into(), "install_failed".into());
                        o.insert("status_detail".into(), detail.into());
                    })
                    .await?;
                    tx.insert_event(&ev).await?;
                    jobs::end(tx, &job, false).await
                })
            })
            .await;
        if let Err(e) = r {
            tracing::error!(host = %self.name, error = %e, "cannot record the failed installation");
        }
    }

    async fn installed(&self) {
        let h = &self.hosts;
        let agent = match h.connector.connect(&self.address, self.port, &self.id) {
            Ok(a) => a,
            Err(e) => return self.failed(&e).await,
        };
        let (id, job, address) = (self.id.clone(), self.job.clone(), self.address.clone());
        let ev = events::event(
            events::VDS_INSTALL,
            format!("Host {} installed", self.name),
            self.about(),
        );
        let r = h
            .store
            .write(move |tx| {
                Box::pin(async move {
                    let found = docs::update_in(tx, "hosts", &id, |d| {
                        let cert = m::Certificate {
                            organization: Some("vireo".into()),
                            subject: Some(format!("O=vireo,CN={address}")),
                            ..Default::default()
                        };
                        let o = docs::obj(d);
                        o.insert("status".into(), "initializing".into());
                        o.remove("status_detail");
                        o.insert("certificate".into(), to_doc(&cert));
                    })
                    .await?;
                    tx.insert_event(&ev).await?;
                    jobs::end(tx, &job, true).await?;
                    Ok(found.is_some())
                })
            })
            .await;
        match r {
            Ok(true) => {}
            Ok(false) => return, // removed while it installed
            Err(e) => {
                tracing::error!(host = %self.name, error = %e, "cannot record the installation");
                return;
            }
        }
        let entry = monitor::HostEntry::new(
            &self.id,
            &self.name,
            &self.cluster_id,
            "initializing",
            agent,
        );
        {
            let mut v = entry.view.lock().unwrap();
            v.address = self.address.clone();
            v.port = self.port;
        }
        h.table
            .write()
            .unwrap()
            .insert(self.id.clone(), entry.clone());
        // Up as soon as the agent answers, not at the next monitoring cycle.
        monitor::poll(h, &entry, 0).await;
    }
}
