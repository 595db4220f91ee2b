//! vireo-store benchmark: a plain main that prints figures.
//!
//!     cargo bench -p vireo-store
//!     VIREO_TEST_POSTGRES_URL=postgres://... cargo bench -p vireo-store
//!
//! Loads 10,000 VM-like records (≈1.5 KB JSON doc, 4 indexed attributes
//! each) and reports insert throughput (single-row transactions and
//! batches), get-by-id latency, a `name LIKE 'vm-1*'` filter with a limit,
//! and count.

use std::time::{Duration, Instant};

use sqlx::Connection as _;
use vireo_store::{CmpOp, Filter, ObjectWrite, Order, Query, Store};

const TOTAL: usize = 10_000;
const SINGLE: usize = 1_000; // inserted one transaction each
const BATCH: usize = 500; // the rest, this many per transaction
const SAMPLES: usize = 2_000;

fn doc(i: usize) -> String {
    // ≈1.5 KB, shaped like an abbreviated oVirt VM.
    let disks: Vec<String> = (0..6)
        .map(|d| {
            format!(
                r#"{{"id":"{:08x}-0000-4000-8000-{:012x}","name":"vm-{i}_Disk{d}","provisioned_size":{},"format":"cow","interface":"virtio_scsi","bootable":{}}}"#,
                i, d, (d + 1) * 10_737_418_240usize, d == 0
            )
        })
        .collect();
    format!(
        r#"{{"name":"vm-{i}","description":"benchmark vm {i}","status":"up","memory":{},"cpu":{{"topology":{{"sockets":2,"cores":2,"threads":1}}}},"os":{{"type":"rhel_9x64"}},"high_availability":{{"enabled":false,"priority":0}},"disks":[{}],"comment":"{}"}}"#,
        (i % 16 + 1) * 1_073_741_824usize,
        disks.join(","),
        "x".repeat(330)
    )
}

fn vm(i: usize, cluster: &str) -> ObjectWrite {
    ObjectWrite::new("vm", uuid::Uuid::new_v4().to_string(), doc(i))
        .parent(cluster)
        .name(format!("vm-{i}"))
        .attr("status", if i.is_multiple_of(4) { "down" } else { "up" })
        .attr(
            "os",
            if i.is_multiple_of(2) {
                "rhel_9x64"
            } else {
                "windows_2022"
            },
        )
        .attr("memory", ((i % 16 + 1) * 1024) as i64)
        .attr("cpu_load", (i % 100) as f64 / 100.0)
}

struct Stats(Vec<Duration>);

impl Stats {
    fn pct(&mut self, p: f64) -> Duration {
        self.0.sort();
        let i = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0[i]
    }
    fn line(&mut self) -> String {
        format!(
            "p50 {:>8.1} µs   p99 {:>8.1} µs",
            self.pct(0.50).as_secs_f64() * 1e6,
            self.pct(0.99).as_secs_f64() * 1e6
        )
    }
}

async fn time<F, Fut>(n: usize, mut f: F) -> Stats
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        f(i).await;
        v.push(t.elapsed());
    }
    Stats(v)
}

async fn run(label: &str, store: &Store) {
    let clusters: Vec<String> = (0..10).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let mut ids = Vec::with_capacity(TOTAL);

    let t = Instant::now();
    for i in 0..SINGLE {
        let mut tx = store.begin().await.unwrap();
        ids.push(tx.insert(&vm(i, &clusters[i % 10])).await.unwrap().id);
        tx.commit().await.unwrap();
    }
    let single = t.elapsed();

    let t = Instant::now();
    let mut i = SINGLE;
    while i < TOTAL {
        let mut tx = store.begin().await.unwrap();
        for _ in 0..BATCH.min(TOTAL - i) {
            ids.push(tx.insert(&vm(i, &clusters[i % 10])).await.unwrap().id);
            i += 1;
        }
        tx.commit().await.unwrap();
    }
    let batched = t.elapsed();

    println!(
        "[{label}] {TOTAL} VM records, ~{} B docs, 4 attrs each",
        doc(0).len()
    );
    println!(
        "[{label}] insert, 1 row/tx      {:>8.0} rows/s  ({SINGLE} rows in {:.2} s)",
        SINGLE as f64 / single.as_secs_f64(),
        single.as_secs_f64()
    );
    println!(
        "[{label}] insert, {BATCH} rows/tx  {:>8.0} rows/s  ({} rows in {:.2} s)",
        (TOTAL - SINGLE) as f64 / batched.as_secs_f64(),
        TOTAL - SINGLE,
        batched.as_secs_f64()
    );

    // Deterministic pseudo-random picks.
    let pick = |i: usize| &ids[(i.wrapping_mul(2_654_435_761)) % ids.len()];
    let mut s = time(SAMPLES, |i| {
        let id = pick(i).clone();
        async move {
            assert!(store.get("vm", &id).await.unwrap().is_some());
        }
    })
    .await;
    println!("[{label}] get by id                 {}", s.line());

    let like = Query::new(Filter::like("name", "vm-1*")).limit(50);
    let mut s = time(SAMPLES / 4, |_| async {
        assert_eq!(store.list("vm", &like).await.unwrap().len(), 50);
    })
    .await;
    println!("[{label}] name LIKE 'vm-1*' limit 50 {}", s.line());

    let like_sorted = like.clone().order_by("name", Order::Asc);
    let mut s = time(SAMPLES / 4, |_| async {
        assert_eq!(store.list("vm", &like_sorted).await.unwrap().len(), 50);
    })
    .await;
    println!("[{label}]   same, ordered by name   {}", s.line());

    let attr = Query::new(Filter::And(vec![
        Filter::eq("os", "windows_2022"),
        Filter::cmp("memory", CmpOp::Ge, 16 * 1024i64),
    ]));
    let n = store.list("vm", &attr).await.unwrap().len();
    let mut s = time(SAMPLES / 4, |_| async {
        assert_eq!(store.list("vm", &attr).await.unwrap().len(), n);
    })
    .await;
    println!("[{label}] os = .. AND memory >= .. ({n} rows) {}", s.line());
    let mut s = time(SAMPLES / 4, |_| async {
        assert_eq!(store.count("vm", &attr.filter).await.unwrap(), n as i64);
    })
    .await;
    println!("[{label}]   same, count only        {}", s.line());

    let mut s = time(SAMPLES / 4, |_| async {
        assert_eq!(store.count("vm", &Filter::All).await.unwrap(), TOTAL as i64);
    })
    .await;
    println!("[{label}] count(all)                {}", s.line());

    let like_f = Filter::like("name", "vm-1*");
    let c = store.count("vm", &like_f).await.unwrap();
    let mut s = time(SAMPLES / 4, |_| async {
        assert_eq!(store.count("vm", &like_f).await.unwrap(), c);
    })
    .await;
    println!("[{label}] count(name LIKE 'vm-1*') = {c}  {}", s.line());

    let up = Filter::eq("status", "up");
    let c = store.count("vm", &up).await.unwrap();
    let mut s = time(SAMPLES / 4, |_| async {
        assert_eq!(store.count("vm", &up).await.unwrap(), c);
    })
    .await;
    println!("[{label}] count(status = 'up') = {c}  {}", s.line());
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = std::env::temp_dir().join(format!("vireo-bench-{}", uuid::Uuid::new_v4()));
    let store = Store::open(dir.join("bench.db").to_str().unwrap())
        .await
        .unwrap();
    run("sqlite", &store).await;
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);

    match std::env::var("VIREO_TEST_POSTGRES_URL") {
        Err(_) => println!("[postgres] skipped: VIREO_TEST_POSTGRES_URL not set"),
        Ok(admin_url) => {
            let name = format!("vireo_bench_{}", uuid::Uuid::new_v4().simple());
            let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
            sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .await
                .unwrap();
            let base = admin_url.split('?').next().unwrap_or(&admin_url);
            let url = format!("{}/{name}", base.rsplit_once('/').map_or(base, |(b, _)| b));
            let store = Store::open(&url).await.unwrap();
            run("postgres", &store).await;
            store.close().await;
            let _ = sqlx::raw_sql(&format!("DROP DATABASE {name} WITH (FORCE)"))
                .execute(&mut admin)
                .await;
        }
    }
}
