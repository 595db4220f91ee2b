//! Work that goes on after a request has been answered (creating a volume, activating a
//! storage domain): a task per piece of work, which reports through the store (status of
//! the object, its job, events) and never through the request.

use std::future::Future;
use tokio::task::JoinHandle;

/// Runs `work`; a failure is logged here, its effects on the inventory are the work's own.
pub fn spawn<F>(what: &'static str, work: F) -> JoinHandle<()>
where
    F: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = work.await {
            tracing::warn!(work = what, error = %e, "background work failed");
        }
    })
}

/// One handle for several pieces of work.
pub fn join_all(handles: Vec<JoinHandle<()>>) -> Option<JoinHandle<()>> {
    if handles.is_empty() {
        return None;
    }
    Some(tokio::spawn(async move {
        for h in handles {
            let _ = h.await;
        }
    }))
}
