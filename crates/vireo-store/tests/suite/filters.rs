use vireo_store::{AttrValue, CmpOp, Filter, ObjectWrite, Order, Query, Store, StoreError};

use crate::harness::TestDb;
use crate::new_id;

crate::backend_tests!(filter_ops, wildcards_and_case, ordering_and_paging);

const NONE: &str = "<none>";

struct Fixture {
    c1: String,
    c2: String,
    ids: Vec<String>,
}

/// Eight VMs (A..H, inserted in that order) and one host.
async fn fixture(s: &Store) -> Fixture {
    let (c1, c2) = (new_id(), new_id());
    let vm = |name: Option<&str>, parent: Option<&str>| {
        let mut w = ObjectWrite::new("vm", new_id(), "{}");
        w.name = name.map(str::to_owned);
        w.parent_id = parent.map(str::to_owned);
        w
    };
    let objs = vec![
        /* A */
        vm(Some("vm-1"), Some(&c1))
            .attr("status", "up")
            .attr("mem", 1024i64)
            .attr("cpu", 0.5)
            .attr("tag", "prod")
            .attr("tag", "web")
            .attr("os", "RHEL8"),
        /* B */
        vm(Some("vm-10"), Some(&c1))
            .attr("status", "down")
            .attr("mem", 2048i64)
            .attr("cpu", 1.5)
            .attr("tag", "prod")
            .attr("os", "rhel9"),
        /* C */
        vm(Some("vm-2"), Some(&c2))
            .attr("status", "up")
            .attr("mem", 4096i64)
            .attr("cpu", 2.5)
            .attr("tag", "dev")
            .attr("os", "Windows"),
        /* D */
        vm(Some("100%_done"), Some(&c2))
            .attr("status", "up")
            .attr("mem", 512i64)
            .attr("os", "50%_off"),
        /* E */
        vm(Some("100xxdone"), Some(&c2))
            .attr("status", "Up")
            .attr("mem", 512i64),
        /* F */
        vm(Some("Ünïcode-VM"), None)
            .attr("status", "paused")
            .attr("os", "ÜBER_os"),
        /* G */ vm(None, None).attr("status", "up"),
        /* H */
        vm(Some("star*name"), Some(&c1))
            .attr("status", "down")
            .attr("cpu", 0.25),
    ];
    let mut ids = Vec::new();
    let mut tx = s.begin().await.unwrap();
    for o in &objs {
        ids.push(tx.insert(o).await.unwrap().id);
    }
    tx.insert(
        &ObjectWrite::new("host", new_id(), "{}")
            .name("vm-1")
            .attr("status", "up"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    Fixture { c1, c2, ids }
}

fn name_of(r: &vireo_store::Record) -> String {
    r.name.clone().unwrap_or_else(|| NONE.into())
}

/// Matching names in byte order (unnamed last), checked against count().
async fn names(s: &Store, f: Filter) -> Vec<String> {
    let recs = s
        .list("vm", &Query::new(f.clone()).order_by("name", Order::Asc))
        .await
        .unwrap_or_else(|e| panic!("{f:?}: {e}"));
    let n = s.count("vm", &f).await.unwrap();
    assert_eq!(n as usize, recs.len(), "count vs list for {f:?}");
    recs.iter().map(name_of).collect()
}

fn v(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

const ALL: [&str; 8] = [
    "100%_done",
    "100xxdone",
    "star*name",
    "vm-1",
    "vm-10",
    "vm-2",
    "Ünïcode-VM",
    NONE,
];

fn all_but(skip: &[&str]) -> Vec<String> {
    ALL.iter()
        .filter(|n| !skip.contains(n))
        .map(|s| s.to_string())
        .collect()
}

async fn filter_ops(db: &TestDb) {
    let s = &db.store;
    let fx = fixture(s).await;

    assert_eq!(names(s, Filter::All).await, v(&ALL));
    // Text
    assert_eq!(
        names(s, Filter::eq("status", "up")).await,
        v(&["100%_done", "vm-1", "vm-2", NONE])
    );
    assert_eq!(
        names(s, Filter::cmp("status", CmpOp::Ne, "up")).await,
        v(&["100xxdone", "star*name", "vm-10", "Ünïcode-VM"])
    );
    assert_eq!(
        names(s, Filter::cmp("os", CmpOp::Lt, "Windows")).await,
        v(&["100%_done", "vm-1"]),
        "byte order: '5' < 'R' < 'W' < 'r' < 'Ü'"
    );
    assert_eq!(
        names(s, Filter::cmp("os", CmpOp::Ge, "rhel9")).await,
        v(&["vm-10", "Ünïcode-VM"])
    );
    // Int
    assert_eq!(
        names(s, Filter::cmp("mem", CmpOp::Eq, 512i64)).await,
        v(&["100%_done", "100xxdone"])
    );
    assert_eq!(
        names(s, Filter::cmp("mem", CmpOp::Ne, 512i64)).await,
        all_but(&["100%_done", "100xxdone"])
    );
    assert_eq!(
        names(s, Filter::cmp("mem", CmpOp::Lt, 1024i64)).await,
        v(&["100%_done", "100xxdone"])
    );
    assert_eq!(
        names(s, Filter::cmp("mem", CmpOp::Le, 1024i64)).await,
        v(&["100%_done", "100xxdone", "vm-1"])
    );
    assert_eq!(
        names(s, Filter::cmp("mem", CmpOp::Gt, 2048i64)).await,
        v(&["vm-2"])
    );
    assert_eq!(
        names(s, Filter::cmp("mem", CmpOp::Ge, 2048i64)).await,
        v(&["vm-10", "vm-2"])
    );
    // Real
    assert_eq!(
        names(s, Filter::cmp("cpu", CmpOp::Lt, 1.0)).await,
        v(&["star*name", "vm-1"])
    );
    assert_eq!(
        names(s, Filter::cmp("cpu", CmpOp::Eq, 0.25)).await,
        v(&["star*name"])
    );
    assert_eq!(
        names(s, Filter::cmp("cpu", CmpOp::Ge, 1.5)).await,
        v(&["vm-10", "vm-2"])
    );
    assert_eq!(
        names(s, Filter::cmp("cpu", CmpOp::Le, 0.5)).await,
        v(&["star*name", "vm-1"])
    );
    assert_eq!(names(s, Filter::cmp("cpu", CmpOp::Gt, 2.5)).await, v(&[]));
    // Values are typed: an Int filter does not see Real attributes.
    assert_eq!(names(s, Filter::cmp("cpu", CmpOp::Gt, 0i64)).await, v(&[]));
    // Multi-valued fields: existential, and Ne == Not(Eq).
    assert_eq!(
        names(s, Filter::eq("tag", "prod")).await,
        v(&["vm-1", "vm-10"])
    );
    assert_eq!(names(s, Filter::eq("tag", "web")).await, v(&["vm-1"]));
    assert_eq!(
        names(s, Filter::cmp("tag", CmpOp::Ne, "web")).await,
        all_but(&["vm-1"])
    );
    assert_eq!(names(s, Filter::eq("nosuchfield", "x")).await, v(&[]));
    assert_eq!(
        names(s, Filter::not(Filter::eq("nosuchfield", "x"))).await,
        v(&ALL)
    );
    // The name column.
    assert_eq!(names(s, Filter::eq("name", "vm-1")).await, v(&["vm-1"]));
    assert_eq!(
        names(s, Filter::cmp("name", CmpOp::Lt, "vm-1")).await,
        v(&["100%_done", "100xxdone", "star*name"])
    );
    assert_eq!(
        names(s, Filter::cmp("name", CmpOp::Le, "vm-1")).await.len(),
        4
    );
    assert_eq!(
        names(s, Filter::cmp("name", CmpOp::Gt, "vm-10")).await,
        v(&["vm-2", "Ünïcode-VM"])
    );
    assert_eq!(
        names(s, Filter::cmp("name", CmpOp::Ge, "vm-2")).await,
        v(&["vm-2", "Ünïcode-VM"])
    );
    assert_eq!(
        names(s, Filter::cmp("name", CmpOp::Ne, "vm-1")).await,
        all_but(&["vm-1"])
    );
    // Boolean structure.
    assert_eq!(
        names(
            s,
            Filter::And(vec![
                Filter::eq("status", "up"),
                Filter::cmp("mem", CmpOp::Gt, 1000i64)
            ])
        )
        .await,
        v(&["vm-1", "vm-2"])
    );
    assert_eq!(
        names(
            s,
            Filter::And(vec![
                Filter::like("os", "*e*"),
                Filter::not(Filter::eq("tag", "web")),
                Filter::cmp("mem", CmpOp::Ge, 1024i64),
                Filter::ilike("name", "VM*"),
                Filter::eq("tag", "prod"),
            ])
        )
        .await,
        v(&["vm-10"]),
        "three attribute predicates intersected, plus a negation and a name match"
    );
    let or = Filter::Or(vec![
        Filter::eq("tag", "dev"),
        Filter::cmp("cpu", CmpOp::Lt, 0.3),
    ]);
    assert_eq!(names(s, or.clone()).await, v(&["star*name", "vm-2"]));
    assert_eq!(
        names(s, Filter::not(or)).await,
        all_but(&["star*name", "vm-2"])
    );
    assert_eq!(names(s, Filter::And(vec![])).await, v(&ALL));
    assert_eq!(names(s, Filter::Or(vec![])).await, v(&[]));
    assert_eq!(names(s, Filter::not(Filter::All)).await, v(&[]));
    assert_eq!(
        names(s, Filter::not(Filter::not(Filter::eq("tag", "dev")))).await,
        v(&["vm-2"])
    );
    // Ids and parents.
    let (a, c) = (fx.ids[0].clone(), fx.ids[2].clone());
    assert_eq!(
        names(
            s,
            Filter::IdIn(vec![a.clone(), c, "no-such-id".into(), "'".into()])
        )
        .await,
        v(&["vm-1", "vm-2"])
    );
    assert_eq!(names(s, Filter::IdIn(vec![])).await, v(&[]));
    assert_eq!(
        names(s, Filter::not(Filter::IdIn(vec![a]))).await,
        all_but(&["vm-1"])
    );
    assert_eq!(
        names(s, Filter::ParentIs(fx.c1.clone())).await,
        v(&["star*name", "vm-1", "vm-10"])
    );
    assert_eq!(
        names(s, Filter::not(Filter::ParentIs(fx.c1.clone()))).await,
        v(&["100%_done", "100xxdone", "vm-2", "Ünïcode-VM", NONE])
    );
    assert_eq!(
        names(
            s,
            Filter::And(vec![
                Filter::ParentIs(fx.c2.clone()),
                Filter::not(Filter::like("name", "100*")),
            ])
        )
        .await,
        v(&["vm-2"])
    );
    // Other kinds are never mixed in.
    assert_eq!(
        s.count("host", &Filter::eq("status", "up")).await.unwrap(),
        1
    );
    assert_eq!(s.count("nosuchkind", &Filter::All).await.unwrap(), 0);
    // Bad filters are errors, not panics.
    for bad in [
        Filter::cmp("name", CmpOp::Eq, 1i64),
        Filter::cmp("cpu", CmpOp::Lt, f64::NAN),
        Filter::eq("status", "nul\0"),
    ] {
        assert!(
            matches!(s.count("vm", &bad).await, Err(StoreError::Invalid(_))),
            "{bad:?}"
        );
    }
    let mut deep = Filter::All;
    for _ in 0..1000 {
        deep = Filter::not(deep);
    }
    assert!(matches!(
        s.count("vm", &deep).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn wildcards_and_case(db: &TestDb) {
    let s = &db.store;
    fixture(s).await;

    assert_eq!(
        names(s, Filter::like("name", "vm-1*")).await,
        v(&["vm-1", "vm-10"])
    );
    assert_eq!(
        names(s, Filter::like("name", "vm-*")).await,
        v(&["vm-1", "vm-10", "vm-2"])
    );
    assert_eq!(names(s, Filter::like("name", "*0")).await, v(&["vm-10"]));
    assert_eq!(names(s, Filter::like("name", "v*-*0")).await, v(&["vm-10"]));
    assert_eq!(names(s, Filter::like("name", "*")).await, all_but(&[NONE]));
    assert_eq!(
        names(s, Filter::like("name", "vm-1")).await,
        v(&["vm-1"]),
        "no wildcard: equality"
    );
    assert_eq!(
        names(s, Filter::not(Filter::like("name", "vm*")))
            .await
            .len(),
        5
    );
    // % and _ are literal characters, not SQL wildcards.
    assert_eq!(
        names(s, Filter::like("name", "100%_*")).await,
        v(&["100%_done"])
    );
    assert_eq!(
        names(s, Filter::like("name", "100%*")).await,
        v(&["100%_done"])
    );
    assert_eq!(names(s, Filter::like("name", "100_*")).await, v(&[]));
    assert_eq!(
        names(s, Filter::like("name", "*%*")).await,
        v(&["100%_done"])
    );
    assert_eq!(
        names(s, Filter::like("name", "*_*")).await,
        v(&["100%_done"])
    );
    assert_eq!(
        names(s, Filter::like("name", "100*")).await,
        v(&["100%_done", "100xxdone"])
    );
    assert_eq!(
        names(s, Filter::like("name", "100??done")).await,
        v(&[]),
        "? is literal"
    );
    assert_eq!(
        names(s, Filter::like("os", "50%_*")).await,
        v(&["100%_done"])
    );
    assert_eq!(names(s, Filter::like("os", "50_*")).await, v(&[]));
    // Escaped star.
    assert_eq!(
        names(s, Filter::like("name", r"star\*name")).await,
        v(&["star*name"])
    );
    assert_eq!(
        names(s, Filter::like("name", r"*\**")).await,
        v(&["star*name"])
    );
    assert_eq!(
        names(s, Filter::like("name", r"star\**")).await,
        v(&["star*name"])
    );
    // Case sensitivity, ASCII and not.
    assert_eq!(
        names(s, Filter::like("name", "*-VM")).await,
        v(&["Ünïcode-VM"])
    );
    assert_eq!(names(s, Filter::like("name", "*-vm")).await, v(&[]));
    assert_eq!(
        names(s, Filter::ilike("name", "*-vm")).await,
        v(&["Ünïcode-VM"])
    );
    assert_eq!(names(s, Filter::like("name", "ün*")).await, v(&[]));
    assert_eq!(
        names(s, Filter::ilike("name", "ÜN*")).await,
        v(&["Ünïcode-VM"])
    );
    assert_eq!(
        names(s, Filter::ilike("name", "VM-1*")).await,
        v(&["vm-1", "vm-10"])
    );
    assert_eq!(
        names(s, Filter::ilike("name", "ünïcode-vm")).await,
        v(&["Ünïcode-VM"])
    );
    assert_eq!(names(s, Filter::like("status", "up")).await.len(), 4);
    assert_eq!(names(s, Filter::ilike("status", "UP")).await.len(), 5);
    assert_eq!(names(s, Filter::ilike("status", "u*")).await.len(), 5);
    assert_eq!(
        names(s, Filter::like("status", "U*")).await,
        v(&["100xxdone"])
    );
    assert_eq!(names(s, Filter::like("os", "rhel*")).await, v(&["vm-10"]));
    assert_eq!(
        names(s, Filter::ilike("os", "rhel*")).await,
        v(&["vm-1", "vm-10"])
    );
    assert_eq!(
        names(s, Filter::ilike("os", "über_*")).await,
        v(&["Ünïcode-VM"])
    );
    assert_eq!(
        names(s, Filter::ilike("os", "*%*")).await,
        v(&["100%_done"])
    );
    // Pattern text that looks like SQL is just text.
    assert_eq!(names(s, Filter::like("name", "' OR 1=1 --*")).await, v(&[]));
}

async fn ordering_and_paging(db: &TestDb) {
    let s = &db.store;
    fixture(s).await;
    let list = |q: Query| async move {
        s.list("vm", &q)
            .await
            .unwrap()
            .iter()
            .map(name_of)
            .collect::<Vec<_>>()
    };
    let all = || Query::new(Filter::All);
    let ins = v(&[
        "vm-1",
        "vm-10",
        "vm-2",
        "100%_done",
        "100xxdone",
        "Ünïcode-VM",
        NONE,
        "star*name",
    ]);
    assert_eq!(list(all()).await, ins, "default: insertion order");
    assert_eq!(list(all().order_by("created", Order::Asc)).await, ins);
    let mut rev = ins.clone();
    rev.reverse();
    assert_eq!(list(all().order_by("created", Order::Desc)).await, rev);
    assert_eq!(list(all().order_by("name", Order::Asc)).await, v(&ALL));
    assert_eq!(
        list(all().order_by("name", Order::Desc)).await,
        v(&[
            "Ünïcode-VM",
            "vm-2",
            "vm-10",
            "vm-1",
            "star*name",
            "100xxdone",
            "100%_done",
            NONE
        ]),
        "missing values last in both directions"
    );
    // Attribute ordering; ties broken by insertion order, missing last.
    assert_eq!(
        list(all().order_by("mem", Order::Asc)).await,
        v(&[
            "100%_done",
            "100xxdone",
            "vm-1",
            "vm-10",
            "vm-2",
            "Ünïcode-VM",
            NONE,
            "star*name"
        ])
    );
    assert_eq!(
        list(all().order_by("mem", Order::Desc)).await,
        v(&[
            "vm-2",
            "vm-10",
            "vm-1",
            "100xxdone",
            "100%_done",
            "star*name",
            NONE,
            "Ünïcode-VM"
        ])
    );
    assert_eq!(
        list(all().order_by("cpu", Order::Desc)).await,
        v(&[
            "vm-2",
            "vm-10",
            "vm-1",
            "star*name",
            NONE,
            "Ünïcode-VM",
            "100xxdone",
            "100%_done"
        ])
    );
    assert_eq!(
        list(Query::new(Filter::eq("tag", "prod")).order_by("tag", Order::Asc)).await,
        v(&["vm-1", "vm-10"])
    );
    assert_eq!(
        list(all().order_by("tag", Order::Asc).limit(3)).await,
        v(&["vm-2", "vm-1", "vm-10"]),
        "multi-valued: smallest value"
    );
    assert_eq!(
        list(all().order_by("tag", Order::Desc).limit(2)).await,
        v(&["vm-1", "vm-10"]),
        "multi-valued: largest value (web > prod)"
    );
    // Paging.
    let by_name = || all().order_by("name", Order::Asc);
    assert_eq!(
        list(by_name().limit(3).offset(2)).await,
        v(&["star*name", "vm-1", "vm-10"])
    );
    assert_eq!(list(by_name().offset(6)).await, v(&["Ünïcode-VM", NONE]));
    assert_eq!(list(by_name().offset(100)).await, v(&[]));
    assert_eq!(list(by_name().limit(0)).await, v(&[]));
    assert_eq!(
        list(
            Query::new(Filter::like("name", "vm*"))
                .order_by("name", Order::Desc)
                .limit(2)
        )
        .await,
        v(&["vm-2", "vm-10"])
    );
    for bad in [by_name().limit(-1), by_name().offset(-1)] {
        assert!(matches!(
            s.list("vm", &bad).await,
            Err(StoreError::Invalid(_))
        ));
    }
    // Unused import guard: AttrValue is part of the public filter API.
    let _ = AttrValue::Int(0);
}
