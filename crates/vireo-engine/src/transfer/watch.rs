//! One task per transfer, following oVirt's phases:
//!
//! ```text
//! initializing → transferring ⇄ paused_user/paused_system (resuming)
//! transferring → finalizing_success → finished_success            (disk ok)
//!                                   ↘ finalizing_failure → finished_failure (upload: disk illegal, removed)
//! cancel → cancelled_user → finalizing_cleanup → finished_failure  (upload: disk removed; download: disk ok)
//! inactivity → per timeout_policy: paused_system, or cancelled_system → finalizing_failure
//! ```
//!
//! Users change the phase through actions (in the store); the task sees it at its next poll
//! (woken at once by [`wake`]). Every write checks the phase it read, so a user's change wins.

use super::{client_of, is_final, KIND};
use crate::api::Ctx;
use crate::inventory::events::{self, Who};
use crate::inventory::rules::common::*;
use crate::inventory::rules::{disks, storage};
use crate::inventory::{doc_of, index, tasks};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use vireo_agent::{AgentClient, Timeouts};
use vireo_agent_proto::{ErrorCode, TicketSpec, VerifyRequest, VolumeOperation};
use vireo_store::{EventRefs, NewEvent, Store};

/// oVirt's `TransferImageClientInactivityTimeoutInSeconds`.
pub const DEFAULT_INACTIVITY_S: i64 = 60;
/// How long a host ticket lives between renewals (oVirt's host ticket validity).
const TICKET_LIFETIME_S: u64 = 300;

fn poll_interval() -> Duration {
    Duration::from_millis(env_u64("VIREO_TRANSFER_POLL_MS", 1000))
}

/// Finished transfers stay listed this long (oVirt 4.4.7+ keeps them a few minutes too).
fn keep() -> Duration {
    Duration::from_secs(env_u64("VIREO_TRANSFER_KEEP_S", 900))
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn transfer_type(direction: &str) -> &'static str {
    if direction == "download" {
        "Download"
    } else {
        "Upload"
    }
}

pub fn event(who: &Who, code: i64, severity: &str, text: String, domain: Option<&str>) -> NewEvent {
    events::event(
        who,
        code,
        severity,
        text,
        EventRefs {
            storage_domain_id: domain.map(str::to_string),
            ..Default::default()
        },
    )
}

fn wakers() -> &'static Mutex<HashMap<String, Arc<Notify>>> {
    static W: OnceLock<Mutex<HashMap<String, Arc<Notify>>>> = OnceLock::new();
    W.get_or_init(Default::default)
}

/// Makes the task of transfer `id` look at its phase now.
pub fn wake(id: &str) {
    if let Some(n) = wakers().lock().unwrap_or_else(|e| e.into_inner()).get(id) {
        n.notify_one();
    }
}

pub struct Watch {
    store: Store,
    tls: Option<Arc<rustls::ClientConfig>>,
    who: Who,
    id: String,
    disk: String,
    alias: String,
    domain: String,
    volume: String,
    host: String,
    /// `https://ENGINE` as the client reached it, for `proxy_url`.
    engine_origin: Option<String>,
}

impl Watch {
    pub fn new(ctx: &Ctx<'_>, id: &str, notes: &Value) -> Option<Watch> {
        let text = |k: &str| str_at(notes, k).unwrap_or_default().to_string();
        let engine_origin = ctx
            .headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
            })
            .map(|h| format!("https://{h}"));
        Some(Watch {
            store: ctx.engine.store.clone(),
            tls: ctx.engine.pki.engine_client_config().ok(),
            who: Who::of(ctx),
            id: id.to_string(),
            disk: text("disk"),
            alias: text("alias"),
            domain: text("domain"),
            volume: text("volume"),
            host: text("host"),
            engine_origin,
        })
    }
}

/// Runs the transfer's task; the handle returned ends once it is past `initializing`.
pub fn start(w: Watch) -> JoinHandle<()> {
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    tasks::spawn("image transfer", run(w, ready_tx));
    tokio::spawn(async move {
        let _ = ready_rx.await;
    })
}

/// Follows again the transfers an engine restart left behind (their tickets are still on
/// the hosts); finished ones are removed once their time is up.
pub async fn resume(engine: &crate::Engine) {
    let recs = match engine
        .store
        .list(KIND, &vireo_store::Query::new(vireo_store::Filter::All))
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list image transfers to resume");
            return;
        }
    };
    for rec in recs {
        let Ok(doc) = doc_of(&rec) else { continue };
        let text = |k: &str| str_at(&doc, k).unwrap_or_default().to_string();
        let disk = text("disk.id");
        let (alias, domain) = match engine.store.get("disks", &disk).await {
            Ok(Some(d)) => {
                let dd = doc_of(&d).unwrap_or_default();
                (
                    str_at(&dd, "alias").unwrap_or_default().to_string(),
                    disks::first_domain(&dd).unwrap_or_default(),
                )
            }
            _ => (String::new(), String::new()),
        };
        if let (Some(t), Some(u)) = (
            str_at(&doc, "transfer_url").and_then(|u| u.rsplit('/').next()),
            str_at(&doc, "transfer_url"),
        ) {
            if !is_final(str_at(&doc, "phase").unwrap_or("")) {
                super::proxy::register(t, u);
            }
        }
        let w = Watch {
            store: engine.store.clone(),
            tls: engine.pki.engine_client_config().ok(),
            who: Who::system(),
            id: rec.id.clone(),
            disk,
            alias,
            domain,
            volume: text("image.id"),
            host: text("host.id"),
            engine_origin: None,
        };
        let (ready, _) = tokio::sync::oneshot::channel();
        tasks::spawn("image transfer", run(w, ready));
    }
}

struct State {
    w: Watch,
    client: Option<AgentClient>,
    ticket: Option<String>,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
}

async fn run(w: Watch, ready: tokio::sync::oneshot::Sender<()>) -> anyhow::Result<()> {
    let notify = Arc::new(Notify::new());
    wakers()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(w.id.clone(), notify.clone());
    let id = w.id.clone();
    let store = w.store.clone();
    let mut st = State {
        w,
        client: None,
        ticket: None,
        ready: Some(ready),
    };
    let r = st.follow(&notify).await;
    wakers()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
    st.ready.take();
    r?;
    tokio::time::sleep(keep()).await;
    let mut tx = store.begin().await?;
    if tx.get(KIND, &id).await?.is_some() {
        tx.delete(KIND, &id).await?;
    }
    tx.commit().await?;
    Ok(())
}

impl State {
    async fn follow(&mut self, notify: &Notify) -> anyhow::Result<()> {
        loop {
            let Some(doc) = self.load().await? else {
                return Ok(());
            };
            let phase = str_at(&doc, "phase").unwrap_or("unknown").to_string();
            if phase != "initializing" {
                self.ready.take();
            }
            match phase.as_str() {
                "initializing" => self.open(&doc).await?,
                "transferring" => self.poll(&doc).await?,
                "paused_user" | "paused_system" => self.keep_alive().await,
                "resuming" => {
                    self.keep_alive().await;
                    let e = event(
                        &self.w.who,
                        1074,
                        "normal",
                        format!(
                            "Image transfer was resumed by user ({}).",
                            self.w.who.user_name
                        ),
                        Some(&self.w.domain),
                    );
                    self.advance("resuming", "transferring", |_| {}, None, vec![e])
                        .await?;
                    continue;
                }
                "finalizing_success" => {
                    self.finalize(&doc).await?;
                    continue;
                }
                "cancelled_user" | "cancelled_system" => {
                    let direction = str_at(&doc, "direction").unwrap_or("upload");
                    let e = event(
                        &self.w.who,
                        1033,
                        "normal",
                        format!(
                            "Image {} with disk {} was cancelled.",
                            transfer_type(direction),
                            self.w.alias
                        ),
                        Some(&self.w.domain),
                    );
                    let next = if phase == "cancelled_user" {
                        "finalizing_cleanup"
                    } else {
                        "finalizing_failure"
                    };
                    self.advance(&phase, next, |_| {}, None, vec![e]).await?;
                    continue;
                }
                "finalizing_cleanup" | "finalizing_failure" => {
                    self.clean_up(&doc, &phase).await?;
                    continue;
                }
                p if is_final(p) => return Ok(()),
                _ => {}
            }
            tokio::select! {
                _ = notify.notified() => {}
                _ = tokio::time::sleep(poll_interval()) => {}
            }
        }
    }

    async fn load(&self) -> anyhow::Result<Option<Value>> {
        match self.w.store.get(KIND, &self.w.id).await? {
            Some(r) => Ok(Some(doc_of(&r).map_err(|e| anyhow::anyhow!(e.detail))?)),
            None => Ok(None),
        }
    }

    /// Moves `from` → `to` (only if the phase is still `from`), with changes to the transfer,
    /// a new disk status and events, in one transaction. False when the phase had moved on.
    async fn advance(
        &self,
        from: &str,
        to: &str,
        f: impl FnOnce(&mut Value),
        disk: Option<&(dyn Fn(&mut Value) + Sync)>,
        evs: Vec<NewEvent>,
    ) -> anyhow::Result<bool> {
        let mut tx = self.w.store.begin().await?;
        let Some(rec) = tx.get(KIND, &self.w.id).await? else {
            return Ok(false);
        };
        let mut doc = doc_of(&rec).map_err(|e| anyhow::anyhow!(e.detail))?;
        if str_at(&doc, "phase") != Some(from) {
            return Ok(false);
        }
        set(&mut doc, "phase", json!(to));
        f(&mut doc);
        index::update(&mut tx, &rec, &doc, None)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        if let Some(change) = disk {
            if let Some(d) = tx.get("disks", &self.w.disk).await? {
                let mut ddoc = doc_of(&d).map_err(|e| anyhow::anyhow!(e.detail))?;
                change(&mut ddoc);
                index::update(&mut tx, &d, &ddoc, None)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            }
        }
        for e in evs {
            tx.insert_event(&e).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn client(&mut self) -> Result<AgentClient, String> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let tls = self
            .w
            .tls
            .clone()
            .ok_or("the engine's client certificate is unusable")?;
        let (c, _) = client_of(&self.w.store, tls.clone(), &self.w.host).await?;
        // Removing a ticket waits for requests in flight and a flush; verifying reads the
        // whole image: more than the default 10 s.
        let base = c.base_url().trim_start_matches("https://");
        let hostport = base.split('/').next().unwrap_or_default();
        let (addr, port) = hostport.rsplit_once(':').ok_or("the host has no address")?;
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| "bad host port")?;
        let c = AgentClient::with_timeouts(
            addr,
            port,
            tls,
            Timeouts {
                connect: Duration::from_secs(3),
                request: Duration::from_secs(600),
            },
        )
        .map_err(|e| e.message)?;
        self.client = Some(c.clone());
        Ok(c)
    }

    /// initializing → transferring: the domain connected on the host, a ticket there.
    async fn open(&mut self, doc: &Value) -> anyhow::Result<()> {
        let direction = str_at(doc, "direction").unwrap_or("upload").to_string();
        let requested = str_at(doc, "format").unwrap_or("raw").to_string();
        let disk_format = match self.w.store.get("disks", &self.w.disk).await? {
            Some(r) => str_at(
                &doc_of(&r).map_err(|e| anyhow::anyhow!(e.detail))?,
                "format",
            )
            .unwrap_or("cow")
            .to_string(),
            None => "cow".into(),
        };
        // A raw volume's bytes are its guest data: one path for both formats.
        let format = if disk_format == "raw" {
            "raw".to_string()
        } else {
            requested
        };
        let ticket = uuid::Uuid::new_v4().to_string();
        let spec = TicketSpec {
            id: ticket.clone(),
            domain_id: self.w.domain.clone(),
            disk_id: self.w.disk.clone(),
            volume_id: self.w.volume.clone(),
            ops: vec![if direction == "download" {
                "read"
            } else {
                "write"
            }
            .to_string()],
            format,
            timeout_s: TICKET_LIFETIME_S,
            inactivity_timeout_s: int_at(doc, "inactivity_timeout")
                .unwrap_or(DEFAULT_INACTIVITY_S)
                .max(0) as u64,
        };
        let opened = async {
            let c = self.client().await?;
            storage::ensure_connected(&self.w.store, &c, &self.w.domain)
                .await
                .map_err(|e| e.message)?;
            c.add_ticket(&spec).await.map_err(|e| e.message)?;
            Ok::<_, String>(c)
        }
        .await;
        match opened {
            Ok(c) => {
                let url = format!("{}/images/{ticket}", c.origin());
                let proxy = self
                    .w
                    .engine_origin
                    .as_ref()
                    .map(|o| format!("{o}{}/{ticket}", super::proxy::PREFIX));
                self.ticket = Some(ticket.clone());
                super::proxy::register(&ticket, &url);
                let moved = self
                    .advance(
                        "initializing",
                        "transferring",
                        |d| {
                            set(d, "transfer_url", json!(url));
                            if let Some(p) = proxy {
                                set(d, "proxy_url", json!(p));
                            }
                        },
                        None,
                        vec![],
                    )
                    .await?;
                if !moved {
                    // Cancelled meanwhile: the ticket goes at the next step.
                }
            }
            Err(why) => {
                tracing::warn!(transfer = %self.w.id, error = %why, "cannot open the transfer on the host");
                let e = event(
                    &Who::system(),
                    1069,
                    "error",
                    format!("Transfer was stopped by system. Reason: failed to add host image ticket ({why})."),
                    Some(&self.w.domain),
                );
                // oVirt: an upload pauses (the client may cancel), a download is cancelled.
                let next = if direction == "download" {
                    "cancelled_system"
                } else {
                    "paused_system"
                };
                self.advance("initializing", next, |_| {}, None, vec![e])
                    .await?;
            }
        }
        self.ready.take();
        Ok(())
    }

    /// The ticket id, known in memory or from the stored `transfer_url` (after a restart).
    fn ticket_of(&mut self, doc: &Value) -> Option<String> {
        if self.ticket.is_none() {
            self.ticket = str_at(doc, "transfer_url")
                .and_then(|u| u.rsplit('/').next())
                .map(str::to_string);
        }
        self.ticket.clone()
    }

    async fn keep_alive(&mut self) {
        let Some(t) = self.ticket.clone() else { return };
        if let Ok(c) = self.client().await {
            if let Ok(s) = c.ticket_status(&t).await {
                if s.expires_in_s < TICKET_LIFETIME_S / 2 {
                    let _ = c.extend_ticket(&t, TICKET_LIFETIME_S).await;
                }
            }
        }
    }

    /// While transferring: progress from the host, ticket renewal, inactivity.
    async fn poll(&mut self, doc: &Value) -> anyhow::Result<()> {
        let Some(ticket) = self.ticket_of(doc) else {
            return Ok(());
        };
        let c = match self.client().await {
            Ok(c) => c,
            Err(_) => return Ok(()),
        };
        let status = match c.ticket_status(&ticket).await {
            Ok(s) => s,
            Err(e) if e.code == ErrorCode::Unreachable => return Ok(()),
            Err(e) => {
                let ev = event(
                    &Who::system(),
                    1065,
                    "error",
                    format!("Transfer was stopped by system. Reason: missing transfer image ticket ({}).", e.message),
                    Some(&self.w.domain),
                );
                let upload = str_at(doc, "direction") != Some("download");
                let next = if upload {
                    "paused_system"
                } else {
                    "cancelled_system"
                };
                self.advance("transferring", next, |_| {}, None, vec![ev])
                    .await?;
                return Ok(());
            }
        };
        if status.expires_in_s < TICKET_LIFETIME_S / 2 {
            let _ = c.extend_ticket(&ticket, TICKET_LIFETIME_S).await;
        }
        let inactivity = int_at(doc, "inactivity_timeout").unwrap_or(DEFAULT_INACTIVITY_S);
        if inactivity > 0 && !status.active && status.idle_time_s as i64 > inactivity {
            let upload = str_at(doc, "direction") != Some("download");
            let (next, code, text) = match (str_at(doc, "timeout_policy").unwrap_or("legacy"), upload) {
                ("pause", _) => ("paused_system", 1077, "The transfer was paused by the system according to the timeout policy. Reason: client inactivity timeout."),
                ("cancel", _) => ("cancelled_system", 1076, "The transfer was canceled by the system according to the timeout policy. Reason: client inactivity timeout."),
                (_, true) => ("paused_system", 1071, "Upload was paused by system. Reason: timeout due to transfer inactivity."),
                (_, false) => ("cancelled_system", 1072, "Download was canceled by system. Reason: timeout due to transfer inactivity."),
            };
            let sev = if code == 1077 { "warning" } else { "error" };
            let ev = event(
                &Who::system(),
                code,
                sev,
                text.to_string(),
                Some(&self.w.domain),
            );
            self.advance("transferring", next, |_| {}, None, vec![ev])
                .await?;
            return Ok(());
        }
        let changed = int_at(doc, "transferred") != Some(status.transferred as i64)
            || bool_at(doc, "active") != Some(status.active);
        if changed {
            let mut tx = self.w.store.begin().await?;
            if let Some(rec) = tx.get(KIND, &self.w.id).await? {
                let mut d = doc_of(&rec).map_err(|e| anyhow::anyhow!(e.detail))?;
                if str_at(&d, "phase") == Some("transferring") {
                    set(&mut d, "transferred", s(status.transferred));
                    set(&mut d, "active", s(status.active));
                    index::update(&mut tx, &rec, &d, None)
                        .await
                        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                }
            }
            tx.commit().await?;
        }
        Ok(())
    }

    /// Closes the ticket; `Ok(last transferred)`, or why it could not.
    async fn close_ticket(&mut self, doc: &Value) -> Result<Option<u64>, String> {
        let Some(ticket) = self.ticket_of(doc) else {
            return Ok(None);
        };
        super::proxy::unregister(&ticket);
        let c = self.client().await?;
        match c.remove_ticket(&ticket).await {
            Ok(s) => Ok(Some(s.transferred)),
            // Already gone (a host restart): nothing is open any more.
            Err(e) if e.code == ErrorCode::NoSuchVolume => Ok(None),
            Err(e) => Err(e.message),
        }
    }

    /// finalizing_success → finished_success, or finalizing_failure when the image is bad.
    async fn finalize(&mut self, doc: &Value) -> anyhow::Result<()> {
        let direction = str_at(doc, "direction").unwrap_or("upload").to_string();
        let transferred = match self.close_ticket(doc).await {
            Ok(t) => t,
            Err(why) => {
                // oVirt retries while the session cannot be stopped; so do we, at the next poll.
                tracing::warn!(transfer = %self.w.id, error = %why, "cannot close the ticket yet");
                tokio::time::sleep(poll_interval()).await;
                return Ok(());
            }
        };
        let success = |w: &Watch| {
            event(
                &w.who,
                1032,
                "normal",
                format!(
                    "Image {} with disk {} succeeded.",
                    transfer_type(&direction),
                    w.alias
                ),
                Some(&w.domain),
            )
        };
        let set_transferred = move |d: &mut Value| {
            if let Some(t) = transferred {
                set(d, "transferred", s(t));
            }
            set(d, "active", s(false));
        };
        if direction == "download" {
            let ev = success(&self.w);
            self.advance(
                "finalizing_success",
                "finished_success",
                set_transferred,
                Some(&|d: &mut Value| set(d, "status", json!("ok"))),
                vec![ev],
            )
            .await?;
            return Ok(());
        }
        let (disk_size, disk_format) = match self.w.store.get("disks", &self.w.disk).await? {
            Some(r) => {
                let d = doc_of(&r).map_err(|e| anyhow::anyhow!(e.detail))?;
                (
                    int_at(&d, "provisioned_size").unwrap_or(0).max(0) as u64,
                    str_at(&d, "format").unwrap_or("cow").to_string(),
                )
            }
            None => (0, "cow".into()),
        };
        let verified = match self.client().await {
            Ok(c) => c
                .verify_volume(&VerifyRequest {
                    domain_id: self.w.domain.clone(),
                    disk_id: self.w.disk.clone(),
                    volume_id: self.w.volume.clone(),
                    format: disk_format,
                    max_virtual_size: disk_size,
                })
                .await
                .map_err(|e| e.message),
            Err(e) => Err(e),
        };
        match verified {
            Ok(v) if v.ok => {
                let ev = success(&self.w);
                let actual = v.actual_size;
                self.advance(
                    "finalizing_success",
                    "finished_success",
                    set_transferred,
                    Some(&move |d: &mut Value| {
                        set(d, "status", json!("ok"));
                        set(d, "actual_size", s(actual));
                        set(d, "total_size", s(actual));
                    }),
                    vec![ev],
                )
                .await?;
                if let Ok(c) = self.client().await {
                    storage::refresh_space(&self.w.store, &c, &self.w.domain).await;
                }
            }
            other => {
                let why = match other {
                    Ok(v) => v.detail.unwrap_or_else(|| "the image is not valid".into()),
                    Err(e) => e,
                };
                tracing::warn!(transfer = %self.w.id, error = %why, "uploaded image failed verification");
                let ev = event(
                    &self.w.who,
                    1034,
                    "error",
                    format!(
                        "Image Upload with disk {} failed. Verification: {why}",
                        self.w.alias
                    ),
                    Some(&self.w.domain),
                );
                self.advance(
                    "finalizing_success",
                    "finalizing_failure",
                    set_transferred,
                    Some(&|d: &mut Value| set(d, "status", json!("illegal"))),
                    vec![ev],
                )
                .await?;
            }
        }
        Ok(())
    }

    /// finalizing_cleanup / finalizing_failure → finished_failure: the ticket closed; an upload's
    /// disk illegal and then removed (oVirt's rollback), a download's disk `ok` again.
    async fn clean_up(&mut self, doc: &Value, phase: &str) -> anyhow::Result<()> {
        if let Err(why) = self.close_ticket(doc).await {
            tracing::warn!(transfer = %self.w.id, error = %why, "cannot close the ticket yet");
            tokio::time::sleep(poll_interval()).await;
            return Ok(());
        }
        let direction = str_at(doc, "direction").unwrap_or("upload").to_string();
        let upload = direction != "download";
        let mut evs = Vec::new();
        if phase == "finalizing_cleanup" {
            evs.push(event(
                &self.w.who,
                1053,
                "normal",
                format!(
                    "Image {} with disk {} was cleaned up.",
                    transfer_type(&direction),
                    self.w.alias
                ),
                Some(&self.w.domain),
            ));
        } else {
            evs.push(event(
                &self.w.who,
                1034,
                "error",
                format!(
                    "Image {} with disk {} failed.",
                    transfer_type(&direction),
                    self.w.alias
                ),
                Some(&self.w.domain),
            ));
        }
        let status = if upload { "illegal" } else { "ok" };
        let moved = self
            .advance(
                phase,
                "finished_failure",
                |d| set(d, "active", s(false)),
                Some(&|d: &mut Value| set(d, "status", json!(status))),
                evs,
            )
            .await?;
        if moved && upload {
            self.remove_disk().await?;
        }
        Ok(())
    }

    /// oVirt removes the disk of a failed or cancelled upload.
    async fn remove_disk(&mut self) -> anyhow::Result<()> {
        let mut tx = self.w.store.begin().await?;
        let Some(rec) = tx.get("disks", &self.w.disk).await? else {
            return Ok(());
        };
        let mut notes = json!({});
        disks::delete_disk(&mut tx, &rec, &mut notes)
            .await
            .map_err(|e| anyhow::anyhow!(e.detail))?;
        let e = event(
            &self.w.who,
            2014,
            "normal",
            format!("Disk {} was successfully removed.", self.w.alias),
            Some(&self.w.domain),
        );
        tx.insert_event(&e).await?;
        tx.commit().await?;
        if let Ok(c) = self.client().await {
            let op = VolumeOperation::Delete {
                domain_id: self.w.domain.clone(),
                disk_id: self.w.disk.clone(),
                volume_id: self.w.volume.clone(),
            };
            use vireo_agent_proto::Hypervisor;
            if let Err(e) = c.volume_operation(&op).await {
                tracing::warn!(disk = %self.w.disk, error = %e.message, "the volume of a removed disk stays on the storage");
            }
            storage::refresh_space(&self.w.store, &c, &self.w.domain).await;
        }
        Ok(())
    }
}
