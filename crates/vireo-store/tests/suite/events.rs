use vireo_store::{EventQuery, EventRefs, NewEvent, ObjectWrite, Order, StoreError};

use crate::harness::TestDb;
use crate::new_id;

crate::backend_tests!(events_from_max_and_refs, events_share_object_transactions);

fn ev(code: i64, vm: Option<&str>, host: Option<&str>, corr: Option<&str>) -> NewEvent {
    NewEvent {
        code,
        severity: if code % 2 == 0 { "normal" } else { "warning" }.into(),
        description: format!("event {code}"),
        time_ms: 1_000 + code,
        correlation_id: corr.map(Into::into),
        origin: Some("oVirt".into()),
        refs: EventRefs {
            vm_id: vm.map(Into::into),
            host_id: host.map(Into::into),
            ..Default::default()
        },
        doc: if code == 0 {
            String::new()
        } else {
            format!(r#"{{"n":{code}}}"#)
        },
    }
}

async fn events_from_max_and_refs(db: &TestDb) {
    let s = &db.store;
    let (v1, v2, h1) = (new_id(), new_id(), new_id());
    let mut ids = Vec::new();
    let mut tx = s.begin().await.unwrap();
    for code in 0..10 {
        let vm = if code % 2 == 0 { &v1 } else { &v2 };
        let host = (code % 3 == 0).then_some(h1.as_str());
        let corr = (code >= 7).then_some("corr-1");
        ids.push(
            tx.insert_event(&ev(code, Some(vm), host, corr))
                .await
                .unwrap(),
        );
    }
    tx.commit().await.unwrap();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow: {ids:?}");

    let codes = |evs: Vec<vireo_store::Event>| evs.iter().map(|e| e.code).collect::<Vec<_>>();
    let q = EventQuery::default();
    assert_eq!(
        codes(s.list_events(&q).await.unwrap()),
        (0..10).rev().collect::<Vec<_>>()
    );
    let oldest = EventQuery {
        order: Order::Asc,
        ..Default::default()
    };
    assert_eq!(
        codes(s.list_events(&oldest).await.unwrap()),
        (0..10).collect::<Vec<_>>()
    );
    let from = EventQuery {
        from: Some(ids[4]),
        ..Default::default()
    };
    assert_eq!(
        codes(s.list_events(&from).await.unwrap()),
        vec![9, 8, 7, 6, 5]
    );
    let from_max = EventQuery {
        from: Some(ids[4]),
        max: Some(2),
        order: Order::Asc,
        ..Default::default()
    };
    assert_eq!(codes(s.list_events(&from_max).await.unwrap()), vec![5, 6]);
    let newest3 = EventQuery {
        max: Some(3),
        ..Default::default()
    };
    assert_eq!(codes(s.list_events(&newest3).await.unwrap()), vec![9, 8, 7]);
    let from_last = EventQuery {
        from: Some(ids[9]),
        ..Default::default()
    };
    assert!(s.list_events(&from_last).await.unwrap().is_empty());

    let by_vm = EventQuery {
        refs: EventRefs {
            vm_id: Some(v1.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(
        codes(s.list_events(&by_vm).await.unwrap()),
        vec![8, 6, 4, 2, 0]
    );
    let by_vm_host = EventQuery {
        refs: EventRefs {
            vm_id: Some(v1.clone()),
            host_id: Some(h1.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(codes(s.list_events(&by_vm_host).await.unwrap()), vec![6, 0]);
    let by_corr = EventQuery {
        correlation_id: Some("corr-1".into()),
        order: Order::Asc,
        ..Default::default()
    };
    assert_eq!(codes(s.list_events(&by_corr).await.unwrap()), vec![7, 8, 9]);
    let by_other = EventQuery {
        refs: EventRefs {
            cluster_id: Some(new_id()),
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(s.list_events(&by_other).await.unwrap().is_empty());
    let bad = EventQuery {
        max: Some(-1),
        ..Default::default()
    };
    assert!(matches!(
        s.list_events(&bad).await,
        Err(StoreError::Invalid(_))
    ));

    // Round trip of every field; an empty doc is stored as {}.
    let e0 = s.get_event(ids[0]).await.unwrap().unwrap();
    assert_eq!(e0.id, ids[0]);
    assert_eq!(e0.doc, "{}");
    assert_eq!(e0.origin.as_deref(), Some("oVirt"));
    assert_eq!(e0.refs.host_id.as_deref(), Some(h1.as_str()));
    let e9 = s.get_event(ids[9]).await.unwrap().unwrap();
    assert_eq!(
        (
            e9.code,
            e9.severity.as_str(),
            e9.description.as_str(),
            e9.time_ms
        ),
        (9, "warning", "event 9", 1_009)
    );
    assert_eq!(e9.doc, r#"{"n":9}"#);
    assert_eq!(e9.correlation_id.as_deref(), Some("corr-1"));
    assert!(s.get_event(ids[9] + 1000).await.unwrap().is_none());

    // Delete; ids are never reused, even for the newest.
    let mut tx = s.begin().await.unwrap();
    assert!(tx.delete_event(ids[9]).await.unwrap());
    assert!(!tx.delete_event(ids[9]).await.unwrap());
    tx.commit().await.unwrap();
    assert!(s.get_event(ids[9]).await.unwrap().is_none());
    let mut tx = s.begin().await.unwrap();
    let next = tx.insert_event(&ev(10, None, None, None)).await.unwrap();
    assert!(next > ids[9], "{next} must be above the deleted {}", ids[9]);
    // Retention by time: codes 0..=4 have time_ms < 1005.
    assert_eq!(tx.delete_events_before(1_005).await.unwrap(), 5);
    tx.commit().await.unwrap();
    assert_eq!(
        s.list_events(&EventQuery::default()).await.unwrap().len(),
        5
    );
    let mut tx = s.begin().await.unwrap();
    let bad = NewEvent {
        description: "nul\0".into(),
        ..ev(1, None, None, None)
    };
    assert!(matches!(
        tx.insert_event(&bad).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn events_share_object_transactions(db: &TestDb) {
    let s = &db.store;
    let vm = new_id();
    // Rolled back together...
    let mut tx = s.begin().await.unwrap();
    tx.insert(&ObjectWrite::new("vm", &vm, "{}")).await.unwrap();
    let eid = tx
        .insert_event(&ev(1, Some(&vm), None, None))
        .await
        .unwrap();
    assert!(
        tx.get_event(eid).await.unwrap().is_some(),
        "visible inside the tx"
    );
    drop(tx);
    assert!(s.get("vm", &vm).await.unwrap().is_none());
    assert!(s.get_event(eid).await.unwrap().is_none());
    // ...and committed together.
    let mut tx = s.begin().await.unwrap();
    tx.insert(&ObjectWrite::new("vm", &vm, "{}")).await.unwrap();
    let eid = tx
        .insert_event(&ev(1, Some(&vm), None, None))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(s.get("vm", &vm).await.unwrap().is_some());
    assert_eq!(
        s.get_event(eid).await.unwrap().unwrap().refs.vm_id,
        Some(vm)
    );
}
