use std::sync::Arc;

use vireo_store::{Filter, NameScope, ObjectWrite, Query, StoreError};

use crate::harness::TestDb;
use crate::{new_id, put};

crate::backend_tests!(
    rollback_on_drop_and_error,
    isolation_until_commit,
    aborted_transactions_refuse_to_commit,
    concurrent_writers_and_readers,
);

async fn rollback_on_drop_and_error(db: &TestDb) {
    let s = &db.store;
    let (a, b) = (new_id(), new_id());

    // Dropped without commit.
    {
        let mut tx = s.begin().await.unwrap();
        tx.insert(&ObjectWrite::new("vm", &a, "{}")).await.unwrap();
        tx.set_password_hash(&a, "h").await.unwrap();
    }
    assert!(s.get("vm", &a).await.unwrap().is_none());
    assert!(s.get_password_hash(&a).await.unwrap().is_none());

    // Explicit rollback.
    let mut tx = s.begin().await.unwrap();
    tx.insert(&ObjectWrite::new("vm", &a, "{}")).await.unwrap();
    tx.rollback().await.unwrap();
    assert!(s.get("vm", &a).await.unwrap().is_none());

    // write(): an error half-way leaves nothing behind.
    put(
        s,
        ObjectWrite::new("vm", &b, "{}")
            .name("taken")
            .unique(NameScope::Global),
    )
    .await;
    let a2 = a.clone();
    let r = s
        .write(move |tx| {
            Box::pin(async move {
                tx.insert(&ObjectWrite::new("vm", &a2, "{}").attr("x", 1i64))
                    .await?;
                tx.insert_event(&Default::default()).await?;
                // Fails with Conflict; `?` ends the closure.
                tx.insert(
                    &ObjectWrite::new("vm", new_id(), "{}")
                        .name("taken")
                        .unique(NameScope::Global),
                )
                .await?;
                Ok(())
            })
        })
        .await;
    assert!(matches!(r, Err(StoreError::Conflict { .. })), "{r:?}");
    assert!(s.get("vm", &a).await.unwrap().is_none());
    assert_eq!(s.count("vm", &Filter::eq("x", 1i64)).await.unwrap(), 0);
    assert!(s.list_events(&Default::default()).await.unwrap().is_empty());

    // write(): caller-made errors roll back too.
    let a3 = a.clone();
    let r: Result<(), _> = s
        .write(move |tx| {
            Box::pin(async move {
                tx.insert(&ObjectWrite::new("vm", &a3, "{}")).await?;
                Err(StoreError::Invalid("vm is running".into()))
            })
        })
        .await;
    assert!(matches!(r, Err(StoreError::Invalid(_))));
    assert!(s.get("vm", &a).await.unwrap().is_none());

    // write(): success commits and hands the value back.
    let a4 = a.clone();
    let rec = s
        .write(move |tx| {
            Box::pin(async move { tx.insert(&ObjectWrite::new("vm", &a4, "{}")).await })
        })
        .await
        .unwrap();
    assert_eq!(s.get("vm", &a).await.unwrap(), Some(rec));
}

async fn isolation_until_commit(db: &TestDb) {
    let s = &db.store;
    let id = new_id();
    let mut tx = s.begin().await.unwrap();
    tx.insert(&ObjectWrite::new("vm", &id, "{}").name("iso").attr("k", "v"))
        .await
        .unwrap();
    // The transaction reads its own writes ...
    assert!(tx.get("vm", &id).await.unwrap().is_some());
    assert_eq!(tx.count("vm", &Filter::eq("k", "v")).await.unwrap(), 1);
    assert_eq!(
        tx.list("vm", &Query::new(Filter::like("name", "is*")))
            .await
            .unwrap()
            .len(),
        1
    );
    // ... nobody else does before commit.
    assert!(s.get("vm", &id).await.unwrap().is_none());
    assert_eq!(s.count("vm", &Filter::All).await.unwrap(), 0);
    tx.commit().await.unwrap();
    assert!(s.get("vm", &id).await.unwrap().is_some());
}

/// A statement the database rejects poisons the transaction: commit then
/// fails and rolls back. Only PostgreSQL can be provoked into such an error
/// through the API (two transactions racing for one unique name), since
/// every input error is caught before it reaches the database.
async fn aborted_transactions_refuse_to_commit(db: &TestDb) {
    if !db.is_postgres() {
        return;
    }
    let s = &db.store;
    let (a, b, marker) = (new_id(), new_id(), new_id());
    put(
        s,
        ObjectWrite::new("vm", &a, "{}")
            .name("a")
            .unique(NameScope::Global),
    )
    .await;
    put(
        s,
        ObjectWrite::new("vm", &b, "{}")
            .name("b")
            .unique(NameScope::Global),
    )
    .await;
    let rename = |id: &str| {
        ObjectWrite::new("vm", id, "{}")
            .name("x")
            .unique(NameScope::Global)
    };

    let mut t1 = s.begin().await.unwrap();
    t1.update(&rename(&a), None).await.unwrap();
    let s2 = s.clone();
    let (b2, m2) = (b.clone(), marker.clone());
    let t2 = tokio::spawn(async move {
        let mut t2 = s2.begin().await.unwrap();
        t2.insert(&ObjectWrite::new("vm", &m2, "{}")).await.unwrap();
        // Pre-check passes (t1 not committed), then the index blocks on t1.
        let r = t2.update(&rename(&b2), None).await;
        (r.map(|_| ()), t2.commit().await)
    });
    // Commit t1 only once t2 is really waiting on the index entry;
    // committing earlier would let t2's pre-check see the name instead.
    let mut watch = {
        use sqlx::Connection as _;
        sqlx::PgConnection::connect(&db.url).await.unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut watch)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "t2 never blocked on t1"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    t1.commit().await.unwrap();
    let (update, commit) = t2.await.unwrap();
    assert!(
        matches!(update, Err(StoreError::Conflict { .. })),
        "{update:?}"
    );
    assert!(matches!(commit, Err(StoreError::TxAborted)), "{commit:?}");
    assert!(
        s.get("vm", &marker).await.unwrap().is_none(),
        "nothing of t2 is kept"
    );
    assert_eq!(
        s.get("vm", &b).await.unwrap().unwrap().name.as_deref(),
        Some("b")
    );
}

async fn concurrent_writers_and_readers(db: &TestDb) {
    const TASKS: usize = 8;
    const EACH: usize = 25;
    let s = Arc::new(db.store.clone());
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let writer = s.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..EACH {
                let w = ObjectWrite::new("vm", new_id(), "{}")
                    .name(format!("t{t}-{i}"))
                    .unique(NameScope::Global)
                    .attr("task", t as i64);
                writer
                    .write(move |tx| {
                        Box::pin(async move {
                            let rec = tx.insert(&w).await?;
                            // Read-modify-write inside the same transaction.
                            let cur = tx.get("vm", &rec.id).await?.expect("own write");
                            tx.update(&w, Some(cur.generation)).await?;
                            tx.insert_event(&Default::default()).await?;
                            Ok(())
                        })
                    })
                    .await
                    .expect("concurrent write");
            }
        }));
        let reader = s.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..EACH {
                reader
                    .count("vm", &Filter::cmp("task", vireo_store::CmpOp::Ge, 0i64))
                    .await
                    .expect("concurrent read");
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(
        s.count("vm", &Filter::All).await.unwrap(),
        (TASKS * EACH) as i64
    );
    let events = s.list_events(&Default::default()).await.unwrap();
    assert_eq!(events.len(), TASKS * EACH);
    assert_eq!(
        s.count("vm", &Filter::eq("task", 3i64)).await.unwrap(),
        EACH as i64
    );
}
