//! The engine's side of transfers on a host, under the protocol's prefix (mutual TLS):
//! add, look at, extend and remove tickets, and verify a volume after an upload.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use vireo_agent_proto::transfer::paths;
use vireo_agent_proto::{
    AgentError, AgentResult, ErrorCode, ExtendTicket, Hypervisor, TicketSpec, VerifyRequest,
    VerifyResult, VolumeOperation,
};

use crate::qemu::storage::VolumeMeta;
use crate::server::reply::{self, parse};
use crate::server::HostState;

type St<H> = State<Arc<HostState<H>>>;

pub fn routes<H: Hypervisor + 'static>() -> Router<Arc<HostState<H>>> {
    Router::new()
        .route(paths::TICKETS, post(add::<H>))
        .route(
            "/transfer/tickets/{id}",
            get(status::<H>).delete(remove::<H>),
        )
        .route("/transfer/tickets/{id}/extend", post(extend::<H>))
        .route(paths::VERIFY, post(verify::<H>))
}

fn meta_path(volume: &Path) -> PathBuf {
    let mut s = volume.as_os_str().to_owned();
    s.push(".meta");
    s.into()
}

/// The volume's path and its format as its metadata records it (`qcow2` or `raw`): never
/// what probing the bytes says, which a client's upload controls.
async fn volume<H: Hypervisor>(
    driver: &H,
    domain_id: &str,
    disk_id: &str,
    volume_id: &str,
) -> AgentResult<(PathBuf, String, Option<String>)> {
    let info = driver
        .volume_operation(&VolumeOperation::Info {
            domain_id: domain_id.into(),
            disk_id: disk_id.into(),
            volume_id: volume_id.into(),
        })
        .await?;
    let path = PathBuf::from(&info.path);
    let recorded = std::fs::read_to_string(meta_path(&path))
        .ok()
        .and_then(|t| VolumeMeta::parse(&t))
        .map(|m| m.format);
    let format = match recorded.as_deref() {
        Some("COW") => "qcow2",
        Some("RAW") => "raw",
        // Without metadata only a raw volume is safe to open.
        _ if info.format == "raw" => "raw",
        _ => {
            return Err(AgentError::new(
                ErrorCode::Unsupported,
                format!("volume {volume_id} has no metadata recording its format"),
            ))
        }
    };
    Ok((path, format.to_string(), info.parent))
}

async fn add<H: Hypervisor + 'static>(State(state): St<H>, body: Bytes) -> Response {
    let spec: TicketSpec = match parse(&body) {
        Ok(s) => s,
        Err(e) => return reply::error(&e),
    };
    let r = async {
        let (path, format, _) = volume(
            &state.driver,
            &spec.domain_id,
            &spec.disk_id,
            &spec.volume_id,
        )
        .await?;
        state.transfers.add(spec, &path, &format).await
    }
    .await;
    reply::result(r)
}

async fn status<H: Hypervisor + 'static>(
    State(state): St<H>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    reply::result(state.transfers.status(&id))
}

async fn extend<H: Hypervisor + 'static>(
    State(state): St<H>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Response {
    match parse::<ExtendTicket>(&body) {
        Ok(e) => reply::result(state.transfers.extend(&id, e.timeout_s)),
        Err(e) => reply::error(&e),
    }
}

async fn remove<H: Hypervisor + 'static>(
    State(state): St<H>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    reply::result(state.transfers.remove(&id).await)
}

async fn verify<H: Hypervisor + 'static>(State(state): St<H>, body: Bytes) -> Response {
    let req: VerifyRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return reply::error(&e),
    };
    let r = async {
        let (path, format, parent) =
            volume(&state.driver, &req.domain_id, &req.disk_id, &req.volume_id).await?;
        Ok::<_, AgentError>(check(&path, &format, parent.is_some(), req.max_virtual_size).await)
    }
    .await;
    reply::result(r)
}

/// `qemu-img info` (with the recorded format, never probed) and, for qcow2, `qemu-img check`.
pub async fn check(path: &Path, format: &str, has_parent: bool, max: u64) -> VerifyResult {
    let bad = |detail: String, v: u64, a: u64| VerifyResult {
        ok: false,
        detail: Some(detail),
        virtual_size: v,
        actual_size: a,
    };
    let p = path.to_string_lossy().into_owned();
    let out = tokio::process::Command::new("qemu-img")
        .args(["info", "--output=json", "-f", format, &p])
        .kill_on_drop(true)
        .output()
        .await;
    let info: serde_json::Value = match out {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).unwrap_or_default(),
        Ok(o) => {
            return bad(
                format!(
                    "qemu-img info: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                0,
                0,
            )
        }
        Err(e) => return bad(format!("cannot run qemu-img: {e}"), 0, 0),
    };
    let virtual_size = info["virtual-size"].as_u64().unwrap_or(0);
    let actual_size = info["actual-size"].as_u64().unwrap_or(0);
    if format == "qcow2" {
        if info.get("backing-filename").is_some() && !has_parent {
            return bad(
                "the image has a backing file; an uploaded image must be self-contained".into(),
                virtual_size,
                actual_size,
            );
        }
        if info.pointer("/format-specific/data/data-file").is_some() {
            return bad(
                "the image has an external data file".into(),
                virtual_size,
                actual_size,
            );
        }
        let out = tokio::process::Command::new("qemu-img")
            .args(["check", "--output=json", "-f", "qcow2", &p])
            .kill_on_drop(true)
            .output()
            .await;
        match out {
            // 0: clean; 3: leaked clusters only, which waste space but lose nothing.
            Ok(o) if matches!(o.status.code(), Some(0) | Some(3)) => {}
            Ok(o) => {
                let text = String::from_utf8_lossy(&o.stdout);
                let err = String::from_utf8_lossy(&o.stderr);
                return bad(
                    format!(
                        "qemu-img check failed ({}): {} {}",
                        o.status,
                        err.trim(),
                        text.trim()
                    ),
                    virtual_size,
                    actual_size,
                );
            }
            Err(e) => {
                return bad(
                    format!("cannot run qemu-img: {e}"),
                    virtual_size,
                    actual_size,
                )
            }
        }
    }
    if virtual_size > max {
        return bad(
            format!("the image's virtual size {virtual_size} is larger than the disk's {max}"),
            virtual_size,
            actual_size,
        );
    }
    VerifyResult {
        ok: true,
        detail: None,
        virtual_size,
        actual_size,
    }
}
