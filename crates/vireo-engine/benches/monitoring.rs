//! Host monitoring at scale: one `vireo serve` and one `vireo agent --simulate --hosts N`
//! (500 by default) as separate processes, N hosts added through the REST API, then the
//! engine's CPU share while it monitors them, its RSS, and VM start-to-up latency.
//!
//!     cargo build --bin vireo && cargo bench -p vireo-engine --bench monitoring
//!
//! Environment: `VIREO_BIN` (default `target/debug/vireo`, or release when built),
//! `VIREO_BENCH_HOSTS` (500), `VIREO_BENCH_SECONDS` (60, the CPU measurement window),
//! `VIREO_BENCH_VMS` (50, VMs started for the latency figures).

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "bench-password";
const SECRET: &str = "bench-enroll-secret";

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

/// A free run of `n` loopback ports (the agent's hosts listen on BASE+i).
fn free_ports(n: usize) -> u16 {
    'base: for base in (20000u16..60000).step_by(1000) {
        if base as usize + n > 65000 {
            break;
        }
        let mut held = Vec::new();
        for p in base..base + n as u16 {
            match std::net::TcpListener::bind(("127.0.0.1", p)) {
                Ok(l) => held.push(l),
                Err(_) => continue 'base,
            }
        }
        return base;
    }
    panic!("no run of {n} free ports");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .basic_auth("admin@internal", Some(PASSWORD))
            .header("Accept", "application/json");
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        match req.send().await {
            Ok(r) => {
                let s = r.status().as_u16();
                let t = r.text().await.unwrap_or_default();
                (s, serde_json::from_str(&t).unwrap_or(Value::String(t)))
            }
            Err(e) => (0, Value::String(e.to_string())),
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let hosts = env_usize("VIREO_BENCH_HOSTS", 500);
    let window = env_usize("VIREO_BENCH_SECONDS", 60);
    let vms = env_usize("VIREO_BENCH_VMS", 50);
    let bin = binary();
    assert!(
        bin.exists(),
        "build the binary first: cargo build --bin vireo ({} missing)",
        bin.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let engine_port = free_port();
    let agent_base = free_ports(hosts);
    let quiet = || Stdio::null();

    let engine = Command::new(&bin)
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("engine"))
        .args(["--listen", &format!("127.0.0.1:{engine_port}")])
        .env("VIREO_ADMIN_PASSWORD", PASSWORD)
        .env("VIREO_LOG", "warn")
        .stdout(quiet())
        .stderr(quiet())
        .spawn()
        .unwrap();
    let engine_pid = engine.id();
    let agent = Command::new(&bin)
        .args([
            "agent",
            "--simulate",
            "--hosts",
            &hosts.to_string(),
            "--enroll-secret",
            SECRET,
            "--data-dir",
        ])
        .arg(dir.path().join("agents"))
        .args(["--listen", &format!("127.0.0.1:{agent_base}")])
        .env("VIREO_LOG", "warn")
        .stdout(quiet())
        .stderr(quiet())
        .spawn()
        .unwrap();
    let _procs = Procs(vec![engine, agent]);

    let ca_path = dir.path().join("engine/pki/ca.pem");
    let started = Instant::now();
    while !ca_path.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the engine never made its CA"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ca = std::fs::read_to_string(&ca_path).unwrap();
    let tls = vireo_pki::client_config_trusting(&ca).unwrap();
    let http = reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .build()
        .unwrap();
    let api = std::sync::Arc::new(Api {
        http,
        base: format!("https://127.0.0.1:{engine_port}/ovirt-engine/api"),
    });
    while api.call(reqwest::Method::GET, "", None).await.0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the engine never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The agent's listeners.
    while std::net::TcpStream::connect(("127.0.0.1", agent_base + hosts as u16 - 1)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the agent never listened"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let t_add = Instant::now();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..hosts {
        let (api, gate) = (api.clone(), gate.clone());
        set.spawn(async move {
            let _p = gate.acquire().await.unwrap();
            let body = json!({"name": format!("host-{i:04}"), "address": "127.0.0.1", "port": (agent_base as usize + i).to_string(),
                              "root_password": SECRET, "cluster": {"name": "Default"}});
            let (s, v) = api.call(reqwest::Method::POST, "/hosts", Some(body)).await;
            assert_eq!(s, 201, "{v}");
        });
    }
    while set.join_next().await.is_some() {}
    let added = t_add.elapsed();
    loop {
        let (_, v) = api.call(reqwest::Method::GET, "/hosts", None).await;
        let up = v["host"]
            .as_array()
            .map(|a| a.iter().filter(|h| h["status"] == "up").count())
            .unwrap_or(0);
        if up == hosts {
            break;
        }
        assert!(
            t_add.elapsed() < Duration::from_secs(600),
            "only {up} of {hosts} hosts came up"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let all_up = t_add.elapsed();
    println!(
        "hosts: {hosts}; added in {:.1} s; all up {:.1} s after the first add",
        added.as_secs_f64(),
        all_up.as_secs_f64()
    );

    // Let the enrollment bursts settle, then measure a steady window of monitoring.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (c0, t0) = (cpu_seconds(engine_pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(window as u64)).await;
    let share = (cpu_seconds(engine_pid) - c0) / t0.elapsed().as_secs_f64();
    println!(
        "monitoring {hosts} hosts (poll every 3 s, statistics every 15 s): engine CPU {:.1}% of one core over {window} s; RSS {:.0} MiB",
        share * 100.0,
        rss_mib(engine_pid)
    );

    // VM start-to-up latency: create, start, poll until up.
    let mut ids = Vec::new();
    for i in 0..vms {
        let body = json!({"name": format!("bench-vm-{i}"), "cluster": {"name": "Default"}, "template": {"name": "Blank"}, "memory": (256u64 << 20).to_string()});
        let (s, v) = api.call(reqwest::Method::POST, "/vms", Some(body)).await;
        assert_eq!(s, 201, "{v}");
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    let mut set = tokio::task::JoinSet::new();
    for id in ids {
        let api = api.clone();
        set.spawn(async move {
            let t = Instant::now();
            let (s, v) = api
                .call(
                    reqwest::Method::POST,
                    &format!("/vms/{id}/start"),
                    Some(json!({})),
                )
                .await;
            assert_eq!(s, 200, "{v}");
            let accepted = t.elapsed().as_secs_f64();
            loop {
                let (_, v) = api
                    .call(reqwest::Method::GET, &format!("/vms/{id}"), None)
                    .await;
                if v["status"] == "up" {
                    return (accepted, t.elapsed().as_secs_f64());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
    let mut accepted = Vec::new();
    let mut up = Vec::new();
    while let Some(r) = set.join_next().await {
        let (a, u) = r.unwrap();
        accepted.push(a * 1000.0);
        up.push(u);
    }
    accepted.sort_by(f64::total_cmp);
    up.sort_by(f64::total_cmp);
    println!(
        "{vms} VM starts at once: start answered p50 {:.0} ms p99 {:.0} ms; start-to-up p50 {:.2} s p99 {:.2} s (simulated boot 1.5 s, polls every 3 s)",
        percentile(&accepted, 0.5),
        percentile(&accepted, 0.99),
        percentile(&up, 0.5),
        percentile(&up, 0.99)
    );
}
