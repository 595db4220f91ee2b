//! VM runtime actions: start (with run-once overrides), stop, shutdown, reboot, suspend,
//! migrate, cancel migration. Each validates the VM's state as oVirt does (409 with oVirt's
//! words), records the intent (status, job, event) in one transaction, sends ONE bounded call
//! to the host and answers; the monitor reports the VM reaching its state.

use super::actions::{self, refuse, Target};
use super::agent::bounded;
use super::docs::{self, text, to_doc};
use super::events::{self, About};
use super::jobs::{self, JobRef};
use super::runtime::{Launch, Migration, Stopping};
use super::vm_sync::{self, Change};
use super::{monitor, scheduler, vm_spec, Hosts};
use crate::api::fault::{ApiError, ApiResult};
use crate::api::Ctx;
use axum::response::Response;
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;
use vireo_agent_proto::{AgentError, ErrorCode, VmOperation};
use vireo_model as m;

/// A VM record as the actions need it.
pub struct VmRec {
    pub id: String,
    pub name: String,
    pub status: String,
    pub cluster_id: String,
    pub host: Option<String>,
    pub doc: Value,
}

pub async fn load(h: &Hosts, id: &str) -> ApiResult<VmRec> {
    let rec = h
        .store
        .get("vms", id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no VM with id '{id}'")))?;
    let mut doc = docs::parse(&rec);
    // A cluster given by name only: the runtime code works with ids.
    if text(&doc, &["cluster", "id"]).is_none() {
        if let Some(name) = text(&doc, &["cluster", "name"]).map(str::to_string) {
            if let Some(c) = h.store.get_by_name("clusters", &name, None).await? {
                doc["cluster"] = serde_json::json!({ "id": c.id });
            }
        }
    }
    let tracked = h
        .runtime
        .lock()
        .unwrap()
        .vms
        .get(id)
        .map(|t| t.host.clone());
    Ok(VmRec {
        id: rec.id.clone(),
        name: rec.name.clone().unwrap_or_default(),
        status: text(&doc, &["status"]).unwrap_or("down").to_string(),
        cluster_id: text(&doc, &["cluster", "id"])
            .unwrap_or_default()
            .to_string(),
        host: tracked.or_else(|| text(&doc, &["host", "id"]).map(str::to_string)),
        doc,
    })
}

fn host_name(h: &Hosts, id: &str) -> String {
    h.entry(id)
        .map(|e| e.view().name)
        .unwrap_or_else(|| id.to_string())
}

fn agent_failure(action: &str, e: &AgentError) -> ApiError {
    refuse(
        action,
        "VM",
        &format!("The host failed the request: {}", e.message),
    )
}

/// Who asked, for events and jobs.
pub struct Who {
    pub user_name: String,
    pub user_id: String,
    pub correlation_id: Option<String>,
}

impl Who {
    fn of(ctx: &Ctx<'_>) -> Who {
        Who {
            user_name: ctx.principal.user_name.clone(),
            user_id: ctx.principal.user_id.clone(),
            correlation_id: ctx.params.correlation_id.clone(),
        }
    }
}

// ---- start -------------------------------------------------------------------------------

pub async fn start(ctx: &Ctx<'_>, id: &str) -> ApiResult<Response> {
    let h = ctx.engine.hosts.clone();
    let a = actions::parse(ctx)?;
    let vm = load(&h, id).await?;
    match vm.status.as_str() {
        "down" | "suspended" => {}
        "paused" => return resume(ctx, &h, a, vm).await,
        "up" | "powering_up" | "wait_for_launch" | "migrating" | "reboot_in_progress"
        | "powering_down" | "restoring_state" | "saving_state" => {
            return Err(refuse("run", "VM", "VM is running."))
        }
        s => {
            return Err(ApiError::conflict(format!(
                "Cannot run VM because the VM is in {s} status."
            )))
        }
    }
    let run_once = a.vm.as_ref().map(|v| to_doc(v.as_ref()));
    let job = place_and_launch(&h, &vm, run_once, &Who::of(ctx)).await?;
    Ok(actions::answer(
        ctx,
        a,
        Some(&job.job_id),
        Target::Vm(&vm.id),
    ))
}

/// Starts a VM that is down (the pool monitor's way, without a request).
pub async fn start_down(h: &Arc<Hosts>, id: &str, user_name: &str) -> ApiResult<()> {
    let vm = load(h, id).await?;
    if vm.status != "down" {
        return Err(refuse("run", "VM", "VM is running."));
    }
    let who = Who {
        user_name: user_name.to_string(),
        user_id: String::new(),
        correlation_id: None,
    };
    place_and_launch(h, &vm, None, &who).await.map(|_| ())
}

async fn place_and_launch(
    h: &Arc<Hosts>,
    vm: &VmRec,
    run_once: Option<Value>,
    who: &Who,
) -> ApiResult<JobRef> {
    let effective = vm_spec::with_run_once(&vm.doc, run_once.as_ref());
    let req = scheduler::request_for(h, &vm.id, &effective, "run", None).await?;
    // Pick and reserve under one lock, so that concurrent starts do not overcommit a host.
    let host_id = {
        let cands = scheduler::candidates(h);
        let mut rt = h.runtime.lock().unwrap();
        if rt.vms.contains_key(&vm.id) {
            return Err(refuse("run", "VM", "VM is running."));
        }
        let cands: Vec<_> = cands
            .into_iter()
            .map(|mut c| {
                let (mem, _, n) = rt.committed(&c.id);
                c.committed_memory = mem;
                c.vm_count = n;
                c
            })
            .collect();
        let host_id = scheduler::place(&req, &cands).map_err(|r| scheduler::fault(&r))?;
        let mut t = monitor::track_of(&vm.id, &effective, &host_id);
        t.status = "wait_for_launch".into();
        t.launch = Some(Launch {
            user_name: who.user_name.clone(),
            user_id: who.user_id.clone(),
            correlation_id: who.correlation_id.clone(),
        });
        rt.place(&vm.id, t);
        host_id
    };
    match launch(h, vm, &effective, run_once.is_some(), &host_id, who).await {
        Ok(job) => Ok(job),
        Err(e) => {
            h.runtime.lock().unwrap().remove(&vm.id);
            Err(e)
        }
    }
}

async fn launch(
    h: &Arc<Hosts>,
    vm: &VmRec,
    effective: &Value,
    run_once: bool,
    host_id: &str,
    who: &Who,
) -> ApiResult<JobRef> {
    let mut spec = vm_spec::build(&h.store, &vm.id, effective).await?;
    if vm.status == "suspended" {
        spec.restore_from = Some(suspend_path(h, &vm.id).await?);
    }
    let entry = h
        .entry(host_id)
        .ok_or_else(|| refuse("run", "VM", "The selected host is gone."))?;
    let simulated = entry.view().simulated;
    vm_spec::resolve_disk_paths(
        &h.store,
        entry.agent.as_ref(),
        simulated,
        h.config.call_timeout,
        &mut spec,
    )
    .await
    .map_err(|why| refuse("run", "VM", &why))?;
    let hname = entry.view().name;
    let (vid, hid, name, cluster) = (
        vm.id.clone(),
        host_id.to_string(),
        vm.name.clone(),
        vm.cluster_id.clone(),
    );
    let (user, uid, corr) = (
        who.user_name.clone(),
        who.user_id.clone(),
        who.correlation_id.clone(),
    );
    let description = if run_once {
        format!("Launching VM {name} in run-once mode")
    } else {
        format!("Launching VM {name}")
    };
    let hn = hname.clone();
    let job = h
        .store
        .write(move |tx| {
            Box::pin(async move {
                docs::update_in(tx, "vms", &vid, |d| {
                    vm_sync::set_running(d, "wait_for_launch", &hid, &[], None);
                    let o = docs::obj(d);
                    o.insert("run_once".into(), run_once.to_string().into());
                    o.remove("stop_reason");
                })
                .await?;
                let about = About {
                    vm_id: Some(&vid),
                    host_id: Some(&hid),
                    cluster_id: Some(&cluster),
                    user_id: Some(&uid),
                    correlation_id: corr.as_deref(),
                };
                tx.insert_event(&events::event(
                    events::USER_STARTED_VM,
                    format!("VM {name} was started by {user} (Host: {hn})."),
                    about,
                ))
                .await?;
                jobs::start(tx, &description, Some(&uid), corr.as_deref()).await
            })
        })
        .await?;
    if let Some(t) = h.runtime.lock().unwrap().vms.get_mut(&vm.id) {
        t.job = Some(job.clone());
        t.since = Instant::now();
    }
    vm_sync::refresh_summary(h, host_id).await;
    match bounded(h.config.action_timeout, entry.agent.create_vm(&spec)).await {
        Ok(rt) => {
            vm_sync::report(h, &entry, rt).await;
            Ok(job)
        }
        Err(e) => {
            let (vid, name, user, cluster, j) = (
                vm.id.clone(),
                vm.name.clone(),
                who.user_name.clone(),
                vm.cluster_id.clone(),
                job.clone(),
            );
            let msg = e.message.clone();
            let uid = who.user_id.clone();
            let _ = h
                .store
                .write(move |tx| {
                    Box::pin(async move {
                        docs::update_in(tx, "vms", &vid, |d| vm_sync::set_down(d, "down")).await?;
                        let about = About {
                            vm_id: Some(&vid),
                            cluster_id: Some(&cluster),
                            user_id: Some(&uid),
                            ..Default::default()
                        };
                        let text = format!("Failed to run VM {name} due to an error on Host {hname}: {msg} (User: {user}).");
                        tx.insert_event(&events::event(events::USER_FAILED_RUN_VM, text, about)).await?;
                        jobs::end(tx, &j, false).await
                    })
                })
                .await;
            h.runtime.lock().unwrap().remove(&vm.id);
            vm_sync::refresh_summary(h, host_id).await;
            Err(agent_failure("run", &e))
        }
    }
}

async fn resume(ctx: &Ctx<'_>, h: &Arc<Hosts>, a: m::Action, vm: VmRec) -> ApiResult<Response> {
    let host = vm
        .host
        .clone()
        .ok_or_else(|| refuse("run", "VM", "VM is not running on a host."))?;
    let entry = h
        .entry(&host)
        .ok_or_else(|| refuse("run", "VM", "Its host is not known."))?;
    let rt = bounded(
        h.config.action_timeout,
        entry.agent.vm_operation(&vm.id, &VmOperation::Resume),
    )
    .await
    .map_err(|e| agent_failure("run", &e))?;
    let who = Who::of(ctx);
    let text = format!(
        "VM {} was resumed by {} (Host: {}).",
        vm.name,
        who.user_name,
        entry.view().name
    );
    record_event(h, &vm, events::USER_RESUME_VM, text, &who).await?;
    vm_sync::report(h, &entry, rt).await;
    Ok(actions::answer(ctx, a, None, Target::Vm(&vm.id)))
}

async fn record_event(h: &Hosts, vm: &VmRec, code: i64, text: String, who: &Who) -> ApiResult<()> {
    let ev = events::event(
        code,
        text,
        About {
            vm_id: Some(&vm.id),
            host_id: vm.host.as_deref(),
            cluster_id: Some(&vm.cluster_id),
            user_id: Some(&who.user_id),
            correlation_id: who.correlation_id.as_deref(),
        },
    );
    h.store
        .write(move |tx| Box::pin(async move { tx.insert_event(&ev).await.map(|_| ()) }))
        .await?;
    Ok(())
}

/// Where a suspended VM's memory goes: on the storage domain of its first disk, as oVirt
/// keeps memory volumes on a data domain (`<domain>/images/<vm id>/memory.state`, found by
/// the host below its mount of the domain); a VM without disks keeps it on its host.
async fn suspend_path(h: &Hosts, vm_id: &str) -> ApiResult<String> {
    let spec = vm_spec::build(&h.store, vm_id, &serde_json::json!({})).await?;
    Ok(spec
        .disks
        .first()
        .and_then(|d| d.path.split('/').next().filter(|s| !s.is_empty()))
        .map(|sd| format!("{sd}/images/{vm_id}/memory.state"))
        .unwrap_or_else(|| format!("suspended/{vm_id}.state")))
}

// ---- stop, shutdown ----------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum StopHow {
    Stop,
    Shutdown,
}

pub async fn stop(ctx: &Ctx<'_>, id: &str, how: StopHow) -> ApiResult<Response> {
    let h = ctx.engine.hosts.clone();
    let a = actions::parse(ctx)?;
    let vm = load(&h, id).await?;
    let verb = if how == StopHow::Stop {
        "stop"
    } else {
        "shutdown"
    };
    if vm.status == "down" {
        return Err(refuse(verb, "VM", "VM is not running."));
    }
    let who = Who::of(ctx);
    let reason = a.reason.clone().filter(|r| !r.is_empty());
    let host = vm.host.clone().filter(|_| vm.status != "suspended");
    let hname = host
        .as_deref()
        .map(|x| host_name(&h, x))
        .unwrap_or_default();
    let optional = reason
        .as_deref()
        .map(|r| format!(" (Reason: {r})"))
        .unwrap_or_default();
    let (code, text, description) = match how {
        StopHow::Stop => (
            events::USER_STOP_VM,
            format!(
                "VM {} powered off by {} (Host: {hname}){optional}.",
                vm.name, who.user_name
            ),
            format!("Stopping VM {}", vm.name),
        ),
        StopHow::Shutdown => (
            events::USER_INITIATED_SHUTDOWN_VM,
            format!(
                "VM shutdown initiated by {} on VM {} (Host: {hname}){optional}.",
                who.user_name, vm.name
            ),
            format!("Shutting down VM {}", vm.name),
        ),
    };
    let (vid, r2, cluster, uid, corr, hid) = (
        vm.id.clone(),
        reason.clone(),
        vm.cluster_id.clone(),
        who.user_id.clone(),
        who.correlation_id.clone(),
        host.clone(),
    );
    let no_host = host.is_none();
    let job = h
        .store
        .write(move |tx| {
            Box::pin(async move {
                docs::update_in(tx, "vms", &vid, |d| {
                    if let Some(r) = &r2 {
                        docs::obj(d).insert("stop_reason".into(), r.clone().into());
                    }
                    // Nothing runs anywhere (suspended, or never got a host): just down.
                    if no_host {
                        vm_sync::set_down(d, "down");
                    }
                })
                .await?;
                let about = About {
                    vm_id: Some(&vid),
                    host_id: hid.as_deref(),
                    cluster_id: Some(&cluster),
                    user_id: Some(&uid),
                    correlation_id: corr.as_deref(),
                };
                tx.insert_event(&events::event(code, text, about)).await?;
                let job = jobs::start(tx, &description, Some(&uid), corr.as_deref()).await?;
                if no_host {
                    jobs::end(tx, &job, true).await?;
                }
                Ok(job)
            })
        })
        .await?;
    let Some(host) = host else {
        h.runtime.lock().unwrap().remove(&vm.id);
        return Ok(actions::answer(
            ctx,
            a,
            Some(&job.job_id),
            Target::Vm(&vm.id),
        ));
    };
    if let Some(t) = h.runtime.lock().unwrap().vms.get_mut(&vm.id) {
        t.stopping = Some(Stopping {
            user_name: who.user_name.clone(),
            how: verb,
        });
        t.job = Some(job.clone());
    }
    let op = match how {
        StopHow::Stop => VmOperation::Destroy,
        // oVirt's default graceful shutdown timeout (VmGracefulShutdownTimeout).
        StopHow::Shutdown => VmOperation::Shutdown { timeout_s: 120 },
    };
    let Some(entry) = h.entry(&host) else {
        vm_sync::apply(
            &h,
            &host,
            &vm.id,
            Change::Down {
                reason: Some("user".into()),
                message: None,
            },
        )
        .await;
        return Ok(actions::answer(
            ctx,
            a,
            Some(&job.job_id),
            Target::Vm(&vm.id),
        ));
    };
    match bounded(
        h.config.action_timeout,
        entry.agent.vm_operation(&vm.id, &op),
    )
    .await
    {
        Ok(rt) => vm_sync::report(&h, &entry, rt).await,
        // The host does not run it (any more): it is down.
        Err(e) if e.code == ErrorCode::NoSuchVm => {
            vm_sync::apply(
                &h,
                &host,
                &vm.id,
                Change::Down {
                    reason: Some("user".into()),
                    message: None,
                },
            )
            .await
        }
        Err(e) => {
            end_job(&h, &job, false).await;
            return Err(agent_failure(verb, &e));
        }
    }
    Ok(actions::answer(
        ctx,
        a,
        Some(&job.job_id),
        Target::Vm(&vm.id),
    ))
}

async fn end_job(h: &Hosts, job: &JobRef, ok: bool) {
    let j = job.clone();
    let _ = h
        .store
        .write(move |tx| Box::pin(async move { jobs::end(tx, &j, ok).await }))
        .await;
    // Nothing waits for it any more.
    let mut rt = h.runtime.lock().unwrap();
    for t in rt.vms.values_mut() {
        if t.job
            .as_ref()
            .map(|x| x.job_id == job.job_id)
            .unwrap_or(false)
        {
            t.job = None;
            t.stopping = None;
        }
    }
}

// ---- reboot, suspend ---------------------------------------------------------------------

/// Runs `op` on the VM's host after checking it is up; returns the job.
async fn simple(
    ctx: &Ctx<'_>,
    id: &str,
    verb: &str,
    op: VmOperation,
    code: i64,
    words: impl Fn(&str, &str, &str) -> String,
    job_words: &str,
) -> ApiResult<Response> {
    let h = ctx.engine.hosts.clone();
    let a = actions::parse(ctx)?;
    let vm = load(&h, id).await?;
    if vm.status == "down" {
        return Err(refuse(verb, "VM", "VM is not running."));
    }
    if vm.status != "up" {
        return Err(refuse(verb, "VM", "VM is not up."));
    }
    let host = vm
        .host
        .clone()
        .ok_or_else(|| refuse(verb, "VM", "VM is not up."))?;
    let entry = h
        .entry(&host)
        .ok_or_else(|| refuse(verb, "VM", "Its host is not known."))?;
    let who = Who::of(ctx);
    let text = words(&vm.name, &who.user_name, &entry.view().name);
    let (vid, cluster, uid, corr, hid, desc) = (
        vm.id.clone(),
        vm.cluster_id.clone(),
        who.user_id.clone(),
        who.correlation_id.clone(),
        host.clone(),
        job_words.to_string(),
    );
    let job = h
        .store
        .write(move |tx| {
            Box::pin(async move {
                let about = About {
                    vm_id: Some(&vid),
                    host_id: Some(&hid),
                    cluster_id: Some(&cluster),
                    user_id: Some(&uid),
                    correlation_id: corr.as_deref(),
                };
                tx.insert_event(&events::event(code, text, about)).await?;
                jobs::start(tx, &desc, Some(&uid), corr.as_deref()).await
            })
        })
        .await?;
    match bounded(
        h.config.action_timeout,
        entry.agent.vm_operation(&vm.id, &op),
    )
    .await
    {
        Ok(rt) => {
            if let Some(t) = h.runtime.lock().unwrap().vms.get_mut(&vm.id) {
                t.job = Some(job.clone());
                t.since = Instant::now();
            }
            vm_sync::report(&h, &entry, rt).await;
        }
        Err(e) => {
            end_job(&h, &job, false).await;
            return Err(agent_failure(verb, &e));
        }
    }
    Ok(actions::answer(
        ctx,
        a,
        Some(&job.job_id),
        Target::Vm(&vm.id),
    ))
}

pub async fn reboot(ctx: &Ctx<'_>, id: &str) -> ApiResult<Response> {
    let name = load(&ctx.engine.hosts, id).await?.name;
    simple(
        ctx,
        id,
        "reboot",
        VmOperation::Reboot,
        events::USER_REBOOT_VM,
        |vm, user, _| format!("VM {vm} is rebooting. Rebooted by: {user}"),
        &format!("Rebooting VM {name}"),
    )
    .await
}

pub async fn suspend(ctx: &Ctx<'_>, id: &str) -> ApiResult<Response> {
    let name = load(&ctx.engine.hosts, id).await?.name;
    let op = VmOperation::Suspend {
        path: suspend_path(&ctx.engine.hosts, id).await?,
    };
    simple(
        ctx,
        id,
        "hibernate",
        op,
        events::USER_SUSPEND_VM,
        |vm, user, host| format!("Suspending VM {vm} was initiated by User {user} (Host: {host})."),
        &format!("Performing Hibernate action on VM {name}"),
    )
    .await
}

// ---- migrate -----------------------------------------------------------------------------

pub async fn migrate(ctx: &Ctx<'_>, id: &str) -> ApiResult<Response> {
    let h = ctx.engine.hosts.clone();
    let a = actions::parse(ctx)?;
    let vm = load(&h, id).await?;
    let dest = match a.host.as_deref() {
        Some(hr) => Some(resolve_host(&h, hr).await?),
        None => None,
    };
    let who = Who::of(ctx);
    let job = migrate_vm(&h, &vm, dest, &who, None)
        .await
        .map_err(|e| e.into_api())?;
    Ok(actions::answer(
        ctx,
        a,
        Some(&job.job_id),
        Target::Vm(&vm.id),
    ))
}

async fn resolve_host(h: &Hosts, r: &m::Host) -> ApiResult<String> {
    let found = match (&r.id, &r.name) {
        (Some(id), _) => h.store.get("hosts", id).await?,
        (None, Some(name)) => h.store.get_by_name("hosts", name, None).await?,
        _ => return Err(ApiError::incomplete("Host [id|name] required for migrate")),
    };
    found.map(|r| r.id).ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "Operation Failed",
            "Entity not found: host",
        )
    })
}

/// Why a migration could not start.
pub enum MigrateError {
    Api(ApiError),
    Refused(Vec<String>),
}

impl MigrateError {
    pub fn into_api(self) -> ApiError {
        match self {
            MigrateError::Api(e) => e,
            MigrateError::Refused(r) => scheduler::fault(&r),
        }
    }
    pub fn words(&self) -> String {
        match self {
            MigrateError::Api(e) => e.detail.clone(),
            MigrateError::Refused(r) => r.join(" "),
        }
    }
}

impl From<ApiError> for MigrateError {
    fn from(e: ApiError) -> Self {
        MigrateError::Api(e)
    }
}

/// Starts a live migration of `vm` to `dest` (or where the scheduler says). `system`: the
/// reason when the engine (not a user) moves it, e.g. a host going to maintenance.
pub async fn migrate_vm(
    h: &Arc<Hosts>,
    vm: &VmRec,
    dest: Option<String>,
    who: &Who,
    system: Option<&str>,
) -> Result<JobRef, MigrateError> {
    match vm.status.as_str() {
        "up" => {}
        "down" => return Err(refuse("migrate", "VM", "VM is not running.").into()),
        "migrating" => {
            return Err(refuse(
                "migrate",
                "VM",
                "Related operation is currently in progress. Please try again later.",
            )
            .into())
        }
        _ => return Err(refuse("migrate", "VM", "VM is not up.").into()),
    }
    if text(&vm.doc, &["placement_policy", "affinity"]) == Some("pinned") && system.is_none() {
        return Err(refuse("migrate", "VM", "VM is pinned to Host.").into());
    }
    let source = vm
        .host
        .clone()
        .ok_or_else(|| refuse("migrate", "VM", "VM is not running."))?;
    if dest.as_deref() == Some(source.as_str()) {
        return Err(refuse("migrate", "VM", "source and destination is the same.").into());
    }
    let mut req =
        scheduler::request_for(h, &vm.id, &vm.doc, "migrate", Some(source.clone())).await?;
    // A destination the user chose overrides pinning, as in oVirt; it must still fit.
    if dest.is_some() {
        req.pinned.clear();
    }
    let to = {
        let cands = scheduler::candidates(h);
        let cands: Vec<_> = cands
            .into_iter()
            .filter(|c| dest.as_ref().map(|d| &c.id == d).unwrap_or(true))
            .collect();
        let mut rt = h.runtime.lock().unwrap();
        let Some(t) = rt.vms.get(&vm.id) else {
            return Err(refuse("migrate", "VM", "VM is not running.").into());
        };
        if t.migration.is_some() {
            return Err(refuse(
                "migrate",
                "VM",
                "Related operation is currently in progress. Please try again later.",
            )
            .into());
        }
        let to = scheduler::place(&req, &cands).map_err(MigrateError::Refused)?;
        let t = rt.vms.get_mut(&vm.id).expect("tracked");
        t.migration = Some(Migration {
            from: source.clone(),
            to: to.clone(),
            started: Instant::now(),
            user_name: who.user_name.clone(),
            job: None,
            progress: 0,
        });
        t.since = Instant::now();
        rt.add_holder(&vm.id, &to);
        to
    };
    let undo = |h: &Hosts| {
        let mut rt = h.runtime.lock().unwrap();
        rt.drop_holder(&vm.id, &to);
        if let Some(t) = rt.vms.get_mut(&vm.id) {
            t.migration = None;
        }
    };
    let (Some(src), Some(dst)) = (h.entry(&source), h.entry(&to)) else {
        undo(h);
        return Err(refuse("migrate", "VM", "The host is not known.").into());
    };
    let mut spec = match vm_spec::build(&h.store, &vm.id, &vm.doc).await {
        Ok(s) => s,
        Err(e) => {
            undo(h);
            return Err(e.into());
        }
    };
    // Hot-plugs moved devices since the start: the destination places them as the source has.
    if let Ok(vms) = bounded(h.config.call_timeout, src.agent.list_vms()).await {
        if let Some(r) = vms.into_iter().find(|r| r.id == vm.id) {
            spec.pci = r.pci;
        }
    }
    let dest_simulated = dst.view().simulated;
    if let Err(why) = vm_spec::resolve_disk_paths(
        &h.store,
        dst.agent.as_ref(),
        dest_simulated,
        h.config.call_timeout,
        &mut spec,
    )
    .await
    {
        undo(h);
        return Err(refuse("migrate", "VM", &why).into());
    }
    let (sname, dname) = (src.view().name, dst.view().name);
    let (code, text) = match system {
        Some(reason) => (
            events::VM_MIGRATION_START_SYSTEM_INITIATED,
            format!(
                "Migration initiated by system (VM: {}, Source: {sname}, Destination: {dname}, Reason: {reason}).",
                vm.name
            ),
        ),
        None => (
            events::VM_MIGRATION_START,
            format!(
                "Migration started (VM: {}, Source: {sname}, Destination: {dname}, User: {}). ",
                vm.name, who.user_name
            ),
        ),
    };
    let description = format!("Migrating VM {} to Host {dname}", vm.name);
    let (vid, cluster, uid, corr, s2) = (
        vm.id.clone(),
        vm.cluster_id.clone(),
        who.user_id.clone(),
        who.correlation_id.clone(),
        source.clone(),
    );
    let job = h
        .store
        .write(move |tx| {
            Box::pin(async move {
                docs::update_in(tx, "vms", &vid, |d| {
                    docs::obj(d).insert("status".into(), "migrating".into());
                })
                .await?;
                let about = About {
                    vm_id: Some(&vid),
                    host_id: Some(&s2),
                    cluster_id: Some(&cluster),
                    user_id: Some(&uid),
                    correlation_id: corr.as_deref(),
                };
                tx.insert_event(&events::event(code, text, about)).await?;
                jobs::start(tx, &description, Some(&uid), corr.as_deref()).await
            })
        })
        .await;
    let job = match job {
        Ok(j) => j,
        Err(e) => {
            undo(h);
            return Err(ApiError::from(e).into());
        }
    };
    {
        let mut rt = h.runtime.lock().unwrap();
        if let Some(t) = rt.vms.get_mut(&vm.id) {
            t.status = "migrating".into();
            if let Some(m) = t.migration.as_mut() {
                m.job = Some(job.clone());
            }
        }
    }
    let prepared = bounded(
        h.config.action_timeout,
        dst.agent.vm_operation(
            &vm.id,
            &VmOperation::PrepareIncoming {
                spec: Box::new(spec),
            },
        ),
    )
    .await;
    let dv = dst.view();
    let sent = match prepared {
        Ok(rt) => {
            // The destination says where it listens for the migration stream (its own
            // port, not the agent's); a simulation may not say.
            let port = rt
                .migration
                .as_ref()
                .and_then(|m| m.destination.rsplit(':').next()?.parse().ok())
                .unwrap_or(dv.port);
            let op = VmOperation::Migrate {
                destination_address: dv.address.clone(),
                destination_port: port,
            };
            bounded(h.config.action_timeout, src.agent.vm_operation(&vm.id, &op)).await
        }
        Err(e) => Err(e),
    };
    if let Err(e) = sent {
        let _ = bounded(
            h.config.call_timeout,
            dst.agent.vm_operation(&vm.id, &VmOperation::Destroy),
        )
        .await;
        vm_sync::apply(
            h,
            &source,
            &vm.id,
            Change::MigrationFailed {
                from: source.clone(),
                to: to.clone(),
                why: e.message.clone(),
            },
        )
        .await;
        return Err(agent_failure("migrate", &e).into());
    }
    vm_sync::refresh_summary(h, &source).await;
    vm_sync::refresh_summary(h, &to).await;
    Ok(job)
}

pub async fn cancel_migration(ctx: &Ctx<'_>, id: &str) -> ApiResult<Response> {
    let h = ctx.engine.hosts.clone();
    let a = actions::parse(ctx)?;
    let vm = load(&h, id).await?;
    let Some(mig) = h
        .runtime
        .lock()
        .unwrap()
        .vms
        .get(id)
        .and_then(|t| t.migration.clone())
    else {
        return Err(ApiError::conflict(
            "Cannot cancel migration for non migrating VM.",
        ));
    };
    let src = h
        .entry(&mig.from)
        .ok_or_else(|| refuse("cancel migration", "VM", "The source host is not known."))?;
    bounded(
        h.config.action_timeout,
        src.agent.vm_operation(id, &VmOperation::CancelMigration),
    )
    .await
    .map_err(|e| agent_failure("cancel migration", &e))?;
    if let Some(dst) = h.entry(&mig.to) {
        let _ = bounded(
            h.config.call_timeout,
            dst.agent.vm_operation(id, &VmOperation::Destroy),
        )
        .await;
    }
    let who = Who::of(ctx);
    let text = format!(
        "Migration cancelled (VM: {}, Source: {}, User: {}).",
        vm.name,
        src.view().name,
        who.user_name
    );
    record_event(&h, &vm, events::VM_CANCEL_MIGRATION, text, &who).await?;
    vm_sync::apply(
        &h,
        &mig.from,
        id,
        Change::MigrationFailed {
            from: mig.from.clone(),
            to: mig.to.clone(),
            why: "cancelled by the user".into(),
        },
    )
    .await;
    Ok(actions::answer(ctx, a, None, Target::Vm(id)))
}
