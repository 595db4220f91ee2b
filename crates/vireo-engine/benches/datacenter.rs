//! The virtual data center at scale, all in one run: one `vireo serve` and one
//! `vireo agent --simulate --hosts N` (500) as separate processes on loopback, N hosts added
//! through the REST API and monitored while 10,000 VMs are created; then `GET /vms` (XML and
//! JSON), searches, VM starts on the simulated hosts, and a quiet window in which the engine
//! does nothing but monitor. Prints one table.
//!
//!     cargo build --release --bin vireo && cargo bench -p vireo-engine --bench datacenter
//!
//! Environment: `VIREO_BIN` (default `target/release/vireo`, else debug), `VIREO_BENCH_HOSTS`
//! (500), `VIREO_BENCH_VMS` (10000), `VIREO_BENCH_CLIENTS` (16 concurrent creators),
//! `VIREO_BENCH_SEARCHES` (200), `VIREO_BENCH_STARTS` (50 VMs started at once),
//! `VIREO_BENCH_SECONDS` (30, the monitoring window). Extra environment for the engine (e.g.
//! `VIREO_RENDER_CACHE=off`) is passed through.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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

/// utime + stime of a process (all its threads), in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(close) = stat.rfind(')') else {
        return 0.0;
    };
    let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

/// VmRSS and VmHWM in MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Api {
    http: reqwest::Client,
    base: String,
    auth: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Authorization", &self.auth)
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

    /// Milliseconds to the last byte, and the body's size. The body is read and dropped
    /// chunk by chunk (as `curl -o /dev/null` does), so the figure is the engine's time to
    /// the last byte, not the client's buffering.
    async fn timed_get(&self, path: &str, accept: &str) -> (f64, usize) {
        let t = Instant::now();
        let mut r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("Authorization", &self.auth)
            .header("Accept", accept)
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status().as_u16(), 200, "GET {path}");
        let mut n = 0;
        while let Some(c) = r.chunk().await.expect("body") {
            n += c.len();
        }
        (t.elapsed().as_secs_f64() * 1000.0, n)
    }
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

struct Table(Vec<(String, String, String)>);

impl Table {
    fn row(&mut self, what: impl Into<String>, value: impl Into<String>, target: &str) {
        let (what, value) = (what.into(), value.into());
        println!("  {what}: {value}");
        self.0.push((what, value, target.to_string()));
    }
    fn print(&self) {
        let w0 = self.0.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let w1 = self.0.iter().map(|r| r.1.len()).max().unwrap_or(0);
        println!();
        println!("{:<w0$}  {:<w1$}  target", "figure", "value");
        println!("{}", "-".repeat(w0 + w1 + 12));
        for (a, b, c) in &self.0 {
            println!("{a:<w0$}  {b:<w1$}  {c}");
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let hosts = env_usize("VIREO_BENCH_HOSTS", 500);
    let vms = env_usize("VIREO_BENCH_VMS", 10_000);
    let clients = env_usize("VIREO_BENCH_CLIENTS", 16);
    let searches = env_usize("VIREO_BENCH_SEARCHES", 200);
    let starts = env_usize("VIREO_BENCH_STARTS", 50);
    let window = env_usize("VIREO_BENCH_SECONDS", 30);
    let bin = binary();
    assert!(
        bin.exists(),
        "build the binary first: cargo build --release --bin vireo ({} missing)",
        bin.display()
    );
    let run_started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let engine_port = free_port();
    let agent_base = free_ports(hosts);
    let engine = Command::new(&bin)
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("engine"))
        .args(["--listen", &format!("127.0.0.1:{engine_port}")])
        .env("VIREO_ADMIN_PASSWORD", PASSWORD)
        .env("VIREO_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = engine.id();
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
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _procs = Procs(vec![engine, agent]);

    let ca_path = dir.path().join("engine/pki/ca.pem");
    while !ca_path.exists() {
        assert!(
            run_started.elapsed() < Duration::from_secs(60),
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
    // A bearer token, as the SDK uses.
    let token = loop {
        let r = http
            .post(format!(
                "https://127.0.0.1:{engine_port}/ovirt-engine/sso/oauth/token"
            ))
            .header("Accept", "application/json")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("grant_type=password&scope=ovirt-app-api&username=admin%40internal&password={PASSWORD}"))
            .send()
            .await;
        if let Ok(r) = r {
            let v: Value =
                serde_json::from_slice(&r.bytes().await.unwrap_or_default()).unwrap_or_default();
            if let Some(t) = v["access_token"].as_str() {
                break t.to_string();
            }
        }
        assert!(
            run_started.elapsed() < Duration::from_secs(60),
            "the engine never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let api = Arc::new(Api {
        http,
        base: format!("https://127.0.0.1:{engine_port}/ovirt-engine/api"),
        auth: format!("Bearer {token}"),
    });
    while std::net::TcpStream::connect(("127.0.0.1", agent_base + hosts as u16 - 1)).is_err() {
        assert!(
            run_started.elapsed() < Duration::from_secs(120),
            "the agent never listened"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "engine {} (pid {pid}); {hosts} simulated hosts, {vms} VMs, {clients} clients",
        bin.display()
    );
    let mut table = Table(Vec::new());
    let (rss_idle, _) = memory_mib(pid);

    // Hosts.
    let t_add = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(16));
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
    loop {
        let (_, v) = api
            .call(reqwest::Method::GET, "/hosts?search=status%3Dup", None)
            .await;
        let up = v["host"].as_array().map(Vec::len).unwrap_or(0);
        if up == hosts {
            break;
        }
        assert!(
            t_add.elapsed() < Duration::from_secs(600),
            "only {up} of {hosts} hosts came up"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    table.row(
        format!("{hosts} hosts added and up"),
        format!("{:.1} s", t_add.elapsed().as_secs_f64()),
        "",
    );

    // VMs, created while the hosts are monitored.
    let (c0, t0) = (cpu_seconds(pid), Instant::now());
    let next = Arc::new(AtomicUsize::new(0));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (api, next) = (api.clone(), next.clone());
        set.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= vms {
                    return;
                }
                let body = json!({"name": format!("vm-{i}"), "cluster": {"name": "Default"}, "template": {"name": "Blank"}});
                let (s, v) = api.call(reqwest::Method::POST, "/vms", Some(body)).await;
                assert_eq!(s, 201, "create vm-{i}: {v}");
            }
        });
    }
    while set.join_next().await.is_some() {}
    let create = t0.elapsed().as_secs_f64();
    table.row(
        format!("VM create ({clients} clients)"),
        format!(
            "{:.0} VMs/s ({vms} in {create:.1} s; engine {:.0}% of a core)",
            vms as f64 / create,
            (cpu_seconds(pid) - c0) / create * 100.0
        ),
        "",
    );

    // List all.
    for (accept, label) in [("application/xml", "XML"), ("application/json", "JSON")] {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..5 {
            let (ms, n) = api.timed_get("/vms", accept).await;
            times.push(ms);
            bytes = n;
        }
        let first = times[0];
        times.sort_by(f64::total_cmp);
        table.row(
            format!("GET /vms, {vms} VMs, {label}"),
            format!(
                "median {:.0} ms, first {first:.0} ms, max {:.0} ms ({:.1} MiB)",
                times[2],
                times[4],
                bytes as f64 / 1048576.0
            ),
            "< 1 s",
        );
    }

    // Search.
    for (query, label) in [
        ("name%3Dvm-1%2A", "name=vm-1*"),
        ("name%3Dvm-4242", "name=vm-4242"),
    ] {
        let path = format!("/vms?search={query}");
        let (_, v) = api.call(reqwest::Method::GET, &path, None).await;
        let found = v["vm"].as_array().map(Vec::len).unwrap_or(0);
        let mut lat = Vec::new();
        for _ in 0..searches {
            lat.push(api.timed_get(&path, "application/json").await.0);
        }
        lat.sort_by(f64::total_cmp);
        table.row(
            format!("GET /vms?search={label} ({found} VMs, JSON)"),
            format!(
                "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                percentile(&lat, 0.5),
                percentile(&lat, 0.9),
                percentile(&lat, 0.99),
                lat[lat.len() - 1]
            ),
            if label == "name=vm-1*" {
                "p99 < 50 ms"
            } else {
                ""
            },
        );
    }

    // VM starts on the simulated hosts: start, then poll until up.
    let mut ids = Vec::new();
    for i in 0..starts {
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
            let accepted = t.elapsed().as_secs_f64() * 1000.0;
            loop {
                let (_, v) = api
                    .call(reqwest::Method::GET, &format!("/vms/{id}"), None)
                    .await;
                if v["status"] == "up" {
                    return (accepted, t.elapsed().as_secs_f64());
                }
                assert!(t.elapsed() < Duration::from_secs(120), "{id} never up");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
    let (mut accepted, mut up) = (Vec::new(), Vec::new());
    while let Some(r) = set.join_next().await {
        let (a, u) = r.unwrap();
        accepted.push(a);
        up.push(u);
    }
    accepted.sort_by(f64::total_cmp);
    up.sort_by(f64::total_cmp);
    table.row(
        format!("{starts} VM starts at once: start answered"),
        format!(
            "p50 {:.0} ms, p99 {:.0} ms",
            percentile(&accepted, 0.5),
            percentile(&accepted, 0.99)
        ),
        "",
    );
    table.row(
        "VM start-to-up (simulated boot 1.5 s, polls every 3 s)",
        format!(
            "p50 {:.2} s, p99 {:.2} s",
            percentile(&up, 0.5),
            percentile(&up, 0.99)
        ),
        "",
    );

    // A quiet window: no API calls, the engine only monitors.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (c0, t0) = (cpu_seconds(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(window as u64)).await;
    let share = (cpu_seconds(pid) - c0) / t0.elapsed().as_secs_f64();
    table.row(
        format!("engine CPU monitoring {hosts} hosts, {starts} VMs running ({window} s)"),
        format!("{:.1}% of one core", share * 100.0),
        "< 50%",
    );
    let (rss, hwm) = memory_mib(pid);
    table.row(
        "engine RSS (idle at start; now; peak)",
        format!("{rss_idle:.0} MiB; {rss:.0} MiB; {hwm:.0} MiB"),
        "< 1024 MiB",
    );
    table.print();
    println!("\nwhole run {:.0} s", run_started.elapsed().as_secs_f64());
}
