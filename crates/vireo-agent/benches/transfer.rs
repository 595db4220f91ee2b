//! `cargo bench -p vireo-agent --bench transfer`: image upload throughput through the agent's
//! data path against a plain file copy of the same size on the same storage.
//!
//! The data path is the agent's own: HTTPS (rustls, as the agent serves it) with the
//! ovirt-imageio requests (`PUT` with `Content-Range` and `flush=n`, then `PATCH flush`),
//! 4 connections as the imageio client opens, into a raw-format ticket on a qcow2 volume
//! (qemu-nbd). The copy is `cp` followed by `sync` of the copy, and a read/write loop with
//! fsync. Medians of `VIREO_BENCH_RUNS` (default 3) interleaved runs, with the CPU seconds each
//! used (the data path: client, server and qemu-nbd together). `VIREO_BENCH_MIB` (default
//! 1024) sets the size, `VIREO_BENCH_DIR` the folder
//! (default /dev/shm, falling back to the temp folder).

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

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

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

async fn upload(url: &str, http: &reqwest::Client, src: &Path, size: u64) -> Duration {
    let next = Arc::new(AtomicU64::new(0));
    let src = Arc::new(std::fs::File::open(src).unwrap());
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let (next, src, http, url) = (next.clone(), src.clone(), http.clone(), url.to_string());
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
        .patch(url)
        .header("content-type", "application/json")
        .body(r#"{"op":"flush"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    t.elapsed()
}

async fn download(url: &str, http: &reqwest::Client, size: u64) -> Duration {
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

/// CPU seconds of this process (client and server) and its reaped children (cp, qemu-nbd).
fn cpu_s() -> f64 {
    let mut total = 0.0;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: getrusage fills the struct we pass.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut u) };
        for t in [u.ru_utime, u.ru_stime] {
            total += t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        }
    }
    total
}

fn bench_dir() -> PathBuf {
    let base = std::env::var_os("VIREO_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/dev/shm"));
    let base = if base.is_dir() {
        base
    } else {
        std::env::temp_dir()
    };
    base.join(format!("vireo-transfer-bench-{}", std::process::id()))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mib: u64 = std::env::var("VIREO_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let size = mib << 20;
    let dir = bench_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("source.raw");
    source(&src, size);
    let runs: usize = std::env::var("VIREO_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    println!(
        "image transfer benchmark: {mib} MiB in {}, median of {runs} interleaved runs",
        dir.display()
    );
    let tickets = Tickets::new();
    let (port, tls) = serve(tickets.clone()).await;
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap();
    // Each run measures every case once, so the machine's noise hits them alike.
    let cases = [
        ("upload raw -> qcow2 (qemu-nbd)", "qcow2"),
        ("upload raw -> raw (file I/O)  ", "raw"),
    ];
    let (mut copies, mut rws) = (Vec::new(), Vec::new());
    let mut ups: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    let mut downs: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    let mut up_cpu: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut cp_cpu = Vec::new();
    for run_no in 0..runs {
        let cpu0 = cpu_s();
        copies.push(cp(&src, &dir.join("copy")));
        cp_cpu.push(cpu_s() - cpu0);
        rws.push(read_write(&src, &dir.join("copy"), size));
        for (i, (_, vformat)) in cases.iter().enumerate() {
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
            let cpu0 = cpu_s();
            tickets.add(spec.clone(), &vol, meta_format).await.unwrap();
            let url = format!("https://127.0.0.1:{port}/images/{id}");
            ups[i].push(upload(&url, &http, &src, size).await);
            // Removing the ticket reaps qemu-nbd, so its CPU is counted too.
            tickets.remove(&id).await.unwrap();
            up_cpu[i].push(cpu_s() - cpu0);
            let read = TicketSpec {
                id: format!("{id}-r"),
                ops: vec!["read".into()],
                ..spec
            };
            tickets.add(read, &vol, meta_format).await.unwrap();
            downs[i].push(download(&format!("{url}-r"), &http, size).await);
            tickets.remove(&format!("{id}-r")).await.unwrap();
            drop_file(&vol);
        }
    }
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let copy = median(copies);
    let rw = median(rws);
    let fmedian = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "  cp + sync                      {:8.0} MiB/s  ({:.2} s, {:.2} CPU s)",
        mib_s(size, copy),
        copy.as_secs_f64(),
        fmedian(cp_cpu)
    );
    println!(
        "  read/write 8 MiB + fsync       {:8.0} MiB/s  ({:.2} s)",
        mib_s(size, rw),
        rw.as_secs_f64()
    );
    for (i, (label, _)) in cases.iter().enumerate() {
        let up = median(ups[i].clone());
        let down = median(downs[i].clone());
        println!(
            "  {label} {:8.0} MiB/s  ({:.2} s, {:.2} CPU s)  = {:.0}% of cp, {:.0}% of read/write;  download {:.0} MiB/s",
            mib_s(size, up),
            up.as_secs_f64(),
            fmedian(up_cpu[i].clone()),
            100.0 * copy.as_secs_f64() / up.as_secs_f64(),
            100.0 * rw.as_secs_f64() / up.as_secs_f64(),
            mib_s(size, down)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
