//! Permissions given and taken away through the API take effect on the next request, also
//! for a client repeating the same HTTP Basic header (whose verification the engine caches).

mod support;

use serde_json::{json, Value};
use support::Env;
use vireo_engine::auth::{password, user_write, SUPERUSER_ROLE_ID};

const JOE_PASSWORD: &str = "joe-secret";

async fn joe_posts_a_data_center(env: &Env, name: &str) -> u16 {
    env.engine
        .http
        .post(format!("{}/datacenters", env.engine.base))
        .basic_auth("joe@internal", Some(JOE_PASSWORD))
        .header("Accept", "application/json")
        .header("Content-Type", "application/json")
        .body(json!({"name": name, "local": false}).to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superuser_permission_counts_at_once_and_its_removal_too() {
    let env = Env::start().await;
    let id = uuid::Uuid::new_v4().to_string();
    let joe = vireo_model::User {
        id: Some(id.clone()),
        user_name: Some("joe@internal-authz".into()),
        principal: Some("joe".into()),
        ..Default::default()
    };
    let store = env.store().await;
    let mut tx = store.begin().await.unwrap();
    tx.insert(&user_write(&joe)).await.unwrap();
    tx.set_password_hash(&id, &password::hash(JOE_PASSWORD).unwrap())
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // Read-only until given a role; the refusal is a fault, and this verification is cached.
    assert_eq!(joe_posts_a_data_center(&env, "joe-dc-1").await, 403);

    let given = env
        .post(
            &format!("/users/{id}/permissions"),
            json!({"role": {"id": SUPERUSER_ROLE_ID}, "data_center": null}),
        )
        .await;
    assert_eq!(given.status, 201, "{given}");
    let perm = given.id();
    assert_eq!(joe_posts_a_data_center(&env, "joe-dc-2").await, 201);

    let taken = env.delete(&format!("/users/{id}/permissions/{perm}")).await;
    assert_eq!(taken.status, 200, "{taken}");
    assert_eq!(joe_posts_a_data_center(&env, "joe-dc-3").await, 403);

    let names: Vec<Value> = env.list("/datacenters").await;
    let names: Vec<&str> = names.iter().filter_map(|d| d["name"].as_str()).collect();
    assert!(names.contains(&"joe-dc-2") && !names.contains(&"joe-dc-3"));
    env.stop().await;
}
