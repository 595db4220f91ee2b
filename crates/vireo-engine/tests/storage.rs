//! Storage end to end on simulated hosts: storage domains added through a host, attached
//! (the first data domain becomes the master, the data center goes up), ISO files, disks
//! made, resized, copied and moved by the host's agent, disk attachments, maintenance and
//! detach rules, templates whose disks are copied.

mod support;

use serde_json::json;
use support::{int, items, Env};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domains_attach_activate_and_bring_the_data_center_up() {
    let mut env = Env::start().await;
    let host = env.add_host("h1").await;
    let dc = env.default_dc().await;

    // Adding needs a host that is up and a storage it can reach; one connection, one domain.
    let no_host = env
        .post("/storagedomains", json!({"name": "x", "type": "data", "host": {"name": "nope"}, "storage": {"type": "nfs", "address": "a", "path": "/x"}}))
        .await;
    assert_eq!(no_host.status, 404, "{no_host}");
    let iscsi = env.post("/storagedomains", json!({"name": "x", "type": "data", "host": {"id": host}, "storage": {"type": "iscsi"}})).await;
    assert_eq!(iscsi.status, 501, "{iscsi}");
    let relative = env
        .post("/storagedomains", json!({"name": "x", "type": "data", "host": {"id": host}, "storage": {"type": "nfs", "address": "a", "path": "x"}}))
        .await;
    assert_eq!(relative.status, 400, "{relative}");
    let r = env
        .post("/storagedomains", json!({"name": "data1", "type": "data", "host": {"name": "h1"}, "storage": {"type": "nfs", "address": "nfs.example.com", "path": "/exports/data1"}}))
        .await;
    assert_eq!(r.status, 201, "{r}");
    let data1 = r.id();
    assert_eq!(r.body["status"], "unattached");
    assert!(int(&r.body["available"]) > 0, "{r}");
    assert!(r.body.get("host").is_none());
    let same = env
        .post("/storagedomains", json!({"name": "data9", "type": "data", "host": {"name": "h1"}, "storage": {"type": "nfs", "address": "nfs.example.com", "path": "/exports/data1"}}))
        .await;
    assert_eq!(same.status, 409, "{same}");
    assert_eq!(
        env.names(&format!("/storagedomains/{data1}/diskprofiles"))
            .await,
        vec!["data1"]
    );
    let iso = env
        .post("/storagedomains", json!({"name": "isos", "type": "iso", "host": {"name": "h1"}, "storage": {"type": "nfs", "address": "nfs.example.com", "path": "/exports/isos"}}))
        .await
        .id();

    // Attach by name: locked, then active; the master; the data center up.
    let a = env
        .post(
            &format!("/datacenters/{dc}/storagedomains"),
            json!({"name": "data1"}),
        )
        .await;
    assert_eq!(a.status, 201, "{a}");
    assert_eq!(a.body["status"], "locked");
    assert_eq!(a.body["master"], "true");
    assert!(
        a.body["href"].as_str().unwrap().contains("/datacenters/"),
        "{a}"
    );
    assert_eq!(
        env.post(
            &format!("/datacenters/{dc}/storagedomains"),
            json!({"id": data1})
        )
        .await
        .status,
        409
    );
    env.post(
        &format!("/datacenters/{dc}/storagedomains"),
        json!({"id": iso}),
    )
    .await;
    env.wait(
        "data1 active",
        &format!("/datacenters/{dc}/storagedomains/{data1}"),
        |d| d["status"] == "active",
    )
    .await;
    env.wait(
        "iso active",
        &format!("/datacenters/{dc}/storagedomains/{iso}"),
        |d| d["status"] == "active",
    )
    .await;
    env.wait("dc up", &format!("/datacenters/{dc}"), |d| {
        d["status"] == "up"
    })
    .await;
    let top = env.get(&format!("/storagedomains/{data1}")).await.body;
    assert_eq!(top["status"], "active");
    assert_eq!(
        items(&top, "data_centers", "data_center")[0]["id"],
        dc.as_str()
    );
    let attached = env
        .post(&format!("/storagedomains/{data1}/isattached"), json!({}))
        .await;
    assert_eq!(attached.body["is_attached"], "true", "{attached}");
    assert_eq!(
        env.names(&format!(
            "/storagedomains?search={}",
            "datacenter%3DDefault"
        ))
        .await,
        vec!["data1", "isos"]
    );

    // ISO files come from the host; data domains have none.
    let files = env.list(&format!("/storagedomains/{iso}/files")).await;
    assert!(!files.is_empty(), "the simulated host has ISO images");
    assert!(files.iter().all(|f| f["id"] == f["name"]));
    assert!(env
        .list(&format!("/storagedomains/{data1}/files"))
        .await
        .is_empty());
    let name = files[0]["id"].as_str().unwrap();
    assert_eq!(
        env.get(&format!("/storagedomains/{iso}/files/{name}"))
            .await
            .status,
        200
    );

    // Events say what happened, with oVirt's codes.
    let codes: Vec<String> = env
        .list("/events")
        .await
        .iter()
        .map(|e| e["code"].as_str().unwrap_or_default().to_string())
        .collect();
    for c in ["956", "962", "966"] {
        assert!(codes.contains(&c.to_string()), "event {c} in {codes:?}");
    }
    let jobs = env.list("/jobs").await;
    assert!(
        jobs.iter().any(|j| j["description"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Attaching Storage Domain data1")),
        "{jobs:?}"
    );

    // Maintenance: the ISO domain first (the master cannot go while it is active), then the master.
    let m = env
        .post(
            &format!("/datacenters/{dc}/storagedomains/{data1}/deactivate"),
            json!({"async": "false"}),
        )
        .await;
    assert_eq!(m.status, 409, "{m}");
    let m = env
        .post(
            &format!("/datacenters/{dc}/storagedomains/{iso}/deactivate"),
            json!({"async": "false"}),
        )
        .await;
    assert_eq!(m.status, 200, "{m}");
    assert_eq!(
        env.get(&format!("/datacenters/{dc}/storagedomains/{iso}"))
            .await
            .body["status"],
        "maintenance"
    );
    env.post(
        &format!("/datacenters/{dc}/storagedomains/{data1}/deactivate"),
        json!({"async": "false"}),
    )
    .await;
    env.wait("dc in maintenance", &format!("/datacenters/{dc}"), |d| {
        d["status"] == "maintenance"
    })
    .await;
    let again = env
        .post(
            &format!("/datacenters/{dc}/storagedomains/{data1}/activate"),
            json!({"async": "false"}),
        )
        .await;
    assert_eq!(again.status, 200, "{again}");
    env.wait("dc up again", &format!("/datacenters/{dc}"), |d| {
        d["status"] == "up"
    })
    .await;

    // Detach and remove: not while attached and active.
    assert_eq!(
        env.delete(&format!("/storagedomains/{iso}")).await.status,
        409
    );
    assert_eq!(
        env.delete(&format!("/datacenters/{dc}/storagedomains/{data1}"))
            .await
            .status,
        409
    );
    let d = env
        .delete(&format!("/datacenters/{dc}/storagedomains/{iso}"))
        .await;
    assert_eq!(d.status, 200, "{d}");
    assert_eq!(
        env.get(&format!("/storagedomains/{iso}")).await.body["status"],
        "unattached"
    );
    assert_eq!(
        env.delete(&format!("/storagedomains/{iso}")).await.status,
        200
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disks_are_made_resized_copied_and_moved_by_the_host() {
    let mut env = Env::start().await;
    let host = env.add_host("h1").await;
    let data1 = env.data_domain("data1", "h1").await;
    let _ = host;

    let r = env
        .call(
            reqwest::Method::POST,
            "/disks",
            Some(json!({"name": "d1", "format": "cow", "provisioned_size": (1u64 << 30).to_string(), "storage_domains": {"storage_domain": [{"name": "data1"}]}})),
            &[("Correlation-Id", "disk-1")],
        )
        .await;
    assert_eq!(r.status, 202, "{r}");
    assert_eq!(r.body["status"], "locked");
    assert_eq!(r.body["sparse"], "true");
    let d1 = r.id();
    let ok = env
        .wait("disk ok", &format!("/disks/{d1}"), |d| d["status"] == "ok")
        .await;
    assert!(int(&ok["actual_size"]) > 0, "{ok}");
    assert_eq!(
        env.names(&format!("/storagedomains/{data1}/disks")).await,
        vec!["d1"]
    );
    let job = env.list("/jobs?search=correlation_id%3Ddisk-1").await;
    assert_eq!(job.len(), 1, "{job:?}");
    env.wait(
        "disk job done",
        &format!("/jobs/{}", job[0]["id"].as_str().unwrap()),
        |j| j["status"] == "finished",
    )
    .await;

    // Size: at least one byte, never smaller; larger is a resize on the host.
    let zero = env.post("/disks", json!({"name": "d0", "format": "cow", "provisioned_size": "0", "storage_domains": {"storage_domain": [{"id": data1}]}})).await;
    assert_eq!(zero.status, 400, "{zero}");
    let no_sd = env
        .post(
            "/disks",
            json!({"name": "d0", "format": "cow", "provisioned_size": "1024"}),
        )
        .await;
    assert_eq!(no_sd.status, 400, "{no_sd}");
    let smaller = env
        .put(&format!("/disks/{d1}"), json!({"provisioned_size": "1024"}))
        .await;
    assert_eq!(smaller.status, 400, "{smaller}");
    let bigger = env
        .put(
            &format!("/disks/{d1}"),
            json!({"provisioned_size": (2u64 << 30).to_string()}),
        )
        .await;
    assert_eq!(bigger.status, 200, "{bigger}");
    assert_eq!(bigger.body["status"], "locked");
    let locked = env
        .put(&format!("/disks/{d1}"), json!({"description": "x"}))
        .await;
    assert!(locked.status == 409 || locked.status == 200, "{locked}");
    let resized = env
        .wait("resized", &format!("/disks/{d1}"), |d| d["status"] == "ok")
        .await;
    assert_eq!(int(&resized["provisioned_size"]), 2 << 30);

    // Copy to a second domain (a new disk), move back and forth (the same disk).
    let data2 = env.data_domain("data2", "h1").await;
    let c = env.post(&format!("/disks/{d1}/copy"), json!({"storage_domain": {"name": "data2"}, "disk": {"name": "d1-copy"}, "async": "false"})).await;
    assert_eq!(c.status, 200, "{c}");
    assert_eq!(c.body["status"], "complete");
    let copies = env.list(&format!("/storagedomains/{data2}/disks")).await;
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(copies[0]["name"], "d1-copy");
    assert_eq!(copies[0]["status"], "ok");
    let mv = env
        .post(
            &format!("/disks/{d1}/move"),
            json!({"storage_domain": {"id": data2}, "async": "false"}),
        )
        .await;
    assert_eq!(mv.status, 200, "{mv}");
    let moved = env.get(&format!("/disks/{d1}")).await.body;
    assert_eq!(
        items(&moved, "storage_domains", "storage_domain")[0]["id"],
        data2.as_str(),
        "{moved}"
    );
    assert_eq!(moved["status"], "ok");
    let same = env
        .post(
            &format!("/disks/{d1}/move"),
            json!({"storage_domain": {"id": data2}}),
        )
        .await;
    assert_eq!(same.status, 409, "{same}");

    // Removal deletes the disk (and its volume on the host).
    assert_eq!(
        env.delete(&format!("/disks/{}", copies[0]["id"].as_str().unwrap()))
            .await
            .status,
        200
    );
    assert_eq!(
        env.names(&format!("/storagedomains/{data2}/disks")).await,
        vec!["d1"]
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_disks_attach_detach_and_go_with_their_vm_and_templates_copy_them() {
    let mut env = Env::start().await;
    env.add_host("h1").await;
    let data1 = env.data_domain("data1", "h1").await;
    let dc = env.default_dc().await;
    let vm = env.add_vm("myvm").await;

    // An attachment with a new disk inside it (the quick start's way).
    let att = env
        .post(
            &format!("/vms/{vm}/diskattachments"),
            json!({"bootable": "true", "interface": "virtio", "active": "true",
                   "disk": {"name": "mydisk", "format": "cow", "provisioned_size": (8u64 << 30).to_string(), "storage_domains": {"storage_domain": [{"name": "data1"}]}}}),
        )
        .await;
    assert!(att.status == 201 || att.status == 202, "{att}");
    let disk = att.body["disk"]["id"].as_str().unwrap().to_string();
    assert_eq!(att.id(), disk, "an attachment's id is its disk's");
    env.wait("disk ok", &format!("/disks/{disk}"), |d| {
        d["status"] == "ok"
    })
    .await;
    let listed = env.list(&format!("/vms/{vm}/diskattachments")).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["bootable"], "true");
    let followed = env
        .get(&format!("/vms/{vm}/diskattachments/{disk}?follow=disk"))
        .await;
    assert_eq!(followed.body["disk"]["name"], "mydisk", "{followed}");
    let no_iface = env
        .post(
            &format!("/vms/{vm}/diskattachments"),
            json!({"disk": {"id": disk}}),
        )
        .await;
    assert_eq!(no_iface.status, 400, "{no_iface}");

    // A second bootable disk is refused; a floating disk attaches once.
    let f = env.post("/disks", json!({"name": "floating", "format": "raw", "provisioned_size": "1048576", "storage_domains": {"storage_domain": [{"id": data1}]}})).await.id();
    env.wait("floating ok", &format!("/disks/{f}"), |d| {
        d["status"] == "ok"
    })
    .await;
    let boot2 = env
        .post(
            &format!("/vms/{vm}/diskattachments"),
            json!({"interface": "virtio", "bootable": "true", "disk": {"id": f}}),
        )
        .await;
    assert_eq!(boot2.status, 409, "{boot2}");
    let a2 = env
        .post(
            &format!("/vms/{vm}/diskattachments"),
            json!({"interface": "virtio_scsi", "disk": {"id": f}}),
        )
        .await;
    assert_eq!(a2.status, 201, "{a2}");
    let vm2 = env.add_vm("other").await;
    let busy = env
        .post(
            &format!("/vms/{vm2}/diskattachments"),
            json!({"interface": "virtio", "disk": {"id": f}}),
        )
        .await;
    assert_eq!(busy.status, 409, "{busy}");
    // Detaching keeps the disk (oVirt's default); it can go elsewhere then.
    assert_eq!(
        env.delete(&format!("/vms/{vm}/diskattachments/{f}"))
            .await
            .status,
        200
    );
    assert_eq!(env.get(&format!("/disks/{f}")).await.status, 200);
    assert_eq!(
        env.post(
            &format!("/vms/{vm2}/diskattachments"),
            json!({"interface": "virtio", "disk": {"id": f}})
        )
        .await
        .status,
        201
    );

    // The master domain holds disks of VMs: it is not detached.
    env.post(
        &format!("/datacenters/{dc}/storagedomains/{data1}/deactivate"),
        json!({"async": "false"}),
    )
    .await;
    let det = env
        .delete(&format!("/datacenters/{dc}/storagedomains/{data1}"))
        .await;
    assert_eq!(det.status, 409, "{det}");
    assert!(det.detail().contains("master"), "{det}");
    env.post(
        &format!("/datacenters/{dc}/storagedomains/{data1}/activate"),
        json!({"async": "false"}),
    )
    .await;
    env.wait(
        "active again",
        &format!("/datacenters/{dc}/storagedomains/{data1}"),
        |d| d["status"] == "active",
    )
    .await;

    // A template from the VM copies its disks; a VM from the template gets copies too.
    let t = env
        .post("/templates", json!({"name": "tpl", "vm": {"id": vm}}))
        .await;
    assert_eq!(t.status, 202, "{t}");
    assert_eq!(t.body["status"], "locked");
    let tid = t.id();
    env.wait("template ok", &format!("/templates/{tid}"), |t| {
        t["status"] == "ok"
    })
    .await;
    let tdisks = env.list(&format!("/templates/{tid}/diskattachments")).await;
    assert_eq!(tdisks.len(), 1, "{tdisks:?}");
    assert_ne!(tdisks[0]["id"], disk.as_str(), "a copy, not the VM's disk");
    let child = env
        .post(
            "/vms",
            json!({"name": "child", "cluster": {"name": "Default"}, "template": {"id": tid}}),
        )
        .await;
    assert_eq!(child.status, 201, "{child}");
    let cdisks = env
        .list(&format!("/vms/{}/diskattachments", child.id()))
        .await;
    assert_eq!(cdisks.len(), 1);
    let cdisk = cdisks[0]["id"].as_str().unwrap().to_string();
    env.wait("child disk ok", &format!("/disks/{cdisk}"), |d| {
        d["status"] == "ok"
    })
    .await;
    let tdisk = tdisks[0]["id"].as_str().unwrap();
    let tpl_disk = env.delete(&format!("/disks/{tdisk}")).await;
    assert_eq!(
        tpl_disk.status, 409,
        "a template's disk goes with its template: {tpl_disk}"
    );

    // A VM removed takes its disks; with detach_only its disks stay.
    assert_eq!(
        env.delete(&format!("/vms/{}", child.id())).await.status,
        200
    );
    assert_eq!(env.get(&format!("/disks/{cdisk}")).await.status, 404);
    assert_eq!(
        env.delete(&format!("/vms/{vm2}?detach_only=true"))
            .await
            .status,
        200
    );
    assert_eq!(env.get(&format!("/disks/{f}")).await.status, 200);
    assert_eq!(env.delete(&format!("/templates/{tid}")).await.status, 200);
    assert_eq!(env.get(&format!("/disks/{tdisk}")).await.status, 404);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_vm_is_still_found_by_its_cluster_and_refuses_removal() {
    let mut env = Env::start().await;
    env.add_host("h1").await;
    let vm = env.add_vm("runner").await;
    let t = env
        .post(&format!("/vms/{vm}/tags"), json!({"name": "web"}))
        .await;
    assert_eq!(t.status, 404, "no such tag yet: {t}");
    env.post("/tags", json!({"name": "web"})).await;
    env.post(&format!("/vms/{vm}/tags"), json!({"name": "web"}))
        .await;
    let s = env.post(&format!("/vms/{vm}/start"), json!({})).await;
    assert_eq!(s.status, 200, "{s}");
    env.wait("vm up", &format!("/vms/{vm}"), |v| v["status"] == "up")
        .await;
    assert_eq!(
        env.names("/vms?search=cluster%3DDefault%20and%20status%3Dup")
            .await,
        vec!["runner"]
    );
    assert_eq!(env.names("/vms?search=tag%3Dweb").await, vec!["runner"]);
    assert_eq!(env.names("/vms?search=host%3Dh1").await, vec!["runner"]);
    let r = env.delete(&format!("/vms/{vm}")).await;
    assert_eq!(r.status, 409, "{r}");
    env.stop().await;
}
