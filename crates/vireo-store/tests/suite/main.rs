//! The vireo-store test suite, written once and run against both backends
//! (see `harness.rs` and `backend_tests!`).

mod harness;

mod auth;
mod durability;
mod events;
mod filters;
mod objects;
mod txn;

use vireo_store::{ObjectWrite, Record, Store};

/// Insert and commit one object.
pub async fn put(store: &Store, obj: ObjectWrite) -> Record {
    let mut tx = store.begin().await.unwrap();
    let rec = tx.insert(&obj).await.unwrap();
    tx.commit().await.unwrap();
    rec
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
