//! kill -9 durability: a child process (this very test binary, re-run with
//! an env var) commits transactions and prints each acknowledged id; the
//! parent SIGKILLs it at a random moment, reopens, and checks that every
//! acknowledged transaction is there, whole.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use vireo_store::{EventRefs, Filter, NewEvent, ObjectWrite, Query, Store};

use crate::harness::TestDb;
use crate::new_id;

crate::backend_tests!(kill_9_loses_nothing_committed);

const CHILD_ENV: &str = "VIREO_DURABILITY_CHILD_URL";
const CHILD_TEST: &str = "durability::durability_child";

fn random_u64() -> u64 {
    let b = uuid::Uuid::new_v4().into_bytes();
    u64::from_le_bytes(b[..8].try_into().unwrap())
}

/// The child's body; a no-op in normal test runs.
#[test]
fn durability_child() {
    let Ok(url) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Store::open(&url).await.unwrap();
        let mut out = std::io::stdout().lock();
        let doc = format!(r#"{{"pad":"{}"}}"#, "x".repeat(1000));
        for i in 0..1_000_000i64 {
            // 1..=3 objects, each with its event, per transaction.
            let ids: Vec<String> = (0..=(i % 3)).map(|_| new_id()).collect();
            let mut tx = store.begin().await.unwrap();
            for id in &ids {
                tx.insert(&ObjectWrite::new("dur", id, doc.as_str()).attr("i", i))
                    .await
                    .unwrap();
                let ev = NewEvent {
                    code: i,
                    severity: "normal".into(),
                    refs: EventRefs {
                        vm_id: Some(id.clone()),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                tx.insert_event(&ev).await.unwrap();
            }
            tx.commit().await.unwrap();
            // Only after commit() returned: this is the acknowledgement.
            writeln!(out, "ACK {}", ids.join(" ")).unwrap();
            out.flush().unwrap();
        }
    });
}

/// Run one child, kill it after a random number of acks plus a random
/// delay, and return every id it acknowledged.
fn run_child_and_kill(url: &str) -> Vec<String> {
    let log = std::env::temp_dir().join(format!("vireo-durability-{}.log", new_id()));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, url)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let target = 10 + random_u64() % 150;
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut acked = Vec::new();
    let mut acks = 0;
    let mut killed = false;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).unwrap_or(0);
        if n == 0 {
            break; // EOF: the child is gone
        }
        // A line cut short by the kill carries no acknowledgement.
        if let Some(ids) = line.strip_prefix("ACK ").and_then(|l| l.strip_suffix('\n')) {
            acked.extend(ids.split(' ').map(str::to_owned));
            acks += 1;
        }
        if acks >= target && !killed {
            // Land anywhere inside the next transaction(s).
            std::thread::sleep(Duration::from_micros(random_u64() % 5_000));
            child.kill().unwrap(); // SIGKILL
            killed = true;
        }
    }
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert!(
        killed,
        "child exited ({status}) after {acks} acks, before the kill:\n{stderr}"
    );
    acked
}

async fn kill_9_loses_nothing_committed(db: &TestDb) {
    let mut acked = Vec::new();
    for _round in 0..3 {
        let url = db.url.clone();
        acked.extend(
            tokio::task::spawn_blocking(move || run_child_and_kill(&url))
                .await
                .unwrap(),
        );
        // Reopen after every crash, as the engine would.
        let store = db.reopen().await;
        let present: HashSet<String> = store
            .list("dur", &Query::new(Filter::All))
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        for id in &acked {
            assert!(present.contains(id), "acknowledged {id} lost");
        }
        // Atomicity: each object came with its event, or neither exists.
        let with_event: HashSet<String> = store
            .list_events(&Default::default())
            .await
            .unwrap()
            .into_iter()
            .filter_map(|e| e.refs.vm_id)
            .collect();
        assert_eq!(present, with_event, "half-written transaction found");
        store.close().await;
    }
    assert!(acked.len() >= 30, "only {} acks", acked.len());
    println!(
        "{}: {} acknowledged ids over 3 SIGKILLs, all present",
        db.store.backend_name(),
        acked.len()
    );
}
