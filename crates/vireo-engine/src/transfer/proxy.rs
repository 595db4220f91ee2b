//! The engine's image proxy (`proxy_url`): `/ovirt-imageio/images/{ticket}` on the engine's
//! own listener, forwarded as it comes (streamed both ways) to the data path of the host that
//! holds the ticket. Clients use it when they cannot reach the host.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

pub const PREFIX: &str = "/ovirt-imageio/images";

fn routes() -> &'static RwLock<HashMap<String, String>> {
    static R: OnceLock<RwLock<HashMap<String, String>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// Tickets the proxy forwards: ticket id → the host's data URL.
pub fn register(ticket: &str, url: &str) {
    routes()
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(ticket.to_string(), url.to_string());
}

pub fn unregister(ticket: &str) {
    routes()
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .remove(ticket);
}

#[derive(Clone)]
struct Proxy {
    tls: Option<Arc<rustls::ClientConfig>>,
}

pub fn router(engine: &crate::Engine) -> Router {
    let state = Proxy {
        tls: engine.pki.engine_client_config().ok().map(|c| {
            let mut c = (*c).clone();
            c.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(c)
        }),
    };
    Router::new()
        .route("/ovirt-imageio/images/{ticket}", any(forward))
        .route("/ovirt-imageio/images/{ticket}/extents", any(forward))
        .with_state(state)
}

fn text(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    (status, format!("{msg}\n")).into_response()
}

async fn forward(State(p): State<Proxy>, Path(ticket): Path<String>, req: Request) -> Response {
    let target = routes()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&ticket)
        .cloned();
    let Some(target) = target else {
        return text(
            StatusCode::FORBIDDEN,
            format!("You are not allowed to access this resource: No such ticket {ticket}"),
        );
    };
    let Some(tls) = p.tls else {
        return text(
            StatusCode::BAD_GATEWAY,
            "the engine's TLS client is unusable",
        );
    };
    let Ok(url) = target.parse::<Uri>() else {
        return text(StatusCode::BAD_GATEWAY, "bad host URL");
    };
    let (Some(host), Some(port)) = (url.host(), url.port_u16()) else {
        return text(StatusCode::BAD_GATEWAY, "bad host URL");
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    // The rest of the path (`/extents`) and the query go along.
    let rest = req
        .uri()
        .path()
        .strip_prefix(PREFIX)
        .and_then(|r| r.strip_prefix('/'))
        .and_then(|r| r.strip_prefix(ticket.as_str()))
        .unwrap_or("")
        .to_string();
    let path_q = match req.uri().query() {
        Some(q) => format!("{}{rest}?{q}", url.path()),
        None => format!("{}{rest}", url.path()),
    };
    let connected = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        let _ = tcp.set_nodelay(true);
        let name =
            rustls::pki_types::ServerName::try_from(host.clone()).map_err(std::io::Error::other)?;
        tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
    };
    let stream = match tokio::time::timeout(Duration::from_secs(10), connected).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return text(
                StatusCode::BAD_GATEWAY,
                format!("cannot reach the host: {e}"),
            )
        }
        Err(_) => return text(StatusCode::GATEWAY_TIMEOUT, "the host did not answer"),
    };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    {
        Ok(x) => x,
        Err(e) => return text(StatusCode::BAD_GATEWAY, format!("host: {e}")),
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let (parts, body) = req.into_parts();
    let mut out = hyper::Request::builder().method(parts.method).uri(path_q);
    for (k, v) in parts.headers.iter() {
        if k == header::HOST || k == header::CONNECTION || k == header::AUTHORIZATION {
            continue;
        }
        out = out.header(k, v);
    }
    if let Ok(h) = HeaderValue::from_str(&format!("{host}:{port}")) {
        out = out.header(header::HOST, h);
    }
    let out = match out.body(body) {
        Ok(r) => r,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    match sender.send_request(out).await {
        Ok(resp) => resp.map(Body::new),
        Err(e) => text(StatusCode::BAD_GATEWAY, format!("host: {e}")),
    }
}
