//! Graphics consoles of VMs: `GET /vms/{id}/graphicsconsoles` (with `current=true`, the
//! address and port the running VM listens on, from its host's report), the one-time
//! password (`…/graphicsconsoles/{id}/ticket`, `/vms/{id}/ticket`) and the remote-viewer
//! file (`…/remoteviewerconnectionfile`).

use super::actions::{self, refuse, Target};
use super::agent::bounded;
use super::docs::{self, text};
use super::events::{self, About};
use super::Hosts;
use crate::api::fault::{ApiError, ApiResult};
use crate::api::path::Node;
use crate::api::{render, Ctx};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde_json::{json, Value};
use vireo_agent_proto::{ConsoleInfo, VmOperation};
use vireo_model as m;
use vireo_model::meta::{self, MethodKind};
use vireo_model::Model;

/// oVirt's console ids are the hex of the protocol's name (`766e63` is VNC).
pub fn console_id(protocol: &str) -> String {
    protocol.bytes().map(|b| format!("{b:02x}")).collect()
}

/// `(vm id, console id)` for `/vms/{id}/graphicsconsoles[/{cid}]`.
fn target(ctx: &Ctx<'_>) -> Option<(String, Option<String>)> {
    let n = &ctx.resolved.nodes;
    match (n.first(), n.get(1), n.get(2), n.get(3)) {
        (
            Some(Node::Locate { segment: a, .. }),
            Some(Node::Item { id, .. }),
            Some(Node::Locate { segment: c, .. }),
            rest,
        ) if a == "vms" && c == "graphicsconsoles" && n.len() <= 4 => {
            let cid = match rest {
                Some(Node::Item { id, .. }) => Some(id.clone()),
                _ => None,
            };
            Some((id.clone(), cid))
        }
        _ => None,
    }
}

/// The VM's consoles: its console records, or the one its display type implies.
async fn configured(h: &Hosts, vm_id: &str, vm: &Value) -> ApiResult<Vec<(String, String)>> {
    let recs = h
        .store
        .list(
            "vms/graphicsconsoles",
            &vireo_store::Query::new(vireo_store::Filter::ParentIs(vm_id.to_string())),
        )
        .await?;
    let mut out: Vec<(String, String)> = recs
        .iter()
        .filter_map(|r| {
            let d = docs::parse(r);
            let p = text(&d, &["protocol"])?.to_string();
            Some((
                text(&d, &["id"])
                    .map(str::to_string)
                    .unwrap_or_else(|| console_id(&p)),
                p,
            ))
        })
        .collect();
    if out.is_empty() {
        let p = text(vm, &["display", "type"]).unwrap_or("vnc").to_string();
        out.push((console_id(&p), p));
    }
    Ok(out)
}

fn running_console(h: &Hosts, vm_id: &str, protocol: &str) -> Option<(String, ConsoleInfo)> {
    let rt = h.runtime.lock().unwrap();
    let t = rt.vms.get(vm_id)?;
    let c = t.consoles.iter().find(|c| c.protocol == protocol)?.clone();
    Some((t.host.clone(), c))
}

pub async fn dispatch(ctx: &Ctx<'_>, op: MethodKind) -> ApiResult<Option<Response>> {
    let Some((vm_id, cid)) = target(ctx) else {
        return Ok(None);
    };
    match (op, &cid) {
        (MethodKind::List, None) | (MethodKind::Get, Some(_)) => {}
        (MethodKind::Action, Some(c)) => {
            return match ctx.resolved.action.as_deref() {
                Some("ticket") => ticket(ctx, &vm_id, Some(c)).await.map(Some),
                Some("remoteviewerconnectionfile") => viewer_file(ctx, &vm_id, c).await.map(Some),
                _ => Ok(None),
            };
        }
        _ => return Ok(None),
    }
    let h = &ctx.engine.hosts;
    let rec = h
        .store
        .get("vms", &vm_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no VM with id '{vm_id}'")))?;
    let vm = docs::parse(&rec);
    let current = ctx.params.flag("current")?.unwrap_or(false);
    let list_href = format!("/ovirt-engine/api/vms/{vm_id}/graphicsconsoles");
    let item_svc = match &cid {
        Some(_) => Some(ctx.resolved.service()),
        None => ctx.resolved.service().item.map(meta::service),
    };
    let mut items = Vec::new();
    for (id, protocol) in configured(h, &vm_id, &vm).await? {
        if cid.as_ref().is_some_and(|c| c != &id) {
            continue;
        }
        let mut d = json!({ "id": id, "protocol": protocol, "vm": { "id": vm_id } });
        if current {
            if let Some((_, c)) = running_console(h, &vm_id, &protocol) {
                d["address"] = c.address.clone().into();
                d["port"] = c.port.to_string().into();
                if let Some(tls) = c.tls_port {
                    d["tls_port"] = tls.to_string().into();
                }
            }
        }
        render::decorate(
            &mut d,
            m::GraphicsConsole::meta(),
            &format!("{list_href}/{id}"),
            item_svc,
        );
        items.push(
            vireo_model::from_json_value::<m::GraphicsConsole>(&d)
                .map_err(|e| ApiError::internal(e.to_string()))?,
        );
    }
    if cid.is_some() {
        let one = items
            .pop()
            .ok_or_else(|| ApiError::not_found("no such graphics console"))?;
        return Ok(Some(ctx.ok(StatusCode::OK, &one)));
    }
    let mut res = (StatusCode::OK, ctx.format.render_list(&items)).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, ctx.format.content_type());
    Ok(Some(res))
}

fn password() -> String {
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut r = rand::thread_rng();
    (0..12)
        .map(|_| CHARS[r.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// Sets a one-time password on the running VM's console; `(password, ttl, console)`.
async fn set_ticket(
    ctx: &Ctx<'_>,
    vm_id: &str,
    console: Option<&str>,
    want: Option<&m::Ticket>,
) -> ApiResult<(String, i64, ConsoleInfo)> {
    let h = ctx.engine.hosts.clone();
    let rec = h
        .store
        .get("vms", vm_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no VM with id '{vm_id}'")))?;
    let vm = docs::parse(&rec);
    let consoles = configured(&h, vm_id, &vm).await?;
    let protocol = match console {
        Some(c) => consoles
            .iter()
            .find(|(id, _)| id == c)
            .map(|(_, p)| p.clone())
            .ok_or_else(|| ApiError::not_found("no such graphics console"))?,
        None => consoles
            .first()
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| "vnc".into()),
    };
    let Some((host, info)) = running_console(&h, vm_id, &protocol) else {
        return Err(refuse(
            "set",
            "Virtual Machine Ticket",
            "VM is not running.",
        ));
    };
    let entry = h
        .entry(&host)
        .ok_or_else(|| refuse("set", "Virtual Machine Ticket", "VM is not running."))?;
    let value = want
        .and_then(|t| t.value.clone())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(password);
    // oVirt's default ticket lifetime: two minutes.
    let ttl = want
        .and_then(|t| t.expiry)
        .filter(|e| *e > 0)
        .unwrap_or(120);
    let op = VmOperation::SetTicket {
        protocol: protocol.clone(),
        password: value.clone(),
        ttl_s: ttl as u32,
    };
    bounded(
        h.config.action_timeout,
        entry.agent.vm_operation(vm_id, &op),
    )
    .await
    .map_err(|e| {
        refuse(
            "set",
            "Virtual Machine Ticket",
            &format!("The host failed the request: {}", e.message),
        )
    })?;
    let text = format!(
        "User {} initiated console session for VM {}",
        ctx.principal.user_name,
        rec.name.clone().unwrap_or_default()
    );
    let (vid, uid, corr) = (
        vm_id.to_string(),
        ctx.principal.user_id.clone(),
        ctx.params.correlation_id.clone(),
    );
    let cluster = text_of(&vm, &["cluster", "id"]);
    h.store
        .write(move |tx| {
            Box::pin(async move {
                let about = About {
                    vm_id: Some(&vid),
                    host_id: Some(&host),
                    cluster_id: Some(&cluster),
                    user_id: Some(&uid),
                    correlation_id: corr.as_deref(),
                };
                tx.insert_event(&events::event(events::VM_SET_TICKET, text, about))
                    .await
                    .map(|_| ())
            })
        })
        .await?;
    Ok((value, ttl, info))
}

fn text_of(v: &Value, path: &[&str]) -> String {
    text(v, path).unwrap_or_default().to_string()
}

async fn ticket(ctx: &Ctx<'_>, vm_id: &str, console: Option<&str>) -> ApiResult<Response> {
    let mut a = actions::parse(ctx)?;
    let (value, ttl, _) = set_ticket(ctx, vm_id, console, a.ticket.as_deref()).await?;
    a.ticket = Some(Box::new(m::Ticket {
        value: Some(value),
        expiry: Some(ttl),
        ..Default::default()
    }));
    Ok(actions::answer(ctx, a, None, Target::Vm(vm_id)))
}

/// `POST /vms/{id}/ticket`: the ticket of the VM's (first) console.
pub async fn vm_ticket(ctx: &Ctx<'_>, vm_id: &str) -> ApiResult<Response> {
    ticket(ctx, vm_id, None).await
}

/// The `.vv` file remote-viewer opens, with a fresh ticket in it.
async fn viewer_file(ctx: &Ctx<'_>, vm_id: &str, console: &str) -> ApiResult<Response> {
    let mut a = actions::parse(ctx)?;
    let (password, ttl, info) = set_ticket(ctx, vm_id, Some(console), None).await?;
    let name = ctx
        .engine
        .store
        .get("vms", vm_id)
        .await?
        .and_then(|r| r.name)
        .unwrap_or_default();
    let mut vv = format!(
        "[virt-viewer]\ntype={}\nhost={}\nport={}\npassword={password}\n# Password is valid for {ttl} seconds.\ndelete-this-file=1\nfullscreen=0\ntitle={name}:%d - Press SHIFT+F12 to Release Cursor\ntoggle-fullscreen=shift+f11\nrelease-cursor=shift+f12\nsecure-attention=ctrl+alt+end\n",
        info.protocol, info.address, info.port
    );
    if let Some(tls) = info.tls_port {
        vv.push_str(&format!("tls-port={tls}\n"));
    }
    a.remote_viewer_connection_file = Some(vv);
    Ok(actions::answer(ctx, a, None, Target::Vm(vm_id)))
}
