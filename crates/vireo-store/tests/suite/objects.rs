use vireo_store::{AttrValue, NameScope, ObjectWrite, Store, StoreError};

use crate::harness::TestDb;
use crate::{new_id, put};

crate::backend_tests!(
    crud,
    uniqueness_conflicts,
    generation_conflicts,
    bad_input_is_an_error,
    reopen_keeps_data_and_refuses_newer_schema,
);

async fn crud(db: &TestDb) {
    let s = &db.store;
    let (cluster, id) = (new_id(), new_id());
    let obj = ObjectWrite::new("vm", &id, r#"{"memory":1024}"#)
        .parent(&cluster)
        .name("web1")
        .attr("status", "up")
        .attr("memory", 1024i64)
        .attr("tag", "b")
        .attr("tag", "a")
        .attr("load", 0.5);
    let rec = put(s, obj.clone()).await;
    assert_eq!(rec.generation, 1);
    assert_eq!(rec.created_ms, rec.updated_ms);
    assert!(rec.created_ms > 0);

    let got = s.get("vm", &id).await.unwrap().expect("record");
    assert_eq!(got, rec);
    assert_eq!(got.parent_id.as_deref(), Some(cluster.as_str()));
    assert!(
        s.get("host", &id).await.unwrap().is_none(),
        "kind is part of the key"
    );
    assert!(s.get("vm", &new_id()).await.unwrap().is_none());

    assert_eq!(
        s.get_by_name("vm", "web1", None).await.unwrap().unwrap().id,
        id
    );
    assert_eq!(
        s.get_by_name("vm", "web1", Some(&cluster))
            .await
            .unwrap()
            .unwrap()
            .id,
        id
    );
    assert!(s
        .get_by_name("vm", "web1", Some("other"))
        .await
        .unwrap()
        .is_none());
    assert!(s.get_by_name("vm", "WEB1", None).await.unwrap().is_none());

    assert_eq!(
        s.get_attrs("vm", &id).await.unwrap(),
        vec![
            ("load".to_string(), AttrValue::Real(0.5)),
            ("memory".to_string(), AttrValue::Int(1024)),
            ("status".to_string(), AttrValue::Text("up".into())),
            ("tag".to_string(), AttrValue::Text("a".into())),
            ("tag".to_string(), AttrValue::Text("b".into())),
        ]
    );

    // Update replaces everything mutable, attrs included.
    let mut tx = s.begin().await.unwrap();
    let changed = ObjectWrite::new("vm", &id, r#"{"memory":2048}"#)
        .name("web2")
        .attr("status", "down");
    let up = tx.update(&changed, Some(1)).await.unwrap();
    assert_eq!(up.generation, 2);
    assert_eq!(up.created_ms, rec.created_ms);
    assert!(up.updated_ms >= rec.updated_ms);
    tx.commit().await.unwrap();
    let got = s.get("vm", &id).await.unwrap().unwrap();
    assert_eq!(got, up);
    assert_eq!(got.parent_id, None);
    assert_eq!(got.doc, r#"{"memory":2048}"#);
    assert_eq!(
        s.get_attrs("vm", &id).await.unwrap(),
        vec![("status".to_string(), AttrValue::Text("down".into()))]
    );
    assert!(s.get_by_name("vm", "web1", None).await.unwrap().is_none());

    // Delete reports whether the record existed, and takes its attrs along.
    let mut tx = s.begin().await.unwrap();
    assert!(tx.delete("vm", &id).await.unwrap());
    assert!(!tx.delete("vm", &id).await.unwrap());
    tx.commit().await.unwrap();
    assert!(s.get("vm", &id).await.unwrap().is_none());
    assert!(s.get_attrs("vm", &id).await.unwrap().is_empty());

    // Same id under another kind is a different record.
    put(s, ObjectWrite::new("disk", &id, "{}")).await;
    put(s, ObjectWrite::new("disk_attachment", &id, "{}")).await;
    assert!(s.get("disk", &id).await.unwrap().is_some());
}

fn is_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict { .. }))
}

async fn uniqueness_conflicts(db: &TestDb) {
    let s = &db.store;
    let id = new_id();
    put(
        s,
        ObjectWrite::new("vm", &id, "{}")
            .name("a")
            .unique(NameScope::Global),
    )
    .await;

    let mut tx = s.begin().await.unwrap();
    // Duplicate id.
    let err = tx.insert(&ObjectWrite::new("vm", &id, "{}")).await;
    match &err {
        Err(StoreError::Conflict { what }) => assert!(what.contains(&id), "{what}"),
        other => panic!("expected conflict, got {other:?}"),
    }
    // Duplicate globally-unique name.
    assert!(is_conflict(
        tx.insert(
            &ObjectWrite::new("vm", new_id(), "{}")
                .name("a")
                .unique(NameScope::Global)
        )
        .await
    ));
    // A conflict does not spoil the transaction: keep going and commit.
    let ok = new_id();
    tx.insert(
        &ObjectWrite::new("vm", &ok, "{}")
            .name("b")
            .unique(NameScope::Global),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(s.get("vm", &ok).await.unwrap().is_some());

    // Names without a scope may repeat; other kinds have their own names.
    put(s, ObjectWrite::new("vm", new_id(), "{}").name("a")).await;
    put(s, ObjectWrite::new("vm", new_id(), "{}").name("a")).await;
    put(
        s,
        ObjectWrite::new("host", new_id(), "{}")
            .name("a")
            .unique(NameScope::Global),
    )
    .await;

    // Per-parent names.
    let (p1, p2) = (new_id(), new_id());
    let n = |p: &str| {
        ObjectWrite::new("nic", new_id(), "{}")
            .parent(p)
            .name("eth0")
            .unique(NameScope::Parent)
    };
    put(s, n(&p1)).await;
    put(s, n(&p2)).await;
    let mut tx = s.begin().await.unwrap();
    assert!(is_conflict(tx.insert(&n(&p1)).await));
    drop(tx);

    // Custom scope keys.
    let c = |key: &str| {
        ObjectWrite::new("net", new_id(), "{}")
            .name("ovirtmgmt")
            .unique(NameScope::Custom(key.into()))
    };
    put(s, c("dc1")).await;
    put(s, c("dc2")).await;
    let mut tx = s.begin().await.unwrap();
    assert!(is_conflict(tx.insert(&c("dc1")).await));
    drop(tx);

    // Renaming into a taken name conflicts too; renaming to itself does not.
    let mut tx = s.begin().await.unwrap();
    let rename = ObjectWrite::new("vm", &ok, "{}")
        .name("a")
        .unique(NameScope::Global);
    assert!(is_conflict(tx.update(&rename, None).await));
    let same = ObjectWrite::new("vm", &ok, "{}")
        .name("b")
        .unique(NameScope::Global);
    tx.update(&same, None).await.unwrap();
    tx.commit().await.unwrap();
}

async fn generation_conflicts(db: &TestDb) {
    let s = &db.store;
    let id = new_id();
    put(s, ObjectWrite::new("vm", &id, "{}")).await;
    let mut tx = s.begin().await.unwrap();
    let w = ObjectWrite::new("vm", &id, r#"{"v":2}"#);
    assert_eq!(tx.update(&w, Some(1)).await.unwrap().generation, 2);
    match tx.update(&w, Some(1)).await {
        Err(StoreError::StaleGeneration {
            expected, actual, ..
        }) => assert_eq!((expected, actual), (1, 2)),
        other => panic!("expected StaleGeneration, got {other:?}"),
    }
    // Unconditional update still bumps the generation.
    assert_eq!(tx.update(&w, None).await.unwrap().generation, 3);
    let missing = ObjectWrite::new("vm", new_id(), "{}");
    assert!(matches!(
        tx.update(&missing, Some(1)).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        tx.update(&missing, None).await,
        Err(StoreError::NotFound { .. })
    ));
    tx.commit().await.unwrap();
    assert_eq!(s.get("vm", &id).await.unwrap().unwrap().generation, 3);
}

async fn bad_input_is_an_error(db: &TestDb) {
    let s = &db.store;
    for url in [
        "",
        "sqlite::memory:",
        "sqlite://",
        "sqlite:///tmp/x.db?mode=rwc",
    ] {
        assert!(
            matches!(Store::open(url).await, Err(StoreError::Invalid(_))),
            "{url:?}"
        );
    }
    assert!(Store::open("postgres://[::1:bad").await.is_err());
    assert!(Store::open("/proc/definitely/not/writable/vireo.db")
        .await
        .is_err());

    let mut tx = s.begin().await.unwrap();
    let bad = [
        ObjectWrite::new("", new_id(), "{}"),
        ObjectWrite::new("vm", "", "{}"),
        ObjectWrite::new("vm", new_id(), "{}").attr("name", "x"),
        ObjectWrite::new("vm", new_id(), "{}").attr("created", 1i64),
        ObjectWrite::new("vm", new_id(), "{}").attr("", 1i64),
        ObjectWrite::new("vm", new_id(), "{}").attr("cpu", f64::NAN),
        ObjectWrite::new("vm", new_id(), "{}").attr("cpu", f64::INFINITY),
        ObjectWrite::new("vm", new_id(), "a\0b"),
        ObjectWrite::new("vm", new_id(), "{}").name("nul\0name"),
    ];
    for obj in &bad {
        assert!(
            matches!(tx.insert(obj).await, Err(StoreError::Invalid(_))),
            "{obj:?}"
        );
    }
    // Rejected input never reaches the database, so the Tx is still fine.
    let ok = new_id();
    tx.insert(&ObjectWrite::new("vm", &ok, "{}").name("quote'\"; --"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        s.get_by_name("vm", "quote'\"; --", None)
            .await
            .unwrap()
            .unwrap()
            .id,
        ok
    );
    // Odd lookups are just misses.
    assert!(s
        .get("vm'; DROP TABLE objects; --", "x")
        .await
        .unwrap()
        .is_none());
    assert!(s.get("", "").await.unwrap().is_none());
}

async fn reopen_keeps_data_and_refuses_newer_schema(db: &TestDb) {
    let id = new_id();
    put(&db.store, ObjectWrite::new("vm", &id, "{}").name("persist")).await;
    db.store.close().await;
    for _ in 0..2 {
        let again = db.reopen().await;
        assert_eq!(
            again.get("vm", &id).await.unwrap().unwrap().name.as_deref(),
            Some("persist")
        );
        again.close().await;
    }

    // A database migrated by a newer build must not be opened by this one.
    let bump = "INSERT INTO vireo_schema (version, name, checksum, applied_ms) \
                VALUES (999, 'future', 'x', 0)";
    if db.is_postgres() {
        use sqlx::Connection as _;
        let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::raw_sql(bump).execute(&mut c).await.unwrap();
    } else {
        use sqlx::Connection as _;
        let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::raw_sql(bump).execute(&mut c).await.unwrap();
    }
    match Store::open(&db.url).await {
        Err(StoreError::Migration(msg)) => assert!(msg.contains("999"), "{msg}"),
        Err(e) => panic!("expected a migration error, got {e:?}"),
        Ok(_) => panic!("expected a migration error, got a store"),
    }
}
