//! Image transfers end to end: an engine in-process, a real agent (QEMU driver, so volumes
//! are files made with qemu-img and raw transfers go through qemu-nbd), the data path driven
//! over HTTPS with the engine's CA as the ovirt-imageio client drives it, directly and
//! through the engine's proxy.

mod support;

use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{int, Env};
use vireo_agent::{AccelChoice, AgentConfig, RunningAgent};

fn available() -> bool {
    let ok = ["qemu-img", "qemu-nbd"].iter().all(|t| {
        Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ok && std::env::var_os("CI").is_some() {
        panic!("CI is set and the transfer tests need qemu-img and qemu-nbd (qemu-utils)");
    }
    if !ok {
        eprintln!("SKIPPED (CI unset): qemu-img/qemu-nbd missing");
    }
    ok
}

struct T {
    env: Env,
    root: tempfile::TempDir,
    agent: Option<RunningAgent>,
    host: String,
    http: reqwest::Client,
}

impl T {
    async fn start() -> T {
        // Fast polls so inactivity and phase changes show within a test's patience.
        std::env::set_var("VIREO_TRANSFER_POLL_MS", "200");
        let env = Env::start().await;
        let root = tempfile::Builder::new()
            .prefix("vt")
            .tempdir_in("/tmp")
            .unwrap();
        let secret = format!("enroll-{}", uuid::Uuid::new_v4().simple());
        let config = AgentConfig {
            simulate: false,
            accel: AccelChoice::Tcg,
            ..AgentConfig::simulated(root.path().join("agent"), "127.0.0.1:0", &secret)
        };
        let agent = vireo_agent::start(&config, vireo_agent::qemu::Qemu::open)
            .await
            .expect("the agent starts");
        let port = agent.hosts()[0].addr.port();
        let r = env
            .post("/hosts", json!({"name": "h1", "address": "127.0.0.1", "port": port.to_string(), "root_password": secret, "cluster": {"name": "Default"}}))
            .await;
        assert_eq!(r.status, 201, "{r}");
        let host = r.id();
        env.wait("host up", &format!("/hosts/{host}"), |h| {
            h["status"] == "up"
        })
        .await;
        let folder = root.path().join("sd");
        std::fs::create_dir_all(&folder).unwrap();
        let r = env
            .post(
                "/storagedomains",
                json!({"name": "sd", "type": "data", "host": {"id": host},
                       "storage": {"type": "posixfs", "vfs_type": "none", "path": folder.display().to_string()}}),
            )
            .await;
        assert_eq!(r.status, 201, "{r}");
        let sd = r.id();
        let dc = env.default_dc().await;
        let a = env
            .post(
                &format!("/datacenters/{dc}/storagedomains"),
                json!({"id": sd}),
            )
            .await;
        assert_eq!(a.status, 201, "{a}");
        env.wait(
            "domain active",
            &format!("/datacenters/{dc}/storagedomains/{sd}"),
            |d| d["status"] == "active",
        )
        .await;
        let http = env.engine.http.clone();
        T {
            env,
            root,
            agent: Some(agent),
            host,
            http,
        }
    }

    async fn disk(&self, name: &str, format: &str, size: u64) -> String {
        let r = self
            .env
            .post(
                "/disks",
                json!({"name": name, "format": format, "provisioned_size": size.to_string(),
                       "storage_domains": {"storage_domain": [{"name": "sd"}]}}),
            )
            .await;
        assert!(r.status == 201 || r.status == 202, "{r}");
        let id = r.id();
        self.env
            .wait("disk ok", &format!("/disks/{id}"), |d| d["status"] == "ok")
            .await;
        id
    }

    async fn transfer(&self, body: Value) -> Value {
        let r = self.env.post("/imagetransfers", body).await;
        assert_eq!(r.status, 201, "{r}");
        let id = r.id();
        self.env
            .wait("transferring", &format!("/imagetransfers/{id}"), |t| {
                t["phase"] == "transferring"
            })
            .await
    }

    async fn phase(&self, id: &str, want: &str) -> Value {
        self.env
            .wait(want, &format!("/imagetransfers/{id}"), |t| {
                t["phase"] == want
            })
            .await
    }

    async fn events(&self, code: i64) -> usize {
        self.env
            .list("/events")
            .await
            .iter()
            .filter(|e| int(&e["code"]) == code)
            .count()
    }

    async fn stop(mut self) {
        if let Some(a) = self.agent.take() {
            a.stop().await;
        }
        self.env.stop().await;
        drop(self.root);
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 4096) as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_finalize_download_cancel_and_failures() {
    if !available() {
        return;
    }
    let mut t = T::start().await;
    let size = 8u64 << 20;
    let disk = t.disk("up1", "cow", size).await;

    // Validation: unknown disk, bad direction, snapshots not done.
    let r = t
        .env
        .post(
            "/imagetransfers",
            json!({"disk": {"id": "nope"}, "direction": "upload"}),
        )
        .await;
    assert_eq!(r.status, 404, "{r}");
    let r = t
        .env
        .post(
            "/imagetransfers",
            json!({"disk": {"id": disk}, "direction": "sideways"}),
        )
        .await;
    assert_eq!(r.status, 400, "{r}");
    let r = t
        .env
        .post("/imagetransfers", json!({"snapshot": {"id": "x"}}))
        .await;
    assert_eq!(r.status, 501, "{r}");

    // Upload guest data (format raw) into a qcow2 disk.
    let tr = t
        .transfer(json!({"disk": {"id": disk}, "direction": "upload", "format": "raw", "host": {"id": t.host}}))
        .await;
    let id = tr["id"].as_str().unwrap().to_string();
    assert_eq!(tr["direction"], "upload");
    assert_eq!(tr["host"]["id"], t.host);
    assert_eq!(tr["disk"]["id"], disk);
    assert_eq!(tr["timeout_policy"], "legacy");
    let url = tr["transfer_url"].as_str().unwrap().to_string();
    let proxy = tr["proxy_url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with("https://127.0.0.1:") && url.contains("/images/"),
        "{url}"
    );
    assert!(proxy.contains("/ovirt-imageio/images/"), "{proxy}");
    assert_eq!(
        t.env.get(&format!("/disks/{disk}")).await.body["status"],
        "locked"
    );
    // A second transfer of a locked disk is refused.
    let r = t
        .env
        .post("/imagetransfers", json!({"disk": {"id": disk}}))
        .await;
    assert_eq!(r.status, 409, "{r}");
    assert!(r.detail().contains("locked"), "{r}");

    let options: Value = body_json(
        t.http
            .request(reqwest::Method::OPTIONS, &url)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(options["features"], json!(["extents", "zero", "flush"]));
    let data = pattern(size as usize / 2, 7);
    let r = t
        .http
        .put(format!("{url}?flush=n"))
        .header("content-range", format!("bytes 0-{}/*", data.len() - 1))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The other half through the engine's proxy, as a zero request.
    let r = t
        .http
        .patch(&proxy)
        .header("content-type", "application/json")
        .body(
            json!({"op": "zero", "offset": size / 2, "size": size / 2, "flush": true}).to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let via_proxy = t
        .http
        .get(&proxy)
        .header("range", "bytes=0-4095")
        .send()
        .await
        .unwrap();
    assert_eq!(via_proxy.status(), 206);
    assert_eq!(&via_proxy.bytes().await.unwrap()[..], &data[..4096]);
    t.env
        .wait("transferred", &format!("/imagetransfers/{id}"), |x| {
            x.get("transferred")
                .is_some_and(|v| int(v) >= size as i64 / 2)
        })
        .await;

    let r = t
        .env
        .post(&format!("/imagetransfers/{id}/finalize"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{r}");
    t.phase(&id, "finished_success").await;
    let d = t
        .env
        .wait("disk ok", &format!("/disks/{disk}"), |d| {
            d["status"] == "ok"
        })
        .await;
    assert!(int(&d["actual_size"]) > 0, "{d}");
    // The ticket is gone from the host.
    let r = t.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 403);
    // Finished: no more actions.
    let r = t
        .env
        .post(&format!("/imagetransfers/{id}/finalize"), json!({}))
        .await;
    assert_eq!(r.status, 409, "{r}");
    assert!(t.events(1031).await >= 1 && t.events(1032).await >= 1);

    // Download: the same guest data back, then finalize; the disk stays ok.
    let tr = t
        .transfer(json!({"disk": {"id": disk}, "direction": "download", "format": "raw"}))
        .await;
    let did = tr["id"].as_str().unwrap().to_string();
    let url = tr["transfer_url"].as_str().unwrap().to_string();
    let r = t.http.put(&url).body(vec![0u8; 512]).send().await.unwrap();
    assert_eq!(r.status(), 403, "a download ticket does not write");
    let got = t
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.len() as u64, size);
    assert_eq!(&got[..data.len()], &data[..]);
    assert!(got[data.len()..].iter().all(|b| *b == 0));
    let extents: Vec<Value> = serde_json::from_value(
        body_json(t.http.get(format!("{url}/extents")).send().await.unwrap()).await,
    )
    .unwrap();
    assert_eq!(extents[0]["zero"], false);
    assert_eq!(extents.last().unwrap()["zero"], true);
    t.env
        .post(&format!("/imagetransfers/{did}/finalize"), json!({}))
        .await;
    t.phase(&did, "finished_success").await;
    t.env
        .wait("disk ok", &format!("/disks/{disk}"), |d| {
            d["status"] == "ok"
        })
        .await;

    // Pause and resume, then cancel: an upload's disk goes (oVirt's rollback).
    let tr = t
        .transfer(json!({"disk": {"id": disk}, "direction": "upload", "format": "raw"}))
        .await;
    let cid = tr["id"].as_str().unwrap().to_string();
    let r = t
        .env
        .post(&format!("/imagetransfers/{cid}/resume"), json!({}))
        .await;
    assert_eq!(r.status, 409, "not paused: {r}");
    t.env
        .post(&format!("/imagetransfers/{cid}/pause"), json!({}))
        .await;
    t.phase(&cid, "paused_user").await;
    t.env
        .post(&format!("/imagetransfers/{cid}/resume"), json!({}))
        .await;
    t.phase(&cid, "transferring").await;
    let r = t
        .env
        .post(&format!("/imagetransfers/{cid}/cancel"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{r}");
    t.phase(&cid, "finished_failure").await;
    wait_gone(&t, &disk).await;
    assert!(t.events(1033).await >= 1);

    // A cow upload of bytes that are no qcow2: verification fails, the disk goes.
    let bad = t.disk("bad", "cow", 1 << 20).await;
    let tr = t
        .transfer(json!({"disk": {"id": bad}, "direction": "upload", "format": "cow"}))
        .await;
    let bid = tr["id"].as_str().unwrap().to_string();
    let url = tr["transfer_url"].as_str().unwrap().to_string();
    let r = t
        .http
        .put(&url)
        .header("content-range", "bytes 0-65535/*")
        .body(vec![0x5au8; 65536])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    t.env
        .post(&format!("/imagetransfers/{bid}/finalize"), json!({}))
        .await;
    t.phase(&bid, "finished_failure").await;
    wait_gone(&t, &bad).await;
    assert!(t.events(1034).await >= 1);

    // Inactivity: a legacy upload with nobody sending pauses by itself.
    let idle = t.disk("idle", "raw", 1 << 20).await;
    let tr = t
        .transfer(json!({"disk": {"id": idle}, "direction": "upload", "inactivity_timeout": "1"}))
        .await;
    let iid = tr["id"].as_str().unwrap().to_string();
    assert_eq!(tr["format"], "raw");
    t.phase(&iid, "paused_system").await;
    assert!(t.events(1071).await >= 1);
    t.env
        .post(&format!("/imagetransfers/{iid}/cancel"), json!({}))
        .await;
    t.phase(&iid, "finished_failure").await;

    // An engine restart in the middle: the transfer is followed again and finalizes.
    let again = t.disk("again", "cow", 1 << 20).await;
    let tr = t
        .transfer(json!({"disk": {"id": again}, "direction": "upload", "format": "raw"}))
        .await;
    let rid = tr["id"].as_str().unwrap().to_string();
    let url = tr["transfer_url"].as_str().unwrap().to_string();
    let r = t
        .http
        .put(&url)
        .header("content-range", "bytes 0-4095/*")
        .body(vec![9u8; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let data = t.env.engine.data.clone();
    t.env.engine.halt().await;
    t.env.engine = support::Engine::boot(data, support::PASSWORD).await;
    t.env
        .wait("host up again", &format!("/hosts/{}", t.host), |h| {
            h["status"] == "up"
        })
        .await;
    t.phase(&rid, "transferring").await;
    t.env
        .post(&format!("/imagetransfers/{rid}/finalize"), json!({}))
        .await;
    t.phase(&rid, "finished_success").await;
    t.env
        .wait("disk ok", &format!("/disks/{again}"), |d| {
            d["status"] == "ok"
        })
        .await;

    let all = t.env.list("/imagetransfers").await;
    assert!(all.len() >= 5, "finished transfers stay listed: {all:?}");
    t.stop().await;
}

async fn body_json(r: reqwest::Response) -> Value {
    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
}

async fn wait_gone(t: &T, disk: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = t.env.get(&format!("/disks/{disk}")).await;
        if r.status == 404 {
            return;
        }
        assert!(Instant::now() < deadline, "disk {disk} still there: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
