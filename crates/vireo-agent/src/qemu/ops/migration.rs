//! Memory state moving out: live migration to another agent, and suspend to a file.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use vireo_agent_proto::{AgentResult, ErrorCode, MigrationProgress, VmState};

use super::*;
use crate::qemu::qmp::Qmp;
use crate::qemu::vm::{self, VmHandle};

pub(super) async fn set_migration_speed(qmp: &Qmp) -> AgentResult<()> {
    qmp.execute(
        "migrate-set-parameters",
        json!({ "max-bandwidth": MIGRATION_BANDWIDTH }),
    )
    .await
    .map_err(qmp_err("migrate-set-parameters"))?;
    Ok(())
}

pub(super) async fn suspend(h: &Arc<VmHandle>, path: &str) -> AgentResult<()> {
    if !matches!(h.state(), VmState::Up | VmState::Paused) {
        return Err(wrong_state(h, "suspend"));
    }
    let qmp = h.qmp()?;
    if let Some(parent) = Path::new(path).parent() {
        std::fs::create_dir_all(parent).map_err(|e| {
            err(
                ErrorCode::Failed,
                format!("cannot create {}: {e}", parent.display()),
            )
        })?;
    }
    h.set_state(VmState::SavingState);
    // Paused first: the saved state is then final and the copy is a single pass.
    qmp.execute("stop", Value::Null)
        .await
        .map_err(qmp_err("stop"))?;
    set_migration_speed(&qmp).await?;
    let uri = format!("exec:cat > {}", vm::shell_quote(path));
    if let Err(e) = qmp.execute("migrate", json!({ "uri": uri })).await {
        let _ = qmp.execute("cont", Value::Null).await;
        h.set_state(VmState::Up);
        return Err(qmp_err("migrate")(e));
    }
    follow_migration(h.clone(), qmp, path.to_string(), true);
    Ok(())
}

pub(super) async fn migrate(h: &Arc<VmHandle>, address: &str, port: u16) -> AgentResult<()> {
    if h.state() != VmState::Up && h.state() != VmState::Paused {
        return Err(wrong_state(h, "migrate"));
    }
    let qmp = h.qmp()?;
    set_migration_speed(&qmp).await?;
    let host = if address.contains(':') && !address.starts_with('[') {
        format!("[{address}]")
    } else {
        address.to_string()
    };
    let destination = format!("{host}:{port}");
    qmp.execute("migrate", json!({ "uri": format!("tcp:{destination}") }))
        .await
        .map_err(qmp_err("migrate"))?;
    h.update(|i| {
        i.rec.state = VmState::MigratingFrom;
        i.rec.migration = Some(MigrationProgress {
            percent: 0,
            destination: destination.clone(),
        });
    });
    follow_migration(h.clone(), qmp, destination, false);
    Ok(())
}

/// Polls `query-migrate` until the outgoing migration (or save to file) ends; then quits the
/// source, or puts the VM back to running when it failed.
pub(super) fn follow_migration(
    h: Arc<VmHandle>,
    qmp: Arc<Qmp>,
    destination: String,
    to_file: bool,
) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let info = match qmp.query_migrate().await {
                Ok(i) => i,
                Err(_) => return, // QEMU is gone; the monitor reports it
            };
            match info.status.as_deref() {
                Some("completed") => {
                    h.update(|i| {
                        i.requested = Some(if to_file { "suspended" } else { "migrated" })
                    });
                    let _ = qmp.execute("quit", Value::Null).await;
                    return;
                }
                Some("failed" | "cancelled") => {
                    let why = info.error_desc.unwrap_or_else(|| {
                        format!("migration {}", info.status.unwrap_or_default())
                    });
                    tracing::warn!(vm = h.id, why, "migration did not complete");
                    if let Ok(st) = qmp.query_status().await {
                        if !st.running && !to_file {
                            let _ = qmp.execute("cont", Value::Null).await;
                        }
                    }
                    if to_file {
                        let _ = qmp.execute("cont", Value::Null).await;
                    }
                    h.update(|i| {
                        i.rec.state = VmState::Up;
                        i.rec.migration = None;
                        i.rec.exit_message = Some(why);
                    });
                    return;
                }
                _ => {
                    if let Some(ram) = info.ram {
                        let done = ram.total.saturating_sub(ram.remaining) * 100;
                        let pct = done.checked_div(ram.total).unwrap_or(0).min(99) as u32;
                        h.update(|i| {
                            if i.rec.state == VmState::MigratingFrom {
                                i.rec.migration = Some(MigrationProgress {
                                    percent: pct,
                                    destination: destination.clone(),
                                });
                            }
                        });
                    }
                }
            }
        }
    });
}
