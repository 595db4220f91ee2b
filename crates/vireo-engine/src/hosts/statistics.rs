//! `/hosts/{id}/statistics` and `/vms/{id}/statistics`: served from the monitor's memory.
//! Statistics change on every poll, so they are never written to the store (oVirt, too,
//! keeps them apart from configuration rows).

use super::docs;
use super::Hosts;
use crate::api::fault::{ApiError, ApiResult};
use crate::api::path::Node;
use crate::api::Ctx;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use vireo_model as m;
use vireo_model::meta::MethodKind;

/// `(collection, owner id, statistic id)` when the path is `…/{owner}/statistics[/{id}]`.
fn target(ctx: &Ctx<'_>) -> Option<(String, String, Option<String>)> {
    let n = &ctx.resolved.nodes;
    let seg = |i: usize| match n.get(i) {
        Some(Node::Locate { segment, .. }) => Some(segment.as_str()),
        _ => None,
    };
    let id = |i: usize| match n.get(i) {
        Some(Node::Item { id, .. }) => Some(id.clone()),
        _ => None,
    };
    let owner = seg(0)?;
    if !matches!(owner, "hosts" | "vms") || seg(2) != Some("statistics") || n.len() > 4 {
        return None;
    }
    Some((owner.to_string(), id(1)?, id(3)))
}

#[derive(Clone, Copy)]
enum Unit {
    Bytes,
    Percent,
    Seconds,
    None,
}

fn stat(
    owner: &str,
    owner_id: &str,
    name: &str,
    description: &str,
    unit: Unit,
    value: f64,
    integer: bool,
) -> m::Statistic {
    let id = docs::derived_id(&[owner_id, name]);
    let mut s = m::Statistic {
        id: Some(id.clone()),
        name: Some(name.into()),
        description: Some(description.into()),
        kind: Some(if name.starts_with("boot") || name.ends_with(".time") {
            m::StatisticKind::Counter
        } else {
            m::StatisticKind::Gauge
        }),
        r#type: Some(if integer {
            m::ValueType::Integer
        } else {
            m::ValueType::Decimal
        }),
        unit: Some(match unit {
            Unit::Bytes => m::StatisticUnit::Bytes,
            Unit::Percent => m::StatisticUnit::Percent,
            Unit::Seconds => m::StatisticUnit::Seconds,
            Unit::None => m::StatisticUnit::None,
        }),
        values: Some(vec![m::Value {
            datum: Some(if integer { value.round() } else { value }),
            ..Default::default()
        }]),
        href: Some(format!(
            "/ovirt-engine/api/{owner}/{owner_id}/statistics/{id}"
        )),
        ..Default::default()
    };
    if owner == "hosts" {
        s.host = Some(Box::new(m::Host {
            id: Some(owner_id.into()),
            href: Some(format!("/ovirt-engine/api/hosts/{owner_id}")),
            ..Default::default()
        }));
    } else {
        s.vm = Some(Box::new(m::Vm {
            id: Some(owner_id.into()),
            href: Some(format!("/ovirt-engine/api/vms/{owner_id}")),
            ..Default::default()
        }));
    }
    s
}

/// oVirt's host statistics, from the last statistics the host reported.
pub fn host_statistics(h: &Hosts, id: &str, memory_total: i64) -> Vec<m::Statistic> {
    let v = h.entry(id).map(|e| e.view());
    let s = v.as_ref().and_then(|v| v.stats.clone());
    let g = |f: &dyn Fn(&vireo_agent_proto::HostStats) -> f64| s.as_ref().map(f).unwrap_or(0.0);
    let total = s
        .as_ref()
        .map(|s| s.memory_total as f64)
        .unwrap_or(memory_total as f64);
    let st = |n, d, u, val, i| stat("hosts", id, n, d, u, val, i);
    vec![
        st("memory.total", "Total memory", Unit::Bytes, total, true),
        st(
            "memory.used",
            "Used memory",
            Unit::Bytes,
            g(&|s| s.memory_used as f64),
            true,
        ),
        st(
            "memory.free",
            "Free memory",
            Unit::Bytes,
            s.as_ref().map(|s| s.memory_free as f64).unwrap_or(total),
            true,
        ),
        st("memory.shared", "Shared memory", Unit::Bytes, 0.0, true),
        st("memory.buffers", "I/O buffers", Unit::Bytes, 0.0, true),
        st("memory.cached", "OS caches", Unit::Bytes, 0.0, true),
        st(
            "swap.total",
            "Total swap",
            Unit::Bytes,
            g(&|s| s.swap_total as f64),
            true,
        ),
        st(
            "swap.free",
            "Free swap",
            Unit::Bytes,
            g(&|s| s.swap_total.saturating_sub(s.swap_used) as f64),
            true,
        ),
        st(
            "swap.used",
            "Used swap",
            Unit::Bytes,
            g(&|s| s.swap_used as f64),
            true,
        ),
        st("swap.cached", "Swap cached", Unit::Bytes, 0.0, true),
        st(
            "ksm.cpu.current",
            "KSM CPU usage",
            Unit::Percent,
            0.0,
            false,
        ),
        st(
            "cpu.current.user",
            "User CPU usage",
            Unit::Percent,
            g(&|s| s.cpu_user),
            false,
        ),
        st(
            "cpu.current.system",
            "System CPU usage",
            Unit::Percent,
            g(&|s| s.cpu_system),
            false,
        ),
        st(
            "cpu.current.idle",
            "Idle CPU usage",
            Unit::Percent,
            s.as_ref().map(|s| s.cpu_idle).unwrap_or(100.0),
            false,
        ),
        st(
            "cpu.load.avg.5m",
            "CPU 5 minute load average",
            Unit::None,
            g(&|s| s.load_avg_5m),
            false,
        ),
        st(
            "boot.time",
            "Boot time of the machine",
            Unit::Seconds,
            g(&|s| s.boot_time_s as f64),
            true,
        ),
    ]
}

/// oVirt's VM statistics, from what its host last reported.
pub fn vm_statistics(h: &Hosts, id: &str, memory: i64, start_ms: Option<i64>) -> Vec<m::Statistic> {
    let t = h.runtime.lock().unwrap().vms.get(id).cloned();
    let used = t
        .as_ref()
        .map(|t| t.stats.memory_used as f64)
        .unwrap_or(0.0);
    let cpu = t.as_ref().map(|t| t.stats.cpu_percent).unwrap_or(0.0);
    let elapsed = match (&t, start_ms) {
        (Some(_), Some(s)) => ((docs::now_ms() - s) / 1000).max(0) as f64,
        _ => 0.0,
    };
    let progress = t
        .as_ref()
        .and_then(|t| t.migration.as_ref())
        .map(|m| m.progress as f64)
        .unwrap_or(0.0);
    let st = |n, d, u, val, i| stat("vms", id, n, d, u, val, i);
    vec![
        st(
            "memory.installed",
            "Total memory configured",
            Unit::Bytes,
            memory as f64,
            true,
        ),
        st(
            "memory.used",
            "Memory used (agent)",
            Unit::Bytes,
            used,
            true,
        ),
        st(
            "memory.free",
            "Memory free (agent)",
            Unit::Bytes,
            (memory as f64 - used).max(0.0),
            true,
        ),
        st(
            "memory.buffered",
            "Memory buffered (agent)",
            Unit::Bytes,
            0.0,
            true,
        ),
        st(
            "memory.cached",
            "Memory cached (agent)",
            Unit::Bytes,
            0.0,
            true,
        ),
        st(
            "cpu.current.guest",
            "CPU used by guest",
            Unit::Percent,
            cpu,
            false,
        ),
        st(
            "cpu.current.hypervisor",
            "CPU overhead",
            Unit::Percent,
            0.0,
            false,
        ),
        st(
            "cpu.current.total",
            "Total CPU used",
            Unit::Percent,
            cpu,
            false,
        ),
        st(
            "migration.progress",
            "Migration Progress",
            Unit::Percent,
            progress,
            true,
        ),
        st(
            "elapsed.time",
            "Elapsed VM runtime",
            Unit::Seconds,
            elapsed,
            true,
        ),
    ]
}

pub async fn dispatch(ctx: &Ctx<'_>, op: MethodKind) -> ApiResult<Option<Response>> {
    let Some((owner, owner_id, stat_id)) = target(ctx) else {
        return Ok(None);
    };
    if !matches!(op, MethodKind::List | MethodKind::Get) {
        return Ok(None);
    }
    let h = &ctx.engine.hosts;
    let rec = h.store.get(&owner, &owner_id).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "no object with id '{owner_id}' in /ovirt-engine/api/{owner}"
        ))
    })?;
    let doc = docs::parse(&rec);
    let all = if owner == "hosts" {
        host_statistics(h, &owner_id, docs::int(&doc, &["memory"]).unwrap_or(0))
    } else {
        vm_statistics(
            h,
            &owner_id,
            docs::int(&doc, &["memory"]).unwrap_or(0),
            docs::int(&doc, &["start_time"]),
        )
    };
    match stat_id {
        Some(sid) => {
            let s = all
                .into_iter()
                .find(|s| s.id.as_deref() == Some(sid.as_str()))
                .ok_or_else(|| ApiError::not_found(format!("no statistic with id '{sid}'")))?;
            Ok(Some(ctx.ok(StatusCode::OK, &s)))
        }
        None => {
            let mut res = (StatusCode::OK, ctx.format.render_list(&all)).into_response();
            res.headers_mut()
                .insert(header::CONTENT_TYPE, ctx.format.content_type());
            Ok(Some(res))
        }
    }
}
