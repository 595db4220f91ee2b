//! Hosts and VMs end to end: an engine in-process on 127.0.0.1:0 with a temporary data
//! folder, simulated agents in-process (`vireo_agent::simulate`), and the REST API over HTTPS
//! with the engine's CA, as a client sees it. Monitoring runs every 200 ms here (3 s in
//! production) so that the tests wait for seconds, not minutes.

mod support;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::Engine;
use vireo_agent::{AgentConfig, RunningAgent};
use vireo_store::{EventQuery, Store};

const PASSWORD: &str = "hosts-test-secret";

struct Env {
    engine: Engine,
    dir: tempfile::TempDir,
}

impl Env {
    async fn start() -> Env {
        Env::boot(tempfile::tempdir().unwrap()).await
    }

    /// Stops the engine and starts a new one on the same data folder.
    async fn restart(mut self) -> Env {
        self.halt().await;
        let Env { dir, .. } = self;
        Env::boot(dir).await
    }

    async fn boot(dir: tempfile::TempDir) -> Env {
        let engine = Engine::boot(dir.path().join("engine"), PASSWORD).await;
        Env { engine, dir }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .engine
            .http
            .request(method, format!("{}{path}", self.engine.base))
            .basic_auth("admin@internal", Some(PASSWORD))
            .header("Accept", "application/json")
            .header("Version", "4");
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("the engine answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// Polls `path` until `pred` holds for its JSON, as SDK users do.
    async fn wait(&self, what: &str, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, v) = self.get(path).await;
            if status == 200 && pred(&v) {
                return v;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}: last answer {status} {v}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn add_host(&self, name: &str, agent: &Agent) -> String {
        let (status, h) = self
            .post(
                "/hosts",
                json!({"name": name, "address": "127.0.0.1", "port": agent.port.to_string(),
                       "root_password": agent.secret, "cluster": {"name": "Default"}}),
            )
            .await;
        assert_eq!(status, 201, "{h}");
        assert_eq!(h["status"], "installing");
        assert!(
            h.get("root_password").is_none(),
            "the secret is never shown"
        );
        h["id"].as_str().unwrap().to_string()
    }

    async fn host_up(&self, id: &str) -> Value {
        self.wait("host up", &format!("/hosts/{id}"), |h| h["status"] == "up")
            .await
    }

    async fn add_vm(&self, name: &str, memory: u64) -> String {
        let (status, v) = self
            .post(
                "/vms",
                json!({"name": name, "cluster": {"name": "Default"}, "template": {"name": "Blank"},
                       "memory": memory.to_string(), "status": "down",
                       "os": {"boot": {"devices": {"device": ["hd"]}}}}),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    /// The audit log, read from the engine's store.
    async fn events(&self) -> Vec<(i64, String)> {
        let url = format!("sqlite://{}", self.engine.data.join("vireo.db").display());
        let store = Store::open(&url).await.unwrap();
        let e = store.list_events(&EventQuery::default()).await.unwrap();
        store.close().await;
        e.into_iter().map(|e| (e.code, e.description)).collect()
    }

    async fn stop(mut self) {
        self.halt().await;
    }

    async fn halt(&mut self) {
        self.engine.halt().await;
    }
}

struct Agent {
    dir: PathBuf,
    port: u16,
    secret: String,
    running: Option<RunningAgent>,
}

impl Agent {
    async fn start(root: &Path, n: usize) -> Agent {
        let dir = root.join(format!("agent{n}"));
        let secret = format!("enroll-{n}-{}", uuid::Uuid::new_v4().simple());
        let running = run(&dir, "127.0.0.1:0", &secret).await;
        let port = running.hosts()[0].addr.port();
        Agent {
            dir,
            port,
            secret,
            running: Some(running),
        }
    }

    async fn kill(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }

    async fn restart(&mut self) {
        self.running =
            Some(run(&self.dir, &format!("127.0.0.1:{}", self.port), &self.secret).await);
    }
}

async fn run(dir: &Path, listen: &str, secret: &str) -> RunningAgent {
    let config = AgentConfig::simulated(dir, listen, secret);
    vireo_agent::start(&config, vireo_agent::simulate::SimHost::open)
        .await
        .expect("the agent starts")
}

fn items<'a>(v: &'a Value, key: &str) -> Vec<&'a Value> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_added_comes_up_with_its_capabilities_nics_and_statistics() {
    let env = Env::start().await;
    let agent = Agent::start(env.dir.path(), 0).await;
    let id = env.add_host("myhost", &agent).await;
    let h = env.host_up(&id).await;
    assert!(
        h["cpu"]["topology"]["sockets"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            >= 1
    );
    assert!(h["memory"].as_str().unwrap().parse::<i64>().unwrap() > 0);
    assert_eq!(h["type"], "rhel");
    assert!(
        h["cpu"]["type"]
            .as_str()
            .is_some_and(|t| t.contains("Intel")),
        "{h}"
    );
    assert!(h["version"]["full_version"]
        .as_str()
        .unwrap()
        .starts_with("vireo-agent"));

    let (status, nics) = env.get(&format!("/hosts/{id}/nics")).await;
    assert_eq!(status, 200);
    let nics = items(&nics, "host_nic");
    assert!(!nics.is_empty(), "a host reports its NICs");
    assert!(nics
        .iter()
        .all(|n| n["mac"]["address"].is_string() && n["status"].is_string()));

    let (_, stats) = env.get(&format!("/hosts/{id}/statistics")).await;
    let stats = items(&stats, "statistic");
    assert!(stats.iter().any(|s| s["name"] == "memory.total"));

    // The first host gives the cluster its CPU type.
    let (_, cluster) = env.get("/clusters?search=name%3DDefault").await;
    let cluster = items(&cluster, "cluster")[0].clone();
    assert_eq!(cluster["cpu"]["type"], h["cpu"]["type"]);
    assert_eq!(cluster["cpu"]["architecture"], "x86_64");

    // Same agent twice is refused; so is a name in use.
    let (status, _) = env
        .post("/hosts", json!({"name": "other", "address": "127.0.0.1", "port": agent.port.to_string(), "root_password": "x", "cluster": {"name": "Default"}}))
        .await;
    assert_eq!(status, 409);
    let (status, _) = env
        .post(
            "/hosts",
            json!({"name": "myhost", "address": "127.0.0.2", "root_password": "x", "cluster": {"name": "Default"}}),
        )
        .await;
    assert_eq!(status, 409, "the name is in use");

    let events = env.events().await;
    for code in [42, 504, 13] {
        assert!(
            events.iter().any(|(c, _)| *c == code),
            "event {code} in {events:?}"
        );
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_leaves_the_host_install_failed_with_an_event_that_says_why() {
    let env = Env::start().await;
    let mut agent = Agent::start(env.dir.path(), 0).await;
    agent.secret = "not-the-secret".into();
    let id = env.add_host("badhost", &agent).await;
    let h = env
        .wait("install_failed", &format!("/hosts/{id}"), |h| {
            h["status"] == "install_failed"
        })
        .await;
    assert!(
        h["status_detail"]
            .as_str()
            .unwrap_or_default()
            .contains("refused"),
        "{h}"
    );
    let events = env.events().await;
    let failed = events
        .iter()
        .find(|(c, _)| *c == 505)
        .expect("VDS_INSTALL_FAILED");
    assert!(
        failed.1.contains("badhost installation failed") && failed.1.contains("secret"),
        "{failed:?}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_makes_its_host_non_responsive_and_up_again_when_it_returns() {
    let env = Env::start().await;
    let mut agent = Agent::start(env.dir.path(), 0).await;
    let id = env.add_host("flaky", &agent).await;
    env.host_up(&id).await;
    agent.kill().await;
    env.wait("non_responsive", &format!("/hosts/{id}"), |h| {
        h["status"] == "non_responsive"
    })
    .await;
    agent.restart().await;
    env.host_up(&id).await;
    let events = env.events().await;
    assert!(
        events
            .iter()
            .any(|(c, d)| *c == 12 && d.contains("flaky is non responsive")),
        "{events:?}"
    );
    assert!(
        events.iter().filter(|(c, _)| *c == 13).count() >= 2,
        "up twice: {events:?}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_starts_on_a_host_and_stops() {
    let env = Env::start().await;
    let agent = Agent::start(env.dir.path(), 0).await;
    let host = env.add_host("h1", &agent).await;
    env.host_up(&host).await;
    let vm = env.add_vm("myvm", 512 << 20).await;

    let (status, a) = env
        .post(
            &format!("/vms/{vm}/start"),
            json!({"vm": {"os": {"boot": {"devices": {"device": ["cdrom"]}}}}}),
        )
        .await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["status"], "complete");
    let job = a["job"]["id"].as_str().unwrap().to_string();
    // Starting it again while it launches is refused.
    let (status, _) = env.post(&format!("/vms/{vm}/start"), json!({})).await;
    assert_eq!(status, 409);

    let v = env
        .wait("vm up", &format!("/vms/{vm}"), |v| v["status"] == "up")
        .await;
    assert_eq!(v["host"]["id"], host.as_str());
    assert_eq!(v["run_once"], "true");
    assert!(v["display"]["port"].is_string(), "console address: {v}");
    let (_, j) = env.get(&format!("/jobs/{job}")).await;
    assert_eq!(j["status"], "finished", "{j}");
    assert_eq!(j["description"], "Launching VM myvm in run-once mode");

    let (_, consoles) = env
        .get(&format!("/vms/{vm}/graphicsconsoles?current=true"))
        .await;
    let consoles = items(&consoles, "graphics_console");
    assert_eq!(consoles.len(), 1, "{consoles:?}");
    assert_eq!(consoles[0]["protocol"], "vnc");
    assert!(consoles[0]["port"].is_string());
    let cid = consoles[0]["id"].as_str().unwrap();
    let (status, t) = env
        .post(
            &format!("/vms/{vm}/graphicsconsoles/{cid}/ticket"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{t}");
    assert!(t["ticket"]["value"].as_str().is_some_and(|v| !v.is_empty()));
    let (status, f) = env
        .post(
            &format!("/vms/{vm}/graphicsconsoles/{cid}/remoteviewerconnectionfile"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{f}");
    assert!(f["remote_viewer_connection_file"]
        .as_str()
        .unwrap()
        .starts_with("[virt-viewer]\ntype=vnc"));

    let (_, h) = env.get(&format!("/hosts/{host}")).await;
    assert_eq!(h["summary"]["active"], "1", "{h}");

    let (status, a) = env
        .post(&format!("/vms/{vm}/stop"), json!({"reason": "done"}))
        .await;
    assert_eq!(status, 200, "{a}");
    let v = env
        .wait("vm down", &format!("/vms/{vm}"), |v| v["status"] == "down")
        .await;
    assert!(v.get("host").is_none(), "{v}");
    assert_eq!(v["stop_reason"], "done");
    let (status, _) = env.post(&format!("/vms/{vm}/stop"), json!({})).await;
    assert_eq!(status, 409, "stopping a down VM");

    let events = env.events().await;
    for code in [153, 32, 33, 61] {
        assert!(
            events.iter().any(|(c, _)| *c == code),
            "event {code} in {events:?}"
        );
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_no_host_can_hold_is_refused_with_409() {
    let env = Env::start().await;
    let (status, f) = {
        let vm = env.add_vm("nohost", 1 << 30).await;
        env.post(&format!("/vms/{vm}/start"), json!({})).await
    };
    assert_eq!(status, 409, "{f}");
    assert!(
        f["detail"]
            .as_str()
            .unwrap()
            .contains("There are no hosts to use"),
        "{f}"
    );

    let agent = Agent::start(env.dir.path(), 0).await;
    let host = env.add_host("small", &agent).await;
    env.host_up(&host).await;
    let vm = env.add_vm("huge", 1 << 40).await;
    let (status, f) = env.post(&format!("/vms/{vm}/start"), json!({})).await;
    assert_eq!(status, 409, "{f}");
    let detail = f["detail"].as_str().unwrap();
    assert!(
        detail.contains(
            "Cannot run VM. There is no host that satisfies current scheduling constraints"
        ),
        "{detail}"
    );
    assert!(
        detail.contains("The host small did not satisfy internal filter Memory"),
        "{detail}"
    );
    let (_, v) = env.get(&format!("/vms/{vm}")).await;
    assert_ne!(v["status"], "wait_for_launch");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_migrates_vms_away_and_hosts_are_removed_only_in_maintenance() {
    let env = Env::start().await;
    let a1 = Agent::start(env.dir.path(), 1).await;
    let a2 = Agent::start(env.dir.path(), 2).await;
    let h1 = env.add_host("host1", &a1).await;
    let h2 = env.add_host("host2", &a2).await;
    env.host_up(&h1).await;
    env.host_up(&h2).await;
    let vm = env.add_vm("mover", 1 << 30).await;
    let (status, _) = env.post(&format!("/vms/{vm}/start"), json!({})).await;
    assert_eq!(status, 200);
    let v = env
        .wait("vm up", &format!("/vms/{vm}"), |v| v["status"] == "up")
        .await;
    let from = v["host"]["id"].as_str().unwrap().to_string();
    let to = if from == h1 { h2.clone() } else { h1.clone() };

    let (status, f) = env.delete(&format!("/hosts/{from}")).await;
    assert_eq!(status, 409, "an up host cannot be removed: {f}");
    assert!(f["detail"]
        .as_str()
        .unwrap()
        .contains("switch Host to Maintenance mode first"));

    let (status, a) = env
        .post(&format!("/hosts/{from}/deactivate"), json!({}))
        .await;
    assert_eq!(status, 200, "{a}");
    env.wait("maintenance", &format!("/hosts/{from}"), |h| {
        h["status"] == "maintenance"
    })
    .await;
    let v = env
        .wait("vm on the other host", &format!("/vms/{vm}"), |v| {
            v["status"] == "up" && v["host"]["id"] == to.as_str()
        })
        .await;
    assert_eq!(v["host"]["id"], to.as_str());

    // Manual migration back is refused (the host is in maintenance), to the same host too.
    let (status, _) = env
        .post(&format!("/vms/{vm}/migrate"), json!({"host": {"id": from}}))
        .await;
    assert_eq!(status, 409);
    let (status, _) = env
        .post(&format!("/vms/{vm}/migrate"), json!({"host": {"id": to}}))
        .await;
    assert_eq!(status, 409);

    let (status, _) = env.delete(&format!("/hosts/{from}")).await;
    assert_eq!(status, 200);
    let (status, _) = env.get(&format!("/hosts/{from}")).await;
    assert_eq!(status, 404);
    let events = env.events().await;
    for code in [67, 63, 15, 620] {
        assert!(
            events.iter().any(|(c, _)| *c == code),
            "event {code} in {events:?}"
        );
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activate_brings_a_host_back_from_maintenance_and_shutdown_powers_a_vm_down() {
    let env = Env::start().await;
    let agent = Agent::start(env.dir.path(), 0).await;
    let host = env.add_host("h", &agent).await;
    env.host_up(&host).await;
    let (status, _) = env
        .post(&format!("/hosts/{host}/activate"), json!({}))
        .await;
    assert_eq!(status, 409, "already up");
    env.post(&format!("/hosts/{host}/deactivate"), json!({}))
        .await;
    env.wait("maintenance", &format!("/hosts/{host}"), |h| {
        h["status"] == "maintenance"
    })
    .await;
    let (status, _) = env
        .post(&format!("/hosts/{host}/activate"), json!({}))
        .await;
    assert_eq!(status, 200);
    env.host_up(&host).await;

    let vm = env.add_vm("guest", 256 << 20).await;
    env.post(&format!("/vms/{vm}/start"), json!({})).await;
    env.wait("vm up", &format!("/vms/{vm}"), |v| v["status"] == "up")
        .await;
    let (status, a) = env.post(&format!("/vms/{vm}/shutdown"), json!({})).await;
    assert_eq!(status, 200, "{a}");
    env.wait("vm down", &format!("/vms/{vm}"), |v| v["status"] == "down")
        .await;
    let events = env.events().await;
    assert!(
        events
            .iter()
            .any(|(c, d)| *c == 61 && d.contains("User shut down from within the guest")),
        "{events:?}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_hangs_makes_its_host_non_responsive_without_slowing_the_api() {
    let env = Env::start().await;
    let mut agent = Agent::start(env.dir.path(), 0).await;
    let id = env.add_host("hangs", &agent).await;
    env.host_up(&id).await;
    agent.kill().await;
    // Something that accepts connections on the agent's port and never answers.
    let listener = std::net::TcpListener::bind(("127.0.0.1", agent.port)).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            match conn {
                Ok(c) => held.push(c),
                Err(_) => return,
            }
        }
    });
    let t = Instant::now();
    env.wait("non_responsive", &format!("/hosts/{id}"), |h| {
        h["status"] == "non_responsive"
    })
    .await;
    assert!(t.elapsed() < Duration::from_secs(20));
    let t = Instant::now();
    let (status, _) = env.get("/hosts").await;
    assert_eq!(status, 200);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "the API does not wait on hosts: {:?}",
        t.elapsed()
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_engine_finds_its_hosts_and_running_vms_again() {
    let env = Env::start().await;
    let agent = Agent::start(env.dir.path(), 0).await;
    let host = env.add_host("steady", &agent).await;
    env.host_up(&host).await;
    let vm = env.add_vm("survivor", 256 << 20).await;
    env.post(&format!("/vms/{vm}/start"), json!({})).await;
    env.wait("vm up", &format!("/vms/{vm}"), |v| v["status"] == "up")
        .await;
    let env = env.restart().await;
    // Polled again after the restart, the VM is still up on its host, which is still up.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, v) = env.get(&format!("/vms/{vm}")).await;
    assert_eq!(v["status"], "up", "{v}");
    assert_eq!(v["host"]["id"], host.as_str());
    env.host_up(&host).await;
    let (status, _) = env.post(&format!("/vms/{vm}/stop"), json!({})).await;
    assert_eq!(status, 200);
    env.wait("vm down", &format!("/vms/{vm}"), |v| v["status"] == "down")
        .await;
    env.stop().await;
}
