//! oVirt's search language over the REST API: own and cross-entity fields, wildcards and
//! quoting, `and`/`or`/parentheses, `sortby`, `page` with `max`, case sensitivity, renames,
//! and 400 faults that name the position of the problem; and events (`from`, `max`, search).

mod support;

use serde_json::json;
use support::Env;

fn q(s: &str) -> String {
    s.replace(' ', "%20")
        .replace('=', "%3D")
        .replace('"', "%22")
        .replace('>', "%3E")
        .replace('<', "%3C")
        .replace('*', "%2A")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_compile_ovirts_grammar() {
    let env = Env::start().await;
    let dc = env
        .post("/datacenters", json!({"name": "east", "local": "false"}))
        .await
        .id();
    let cl = env
        .post(
            "/clusters",
            json!({"name": "c-east", "data_center": {"id": dc}}),
        )
        .await
        .id();
    for (name, cluster, memory) in [
        ("vm-1", "Default", 1u64),
        ("vm-10", "Default", 2),
        ("vm-2", "c-east", 4),
        ("Web-A", "c-east", 8),
    ] {
        let r = env
            .post("/vms", json!({"name": name, "cluster": {"name": cluster}, "template": {"name": "Blank"}, "memory": (memory << 30).to_string(), "description": format!("the {name} box")}))
            .await;
        assert_eq!(r.status, 201, "{r}");
    }
    let names = |query: &str| {
        let path = format!("/vms?search={}", q(query));
        let env = &env;
        async move { env.names(&path).await }
    };
    assert_eq!(names("name=vm-1*").await, vec!["vm-1", "vm-10"]);
    assert_eq!(names("Vms: name=vm-1*").await, vec!["vm-1", "vm-10"]);
    assert_eq!(names("cluster=c-east").await, vec!["Web-A", "vm-2"]);
    assert_eq!(
        names("cluster.name=Default and name=vm-1").await,
        vec!["vm-1"]
    );
    assert_eq!(
        names(&format!("cluster.id={cl}")).await,
        vec!["Web-A", "vm-2"]
    );
    assert_eq!(names("datacenter=east").await, vec!["Web-A", "vm-2"]);
    assert_eq!(
        names("memory>2048").await,
        vec!["Web-A", "vm-2"],
        "memory in MiB, as oVirt"
    );
    assert_eq!(
        names("memory>=2048 and cluster=Default").await,
        vec!["vm-10"]
    );
    assert_eq!(
        names("name=vm-2 or name=web-a").await,
        vec!["Web-A", "vm-2"],
        "case-insensitive by default"
    );
    assert_eq!(
        names("(name=vm-1 or name=vm-2) and status=down").await,
        vec!["vm-1", "vm-2"]
    );
    assert_eq!(names("name!=vm-*").await, vec!["Web-A"]);
    assert_eq!(names("description=\"the vm-2 box\"").await, vec!["vm-2"]);
    assert_eq!(
        names("template=Blank status=down name=web*").await,
        vec!["Web-A"],
        "juxtaposed conditions are and"
    );
    assert_eq!(
        names("name=vm* sortby name desc").await,
        vec!["vm-2", "vm-10", "vm-1"]
    );
    assert_eq!(
        names("name=vm* sortby memory desc").await,
        vec!["vm-2", "vm-10", "vm-1"]
    );
    let paged = env
        .names(&format!(
            "/vms?max=2&search={}",
            q("name=* sortby name asc page 2")
        ))
        .await;
    assert_eq!(
        paged,
        vec!["vm-10", "vm-2"],
        "page 2 of 2 (names sort byte-wise)"
    );
    assert_eq!(
        env.names(&format!(
            "/vms?case_sensitive=true&search={}",
            q("name=web-a")
        ))
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        env.list(&format!("/vms?max=1&search={}", q("name=vm*")))
            .await
            .len(),
        1
    );

    // A renamed cluster is found under its new name.
    env.put(&format!("/clusters/{cl}"), json!({"name": "c-west"}))
        .await;
    assert_eq!(names("cluster=c-west").await, vec!["Web-A", "vm-2"]);
    assert!(names("cluster=c-east").await.is_empty());
    env.put(&format!("/datacenters/{dc}"), json!({"name": "west"}))
        .await;
    assert_eq!(names("datacenter=west").await, vec!["Web-A", "vm-2"]);

    // Other collections.
    assert_eq!(
        env.names(&format!("/clusters?search={}", q("datacenter=west")))
            .await,
        vec!["c-west"]
    );
    assert_eq!(
        env.names(&format!("/networks?search={}", q("datacenter=Default")))
            .await,
        vec!["ovirtmgmt"]
    );
    assert_eq!(
        env.names(&format!("/templates?search={}", q("name=Blank")))
            .await,
        vec!["Blank"]
    );
    assert_eq!(
        env.names(&format!(
            "/datacenters?search={}",
            q("status=uninitialized sortby name")
        ))
        .await,
        vec!["Default", "west"]
    );

    // Faults: 400 with the position.
    for (query, pos) in [
        ("name=vm and nosuch=1", 13),
        ("name=", 6),
        ("(name=x", 8),
        ("name=x junk", 12),
        ("memory>lots", 1),
        ("name=x sortby nosuch", 15),
    ] {
        let r = env.get(&format!("/vms?search={}", q(query))).await;
        assert_eq!(r.status, 400, "{query}: {r}");
        assert!(
            r.detail().contains(&format!("position {pos}")),
            "{query}: {r}"
        );
    }
    let r = env.get(&format!("/vms?search={}", q("name=\"open"))).await;
    assert_eq!(r.status, 400, "{r}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_list_from_max_and_search() {
    let env = Env::start().await;
    let vm = env.add_vm("ev-1").await;
    env.put(&format!("/vms/{vm}"), json!({"description": "changed"}))
        .await;
    let all = env.list("/events").await;
    assert!(all.len() >= 3, "{all:?}");
    let ids: Vec<i64> = all.iter().map(|e| support::int(&e["id"])).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let created = all.iter().find(|e| e["code"] == "34").expect("USER_ADD_VM");
    assert_eq!(
        created["description"].as_str().unwrap(),
        "VM ev-1 was created by admin@internal-authz."
    );
    assert_eq!(created["vm"]["id"], vm.as_str());
    assert_eq!(created["severity"], "normal");
    assert_eq!(created["origin"], "oVirt");
    assert!(all.iter().any(|e| e["code"] == "35"), "USER_UPDATE_VM");

    // from: only newer events; max: the newest few.
    let newest = ids[0];
    assert!(env.list(&format!("/events?from={newest}")).await.is_empty());
    assert_eq!(
        env.list(&format!("/events;from={}", newest - 1))
            .await
            .len(),
        1
    );
    assert_eq!(env.list("/events?max=2").await.len(), 2);
    let one = env.get(&format!("/events/{newest}")).await;
    assert_eq!(one.status, 200, "{one}");
    assert_eq!(support::int(&one.body["id"]), newest);

    // External events, and searches by severity, code, object and correlation id.
    let ext = env
        .call(
            reqwest::Method::POST,
            "/events",
            Some(json!({"description": "disk almost full", "severity": "warning", "origin": "monitor", "custom_id": "7", "vm": {"id": vm}})),
            &[("Correlation-Id", "corr-1")],
        )
        .await;
    assert_eq!(ext.status, 201, "{ext}");
    assert_eq!(ext.body["code"], "9802");
    assert_eq!(ext.body["custom_id"], "7");
    let missing = env.post("/events", json!({"description": "x"})).await;
    assert_eq!(missing.status, 400, "{missing}");
    let search = |s: &str| {
        let path = format!("/events?search={}", q(s));
        let env = &env;
        async move { env.list(&path).await }
    };
    let warn = search("severity>normal").await;
    assert_eq!(warn.len(), 1, "{warn:?}");
    assert_eq!(warn[0]["description"], "disk almost full");
    assert_eq!(search("correlation_id=corr-1").await.len(), 1);
    assert!(search("vm.name=ev-1").await.len() >= 3);
    assert_eq!(search("vm.name=ev-1 and type=34").await.len(), 1);
    assert_eq!(search("origin=monitor or type=35").await.len(), 2);
    assert_eq!(search("message=*almost*").await.len(), 1);
    assert_eq!(
        env.list(&format!("/events?max=1&search={}", q("vm.name=ev-1")))
            .await
            .len(),
        1
    );
    assert_eq!(
        env.get(&format!("/events?search={}", q("nosuch=1")))
            .await
            .status,
        400
    );
    assert_eq!(
        env.get(&format!("/events?search={}", q("severity=loud")))
            .await
            .status,
        400
    );

    let del = env.delete(&format!("/events/{}", ext.id())).await;
    assert_eq!(del.status, 200, "{del}");
    assert_eq!(env.get(&format!("/events/{}", ext.id())).await.status, 404);
    env.stop().await;
}

/// Every event condition is part of the store's query: exact sets for severity (ordered),
/// code, custom id, text, origin and object names, with `max` counting matches only and
/// `from` combining with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_search_is_exact() {
    let env = Env::start().await;
    let vm = env.add_vm("evs-web").await;
    let before = support::int(&env.list("/events?max=1").await[0]["id"]);
    let sev = ["normal", "warning", "error", "alert"];
    for i in 0..24usize {
        let mut body = json!({"description": format!("check {i} Of Disk"), "severity": sev[i % 4],
                              "origin": if i % 2 == 0 { "Mon" } else { "other" }, "custom_id": (1000 + i).to_string()});
        if i % 3 == 0 {
            body["vm"] = json!({"id": vm});
        }
        let r = env.post("/events", body).await;
        assert_eq!(r.status, 201, "{r}");
    }
    let search = |s: &str, extra: &str| {
        let path = format!("/events?from={before}&search={}{extra}", q(s));
        let env = &env;
        async move {
            let mut got: Vec<i64> = env
                .list(&path)
                .await
                .iter()
                .map(|e| support::int(&e["custom_id"]) - 1000)
                .collect();
            got.sort_unstable();
            got
        }
    };
    let only = |p: fn(i64) -> bool| (0..24).filter(|i| p(*i)).collect::<Vec<i64>>();
    assert_eq!(search("severity=warning", "").await, only(|i| i % 4 == 1));
    assert_eq!(search("severity>warning", "").await, only(|i| i % 4 >= 2));
    assert_eq!(search("severity<=warning", "").await, only(|i| i % 4 <= 1));
    assert_eq!(search("severity!=normal", "").await, only(|i| i % 4 != 0));
    // External events: 9801 normal .. 9804 alert.
    assert_eq!(search("type=9803", "").await, only(|i| i % 4 == 2));
    assert_eq!(search("code>=9803", "").await, only(|i| i % 4 >= 2));
    assert_eq!(search("custom_id<1003", "").await, vec![0, 1, 2]);
    // max counts matching events, newest first.
    assert_eq!(search("severity=alert", "&max=2").await, vec![19, 23]);
    assert_eq!(
        search("severity=alert or severity=error", "&max=3").await,
        vec![19, 22, 23]
    );
    assert_eq!(search("message=\"check 1 of*\"", "").await, vec![1]);
    assert_eq!(search("message=*OF*", "").await, only(|_| true));
    assert_eq!(
        env.list(&format!(
            "/events?from={before}&case_sensitive=true&search={}",
            q("message=*OF*")
        ))
        .await
        .len(),
        0
    );
    assert_eq!(search("origin=mon", "").await, only(|i| i % 2 == 0));
    assert!(search("origin!=mon and severity=normal", "")
        .await
        .is_empty());
    assert_eq!(search("vm.name=evs-*", "").await, only(|i| i % 3 == 0));
    assert_eq!(
        search(&format!("vm.id={vm}"), "").await,
        only(|i| i % 3 == 0)
    );
    assert_eq!(
        search("vm.name!=evs-web and (severity=error or type=9804)", "").await,
        only(|i| i % 3 != 0 && i % 4 >= 2)
    );
    assert_eq!(
        search("vm=evs-web and severity>=error", "").await,
        only(|i| i % 3 == 0 && i % 4 >= 2)
    );
    // Newest first unless asked otherwise.
    let ids =
        |v: Vec<serde_json::Value>| v.iter().map(|e| support::int(&e["id"])).collect::<Vec<_>>();
    let desc = ids(env
        .list(&format!(
            "/events?from={before}&search={}",
            q("severity=normal")
        ))
        .await);
    assert!(desc.windows(2).all(|w| w[0] > w[1]), "{desc:?}");
    let asc = ids(env
        .list(&format!(
            "/events?from={before}&search={}",
            q("severity=normal sortby time asc")
        ))
        .await);
    assert!(asc.windows(2).all(|w| w[0] < w[1]), "{asc:?}");
    assert_eq!(
        env.get(&format!("/events?search={}", q("custom_id=x")))
            .await
            .status,
        400
    );
    env.stop().await;
}

/// Lists reuse the rendering of unchanged members (`api::render::memo`): any change to a stored
/// document shows at once, whether it came through the API or straight through the store (as
/// monitoring's status changes do), in both formats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_show_every_change() {
    let env = Env::start().await;
    let mut ids = Vec::new();
    for n in ["memo-a", "memo-b", "memo-c"] {
        ids.push(env.add_vm(n).await);
    }
    let field = |list: Vec<serde_json::Value>, id: &str, f: &str| {
        list.iter()
            .find(|v| v["id"] == id)
            .map(|v| v[f].clone())
            .unwrap_or_default()
    };
    let xml = || {
        let env = &env;
        async move {
            let r = env.get("/vms?accept=application/xml").await;
            assert_eq!(r.status, 200, "{r}");
            let text = r.body.as_str().unwrap_or_default().to_string();
            assert!(text.starts_with("<?xml"), "{text}");
            text
        }
    };
    for _ in 0..2 {
        assert_eq!(env.list("/vms").await.len(), 3);
        assert!(!xml().await.contains("renamed by the api"));
    }
    let r = env
        .put(
            &format!("/vms/{}", ids[1]),
            json!({"description": "renamed by the api"}),
        )
        .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(
        field(env.list("/vms").await, &ids[1], "description"),
        "renamed by the api"
    );
    assert!(xml().await.contains("renamed by the api"));

    // A status change written to the store without the API.
    let store = env.store().await;
    let rec = store.get("vms", &ids[2]).await.unwrap().unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&rec.doc).unwrap();
    assert_eq!(doc["status"], "down");
    doc["status"] = json!("paused");
    let mut w = vireo_store::ObjectWrite::new("vms", &ids[2], doc.to_string());
    if let Some(n) = &rec.name {
        w = w.name(n.clone());
    }
    let mut tx = store.begin().await.unwrap();
    tx.update(&w, None).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(field(env.list("/vms").await, &ids[2], "status"), "paused");
    assert!(xml().await.contains("<status>paused</status>"));
    assert_eq!(field(env.list("/vms").await, &ids[0], "status"), "down");
    store.close().await;
    env.stop().await;
}
