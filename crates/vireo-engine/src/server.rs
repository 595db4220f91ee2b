//! `vireo serve`: first-start setup, then HTTPS until SIGTERM, draining in-flight requests.

use crate::auth::Auth;
use crate::state::Engine;
use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tower::ServiceExt;

pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub listen: String,
    pub database: Option<String>,
    pub tls_names: Vec<String>,
    pub admin_password: Option<String>,
}

/// What embedding callers (tests, benchmarks) may choose beyond the command line.
#[derive(Default)]
pub struct ServeOptions {
    /// Serve on this listener instead of binding `config.listen` (tests bind port 0).
    pub listener: Option<TcpListener>,
    /// Stop when this completes instead of on SIGTERM or Ctrl-C.
    pub shutdown: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
    /// Host monitoring; `MonitorConfig::from_env()` when unset.
    pub monitor: Option<crate::hosts::MonitorConfig>,
    /// Told the address once the engine serves.
    pub ready: Option<tokio::sync::oneshot::Sender<std::net::SocketAddr>>,
}

pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    serve_with(config, ServeOptions::default()).await
}

pub async fn serve_with(config: ServeConfig, options: ServeOptions) -> anyhow::Result<()> {
    let started = Instant::now();
    let monitor = options
        .monitor
        .unwrap_or_else(crate::hosts::MonitorConfig::from_env);
    let engine = Arc::new(start(&config, monitor).await?);
    let listener = match options.listener {
        Some(l) => l,
        None => TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?,
    };
    let tls = tokio_rustls::TlsAcceptor::from(engine.pki.server_tls_config()?);
    let app = crate::api::router(engine.clone());
    // Hosts are watched from the start: agents enrolled before a restart are polled again.
    engine
        .hosts
        .start()
        .await
        .context("cannot start host monitoring")?;
    // Image transfers in flight when the engine stopped are followed again.
    crate::transfer::watch::resume(&engine).await;
    let local = listener.local_addr()?;
    tracing::info!(listen = %local, data_dir = %config.data_dir.display(), database = engine.store.backend_name(),
        startup_ms = started.elapsed().as_millis() as u64, "vireo engine serving");
    if let Some(ready) = options.ready {
        let _ = ready.send(local);
    }

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = match options.shutdown {
        Some(f) => f,
        None => Box::pin(shutdown_signal()),
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => { tracing::warn!(error = %e, "accept failed"); continue; }
                };
                // Without it, the last segment of a large answer can wait for the client's
                // delayed ACK (Nagle): +40 ms on about one list in ten.
                let _ = tcp.set_nodelay(true);
                let tls = tls.clone();
                let app = app.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(Duration::from_secs(10), tls.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => { tracing::debug!(%peer, error = %e, "TLS handshake failed"); return; }
                        Err(_) => { tracing::debug!(%peer, "TLS handshake timed out"); return; }
                    };
                    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        app.clone().oneshot(req.map(axum::body::Body::new))
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            _ = shutdown.as_mut() => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(15)) => tracing::warn!("requests still running after 15 s; stopping anyway"),
    }
    engine.hosts.shutdown().await;
    engine.store.close().await;
    tracing::info!("vireo engine stopped");
    Ok(())
}

async fn start(
    config: &ServeConfig,
    monitor: crate::hosts::MonitorConfig,
) -> anyhow::Result<Engine> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let url = match &config.database {
        Some(u) => u.clone(),
        None => format!("sqlite://{}", config.data_dir.join("vireo.db").display()),
    };
    let store = vireo_store::Store::open(&url)
        .await
        .with_context(|| format!("cannot open the database {url}"))?;
    let pki = Arc::new(vireo_pki::Pki::load_or_create(
        &config.data_dir.join("pki"),
        &config.tls_names,
    )?);
    let instance_id = crate::bootstrap::ensure(&store).await?;
    let auth = Arc::new(Auth::new(store.clone()));
    if let Some(generated) = auth
        .bootstrap_admin(config.admin_password.as_deref(), &config.data_dir)
        .await?
    {
        // Printed once, on the first start; it is also in DATA_DIR/admin-password.
        println!("admin@internal password: {generated}");
    }
    let hosts = crate::hosts::Hosts::new(store.clone(), pki.clone(), monitor);
    Ok(Engine {
        store,
        auth,
        pki,
        instance_id,
        hosts,
    })
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
