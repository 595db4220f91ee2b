//! Per-test databases: a fresh SQLite file in its own temp dir, or a fresh
//! PostgreSQL database (created on the server named by
//! VIREO_TEST_POSTGRES_URL, dropped afterwards) so tests run in parallel.

use std::io::Write as _;
use std::path::PathBuf;

use sqlx::Connection as _;
use vireo_store::Store;

pub const PG_ENV: &str = "VIREO_TEST_POSTGRES_URL";

enum Cleanup {
    Dir(PathBuf),
    PgDatabase { admin_url: String, name: String },
}

pub struct TestDb {
    pub store: Store,
    pub url: String,
    cleanup: Cleanup,
}

/// Generate the same test functions for both backends:
/// `module::sqlite::name` always runs, `module::postgres::name` runs when
/// VIREO_TEST_POSTGRES_URL is set and says it skipped otherwise.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::harness::TestDb::sqlite().await;
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let name = concat!(module_path!(), "::", stringify!($name));
                    let Some(db) = $crate::harness::TestDb::postgres(name).await else {
                        return;
                    };
                    super::$name(&db).await;
                }
            )*
        }
    };
}

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Replace the database name in a postgres URL.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let host_start = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[host_start..]
        .find('/')
        .map_or(base.len(), |i| i + host_start);
    let mut out = format!("{}/{db}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = std::env::temp_dir().join(format!("vireo-store-test-{}", unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("vireo.db").display());
        let store = Store::open(&url).await.expect("open sqlite");
        TestDb {
            store,
            url,
            cleanup: Cleanup::Dir(dir),
        }
    }

    /// None (after printing why) when no PostgreSQL server is configured.
    pub async fn postgres(test: &str) -> Option<TestDb> {
        let Ok(admin_url) = std::env::var(PG_ENV) else {
            // Written straight to stderr so libtest's capture does not hide it.
            let _ = writeln!(std::io::stderr(), "{test}: skipped: {PG_ENV} not set");
            return None;
        };
        let name = format!("vireo_test_{}", unique());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("connect to VIREO_TEST_POSTGRES_URL");
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let _ = admin.close().await;
        let url = with_database(&admin_url, &name);
        let store = Store::open(&url).await.expect("open postgres");
        Some(TestDb {
            store,
            url,
            cleanup: Cleanup::PgDatabase { admin_url, name },
        })
    }

    /// A second, independent handle on the same database.
    pub async fn reopen(&self) -> Store {
        Store::open(&self.url).await.expect("reopen")
    }

    pub fn is_postgres(&self) -> bool {
        self.store.backend_name() == "postgres"
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::PgDatabase { admin_url, name } => {
                // Drop runs inside the test's runtime, which cannot be
                // blocked on; do the async cleanup on a thread of its own.
                let (admin_url, name) = (admin_url.clone(), name.clone());
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    rt.block_on(async {
                        if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                            let _ = sqlx::raw_sql(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .execute(&mut admin)
                            .await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

#[test]
fn database_names_are_replaced_in_urls() {
    assert_eq!(
        with_database("postgres://u@127.0.0.1:5432/postgres", "x"),
        "postgres://u@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u@h:1?sslmode=disable", "x"),
        "postgres://u@h:1/x?sslmode=disable"
    );
}
