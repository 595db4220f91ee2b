//! `cargo bench -p vireo-agent --bench transfer`: image upload throughput through the agent's
//! data path against a plain file copy of the same size on the same filesystem.
//!
//! Fair by construction: for each folder (`VIREO_BENCH_DIRS`, comma-separated; default
//! `/dev/shm` and the temp folder, i.e. tmpfs and the disk-backed filesystem), the source, the
//! copy and the volumes all live there; the source is read once before every run so both start
//! from the page cache; the copy is `cp` then `sync -d` (fdatasync) of the copy, as the upload
//! ends with `PATCH flush` (fdatasync or NBD flush); each run measures every case once
//! (interleaved) and the table gives medians of `VIREO_BENCH_RUNS` (default 5) runs.
//!
//! The upload is the agent's data path: HTTPS (rustls) with the ovirt-imageio requests (`OPTIONS`,
//! then 8 MiB `PUT`s with `Content-Range` and `flush=n` on as many connections as `max_writers`
//! allows, at most `VIREO_BENCH_CONNS` (default 4, imageio's client default), then `PATCH
//! flush`) into a raw-format ticket on a raw volume (direct file I/O) and on a qcow2 volume
//! (the ticket's qemu-nbd). CPU seconds per GiB: the client (its own runtime's threads), the
//! agent (the rest of this process) and qemu-nbd (reaped child). `VIREO_BENCH_MIB` (default
//! 1024) sets the size.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo};
use tower::ServiceExt;
use vireo_agent::transfer::{http, Tickets};
use vireo_agent_proto::TicketSpec;

const REQUEST: u64 = 8 << 20;
const WORKERS: usize = 4;

fn source(path: &Path, size: u64) {
    let mut f = std::io::BufWriter::with_capacity(8 << 20, std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..size / buf.len() as u64 {
        for c in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&buf).unwrap();
    }
    f.flush().unwrap();
}

fn run(cmd: &str, args: &[&str]) {
    let o = std::process::Command::new(cmd).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn drop_file(p: &Path) {
    let _ = std::fs::remove_file(p);
}

/// `cp` then `sync` of the copy: what a plain file copy costs.
fn cp(src: &Path, dst: &Path) -> Duration {
    drop_file(dst);
    let t = Instant::now();
    run("cp", &[&src.to_string_lossy(), &dst.to_string_lossy()]);
    run("sync", &["-d", &dst.to_string_lossy()]);
    let d = t.elapsed();
    drop_file(dst);
    d
}

/// A read/write loop of 8 MiB pieces, then fsync.
fn read_write(src: &Path, dst: &Path, size: u64) -> Duration {
    drop_file(dst);
    let t = Instant::now();
    let a = std::fs::File::open(src).unwrap();
    let b = std::fs::File::create(dst).unwrap();
    let mut buf = vec![0u8; REQUEST as usize];
    let mut off = 0;
    while off < size {
        let n = a.read_at(&mut buf, off).unwrap();
        b.write_all_at(&buf[..n], off).unwrap();
        off += n as u64;
    }
    b.sync_all().unwrap();
    let d = t.elapsed();
    drop_file(dst);
    d
}

/// The data path over TLS on 127.0.0.1, with a self-signed certificate the client trusts.
async fn serve(tickets: Arc<Tickets>) -> (u16, rustls::ClientConfig) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let der = rustls::pki_types::CertificateDer::from(cert.cert.der().to_vec());
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap();
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let app = http::router(tickets);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        app.clone().oneshot(req.map(axum::body::Body::new))
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (port, client)
}

/// Connections the client opens: `max_writers` from `OPTIONS`, at most `VIREO_BENCH_CONNS`.
async fn writers(url: &str, http: &reqwest::Client) -> usize {
    let want: usize = std::env::var("VIREO_BENCH_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(WORKERS);
    let r = http
        .request(reqwest::Method::OPTIONS, url)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc: serde_json::Value = r.json().await.unwrap();
    let max = doc["max_writers"].as_u64().unwrap_or(1) as usize;
    want.min(max).max(1)
}

async fn upload(url: String, http: reqwest::Client, src: PathBuf, size: u64) -> Duration {
    let next = Arc::new(AtomicU64::new(0));
    let src = Arc::new(std::fs::File::open(src).unwrap());
    let t = Instant::now();
    let conns = writers(&url, &http).await;
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (next, src, http, url) = (next.clone(), src.clone(), http.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let off = next.fetch_add(REQUEST, Ordering::SeqCst);
                if off >= size {
                    return;
                }
                let n = REQUEST.min(size - off);
                let f = src.clone();
                let data = tokio::task::spawn_blocking(move || {
                    let mut b = vec![0u8; n as usize];
                    f.read_exact_at(&mut b, off).unwrap();
                    b
                })
                .await
                .unwrap();
                let r = http
                    .put(format!("{url}?flush=n"))
                    .header("content-range", format!("bytes {off}-{}/*", off + n - 1))
                    .body(data)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = http
        .patch(&url)
        .header("content-type", "application/json")
        .body(r#"{"op":"flush"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    t.elapsed()
}

async fn download(url: String, http: reqwest::Client, size: u64) -> Duration {
    let next = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let (next, http, url) = (next.clone(), http.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            loop {
                let off = next.fetch_add(REQUEST, Ordering::SeqCst);
                if off >= size {
                    return;
                }
                let n = REQUEST.min(size - off);
                let r = http
                    .get(&url)
                    .header("range", format!("bytes={off}-{}", off + n - 1))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 206);
                assert_eq!(r.bytes().await.unwrap().len() as u64, n);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    t.elapsed()
}

/// CPU seconds of this process (`RUSAGE_SELF`) and of its reaped children (cp, qemu-nbd).
fn cpu(who: libc::c_int) -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut u) };
    [u.ru_utime, u.ru_stime]
        .iter()
        .map(|t| t.tv_sec as f64 + t.tv_usec as f64 / 1e6)
        .sum()
}

/// CPU seconds of this process's threads named `name` (the client's runtime).
fn threads_cpu(name: &str) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut total = 0.0;
    for e in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        if let Some((_, rest)) = stat.rsplit_once(')') {
            let f: Vec<&str> = rest.split_whitespace().collect();
            if f.len() > 12 {
                total += (f[11].parse::<f64>().unwrap_or(0.0)
                    + f[12].parse::<f64>().unwrap_or(0.0))
                    / hz;
            }
        }
    }
    total
}

const CLIENT_THREADS: &str = "bench-client";

/// CPU seconds so far: (client, agent, children).
fn cpu_now() -> (f64, f64, f64) {
    let client = threads_cpu(CLIENT_THREADS);
    (
        client,
        cpu(libc::RUSAGE_SELF) - client,
        cpu(libc::RUSAGE_CHILDREN),
    )
}

fn cpu_since(a: (f64, f64, f64)) -> (f64, f64, f64) {
    let b = cpu_now();
    (b.0 - a.0, b.1 - a.1, b.2 - a.2)
}

/// Reads the file once, so every case starts with it in the page cache.
fn warm(path: &Path) {
    let f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 8 << 20];
    let mut off = 0;
    loop {
        let n = f.read_at(&mut buf, off).unwrap();
        if n == 0 {
            break;
        }
        off += n as u64;
    }
}

fn bench_dirs() -> Vec<PathBuf> {
    let list = std::env::var("VIREO_BENCH_DIRS")
        .or_else(|_| std::env::var("VIREO_BENCH_DIR"))
        .unwrap_or_else(|_| format!("/dev/shm,{}", std::env::temp_dir().display()));
    list.split(',')
        .filter(|d| !d.trim().is_empty())
        .map(|d| PathBuf::from(d.trim()))
        .filter(|d| d.is_dir())
        .map(|d| d.join(format!("vireo-transfer-bench-{}", std::process::id())))
        .collect()
}

fn fs_type(dir: &Path) -> String {
    let o = std::process::Command::new("stat")
        .args(["-f", "-c", "%T", &dir.to_string_lossy()])
        .output();
    o.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[derive(Default)]
struct Case {
    secs: Vec<f64>,
    client: Vec<f64>,
    agent: Vec<f64>,
    child: Vec<f64>,
    down: Vec<f64>,
}

fn main() {
    let mib: u64 = std::env::var("VIREO_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let size = mib << 20;
    let gib = size as f64 / (1u64 << 30) as f64;
    let runs: usize = std::env::var("VIREO_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    // The agent's side and the client's run on runtimes of their own, so their CPU is told
    // apart (by thread name).
    let agent_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(CLIENT_THREADS)
        .thread_keep_alive(Duration::from_secs(24 * 3600))
        .build()
        .unwrap();
    let tickets = Tickets::new();
    let (port, tls) = agent_rt.block_on(serve(tickets.clone()));
    let http = {
        let _g = client_rt.enter();
        reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .build()
            .unwrap()
    };
    println!(
        "image transfer benchmark: {mib} MiB, median of {runs} interleaved runs, {} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut rows = Vec::new();
    for dir in bench_dirs() {
        std::fs::create_dir_all(&dir).unwrap();
        let fs = fs_type(&dir);
        let src = dir.join("source.raw");
        source(&src, size);
        let mut copy = Case::default();
        let mut rw = Vec::new();
        let formats = ["raw", "qcow2"];
        let mut cases: Vec<Case> = formats.iter().map(|_| Case::default()).collect();
        for run_no in 0..runs {
            warm(&src);
            let c0 = cpu_now();
            copy.secs.push(cp(&src, &dir.join("copy")).as_secs_f64());
            let c = cpu_since(c0);
            copy.child.push(c.2);
            warm(&src);
            rw.push(read_write(&src, &dir.join("copy"), size).as_secs_f64());
            for (i, vformat) in formats.iter().enumerate() {
                let vol = dir.join(format!("vol-{vformat}"));
                let v = vol.to_string_lossy().into_owned();
                run(
                    "qemu-img",
                    &["create", "-q", "-f", vformat, &v, &size.to_string()],
                );
                let id = format!("bench-{vformat}-{run_no}");
                let spec = TicketSpec {
                    id: id.clone(),
                    domain_id: "sd".into(),
                    disk_id: "disk".into(),
                    volume_id: "vol".into(),
                    ops: vec!["write".into()],
                    format: "raw".into(),
                    timeout_s: 3600,
                    inactivity_timeout_s: 60,
                };
                let meta_format = if *vformat == "qcow2" { "cow" } else { "raw" };
                warm(&src);
                agent_rt
                    .block_on(tickets.add(spec.clone(), &vol, meta_format))
                    .unwrap();
                let url = format!("https://127.0.0.1:{port}/images/{id}");
                let c0 = cpu_now();
                let d = client_rt
                    .block_on(client_rt.spawn(upload(url.clone(), http.clone(), src.clone(), size)))
                    .unwrap();
                // Removing the ticket reaps qemu-nbd, so its CPU is counted too.
                agent_rt.block_on(tickets.remove(&id)).unwrap();
                let c = cpu_since(c0);
                let case = &mut cases[i];
                case.secs.push(d.as_secs_f64());
                case.client.push(c.0);
                case.agent.push(c.1);
                case.child.push(c.2);
                let read = TicketSpec {
                    id: format!("{id}-r"),
                    ops: vec!["read".into()],
                    ..spec
                };
                agent_rt
                    .block_on(tickets.add(read, &vol, meta_format))
                    .unwrap();
                let d = client_rt
                    .block_on(client_rt.spawn(download(format!("{url}-r"), http.clone(), size)))
                    .unwrap();
                case.down.push(d.as_secs_f64());
                agent_rt
                    .block_on(tickets.remove(&format!("{id}-r")))
                    .unwrap();
                drop_file(&vol);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        let cp_s = median(copy.secs);
        let rate = |s: f64| mib as f64 / s;
        println!(
            "  {} ({fs}): cp + sync -d {:.0} MiB/s ({:.2} s, {:.2} CPU s/GiB); read/write 8 MiB + fdatasync {:.0} MiB/s",
            dir.parent().unwrap().display(),
            rate(cp_s),
            cp_s,
            median(copy.child) / gib,
            rate(median(rw))
        );
        let mut row = format!(
            "| {} ({fs}) | {:.0} |",
            dir.parent().unwrap().display(),
            rate(cp_s)
        );
        for (i, f) in formats.iter().enumerate() {
            let c = &cases[i];
            let up = median(c.secs.clone());
            println!(
                "    upload -> {f:<5} {:6.0} MiB/s ({:.2} s) = {:3.0} % of cp; CPU s/GiB client {:.2}, agent {:.2}, qemu-nbd {:.2}; download {:.0} MiB/s",
                rate(up),
                up,
                100.0 * cp_s / up,
                median(c.client.clone()) / gib,
                median(c.agent.clone()) / gib,
                median(c.child.clone()) / gib,
                rate(median(c.down.clone()))
            );
            row += &format!(" {:.0} | {:.0} % |", rate(up), 100.0 * cp_s / up);
        }
        for c in &cases {
            row += &format!(
                " {:.2} / {:.2} / {:.2} |",
                median(c.client.clone()) / gib,
                median(c.agent.clone()) / gib,
                median(c.child.clone()) / gib
            );
        }
        rows.push(row);
    }
    println!();
    println!("| filesystem | copy MiB/s | upload raw MiB/s | % of copy | upload qcow2 MiB/s | % of copy | CPU s/GiB raw: client / agent / qemu-nbd | qcow2: client / agent / qemu-nbd |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in rows {
        println!("{r}");
    }
}
