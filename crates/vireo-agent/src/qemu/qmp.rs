//! A small typed QMP client over QEMU's unix socket.
//!
//! QMP is newline-delimited JSON: a greeting, then `qmp_capabilities`, then commands answered
//! by `return` or `error` (matched here by `id`), with asynchronous `event`s interleaved. One
//! reader task owns the read half; callers only ever wait on their own answer, so a slow
//! command never blocks events or other commands.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::{broadcast, oneshot, watch};

#[derive(Debug, Clone, PartialEq)]
pub enum QmpError {
    /// The socket failed or closed (QEMU exited).
    Closed(String),
    /// QEMU answered with an error.
    Command {
        class: String,
        desc: String,
    },
    Timeout(String),
    /// The answer did not have the expected shape.
    Decode(String),
}

impl std::fmt::Display for QmpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QmpError::Closed(m) => write!(f, "QMP connection closed: {m}"),
            QmpError::Command { class, desc } => write!(f, "{desc} ({class})"),
            QmpError::Timeout(c) => write!(f, "QMP command {c} timed out"),
            QmpError::Decode(m) => write!(f, "unexpected QMP answer: {m}"),
        }
    }
}

impl std::error::Error for QmpError {}

/// An asynchronous QMP event (`SHUTDOWN`, `STOP`, `RESUME`, `POWERDOWN`, `DEVICE_DELETED`, …).
#[derive(Debug, Clone)]
pub struct Event {
    pub name: String,
    pub data: Value,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, QmpError>>>>>;

pub struct Qmp {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Pending,
    next_id: AtomicU64,
    events: broadcast::Sender<Event>,
    closed: watch::Receiver<bool>,
    /// QEMU's version from the greeting, e.g. "7.2.22".
    pub version: String,
}

const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

impl Qmp {
    /// Connects, reads the greeting and leaves capabilities negotiation mode.
    pub async fn connect(path: &Path) -> Result<Qmp, QmpError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| QmpError::Closed(format!("{}: {e}", path.display())))?;
        let (read, write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let greeting = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .map_err(|_| QmpError::Timeout("greeting".into()))?
            .map_err(|e| QmpError::Closed(e.to_string()))?
            .ok_or_else(|| QmpError::Closed("no greeting".into()))?;
        let greeting: Value =
            serde_json::from_str(&greeting).map_err(|e| QmpError::Decode(e.to_string()))?;
        let v = &greeting["QMP"]["version"]["qemu"];
        let version = format!("{}.{}.{}", v["major"], v["minor"], v["micro"]);

        let pending: Pending = Arc::default();
        let (events, _) = broadcast::channel(256);
        let (closed_tx, closed) = watch::channel(false);
        let reader_pending = pending.clone();
        let reader_events = events.clone();
        tokio::spawn(async move {
            let why = loop {
                match lines.next_line().await {
                    Ok(Some(line)) => dispatch(&line, &reader_pending, &reader_events),
                    Ok(None) => break "end of stream".to_string(),
                    Err(e) => break e.to_string(),
                }
            };
            // Everyone still waiting learns that QEMU is gone, then watchers do.
            for (_, tx) in reader_pending.lock().unwrap().drain() {
                let _ = tx.send(Err(QmpError::Closed(why.clone())));
            }
            let _ = closed_tx.send(true);
        });

        let qmp = Qmp {
            writer: tokio::sync::Mutex::new(write),
            pending,
            next_id: AtomicU64::new(1),
            events,
            closed,
            version,
        };
        qmp.execute("qmp_capabilities", Value::Null).await?;
        Ok(qmp)
    }

    /// Events from now on. Subscribe before issuing the command whose event you wait for.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Resolves once the connection is gone (QEMU exited or closed the socket).
    pub async fn closed(&self) {
        let mut rx = self.closed.clone();
        let _ = rx.wait_for(|c| *c).await;
    }

    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Runs a command; `args` is `Value::Null` for none.
    pub async fn execute(&self, command: &str, args: Value) -> Result<Value, QmpError> {
        self.execute_timeout(command, args, COMMAND_TIMEOUT).await
    }

    pub async fn execute_timeout(
        &self,
        command: &str,
        args: Value,
        timeout: Duration,
    ) -> Result<Value, QmpError> {
        if self.is_closed() {
            return Err(QmpError::Closed("QEMU is gone".into()));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut msg = json!({ "execute": command, "id": id });
        if !args.is_null() {
            msg["arguments"] = args;
        }
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        let mut line = msg.to_string();
        line.push('\n');
        let written = {
            let mut w = self.writer.lock().await;
            w.write_all(line.as_bytes()).await
        };
        if let Err(e) = written {
            self.pending.lock().unwrap().remove(&id);
            return Err(QmpError::Closed(e.to_string()));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(QmpError::Closed("reader ended".into())),
            Err(_) => {
                self.pending.lock().unwrap().remove(&id);
                Err(QmpError::Timeout(command.into()))
            }
        }
    }

    /// Runs a command and decodes its `return` value.
    pub async fn call<T: DeserializeOwned>(
        &self,
        command: &str,
        args: Value,
    ) -> Result<T, QmpError> {
        let v = self.execute(command, args).await?;
        serde_json::from_value(v).map_err(|e| QmpError::Decode(format!("{command}: {e}")))
    }

    pub async fn query_status(&self) -> Result<StatusInfo, QmpError> {
        self.call("query-status", Value::Null).await
    }

    pub async fn query_migrate(&self) -> Result<MigrationInfo, QmpError> {
        self.call("query-migrate", Value::Null).await
    }

    pub async fn query_vnc(&self) -> Result<VncInfo, QmpError> {
        self.call("query-vnc", Value::Null).await
    }

    pub async fn query_blockstats(&self) -> Result<Vec<BlockStats>, QmpError> {
        self.call("query-blockstats", Value::Null).await
    }

    pub async fn query_named_block_nodes(&self) -> Result<Vec<BlockNode>, QmpError> {
        self.call("query-named-block-nodes", json!({ "flat": true }))
            .await
    }

    /// Waits for the first event for which `pick` returns `Some`, within `timeout`.
    pub async fn wait_event<T>(
        rx: &mut broadcast::Receiver<Event>,
        timeout: Duration,
        mut pick: impl FnMut(&Event) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => return None,
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                Ok(Ok(ev)) => {
                    if let Some(t) = pick(&ev) {
                        return Some(t);
                    }
                }
            }
        }
    }
}

fn dispatch(line: &str, pending: &Pending, events: &broadcast::Sender<Event>) {
    let Ok(msg) = serde_json::from_str::<Value>(line) else {
        tracing::warn!(line, "undecodable QMP line");
        return;
    };
    if let Some(name) = msg.get("event").and_then(Value::as_str) {
        let _ = events.send(Event {
            name: name.to_string(),
            data: msg.get("data").cloned().unwrap_or(Value::Null),
        });
        return;
    }
    let Some(id) = msg.get("id").and_then(Value::as_u64) else {
        return;
    };
    let Some(tx) = pending.lock().unwrap().remove(&id) else {
        return;
    };
    let result = if let Some(r) = msg.get("return") {
        Ok(r.clone())
    } else {
        let e = &msg["error"];
        Err(QmpError::Command {
            class: e["class"].as_str().unwrap_or("GenericError").to_string(),
            desc: e["desc"].as_str().unwrap_or("unknown error").to_string(),
        })
    };
    let _ = tx.send(result);
}

#[derive(Debug, Clone, Deserialize)]
pub struct StatusInfo {
    pub running: bool,
    /// `running`, `paused`, `inmigrate`, `postmigrate`, `shutdown`, `prelaunch`, …
    pub status: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct MigrationInfo {
    /// `none`, `setup`, `active`, `completed`, `failed`, `cancelling`, `cancelled`, …
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub ram: Option<MigrationRam>,
    #[serde(rename = "total-time", default)]
    pub total_time: Option<u64>,
    #[serde(rename = "error-desc", default)]
    pub error_desc: Option<String>,
    /// Where an incoming migration listens (with the port QEMU picked for `:0`).
    #[serde(rename = "socket-address", default)]
    pub socket_address: Vec<SocketAddress>,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct MigrationRam {
    pub transferred: u64,
    pub remaining: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SocketAddress {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VncInfo {
    pub enabled: bool,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BlockStats {
    #[serde(default)]
    pub qdev: Option<String>,
    #[serde(rename = "node-name", default)]
    pub node_name: Option<String>,
    pub stats: BlockStatsCounters,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BlockStatsCounters {
    pub rd_bytes: u64,
    pub wr_bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BlockNode {
    #[serde(rename = "node-name")]
    pub node_name: String,
    pub file: String,
    pub drv: String,
    #[serde(rename = "backing_file", default)]
    pub backing_file: Option<String>,
}
