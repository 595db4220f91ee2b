//! Query-plan checks: the filters must be answered from indexes, never by
//! scanning the objects or attrs tables. SQLite always; PostgreSQL when
//! VIREO_TEST_POSTGRES_URL is set (with sequential scans disabled, so the
//! check is "an index can serve this", independent of table sizes).

use sqlx::{Connection as _, Row as _};

use crate::backend::{bind_pg, bind_sqlite};
use crate::filter::{CmpOp, Filter, Order, Query};
use crate::objects::list_sql;
use crate::sql::{Dialect, Sql};
use crate::{ObjectWrite, Store};

/// (what, query, a fragment the SQLite plan must contain)
fn cases() -> Vec<(&'static str, Query, &'static str)> {
    vec![
        (
            "name like prefix",
            Query::new(Filter::like("name", "vm-1*")).limit(50),
            "objects_name (",
        ),
        (
            "name ilike prefix",
            Query::new(Filter::ilike("name", "VM-1*")).limit(50),
            "objects_name_lc (",
        ),
        (
            "attr eq",
            Query::new(Filter::eq("status", "up")),
            "attrs_t (",
        ),
        (
            "attr ilike",
            Query::new(Filter::ilike("os", "rhel*")),
            "attrs_t_lc (",
        ),
        (
            "attr int gt",
            Query::new(Filter::cmp("mem", CmpOp::Gt, 4096i64)),
            "attrs_i (",
        ),
        (
            "attr real le",
            Query::new(Filter::cmp("cpu", CmpOp::Le, 0.5)),
            "attrs_r (",
        ),
        (
            "and",
            Query::new(Filter::And(vec![
                Filter::eq("status", "up"),
                Filter::like("name", "vm-1*"),
            ])),
            "INTEGER PRIMARY KEY",
        ),
        (
            "and of attrs",
            Query::new(Filter::And(vec![
                Filter::eq("os", "Windows"),
                Filter::cmp("mem", CmpOp::Ge, 4096i64),
                Filter::like("name", "vm-1*"),
            ])),
            "INTERSECT",
        ),
        (
            "or",
            Query::new(Filter::Or(vec![
                Filter::eq("status", "down"),
                Filter::eq("tag", "prod"),
            ])),
            "MULTI-INDEX OR",
        ),
        (
            "ids",
            Query::new(Filter::IdIn(vec!["a".into(), "b".into()])),
            "(kind=? AND id=?)",
        ),
        (
            "parent",
            Query::new(Filter::ParentIs("p".into())),
            "objects_parent (",
        ),
        (
            "ordered by name",
            Query::new(Filter::like("name", "vm-1*"))
                .order_by("name", Order::Asc)
                .limit(10),
            "objects_name (",
        ),
    ]
}

fn explain(prefix: &str, sql: &Sql) -> Sql {
    Sql {
        dialect: sql.dialect,
        text: format!("{prefix}{}", sql.text),
        args: sql.args.clone(),
    }
}

async fn populate(store: &Store) {
    let mut tx = store.begin().await.unwrap();
    for i in 0..2000i64 {
        let w = ObjectWrite::new("vm", format!("id-{i}"), "{}")
            .name(format!("vm-{i}"))
            .parent(format!("p-{}", i % 20))
            .attr("status", if i % 3 == 0 { "up" } else { "down" })
            .attr("os", if i % 2 == 0 { "RHEL9" } else { "Windows" })
            .attr("mem", i * 16)
            .attr("cpu", i as f64 / 100.0);
        tx.insert(&w).await.unwrap();
    }
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn sqlite_filters_use_indexes() {
    let dir = std::env::temp_dir().join(format!("vireo-plan-{}", uuid::Uuid::new_v4()));
    let path = dir.join("plan.db");
    let store = Store::open(path.to_str().unwrap()).await.unwrap();
    populate(&store).await;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    for (what, q, expect) in cases() {
        let sql = explain(
            "EXPLAIN QUERY PLAN ",
            &list_sql(Dialect::Sqlite, "vm", &q).unwrap(),
        );
        let rows = bind_sqlite(&sql).fetch_all(&mut conn).await.unwrap();
        let plan: Vec<String> = rows.iter().map(|r| r.get::<String, _>(3)).collect();
        println!("{what}: {plan:?}");
        // A scan, or a walk over all objects of the kind, is what the
        // indexes are there to avoid.
        let bad = |d: &&String| {
            d.starts_with("SCAN o")
                || d.starts_with("SCAN a")
                || (d.starts_with("SEARCH o") && d.ends_with("(kind=?)"))
        };
        assert!(
            !plan.iter().any(|d| bad(&d)),
            "{what}: scan in plan {plan:#?}"
        );
        assert!(
            plan.iter().any(|d| d.contains(expect)),
            "{what}: expected {expect:?} in plan {plan:#?}"
        );
    }
    store.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn postgres_filters_use_indexes() {
    let Ok(admin_url) = std::env::var("VIREO_TEST_POSTGRES_URL") else {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "postgres_filters_use_indexes: skipped: VIREO_TEST_POSTGRES_URL not set"
        );
        return;
    };
    let name = format!("vireo_plan_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    let url = format!("{base}/{name}");
    let store = Store::open(&url).await.unwrap();
    populate(&store).await;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("ANALYZE; SET enable_seqscan = off")
        .execute(&mut conn)
        .await
        .unwrap();
    for mode in ["force_custom_plan", "force_generic_plan"] {
        sqlx::raw_sql(&format!("SET plan_cache_mode = {mode}"))
            .execute(&mut conn)
            .await
            .unwrap();
        for (what, q, _) in cases() {
            let sql = explain("EXPLAIN ", &list_sql(Dialect::Postgres, "vm", &q).unwrap());
            let rows = bind_pg(&sql).fetch_all(&mut conn).await.unwrap();
            let plan: Vec<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
            let text = plan.join("\n");
            println!("{what} ({mode}):\n{text}");
            assert!(
                !text.contains("Seq Scan on objects") && !text.contains("Seq Scan on attrs"),
                "{what} ({mode}): table scan in plan\n{text}"
            );
        }
    }
    store.close().await;
    drop(conn);
    let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
}
