//! `api-bench`: measures a real `vireo serve` on loopback.
//!
//! 1. start-to-healthy: spawn to the first 200 of the health URL, first start (fresh data folder:
//!    database, CA, bootstrap inventory, admin password hash) and second start on the same folder;
//!    the median of N runs each, and the SIGTERM-to-exit time of every stop.
//! 2. `GET /ovirt-engine/api` and `GET /ovirt-engine/api/datacenters` over TLS with a Bearer token,
//!    and `GET /ovirt-engine/api` with HTTP Basic, at 1 and 32 concurrent clients: one keep-alive
//!    HTTP/1.1 connection per client, a warm-up, then a fixed measuring window.
//! 3. Token issue rate (`POST /ovirt-engine/sso/oauth/token`, password grant) at 1 and 4 clients.
//! 4. The engine's memory (VmRSS and VmHWM) when idle and after the runs.
//!
//! The load generator runs in this process (hyper's client over rustls, trusting the engine's
//! CA) and shares the machine with the engine. Only 127.0.0.1 is ever contacted; every loop is
//! bounded in time. The figures are printed, never asserted; the program fails only when the
//! engine does not start, answers wrongly, or does not exit 0 within 5 s of SIGTERM.

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::fs::OpenOptions;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

const PASSWORD: &str = "bench-Passw0rd";
const USER: &str = "admin@internal";
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// How often the health URL is polled while the engine starts.
const POLL: Duration = Duration::from_millis(5);
/// The engine must be healthy within this, or the run fails.
const START_LIMIT: Duration = Duration::from_secs(30);
/// The engine must exit 0 within this after SIGTERM.
const STOP_LIMIT: Duration = Duration::from_secs(5);
/// No single request may take longer than this (it counts as an error and the client reconnects).
const CALL_LIMIT: Duration = Duration::from_secs(10);

struct Args {
    vireo: PathBuf,
    runs: usize,
    warmup: Duration,
    duration: Duration,
    token_duration: Duration,
    client_threads: usize,
}

const USAGE: &str = "usage: api-bench [--vireo PATH] [--runs N] [--warmup SECS] [--duration SECS]
                 [--token-duration SECS] [--client-threads N]

  --vireo PATH           the engine binary (default target/release/vireo;
                         build it with `cargo build --release --bin vireo`)
  --runs N               start-to-healthy runs of each kind; the median is reported (default 5)
  --warmup SECS          warm-up before each measuring window (default 1)
  --duration SECS        measuring window of each GET run (default 10)
  --token-duration SECS  measuring window of each token run (default 5)
  --client-threads N     worker threads of the load generator (default 1; the engine gets the rest)";

fn parse_args() -> Result<Args> {
    let mut args = Args {
        vireo: PathBuf::from("target/release/vireo"),
        runs: 5,
        warmup: Duration::from_secs(1),
        duration: Duration::from_secs(10),
        token_duration: Duration::from_secs(5),
        client_threads: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        let secs = |v: &str| -> Result<Duration> {
            let s: f64 = v
                .parse()
                .with_context(|| format!("{flag}: not a number of seconds: {v}"))?;
            if !(s.is_finite() && (0.0..=600.0).contains(&s)) {
                bail!("{flag}: {v} is out of range (0 to 600 seconds)");
            }
            Ok(Duration::from_secs_f64(s))
        };
        let count = |v: &str, max: usize| -> Result<usize> {
            let n: usize = v
                .parse()
                .with_context(|| format!("{flag}: not a count: {v}"))?;
            if n == 0 || n > max {
                bail!("{flag}: {v} is out of range (1 to {max})");
            }
            Ok(n)
        };
        match flag.as_str() {
            "--vireo" => args.vireo = PathBuf::from(value),
            "--runs" => args.runs = count(&value, 50)?,
            "--warmup" => args.warmup = secs(&value)?,
            "--duration" => args.duration = secs(&value)?,
            "--token-duration" => args.token_duration = secs(&value)?,
            "--client-threads" => args.client_threads = count(&value, 64)?,
            _ => bail!("unknown argument {flag}\n{USAGE}"),
        }
    }
    if args.duration.is_zero() || args.token_duration.is_zero() {
        bail!("a measuring window must be longer than 0 s");
    }
    Ok(args)
}

fn main() -> std::process::ExitCode {
    match bench() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("api-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn bench() -> Result<()> {
    let args = parse_args()?;
    if !args.vireo.is_file() {
        bail!(
            "no engine binary at {}: build it with `cargo build --release --bin vireo` or pass --vireo PATH",
            args.vireo.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads)
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

// ---------------------------------------------------------------------------------------------
// The engine process

struct Engine {
    child: Child,
    port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    spawned: Instant,
}

struct Shutdown {
    took: Duration,
    /// None when the engine was still running after [`STOP_LIMIT`] (it was then killed).
    status: Option<ExitStatus>,
}

impl Shutdown {
    fn clean(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(SocketAddr::new(LOOPBACK, 0))?;
    Ok(listener.local_addr()?.port())
}

/// CPU time (user + system) of a process from /proc/PID/stat.
fn process_cpu(pid: i32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name, which is in parentheses and may hold spaces:
    // state is field 3 of proc(5), utime 14 and stime 15.
    let rest = stat
        .rsplit_once(')')
        .context("a malformed /proc/PID/stat")?
        .1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11).context("no utime")?.parse::<u64>()?
        + fields.get(12).context("no stime")?.parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(Duration::from_secs_f64(ticks as f64 / hz))
}

/// CPU time (user + system) of this process: the load generator.
fn own_cpu() -> Duration {
    // SAFETY: getrusage writes into the struct we hand it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// The CPU both sides used over a stretch of wall time.
struct CpuSample {
    at: Instant,
    engine: Duration,
    bench: Duration,
}

impl CpuSample {
    fn take(engine_pid: i32) -> CpuSample {
        CpuSample {
            at: Instant::now(),
            engine: process_cpu(engine_pid).unwrap_or_default(),
            bench: own_cpu(),
        }
    }

    /// (engine, generator) CPU in percent of one core since `self`.
    fn usage_since(&self, later: &CpuSample) -> (f64, f64) {
        let wall = (later.at - self.at).as_secs_f64().max(1e-9);
        (
            100.0 * (later.engine.saturating_sub(self.engine)).as_secs_f64() / wall,
            100.0 * (later.bench.saturating_sub(self.bench)).as_secs_f64() / wall,
        )
    }
}

impl Engine {
    fn spawn(bin: &Path, data_dir: &Path, log: &Path) -> Result<Engine> {
        let port = free_port()?;
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(SocketAddr::new(LOOPBACK, port).to_string())
            .env("VIREO_ADMIN_PASSWORD", PASSWORD)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let spawned = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        Ok(Engine {
            child,
            port,
            data_dir: data_dir.to_owned(),
            log: log.to_owned(),
            spawned,
        })
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn ca(&self) -> PathBuf {
        self.data_dir.join("pki").join("ca.pem")
    }

    /// Polls the health URL every [`POLL`] until it answers 200; the time since the spawn.
    async fn wait_healthy(&mut self) -> Result<Duration> {
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the engine exited ({status}) before it was healthy; its log: {}",
                    self.log.display()
                );
            }
            if self.spawned.elapsed() > START_LIMIT {
                bail!(
                    "the engine was not healthy after {START_LIMIT:?}; its log: {}",
                    self.log.display()
                );
            }
            // The CA appears during the first start; until then (or while it is half written)
            // there is nothing to trust yet.
            if let Ok(tls) = tls_config(&self.ca()) {
                let target = Target::new(self.port, tls);
                let probe = async {
                    let mut sender = target.connect().await?;
                    call(
                        &mut sender,
                        Req::get("/ovirt-engine/services/health", None).build(&target),
                    )
                    .await
                };
                if let Ok(Ok((StatusCode::OK, _))) =
                    tokio::time::timeout(Duration::from_secs(2), probe).await
                {
                    return Ok(self.spawned.elapsed());
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// VmRSS and VmHWM in KiB.
    fn memory(&self) -> Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let field = |name: &str| -> Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .with_context(|| format!("no {name} in /proc/{}/status", self.pid()))?;
            let kb = line[name.len()..].trim().trim_end_matches("kB").trim();
            Ok(kb.parse()?)
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// SIGTERM, then waits up to [`STOP_LIMIT`] for the exit (killing it after that).
    fn stop(mut self) -> Result<Shutdown> {
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
        if unsafe { libc::kill(self.pid(), libc::SIGTERM) } != 0 {
            bail!("cannot send SIGTERM: {}", std::io::Error::last_os_error());
        }
        let sent = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Shutdown {
                    took: sent.elapsed(),
                    status: Some(status),
                });
            }
            if sent.elapsed() > STOP_LIMIT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Ok(Shutdown {
                    took: sent.elapsed(),
                    status: None,
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Only on error paths: an engine that was stopped has exited already.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP over TLS

fn tls_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>> {
    let pem = std::fs::read(ca)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert?)?;
    }
    if roots.is_empty() {
        bail!("no certificate in {}", ca.display());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[derive(Clone)]
struct Target {
    port: u16,
    host: HeaderValue,
    tls: tokio_rustls::TlsConnector,
}

type Sender = SendRequest<Full<Bytes>>;

impl Target {
    fn new(port: u16, tls: Arc<rustls::ClientConfig>) -> Target {
        Target {
            port,
            host: HeaderValue::try_from(format!("127.0.0.1:{port}")).expect("a valid Host"),
            tls: tokio_rustls::TlsConnector::from(tls),
        }
    }

    /// One keep-alive HTTP/1.1 connection over TLS, verified against the engine's CA.
    async fn connect(&self) -> Result<Sender> {
        let tcp = TcpStream::connect(SocketAddr::new(LOOPBACK, self.port)).await?;
        tcp.set_nodelay(true)?;
        let tls = self
            .tls
            .connect(ServerName::IpAddress(LOOPBACK.into()), tcp)
            .await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }
}

/// One request's shape, built anew for every call.
#[derive(Clone)]
struct Req {
    method: Method,
    path: &'static str,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
    /// The answer must be 200 and contain this.
    expect: Option<&'static [u8]>,
}

impl Req {
    fn get(path: &'static str, authorization: Option<&str>) -> Req {
        let mut headers = Vec::new();
        if let Some(a) = authorization {
            headers.push((
                hyper::header::AUTHORIZATION,
                HeaderValue::try_from(a).expect("a valid Authorization"),
            ));
        }
        Req {
            method: Method::GET,
            path,
            headers,
            body: Bytes::new(),
            expect: None,
        }
    }

    fn token() -> Req {
        let body = format!(
            "grant_type=password&scope=ovirt-app-api&username={}&password={PASSWORD}",
            USER.replace('@', "%40")
        );
        Req {
            method: Method::POST,
            path: "/ovirt-engine/sso/oauth/token",
            headers: vec![
                (
                    hyper::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                ),
                (
                    hyper::header::ACCEPT,
                    HeaderValue::from_static("application/json"),
                ),
            ],
            body: Bytes::from(body),
            expect: Some(b"access_token"),
        }
    }

    fn build(&self, target: &Target) -> Request<Full<Bytes>> {
        let mut req = Request::builder()
            .method(self.method.clone())
            .uri(self.path)
            .body(Full::new(self.body.clone()))
            .expect("a valid request");
        let h = req.headers_mut();
        h.insert(hyper::header::HOST, target.host.clone());
        for (name, value) in &self.headers {
            h.insert(name.clone(), value.clone());
        }
        req
    }
}

/// Sends one request and reads the whole answer.
async fn call(sender: &mut Sender, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes)> {
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

async fn issue_token(target: &Target) -> Result<String> {
    let mut sender = target.connect().await?;
    let (status, body) = call(&mut sender, Req::token().build(target)).await?;
    if status != StatusCode::OK {
        bail!(
            "token request answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    json["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("no access_token in the token answer")
}

// ---------------------------------------------------------------------------------------------
// Load

#[derive(Default)]
struct ClientResult {
    /// Latencies of the requests started inside the measuring window, in nanoseconds.
    latencies: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
    bytes: usize,
    finished: Option<Instant>,
}

impl ClientResult {
    fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }
}

struct Outcome {
    clients: usize,
    /// Sorted, nanoseconds.
    latencies: Vec<u64>,
    window: Duration,
    errors: u64,
    first_error: Option<String>,
    bytes: usize,
    /// CPU in percent of one core over the measuring window: the engine's, the generator's.
    cpu: (f64, f64),
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.window.as_secs_f64()
    }

    /// Nearest-rank percentile.
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        Duration::from_nanos(self.latencies[rank.clamp(1, self.latencies.len()) - 1])
    }
}

async fn client_loop(
    target: Target,
    req: Req,
    mut sender: Sender,
    from: Instant,
    end: Instant,
) -> ClientResult {
    let mut result = ClientResult::default();
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        let answer = tokio::time::timeout(CALL_LIMIT, call(&mut sender, req.build(&target))).await;
        let took = t0.elapsed();
        let reconnect = match answer {
            Ok(Ok((StatusCode::OK, body)))
                if req
                    .expect
                    .is_none_or(|e| body.windows(e.len()).any(|w| w == e)) =>
            {
                if t0 >= from {
                    result.latencies.push(took.as_nanos() as u64);
                }
                result.bytes = body.len();
                false
            }
            Ok(Ok((status, body))) => {
                let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                result.error(format!("{status}: {text}"));
                false
            }
            Ok(Err(e)) => {
                result.error(format!("{e:#}"));
                true
            }
            Err(_) => {
                result.error(format!("no answer within {CALL_LIMIT:?}"));
                true
            }
        };
        if reconnect || sender.is_closed() {
            match target.connect().await {
                Ok(s) => sender = s,
                Err(e) => {
                    result.error(format!("reconnect: {e:#}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    result.finished = Some(Instant::now());
    result
}

/// `clients` connections are opened first (the TLS handshakes are not measured), then each
/// sends requests back to back for `warmup + window`; only requests started after the warm-up count.
async fn load(
    target: &Target,
    engine_pid: i32,
    req: &Req,
    clients: usize,
    warmup: Duration,
    window: Duration,
) -> Result<Outcome> {
    let mut senders = Vec::with_capacity(clients);
    for _ in 0..clients {
        senders.push(
            target
                .connect()
                .await
                .context("cannot connect to the engine")?,
        );
    }
    let from = Instant::now() + warmup;
    let end = from + window;
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|s| tokio::spawn(client_loop(target.clone(), req.clone(), s, from, end)))
        .collect();
    tokio::time::sleep_until(from.into()).await;
    let cpu_from = CpuSample::take(engine_pid);
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    let mut bytes = 0;
    let mut finished = end;
    for task in tasks {
        let r = task.await?;
        latencies.extend(r.latencies);
        errors += r.errors;
        first_error = first_error.or(r.first_error);
        bytes = bytes.max(r.bytes);
        finished = finished.max(r.finished.unwrap_or(end));
    }
    let cpu = cpu_from.usage_since(&CpuSample::take(engine_pid));
    latencies.sort_unstable();
    Ok(Outcome {
        cpu,
        clients,
        latencies,
        window: finished - from,
        errors,
        first_error,
        bytes,
    })
}

// ---------------------------------------------------------------------------------------------
// The run

struct Scenario {
    name: &'static str,
    req: Req,
    clients: &'static [usize],
    window: Duration,
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort_unstable();
    s[s.len() / 2]
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} CPUs ({model})")
}

/// The 1-minute load average: on a shared machine, what else was running.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

async fn run(args: Args) -> Result<()> {
    let version = Command::new(&args.vireo)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!("api-bench: {} ({version})", args.vireo.display());
    println!(
        "machine: {}; load generator in-process with {} worker thread(s); loopback TLS 1.3, HTTP/1.1 keep-alive",
        machine(),
        args.client_threads
    );
    let load_before = load_average();
    let tmp = tempfile::Builder::new().prefix("vireo-bench-").tempdir()?;
    match measure(&args, tmp.path(), load_before).await {
        Ok(()) => Ok(()),
        Err(e) => {
            // Keep the engines' logs and data folders for a look at what went wrong.
            let kept = tmp.keep();
            Err(e.context(format!("the engines' logs are kept in {}", kept.display())))
        }
    }
}

async fn measure(args: &Args, tmp: &Path, load_before: String) -> Result<()> {
    let began = Instant::now();
    let mut shutdowns: Vec<Shutdown> = Vec::new();

    // 1. start-to-healthy
    let mut first = Vec::new();
    let mut second = Vec::new();
    for i in 0..args.runs {
        let dir = tmp.join(format!("start-{i}"));
        let log = tmp.join(format!("start-{i}.log"));
        for times in [&mut first, &mut second] {
            let mut engine = Engine::spawn(&args.vireo, &dir, &log)?;
            times.push(engine.wait_healthy().await?);
            shutdowns.push(engine.stop()?);
        }
    }
    eprintln!(
        "start-to-healthy done ({:.0} s)",
        began.elapsed().as_secs_f64()
    );

    // 2.–4. one engine on a fresh data folder for the load runs
    let dir = tmp.join("load");
    let log = tmp.join("load.log");
    let mut engine = Engine::spawn(&args.vireo, &dir, &log)?;
    engine.wait_healthy().await?;
    let target = Target::new(engine.port, tls_config(&engine.ca())?);
    let idle_memory = engine.memory()?;
    let token = issue_token(&target).await?;
    let bearer = format!("Bearer {token}");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    let scenarios = [
        Scenario {
            name: "GET /ovirt-engine/api (Bearer)",
            req: Req::get("/ovirt-engine/api", Some(&bearer)),
            clients: &[1, 32],
            window: args.duration,
        },
        Scenario {
            name: "GET /ovirt-engine/api/datacenters (Bearer)",
            req: Req::get("/ovirt-engine/api/datacenters", Some(&bearer)),
            clients: &[1, 32],
            window: args.duration,
        },
        Scenario {
            name: "GET /ovirt-engine/api (Basic)",
            req: Req::get("/ovirt-engine/api", Some(&basic)),
            clients: &[1, 32],
            window: args.duration,
        },
        Scenario {
            name: "POST /ovirt-engine/sso/oauth/token",
            req: Req::token(),
            clients: &[1, 4],
            window: args.token_duration,
        },
    ];
    let mut results = Vec::new();
    for s in &scenarios {
        for &clients in s.clients {
            let outcome = load(
                &target,
                engine.pid(),
                &s.req,
                clients,
                args.warmup,
                s.window,
            )
            .await?;
            eprintln!(
                "{} x{clients}: {:.0}/s ({:.0} s)",
                s.name,
                outcome.rate(),
                began.elapsed().as_secs_f64()
            );
            let rss = engine.memory()?.0;
            results.push((s.name, outcome, rss));
        }
    }
    let loaded_memory = engine.memory()?;
    let load_shutdown = engine.stop()?;

    // The report
    println!();
    println!(
        "start-to-healthy (spawn to the first 200 of /ovirt-engine/services/health, polled every {} ms; median of {})",
        POLL.as_millis(),
        args.runs
    );
    for (name, times) in [
        ("first start (new database, CA, bootstrap)", &first),
        ("second start (same data folder)", &second),
    ] {
        let min = times.iter().min().copied().unwrap_or_default();
        let max = times.iter().max().copied().unwrap_or_default();
        println!(
            "  {name:<44} {:>9}   (min {}, max {})",
            ms(median(times)),
            ms(min),
            ms(max)
        );
    }
    println!();
    println!(
        "{:<44} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>6} {:>6} {:>10} {:>6} {:>6}",
        "request",
        "clients",
        "req/s",
        "p50",
        "p90",
        "p99",
        "max",
        "errors",
        "bytes",
        "RSS after",
        "engine",
        "bench"
    );
    for (name, o, rss) in &results {
        println!(
            "{:<44} {:>7} {:>9.1} {:>9} {:>9} {:>9} {:>9} {:>6} {:>6} {:>10} {:>5.0}% {:>5.0}%",
            name,
            o.clients,
            o.rate(),
            ms(o.percentile(50.0)),
            ms(o.percentile(90.0)),
            ms(o.percentile(99.0)),
            ms(o.percentile(100.0)),
            o.errors,
            o.bytes,
            mib(*rss),
            o.cpu.0,
            o.cpu.1
        );
    }
    println!(
        "(latency: send to the last byte of the answer; engine/bench: CPU of the engine and of this load generator, % of one core)"
    );
    for (name, o, _) in &results {
        if let Some(e) = &o.first_error {
            println!("  first error of {name} x{}: {e}", o.clients);
        }
    }
    println!();
    println!(
        "engine memory: idle after start VmRSS {} (VmHWM {}); after the runs VmRSS {} (VmHWM {})",
        mib(idle_memory.0),
        mib(idle_memory.1),
        mib(loaded_memory.0),
        mib(loaded_memory.1)
    );
    let stop_times: Vec<Duration> = shutdowns.iter().map(|s| s.took).collect();
    println!(
        "shutdown (SIGTERM to exit): idle engines median {} (max {}) over {}; after the load runs {}",
        ms(median(&stop_times)),
        ms(stop_times.iter().max().copied().unwrap_or_default()),
        stop_times.len(),
        ms(load_shutdown.took)
    );
    shutdowns.push(load_shutdown);
    let unclean: Vec<String> = shutdowns
        .iter()
        .filter(|s| !s.clean())
        .map(|s| match s.status {
            Some(st) => format!("exited with {st} after {}", ms(s.took)),
            None => format!("still running {} after SIGTERM (killed)", ms(s.took)),
        })
        .collect();
    println!(
        "load average (1 min) before the run {load_before}, after it {} (this run itself keeps about 1.5 of the cores busy)",
        load_average()
    );
    let errors: u64 = results.iter().map(|(_, o, _)| o.errors).sum();
    println!(
        "clean exits (status 0 within {} s of SIGTERM): {} of {}; request errors: {errors}; whole run {:.0} s",
        STOP_LIMIT.as_secs(),
        shutdowns.len() - unclean.len(),
        shutdowns.len(),
        began.elapsed().as_secs_f64()
    );
    if !unclean.is_empty() {
        bail!("the engine did not stop cleanly: {}", unclean.join("; "));
    }
    if errors > 0 {
        bail!("{errors} requests failed (see the first errors above)");
    }
    Ok(())
}
