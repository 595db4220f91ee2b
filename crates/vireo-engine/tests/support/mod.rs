//! The harness of the inventory tests: an engine in-process on 127.0.0.1:0 with a temporary
//! data folder, driven over HTTPS with the engine's CA as clients drive it (JSON, Basic
//! authentication), and simulated host agents in-process when a test needs hosts.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vireo_agent::{AgentConfig, RunningAgent};
use vireo_engine::hosts::MonitorConfig;
use vireo_engine::{ServeConfig, ServeOptions};
use vireo_store::Store;

pub const PASSWORD: &str = "inventory-test-secret";

pub struct Env {
    pub engine: Engine,
    pub dir: tempfile::TempDir,
    agents: Vec<RunningAgent>,
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

impl Reply {
    pub fn id(&self) -> String {
        self.body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {self}"))
            .to_string()
    }
    /// The fault's detail (or the whole body).
    pub fn detail(&self) -> String {
        self.body
            .get("detail")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| self.body.to_string())
    }
}

/// An engine on its own thread and runtime, as it would run in its own process, listening on
/// 127.0.0.1:0, with an HTTPS client that trusts its CA. The monitor polls fast for tests.
pub struct Engine {
    pub base: String,
    pub http: reqwest::Client,
    pub data: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Engine {
    pub async fn boot(data: PathBuf, password: &str) -> Engine {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let monitor = MonitorConfig {
            interval: Duration::from_millis(200),
            call_timeout: Duration::from_millis(1000),
            grace_polls: 3,
            pool_interval: Duration::from_millis(300),
            ..MonitorConfig::default()
        };
        let config = ServeConfig {
            data_dir: data.clone(),
            listen: "127.0.0.1:0".into(),
            database: None,
            tls_names: vec![],
            admin_password: Some(password.into()),
        };
        let task = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let options = ServeOptions {
                    listener: Some(tokio::net::TcpListener::from_std(listener)?),
                    shutdown: Some(Box::pin(async move {
                        let _ = stop_rx.await;
                    })),
                    monitor: Some(monitor),
                    ready: Some(ready_tx),
                };
                vireo_engine::serve_with(config, options).await
            })
        });
        let addr = ready_rx.await.expect("the engine starts");
        let ca = std::fs::read_to_string(data.join("pki/ca.pem")).unwrap();
        let tls = vireo_pki::client_config_trusting(&ca).unwrap();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .build()
            .unwrap();
        Engine {
            base: format!("https://{addr}/ovirt-engine/api"),
            http,
            data,
            stop: Some(stop_tx),
            task: Some(task),
        }
    }

    /// Stops the engine (SIGTERM's path: drain, close the store) and waits for its thread.
    pub async fn halt(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::task::spawn_blocking(move || t.join().unwrap().unwrap())
                .await
                .unwrap();
        }
    }
}

impl Env {
    pub async fn start() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::boot(dir.path().join("engine"), PASSWORD).await;
        Env {
            engine,
            dir,
            agents: Vec::new(),
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self
            .engine
            .http
            .request(method, format!("{}{path}", self.engine.base))
            .basic_auth("admin@internal", Some(PASSWORD))
            .header("Accept", "application/json")
            .header("Version", "4");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("the engine answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(reqwest::Method::GET, path, None, &[]).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(reqwest::Method::POST, path, Some(body), &[])
            .await
    }
    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.call(reqwest::Method::PUT, path, Some(body), &[]).await
    }
    pub async fn delete(&self, path: &str) -> Reply {
        self.call(reqwest::Method::DELETE, path, None, &[]).await
    }

    /// A list, as the items of its one key (`{"vm": [...]}`; `{}` is empty).
    pub async fn list(&self, path: &str) -> Vec<Value> {
        let r = self.get(path).await;
        assert_eq!(r.status, 200, "GET {path}: {r}");
        r.body
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    pub async fn names(&self, path: &str) -> Vec<String> {
        self.list(path)
            .await
            .iter()
            .filter_map(|v| v["name"].as_str().map(str::to_string))
            .collect()
    }

    /// Polls `path` until `pred` holds, as SDK users do.
    pub async fn wait(&self, what: &str, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.get(path).await;
            if r.status == 200 && pred(&r.body) {
                return r.body;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}: last answer {r}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The engine's store, opened beside it (SQLite allows a second connection).
    pub async fn store(&self) -> Store {
        Store::open(&format!(
            "sqlite://{}",
            self.engine.data.join("vireo.db").display()
        ))
        .await
        .unwrap()
    }

    pub async fn add_vm(&self, name: &str) -> String {
        let r = self.post("/vms", json!({"name": name, "cluster": {"name": "Default"}, "template": {"name": "Blank"}})).await;
        assert_eq!(r.status, 201, "{r}");
        r.id()
    }

    /// A simulated host in the Default cluster, up.
    pub async fn add_host(&mut self, name: &str) -> String {
        let n = self.agents.len();
        let dir = self.dir.path().join(format!("agent{n}"));
        let secret = format!("enroll-{n}-{}", uuid::Uuid::new_v4().simple());
        let config = AgentConfig::simulated(&dir, "127.0.0.1:0", &secret);
        let running = vireo_agent::start(&config, vireo_agent::simulate::SimHost::open)
            .await
            .expect("the agent starts");
        let port = running.hosts()[0].addr.port();
        self.agents.push(running);
        let r = self
            .post("/hosts", json!({"name": name, "address": "127.0.0.1", "port": port.to_string(), "root_password": secret, "cluster": {"name": "Default"}}))
            .await;
        assert_eq!(r.status, 201, "{r}");
        let id = r.id();
        self.wait("host up", &format!("/hosts/{id}"), |h| h["status"] == "up")
            .await;
        id
    }

    /// A data domain (NFS, simulated) attached to the Default data center and active.
    pub async fn data_domain(&self, name: &str, host: &str) -> String {
        let r = self
            .post(
                "/storagedomains",
                json!({"name": name, "type": "data", "host": {"name": host},
                       "storage": {"type": "nfs", "address": "nfs.example.com", "path": format!("/exports/{name}")}}),
            )
            .await;
        assert_eq!(r.status, 201, "{r}");
        let id = r.id();
        let dc = self.default_dc().await;
        let a = self
            .post(
                &format!("/datacenters/{dc}/storagedomains"),
                json!({"id": id}),
            )
            .await;
        assert_eq!(a.status, 201, "{a}");
        self.wait(
            "domain active",
            &format!("/datacenters/{dc}/storagedomains/{id}"),
            |d| d["status"] == "active",
        )
        .await;
        id
    }

    pub async fn default_dc(&self) -> String {
        self.list("/datacenters?search=name%3DDefault").await[0]["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn stop(mut self) {
        for a in self.agents.drain(..) {
            a.stop().await;
        }
        self.engine.halt().await;
    }
}

/// `"512"` or `512` → 512.
pub fn int(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not an integer: {v}"))
}

pub fn items<'a>(v: &'a Value, wrapper: &str, item: &str) -> Vec<&'a Value> {
    v.get(wrapper)
        .and_then(|w| w.get(item))
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

pub fn path_of(dir: &Path) -> String {
    dir.display().to_string()
}
