//! `cargo bench -p vireo-agent`: enrollment time, capabilities/stats latency over mutual TLS,
//! and what one process simulating 500 hosts costs in memory and file descriptors.
//!
//! The 500 hosts run in a child process (this same binary, re-run with
//! `VIREO_AGENT_BENCH_CHILD` set) so that its RSS and descriptor count are the agent's alone,
//! not the benchmark's clients'.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vireo_agent::{AgentClient, AgentConfig};
use vireo_agent_proto::Hypervisor;

const SECRET: &str = "bench-secret";
const CHILD_ENV: &str = "VIREO_AGENT_BENCH_CHILD";
const MANY_HOSTS: usize = 500;
const REQUESTS: usize = 2000;
const ENROLLMENTS: usize = 50;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return runtime.block_on(child(&spec));
    }
    runtime.block_on(parent());
}

/// The agent under measurement: N hosts, ports on stdout, runs until stdin closes.
async fn child(spec: &str) {
    let (dir, hosts) = spec.split_once(':').unwrap();
    let config = AgentConfig {
        hosts: hosts.parse().unwrap(),
        ..AgentConfig::simulated(dir, "127.0.0.1:0", SECRET)
    };
    let started = Instant::now();
    let agent = vireo_agent::start(&config, vireo_agent::simulate::SimHost::open)
        .await
        .unwrap();
    let ports: Vec<String> = agent
        .hosts()
        .iter()
        .map(|h| h.addr.port().to_string())
        .collect();
    println!(
        "STARTED {} {}",
        started.elapsed().as_millis(),
        ports.join(",")
    );
    std::io::stdout().flush().unwrap();
    // Blocks a runtime thread until the parent closes our stdin: that is the stop signal.
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin()
            .read_line(&mut line)
            .map(|n| n > 0)
            .unwrap_or(false)
        {}
    })
    .await
    .unwrap();
    agent.stop().await;
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn parent() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Arc::new(vireo_pki::Pki::load_or_create(&tmp.path().join("engine"), &[]).unwrap());
    let names = vec!["127.0.0.1".to_string()];
    println!(
        "vireo-agent bench (simulated hosts, loopback, {} CPUs)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Enrollment: the full exchange (CSR, signing, completion, first mutual-TLS call).
    let agent = vireo_agent::start(
        &AgentConfig::simulated(tmp.path().join("one"), "127.0.0.1:0", SECRET),
        vireo_agent::simulate::SimHost::open,
    )
    .await
    .unwrap();
    let port = agent.hosts()[0].addr.port();
    let mut times = Vec::new();
    for i in 0..ENROLLMENTS {
        let t = Instant::now();
        AgentClient::enroll(
            "127.0.0.1",
            port,
            SECRET,
            &pki,
            &format!("host-{i}"),
            &names,
        )
        .await
        .unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "enrollment ({ENROLLMENTS} runs):        p50 {}  p99 {}",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99))
    );

    // Latency of the monitoring calls on one kept-alive mutual-TLS connection.
    let client = AgentClient::new("127.0.0.1", port, pki.engine_client_config().unwrap()).unwrap();
    for call in ["capabilities", "stats"] {
        let mut times = Vec::with_capacity(REQUESTS);
        for _ in 0..REQUESTS {
            let t = Instant::now();
            match call {
                "capabilities" => drop(client.capabilities().await.unwrap()),
                _ => drop(client.stats().await.unwrap()),
            }
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "{call:<13} ({REQUESTS} requests): p50 {}  p99 {}",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99))
        );
    }
    agent.stop().await;

    many_hosts(tmp.path(), &pki).await;
}

/// RSS (KiB) and open descriptors of a process, from /proc.
fn footprint(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (rss, fds)
}

async fn many_hosts(root: &Path, pki: &Arc<vireo_pki::Pki>) {
    let dir = root.join("many");
    for round in ["first start", "restart"] {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD_ENV, format!("{}:{MANY_HOSTS}", dir.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let mut words = line.split_whitespace().skip(1);
        let start_ms: u64 = words.next().unwrap().parse().unwrap();
        let ports: Vec<u16> = words
            .next()
            .unwrap()
            .split(',')
            .map(|p| p.parse().unwrap())
            .collect();
        let (rss_idle, fds_idle) = footprint(child.id());

        // The engine's view: enroll every host (first start only), then poll each once and
        // keep the connections open, as monitoring does.
        let t = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        let gate = Arc::new(tokio::sync::Semaphore::new(32));
        for (i, port) in ports.iter().copied().enumerate() {
            let (pki, gate) = (pki.clone(), gate.clone());
            let enroll = round == "first start";
            set.spawn(async move {
                let _permit = gate.acquire_owned().await.unwrap();
                if enroll {
                    AgentClient::enroll(
                        "127.0.0.1",
                        port,
                        SECRET,
                        &pki,
                        &format!("host-{i}"),
                        &["127.0.0.1".to_string()],
                    )
                    .await
                    .unwrap();
                }
                let client = AgentClient::from_pki("127.0.0.1", port, &pki).unwrap();
                client.stats().await.unwrap();
                client
            });
        }
        let mut clients = Vec::new();
        while let Some(c) = set.join_next().await {
            clients.push(c.unwrap());
        }
        let polled_in = t.elapsed();
        let (rss_busy, fds_busy) = footprint(child.id());
        println!(
            "{MANY_HOSTS} hosts, {round:<11}: started in {start_ms} ms; idle RSS {} MiB, {fds_idle} FDs; \
             {} all {MANY_HOSTS} in {} ms; then RSS {} MiB, {fds_busy} FDs",
            rss_idle / 1024,
            if round == "first start" { "enrolled and polled" } else { "polled" },
            polled_in.as_millis(),
            rss_busy / 1024,
        );
        drop(clients);
        drop(child.stdin.take());
        child.wait().unwrap();
    }
}
