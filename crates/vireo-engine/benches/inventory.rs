//! The inventory at scale: one `vireo serve` process, N VMs (10,000 by default) created
//! through the REST API, then `GET /vms` (all of them, XML and JSON), the latency of a search
//! (`name=vm-1*`), and the engine's RSS.
//!
//!     cargo build --release --bin vireo && cargo bench -p vireo-engine --bench inventory
//!
//! Environment: `VIREO_BIN` (default `target/release/vireo`, else debug), `VIREO_BENCH_VMS`
//! (10000), `VIREO_BENCH_CLIENTS` (16 concurrent creators), `VIREO_BENCH_SEARCHES` (200).

use serde_json::json;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PASSWORD: &str = "bench-password";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn binary() -> PathBuf {
    if let Ok(b) = std::env::var("VIREO_BIN") {
        return PathBuf::from(b);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target");
    let release = root.join("release/vireo");
    if release.exists() {
        release
    } else {
        root.join("debug/vireo")
    }
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let vms = env_usize("VIREO_BENCH_VMS", 10_000);
    let clients = env_usize("VIREO_BENCH_CLIENTS", 16);
    let searches = env_usize("VIREO_BENCH_SEARCHES", 200);
    let dir = tempfile::tempdir()?;
    // `VIREO_BENCH_DATA`: a data folder to keep (and reuse: VMs already there are not made again).
    let data = std::env::var("VIREO_BENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| dir.path().join("engine"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let bin = binary();
    let mut engine = Command::new(&bin)
        .args([
            "serve",
            "--data-dir",
            data.to_str().unwrap_or_default(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("VIREO_ADMIN_PASSWORD", PASSWORD)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let base = format!("https://127.0.0.1:{port}/ovirt-engine/api");
    let ca_path = data.join("pki/ca.pem");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ca_path.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ca = std::fs::read_to_string(&ca_path)?;
    let tls = vireo_pki::client_config_trusting(&ca)?;
    let http = reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .build()?;
    // A bearer token, as the SDK uses: Basic would verify the password per request.
    let token = loop {
        let r = http
            .post(format!("https://127.0.0.1:{port}/ovirt-engine/sso/oauth/token"))
            .header("Accept", "application/json")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("grant_type=password&scope=ovirt-app-api&username=admin%40internal&password={PASSWORD}"))
            .send()
            .await;
        if let Ok(r) = r {
            let v: serde_json::Value =
                serde_json::from_slice(&r.bytes().await.unwrap_or_default()).unwrap_or_default();
            if let Some(t) = v["access_token"].as_str() {
                break t.to_string();
            }
        }
        if Instant::now() > deadline {
            anyhow::bail!("the engine at {} never served", bin.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let auth = format!("Bearer {token}");
    println!(
        "engine: {} (pid {}), {vms} VMs, {clients} clients",
        bin.display(),
        engine.id()
    );
    let rss_start = rss_mib(engine.id());

    // Create.
    let have = http
        .get(format!(
            "{base}/vms?search=name%3Dvm-{}",
            vms.saturating_sub(1)
        ))
        .header("Authorization", &auth)
        .header("Accept", "application/json")
        .send()
        .await?
        .bytes()
        .await?;
    let vms = if have.len() > 10 { 0 } else { vms };
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, base, auth, next) = (http.clone(), base.clone(), auth.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= vms {
                    return Ok::<(), anyhow::Error>(());
                }
                let body = json!({"name": format!("vm-{i}"), "cluster": {"name": "Default"}, "template": {"name": "Blank"}});
                let r = http
                    .post(format!("{base}/vms"))
                    .header("Authorization", &auth)
                    .header("Accept", "application/json")
                    .header("Content-Type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await?;
                if r.status().as_u16() != 201 {
                    anyhow::bail!("create vm-{i}: {} {}", r.status(), r.text().await.unwrap_or_default());
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let create = started.elapsed();
    println!(
        "create: {vms} VMs in {:.1} s = {:.0} VMs/s",
        create.as_secs_f64(),
        vms as f64 / create.as_secs_f64()
    );

    // List all.
    for (accept, label) in [("application/xml", "XML"), ("application/json", "JSON")] {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..3 {
            let t = Instant::now();
            let r = http
                .get(format!("{base}/vms"))
                .header("Authorization", &auth)
                .header("Accept", accept)
                .send()
                .await?;
            let body = r.bytes().await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            bytes = body.len();
        }
        times.sort_by(|a, b| a.total_cmp(b));
        println!(
            "GET /vms ({label}): median {:.0} ms, best {:.0} ms, {:.1} MiB",
            times[1],
            times[0],
            bytes as f64 / 1048576.0
        );
    }

    // Search.
    let mut lat = Vec::new();
    let mut found = 0;
    for _ in 0..searches {
        let t = Instant::now();
        let r = http
            .get(format!("{base}/vms?search=name%3Dvm-1%2A"))
            .header("Authorization", &auth)
            .header("Accept", "application/json")
            .send()
            .await?;
        let body = r.bytes().await?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        if found == 0 {
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            found = v["vm"].as_array().map(|a| a.len()).unwrap_or(0);
        }
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    println!(
        "GET /vms?search=name=vm-1* ({found} VMs): p50 {:.1} ms, p99 {:.1} ms",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    let mut lat = Vec::new();
    for _ in 0..searches {
        let t = Instant::now();
        let r = http
            .get(format!("{base}/vms?search=name%3Dvm-4242"))
            .header("Authorization", &auth)
            .header("Accept", "application/json")
            .send()
            .await?;
        let _ = r.bytes().await?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    println!(
        "GET /vms?search=name=vm-4242: p50 {:.1} ms, p99 {:.1} ms",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    println!(
        "engine RSS: {:.0} MiB at start, {:.0} MiB now",
        rss_start,
        rss_mib(engine.id())
    );

    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(engine.id().to_string())
        .status();
    let _ = engine.wait();
    Ok(())
}
