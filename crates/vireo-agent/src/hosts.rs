//! Starting the agent's hosts: one, or with `--hosts N` many simulated ones sharing a
//! runtime, each with its own listener, identity and enrollment under `DATA_DIR/host-<i>`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use vireo_agent_proto::Hypervisor;

use crate::config::{AgentConfig, HostContext};
use crate::enroll::Enroller;
use crate::identity::Identity;
use crate::server::{self, HostState};

/// Hosts prepared at once at start: first starts generate keys and fsync files, and an
/// unbounded fan-out would only queue on the blocking pool and the disk.
const PARALLEL_STARTS: usize = 16;
/// Engine's connections plus a listener, per host: what we ask of RLIMIT_NOFILE.
const FDS_PER_HOST: u64 = 8;

/// A started agent: its hosts' addresses, and a way to stop it.
pub struct RunningAgent {
    hosts: Vec<RunningHost>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

#[derive(Debug, Clone)]
pub struct RunningHost {
    pub index: usize,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
}

impl RunningAgent {
    pub fn hosts(&self) -> &[RunningHost] {
        &self.hosts
    }

    /// Stops accepting, lets requests in flight finish (a few seconds at most), and returns
    /// when every listener is closed.
    pub async fn stop(mut self) {
        self.stop.send_replace(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// The folder of host `index` out of `count`: the data dir itself for a single host, so a
/// plain `vireo agent` keeps its files where the operator pointed it.
pub fn host_dir(data_dir: &Path, index: usize, count: usize) -> PathBuf {
    if count == 1 {
        data_dir.to_path_buf()
    } else {
        data_dir.join(format!("host-{index}"))
    }
}

/// Starts `config.hosts` hosts, each driven by what `open` makes from its context.
pub async fn start<H, F, Fut>(config: &AgentConfig, open: F) -> anyhow::Result<RunningAgent>
where
    H: Hypervisor + 'static,
    F: Fn(HostContext) -> Fut,
    Fut: Future<Output = anyhow::Result<H>>,
{
    anyhow::ensure!(config.hosts >= 1, "--hosts must be at least 1");
    raise_fd_limit(config.hosts as u64 * FDS_PER_HOST + 64);
    let base = resolve(&config.listen).await?;
    let identities = load_identities(config).await?;
    let (stop, _) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut hosts = Vec::with_capacity(config.hosts);
    for (index, identity) in identities.into_iter().enumerate() {
        let addr = host_addr(base, index)?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("host {index}: cannot listen on {addr}"))?;
        let addr = listener.local_addr()?;
        let data_dir = identity.dir().to_path_buf();
        let machine_id = identity.machine_id.clone();
        let enroller = Enroller::new(identity, &config.enroll_secret)?;
        let ctx = HostContext {
            index,
            data_dir: data_dir.clone(),
            listen: addr,
            accel: config.accel,
            machine_id,
            host_id: enroller.subscribe(),
        };
        let driver = open(ctx)
            .await
            .with_context(|| format!("host {index}: cannot open its hypervisor driver"))?;
        let enrolled = enroller.host_id();
        let enrolled = enrolled.as_deref().unwrap_or("no");
        // Hundreds of simulated hosts would flood the log: one line each only for a few.
        if config.hosts <= 8 {
            tracing::info!(host = index, listen = %addr, enrolled, "host agent serving");
        } else {
            tracing::debug!(host = index, listen = %addr, enrolled, "host agent serving");
        }
        let state = Arc::new(HostState {
            index,
            enroller,
            driver,
            transfers: crate::transfer::Tickets::new(),
        });
        tasks.spawn(server::serve(listener, state, stop.subscribe()));
        hosts.push(RunningHost {
            index,
            addr,
            data_dir,
        });
    }
    Ok(RunningAgent { hosts, stop, tasks })
}

async fn resolve(listen: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(addr) = listen.parse() {
        return Ok(addr);
    }
    tokio::net::lookup_host(listen)
        .await
        .with_context(|| format!("--listen {listen:?}: expected ADDR:PORT"))?
        .next()
        .with_context(|| format!("--listen {listen:?} resolves to no address"))
}

fn host_addr(base: SocketAddr, index: usize) -> anyhow::Result<SocketAddr> {
    if base.port() == 0 {
        return Ok(base);
    }
    let port = u16::try_from(base.port() as usize + index).map_err(|_| {
        anyhow::anyhow!("host {index}: port {} + {index} is past 65535", base.port())
    })?;
    Ok(SocketAddr::new(base.ip(), port))
}

async fn load_identities(config: &AgentConfig) -> anyhow::Result<Vec<Identity>> {
    let gate = Arc::new(Semaphore::new(PARALLEL_STARTS));
    let mut set = JoinSet::new();
    for index in 0..config.hosts {
        let dir = host_dir(&config.data_dir, index, config.hosts);
        let gate = gate.clone();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let identity =
                tokio::task::spawn_blocking(move || Identity::load_or_create(&dir)).await;
            (index, identity)
        });
    }
    let mut identities: Vec<Option<Identity>> = (0..config.hosts).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let (index, loaded) = joined.context("starting a host stopped")?;
        let identity = loaded
            .context("loading an identity stopped")?
            .with_context(|| format!("host {index}"))?;
        identities[index] = Some(identity);
    }
    Ok(identities.into_iter().flatten().collect())
}

/// Hundreds of hosts need more descriptors than a login shell's soft limit (often 1024):
/// raise the soft limit towards the hard one, which needs no privilege.
fn raise_fd_limit(wanted: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    if lim.rlim_cur < wanted {
        tracing::warn!(
            limit = lim.rlim_cur,
            wanted,
            "the open-file limit may be too low for this many hosts; raise it with ulimit -n"
        );
    }
}

/// `vireo agent`: starts the hosts and serves until SIGTERM or Ctrl-C.
pub async fn run(config: AgentConfig) -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot handle SIGTERM")?;
    let agent = if config.simulate {
        start(&config, crate::simulate::SimHost::open).await?
    } else {
        start(&config, crate::qemu::Qemu::open).await?
    };
    let first = agent
        .hosts()
        .first()
        .map(|h| h.addr.to_string())
        .unwrap_or_default();
    let last = agent
        .hosts()
        .last()
        .map(|h| h.addr.to_string())
        .unwrap_or_default();
    tracing::info!(hosts = agent.hosts().len(), %first, %last, simulate = config.simulate, data_dir = %config.data_dir.display(), "vireo agent started");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("stopping: draining requests in flight");
    agent.stop().await;
    tracing::info!("vireo agent stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_take_consecutive_ports_and_their_own_folders() {
        let base: SocketAddr = "127.0.0.1:54321".parse().unwrap();
        assert_eq!(host_addr(base, 0).unwrap().port(), 54321);
        assert_eq!(host_addr(base, 499).unwrap().port(), 54820);
        assert!(
            host_addr("127.0.0.1:65535".parse().unwrap(), 1).is_err(),
            "no wrap-around"
        );
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        assert_eq!(
            host_addr(any, 7).unwrap().port(),
            0,
            "port 0: an ephemeral port each"
        );
        assert_eq!(host_dir(Path::new("/d"), 0, 1), Path::new("/d"));
        assert_eq!(host_dir(Path::new("/d"), 3, 10), Path::new("/d/host-3"));
    }
}
