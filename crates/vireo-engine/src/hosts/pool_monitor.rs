//! The VM pool monitor (oVirt's `VmPoolMonitor`): every `pool_interval` (oVirt: 5 minutes;
//! `VIREO_POOL_MONITOR_INTERVAL_MS`), each pool with `prestarted_vms` gets that many of its
//! VMs running, by starting VMs of the pool that are down. A VM that cannot start now (no
//! host fits) is tried again at the next round.

use super::docs;
use super::{vm_runtime, Hosts};
use crate::api::fault::ApiResult;
use std::sync::Arc;
use vireo_store::{Filter, Query};

pub async fn run(h: Arc<Hosts>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(h.config.pool_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: a round after one interval, as oVirt's first run.
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if h.stopping() {
            return;
        }
        if let Err(e) = once(&h).await {
            tracing::debug!(error = %e.detail, "pool monitor round failed");
        }
    }
}

/// One round: the prestarted VMs each pool lacks are started.
pub async fn once(h: &Arc<Hosts>) -> ApiResult<usize> {
    let mut started = 0;
    for pool in h.store.list("vmpools", &Query::new(Filter::All)).await? {
        let doc = docs::parse(&pool);
        let want = docs::int(&doc, &["prestarted_vms"]).unwrap_or(0);
        if want <= 0 {
            continue;
        }
        let vms = h
            .store
            .list(
                "vms",
                &Query::new(Filter::eq("vm_pool.id", pool.id.as_str())),
            )
            .await?;
        let running = |id: &str, status: &str| {
            status != "down" || h.runtime.lock().unwrap().vms.contains_key(id)
        };
        let mut lacking = want
            - vms
                .iter()
                .filter(|v| {
                    let d = docs::parse(v);
                    running(&v.id, docs::text(&d, &["status"]).unwrap_or("down"))
                })
                .count() as i64;
        for v in &vms {
            if lacking <= 0 {
                break;
            }
            let d = docs::parse(v);
            if running(&v.id, docs::text(&d, &["status"]).unwrap_or("down")) {
                continue;
            }
            match vm_runtime::start_down(h, &v.id, "SYSTEM").await {
                Ok(()) => {
                    lacking -= 1;
                    started += 1;
                }
                Err(e) => {
                    tracing::info!(pool = %pool.id, vm = %v.id, why = %e.detail, "a prestarted VM of a pool cannot start now");
                    // No host fits one, none fits the next either.
                    break;
                }
            }
        }
    }
    Ok(started)
}
