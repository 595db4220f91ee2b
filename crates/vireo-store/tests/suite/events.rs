use vireo_store::{
    CmpOp, EventField, EventFilter, EventQuery, EventRefs, NewEvent, ObjectWrite, Order, StoreError,
};

use crate::harness::TestDb;
use crate::new_id;

crate::backend_tests!(
    events_from_max_and_refs,
    events_share_object_transactions,
    events_filter_in_the_statement
);

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

/// Severity, code, text, custom id, time and object names are conditions of the statement:
/// `max` counts matching events, and every operator means the same on both backends.
async fn events_filter_in_the_statement(db: &TestDb) {
    let s = &db.store;
    let (vm_a, vm_gone) = (new_id(), new_id());
    let mut tx = s.begin().await.unwrap();
    tx.insert(
        &ObjectWrite::new("vms", &vm_a, "{}")
            .name("Web-1")
            .unique(vireo_store::NameScope::Global),
    )
    .await
    .unwrap();
    let sev = ["normal", "warning", "error", "alert"];
    for i in 0..40i64 {
        let e = NewEvent {
            code: 100 + i % 4,
            severity: sev[(i % 4) as usize].into(),
            description: if i % 5 == 0 {
                format!("Disk of VM old-{i} Almost full")
            } else {
                format!("event {i}")
            },
            time_ms: 10_000 + i,
            origin: (i % 2 == 0).then(|| "Monitor".to_string()),
            refs: EventRefs {
                vm_id: match i % 3 {
                    0 => Some(vm_a.clone()),
                    1 => Some(vm_gone.clone()),
                    _ => None,
                },
                ..Default::default()
            },
            doc: if i % 10 == 0 {
                format!(r#"{{"custom_id":{i}}}"#)
            } else {
                "{}".into()
            },
            ..Default::default()
        };
        tx.insert_event(&e).await.unwrap();
    }
    tx.commit().await.unwrap();
    let run = |filter: EventFilter, max: Option<i64>| async move {
        let q = EventQuery {
            filter,
            max,
            ..Default::default()
        };
        let mut times: Vec<i64> = s
            .list_events(&q)
            .await
            .unwrap()
            .iter()
            .map(|e| e.time_ms - 10_000)
            .collect();
        times.sort_unstable();
        times
    };
    let all: Vec<i64> = (0..40).collect();
    let only = |p: &dyn Fn(i64) -> bool| all.iter().copied().filter(|i| p(*i)).collect::<Vec<_>>();
    let sev_in = |v: &[&str]| EventFilter::SeverityIn(v.iter().map(|s| s.to_string()).collect());

    assert_eq!(run(sev_in(&["warning"]), None).await, only(&|i| i % 4 == 1));
    assert_eq!(
        run(sev_in(&["error", "alert"]), None).await,
        only(&|i| i % 4 >= 2)
    );
    // max counts matches, newest first.
    assert_eq!(run(sev_in(&["alert"]), Some(3)).await, vec![31, 35, 39]);
    let int = |field, op, value| EventFilter::Int { field, op, value };
    assert_eq!(
        run(int(EventField::Code, CmpOp::Ge, 102), None).await,
        only(&|i| i % 4 >= 2)
    );
    assert_eq!(
        run(
            EventFilter::Not(Box::new(int(EventField::Code, CmpOp::Eq, 100))),
            None
        )
        .await,
        only(&|i| i % 4 != 0)
    );
    assert_eq!(
        run(int(EventField::TimeMs, CmpOp::Lt, 10_003), None).await,
        vec![0, 1, 2]
    );
    assert_eq!(
        run(int(EventField::CustomId, CmpOp::Eq, 20), None).await,
        vec![20]
    );
    assert_eq!(
        run(int(EventField::CustomId, CmpOp::Eq, -1), None).await,
        only(&|i| i % 10 != 0)
    );
    let like = |field, pattern: &str, case_sensitive| EventFilter::Like {
        field,
        pattern: pattern.into(),
        case_sensitive,
    };
    assert_eq!(
        run(like(EventField::Description, "*almost*", false), None).await,
        only(&|i| i % 5 == 0)
    );
    assert!(run(like(EventField::Description, "*almost*", true), None)
        .await
        .is_empty());
    // A missing origin is "": it is not "monitor", so it is in the complement.
    assert_eq!(
        run(like(EventField::Origin, "monitor", false), None).await,
        only(&|i| i % 2 == 0)
    );
    assert_eq!(
        run(
            EventFilter::Not(Box::new(like(EventField::Origin, "monitor", false))),
            None
        )
        .await,
        only(&|i| i % 2 == 1)
    );
    assert_eq!(
        run(
            EventFilter::Text {
                field: EventField::Description,
                op: CmpOp::Lt,
                value: "EVENT 2".into(),
                case_sensitive: false,
            },
            None
        )
        .await,
        only(&|i| i % 5 == 0 || format!("event {i}").as_str() < "event 2")
    );
    // By the name of the object an event concerns; removed objects by their description.
    let named = |pattern: &str| EventFilter::RefNamed {
        field: EventField::VmId,
        kind: "vms".into(),
        pattern: pattern.into(),
        case_sensitive: false,
    };
    assert_eq!(run(named("web-*"), None).await, only(&|i| i % 3 == 0));
    assert_eq!(
        run(named("old-1*"), None).await,
        only(&|i| i % 3 != 0 && i % 5 == 0 && format!("{i}").starts_with('1'))
    );
    assert_eq!(
        run(EventFilter::Not(Box::new(named("web-1"))), None).await,
        only(&|i| i % 3 != 0)
    );
    // And/or nest.
    assert_eq!(
        run(
            EventFilter::And(vec![
                sev_in(&["normal"]),
                EventFilter::Or(vec![
                    like(EventField::Origin, "Monitor", true),
                    named("web-1"),
                ]),
            ]),
            None
        )
        .await,
        only(&|i| i % 4 == 0)
    );
    assert_eq!(
        run(
            EventFilter::And(vec![
                int(EventField::Code, CmpOp::Eq, 101),
                int(EventField::Code, CmpOp::Eq, 102),
            ]),
            None
        )
        .await,
        Vec::<i64>::new()
    );
}
