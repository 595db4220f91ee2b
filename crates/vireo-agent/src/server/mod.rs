//! One host's HTTPS listener: TLS per the host's enrollment state, the protocol's routes, and
//! a graceful stop.

pub(crate) mod reply;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;
use vireo_agent_proto::Hypervisor;

use crate::enroll::Enroller;
use crate::tls::{self, Peer};

/// The engine needs one or two connections per host; the cap bounds what a misbehaving
/// client can make one of hundreds of simulated hosts hold.
const MAX_CONNECTIONS_PER_HOST: usize = 64;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stop waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything a host's requests need.
pub struct HostState<H> {
    pub index: usize,
    pub enroller: Enroller,
    pub driver: H,
    /// Image transfer tickets and their data path (`/images/…`).
    pub transfers: std::sync::Arc<crate::transfer::Tickets>,
}

/// What the TLS handshake decided about a connection, handed to every request on it.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: Peer,
    /// The enrollment generation the connection was accepted under.
    pub generation: u64,
}

/// Serves until `stop` turns true, then drains requests in flight for a few seconds.
pub async fn serve<H: Hypervisor + 'static>(
    listener: TcpListener,
    state: Arc<HostState<H>>,
    mut stop: watch::Receiver<bool>,
) {
    let app = routes::router(state.clone());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS_PER_HOST));
    let local = listener.local_addr().ok();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning on a full table.
                        tracing::warn!(host = state.index, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(host = state.index, %peer, "too many connections; refusing one");
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let (config, generation) = state.enroller.tls_config();
                let watcher = graceful.watcher();
                let app = app.clone();
                let index = state.index;
                tokio::spawn(async move {
                    let _slot = slot;
                    serve_connection(tcp, peer, config, generation, app, watcher, index).await;
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!(host = state.index, listen = ?local, "requests still running at stop; closing anyway");
        }
    }
}

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    config: Arc<rustls::ServerConfig>,
    generation: u64,
    app: axum::Router,
    watcher: hyper_util::server::graceful::Watcher,
    index: usize,
) {
    let stream = match tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        tokio_rustls::TlsAcceptor::from(config).accept(tcp),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(host = index, %peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(host = index, %peer, "TLS handshake timed out");
            return;
        }
    };
    let info = ConnInfo {
        peer: tls::classify(stream.get_ref().1.peer_certificates()),
        generation,
    };
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(info);
            app.clone().oneshot(req.map(axum::body::Body::new))
        });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(host = index, %peer, error = %e, "connection ended with an error");
    }
}
