//! PostgreSQL backend: one ordinary pool; PostgreSQL handles concurrent
//! writers itself. No TLS is compiled in: the engine talks to a database on
//! loopback (or a unix socket).

use std::str::FromStr;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use crate::error::{Result, StoreError};

const MAX_CONNECTIONS: u32 = 10;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) struct PgPools {
    pool: PgPool,
}

impl PgPools {
    pub(crate) async fn open(url: &str) -> Result<Self> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::invalid(format!("bad postgres URL: {e}")))?
            .application_name("vireo");
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(opts)
            .await?;
        Ok(PgPools { pool })
    }

    pub(crate) async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }

    pub(crate) async fn reader(&self) -> Result<PoolConnection<Postgres>> {
        Ok(self.pool.acquire().await?)
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}
