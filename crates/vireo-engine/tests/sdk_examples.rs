//! What the official SDK's example programs do, as requests: each test drives the services an
//! example uses, the way the example uses them, and checks the answers oVirt gives.

mod support;

use serde_json::{json, Value};
use support::{items, Env};

/// `update_quota_limits`: a quota's storage and cluster limits are listed, removed and added;
/// a limit on a storage domain (or cluster) is known by that object's id, a global one by the
/// quota's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_limits_are_known_by_what_they_limit() {
    let mut env = Env::start().await;
    env.add_host("h1").await;
    let sd = env.data_domain("limited", "h1").await;
    let dc = env.default_dc().await;
    let q = env
        .post(
            &format!("/datacenters/{dc}/quotas"),
            json!({"name": "myquota", "description": "My quota",
                   "cluster_hard_limit_pct": "20", "storage_hard_limit_pct": "20"}),
        )
        .await;
    assert_eq!(q.status, 201, "{q}");
    let q = q.id();
    let limits = format!("/datacenters/{dc}/quotas/{q}/quotastoragelimits");
    assert!(env.list(&limits).await.is_empty());

    let r = env
        .post(
            &limits,
            json!({"name": "mydatalimit", "limit": "100", "storage_domain": {"id": sd}}),
        )
        .await;
    assert!(r.status == 200 || r.status == 201, "{r}");
    assert_eq!(r.id(), sd, "a storage limit is known by its domain's id");
    let listed = env.list(&limits).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], sd);
    assert_eq!(listed[0]["limit"], "100");
    assert_eq!(listed[0]["storage_domain"]["id"], sd);
    assert_eq!(listed[0]["quota"]["id"], q);
    // A second limit on the same domain replaces the first, as oVirt's quota update does.
    let r = env
        .post(
            &limits,
            json!({"limit": "200", "storage_domain": {"id": sd}}),
        )
        .await;
    assert!(r.status == 200 || r.status == 201, "{r}");
    let listed = env.list(&limits).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["limit"], "200");
    let r = env.delete(&format!("{limits}/{sd}")).await;
    assert_eq!(r.status, 200, "{r}");
    assert!(env.list(&limits).await.is_empty());

    // A limit on no storage domain in particular is the quota's global one.
    let r = env.post(&limits, json!({"limit": "50"})).await;
    assert!(r.status == 200 || r.status == 201, "{r}");
    assert_eq!(r.id(), q);

    let cl = env.list("/clusters?search=name%3DDefault").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let climits = format!("/datacenters/{dc}/quotas/{q}/quotaclusterlimits");
    let r = env
        .post(
            &climits,
            json!({"cluster": {"name": "Default"}, "vcpu_limit": "8", "memory_limit": 16.0}),
        )
        .await;
    assert!(r.status == 200 || r.status == 201, "{r}");
    assert_eq!(r.id(), cl);
    let got = env.get(&format!("{climits}/{cl}")).await;
    assert_eq!(got.status, 200, "{got}");
    assert_eq!(got.body["vcpu_limit"], "8");
    assert_eq!(got.body["cluster"]["id"], cl);
    let r = env
        .post(&climits, json!({"cluster": {"name": "no-such-cluster"}}))
        .await;
    assert_eq!(r.status, 404, "{r}");
    env.stop().await;
}

/// `remove_numa_nodes_from_vm`: a VM's virtual NUMA nodes are listed (none at first), added
/// and removed one by one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_numa_nodes_are_listed_added_and_removed() {
    let env = Env::start().await;
    let vm = env.add_vm("numa").await;
    let nodes = format!("/vms/{vm}/numanodes");
    assert!(env.list(&nodes).await.is_empty());
    let mut ids = Vec::new();
    for i in 0..2 {
        let r = env
            .post(
                &nodes,
                json!({"index": i.to_string(), "memory": "512",
                       "cpu": {"cores": {"core": [{"index": i.to_string()}]}}}),
            )
            .await;
        assert_eq!(r.status, 201, "{r}");
        assert_eq!(r.body["vm"]["id"], vm);
        ids.push(r.id());
    }
    // oVirt requires the index, the memory and the CPUs of a node.
    let r = env.post(&nodes, json!({"memory": "512"})).await;
    assert_eq!(r.status, 400, "{r}");
    assert!(r.detail().contains("index, cpu"), "{r}");
    assert_eq!(env.list(&nodes).await.len(), 2);
    for id in ids.iter().rev() {
        let r = env.delete(&format!("{nodes}/{id}")).await;
        assert_eq!(r.status, 200, "{r}");
    }
    assert!(env.list(&nodes).await.is_empty());
    env.stop().await;
}

/// `add_fence_agent` / `update_fencing_options`: oVirt requires an agent's address, order,
/// type, user name and password, never shows the password, and updates the options.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fence_agents_follow_ovirts_rules() {
    let mut env = Env::start().await;
    let host = env.add_host("fenced").await;
    let agents = format!("/hosts/{host}/fenceagents");
    assert!(env.list(&agents).await.is_empty());
    // The example sends neither user name nor password: oVirt refuses that.
    let r = env
        .post(
            &agents,
            json!({"address": "1.2.3.4", "type": "ipmilan", "order": "0",
                   "options": {"option": [{"name": "myname", "value": "myvalue"}]}}),
        )
        .await;
    assert_eq!(r.status, 400, "{r}");
    assert!(
        r.detail().contains("username") && r.detail().contains("password"),
        "{r}"
    );
    let r = env
        .post(
            &agents,
            json!({"address": "1.2.3.4", "type": "ipmilan", "order": "1",
                   "username": "admin", "password": "secret",
                   "options": {"option": [{"name": "myname", "value": "myvalue"}]}}),
        )
        .await;
    assert_eq!(r.status, 201, "{r}");
    let id = r.id();
    let got = env.get(&format!("{agents}/{id}")).await;
    assert_eq!(got.status, 200, "{got}");
    assert!(got.body.get("password").is_none(), "{got}");
    assert_eq!(got.body["host"]["id"], host);
    let r = env
        .put(
            &format!("{agents}/{id}"),
            json!({"options": {"option": [{"name": "myname", "value": "myvalue"},
                                          {"name": "lanplus", "value": "1"}]}}),
        )
        .await;
    assert_eq!(r.status, 200, "{r}");
    let listed = env.list(&agents).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(items(&listed[0], "options", "option").len(), 2);
    env.stop().await;
}

/// `get_vm_ip`: the devices a guest agent reports; with no guest agent there are none, as on
/// oVirt, rather than a 501.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reported_devices_list_is_empty_without_a_guest_agent() {
    let env = Env::start().await;
    let vm = env.add_vm("noagent").await;
    assert!(env
        .list(&format!("/vms/{vm}/reporteddevices"))
        .await
        .is_empty());
    env.stop().await;
}

/// `add_role`: a new role has the permits its body names, and oVirt requires them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_role_has_the_permits_it_was_given() {
    let env = Env::start().await;
    let r = env
        .post(
            "/roles",
            json!({"name": "myrole", "administrative": "false",
                   "description": "My custom role to create virtual machines",
                   "permits": {"permit": [{"id": "1"}, {"id": "1300"}, {"id": "5"}, {"id": "1"}]}}),
        )
        .await;
    assert_eq!(r.status, 201, "{r}");
    let role = r.id();
    let mut permits: Vec<String> = env
        .list(&format!("/roles/{role}/permits"))
        .await
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    permits.sort();
    assert_eq!(permits, ["1", "1300", "5"]);
    let r = env
        .post(
            "/roles",
            json!({"name": "nopermits", "administrative": "false"}),
        )
        .await;
    assert_eq!(r.status, 400, "{r}");
    assert!(r.detail().contains("permits"), "{r}");
    let r = env
        .post(
            "/roles",
            json!({"name": "badpermit", "permits": {"permit": [{"id": "999999"}]}}),
        )
        .await;
    assert_eq!(r.status, 404, "{r}");
    assert!(env.names("/roles").await.iter().all(|n| n != "badpermit"));
    env.stop().await;
}

/// A VM with a disk of 1 GiB on a data domain of a simulated host; the disk's id.
async fn vm_with_disk(env: &Env, vm: &str, name: &str) -> String {
    let att = env
        .post(
            &format!("/vms/{vm}/diskattachments"),
            json!({"bootable": "true", "interface": "virtio", "active": "true",
                   "disk": {"name": name, "format": "cow", "provisioned_size": (1u64 << 30).to_string(),
                            "storage_domains": {"storage_domain": [{"name": "data1"}]}}}),
        )
        .await;
    assert!(att.status == 201 || att.status == 202, "{att}");
    let disk = att.body["disk"]["id"].as_str().unwrap().to_string();
    env.wait("disk ok", &format!("/disks/{disk}"), |d| {
        d["status"] == "ok"
    })
    .await;
    disk
}

/// `extend_disk` (through the VM's disk attachment, as the example does): the disk grows and
/// a host extends its volume; the other members of the disk change too; shrinking is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_is_extended_through_its_attachment() {
    let mut env = Env::start().await;
    env.add_host("h1").await;
    env.data_domain("data1", "h1").await;
    let vm = env.add_vm("extendme").await;
    let disk = vm_with_disk(&env, &vm, "growing").await;
    let att = format!("/vms/{vm}/diskattachments/{disk}");
    let two = (2u64 << 30).to_string();
    let r = env
        .put(
            &att,
            json!({"disk": {"provisioned_size": two, "alias": "grown", "description": "bigger"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(
        r.body["disk"]["id"], disk,
        "the attachment keeps its disk: {r}"
    );
    let d = env
        .wait("disk extended", &format!("/disks/{disk}"), |d| {
            d["status"] == "ok" && d["provisioned_size"] == two.as_str()
        })
        .await;
    assert_eq!(d["alias"], "grown");
    assert_eq!(d["name"], "grown");
    assert_eq!(d["description"], "bigger");
    // The host did the work: oVirt's event 371 says so.
    let events = env.list("/events?max=100").await;
    assert!(
        events.iter().any(
            |e| e["code"] == "371" && e["description"].as_str().unwrap_or("").contains("grown")
        ),
        "{events:?}"
    );
    // Shrinking is refused, as for the disk itself, and nothing changes.
    let r = env
        .put(
            &att,
            json!({"disk": {"provisioned_size": (1u64 << 30).to_string()}}),
        )
        .await;
    assert_eq!(r.status, 400, "{r}");
    assert!(r.detail().contains("larger"), "{r}");
    let d = env.get(&format!("/disks/{disk}")).await;
    assert_eq!(d.body["provisioned_size"], two.as_str());
    // Attachment members still belong to the attachment.
    let r = env.put(&att, json!({"bootable": "false"})).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body["bootable"], "false");
    env.stop().await;
}

/// `pin_vm`: the hosts of a placement policy given by name are kept by id (with their link),
/// on add and on update; an unknown host is a 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_hosts_given_by_name_are_kept_by_id() {
    let mut env = Env::start().await;
    let h1 = env.add_host("h1").await;
    let h2 = env.add_host("h2").await;
    let r = env
        .post(
            "/vms",
            json!({"name": "pinned", "cluster": {"name": "Default"}, "template": {"name": "Blank"},
                   "placement_policy": {"affinity": "pinned", "hosts": {"host": [{"name": "h1"}]}}}),
        )
        .await;
    assert_eq!(r.status, 201, "{r}");
    let vm = r.id();
    let got = env.get(&format!("/vms/{vm}")).await;
    let hosts = items(&got.body["placement_policy"], "hosts", "host");
    assert_eq!(hosts.len(), 1, "{got}");
    assert_eq!(hosts[0]["id"], h1);
    assert!(
        hosts[0]["href"].as_str().unwrap_or("").ends_with(&h1),
        "{got}"
    );
    let r = env
        .put(
            &format!("/vms/{vm}"),
            json!({"placement_policy": {"hosts": {"host": [{"name": "h2"}, {"id": h1}]}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{r}");
    let got = env.get(&format!("/vms/{vm}")).await;
    let ids: Vec<&Value> = items(&got.body["placement_policy"], "hosts", "host")
        .iter()
        .map(|h| &h["id"])
        .collect();
    assert_eq!(ids, [&json!(h2), &json!(h1)], "{got}");
    assert_eq!(got.body["placement_policy"]["affinity"], "pinned");
    let r = env
        .put(
            &format!("/vms/{vm}"),
            json!({"placement_policy": {"hosts": {"host": [{"name": "nosuchhost"}]}}}),
        )
        .await;
    assert_eq!(r.status, 404, "{r}");
    let r = env
        .post(
            "/vms",
            json!({"name": "pinned2", "cluster": {"name": "Default"}, "template": {"name": "Blank"},
                   "placement_policy": {"hosts": {"host": [{"name": "nosuchhost"}]}}}),
        )
        .await;
    assert_eq!(r.status, 404, "{r}");
    assert!(env.names("/vms").await.iter().all(|n| n != "pinned2"));
    env.stop().await;
}

/// `clone_vm_from_snapshot`: `POST /vms` with a snapshot and no template makes a VM of the
/// snapshot's configuration (not the VM's later one) with copies of the disks as the snapshot
/// froze them, under new ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_is_cloned_from_a_snapshot() {
    let mut env = Env::start().await;
    env.add_host("h1").await;
    env.data_domain("data1", "h1").await;
    let vm = env.add_vm("source").await;
    let r = env
        .put(
            &format!("/vms/{vm}"),
            json!({"memory": (2u64 << 30).to_string()}),
        )
        .await;
    assert_eq!(r.status, 200, "{r}");
    let disk = vm_with_disk(&env, &vm, "srcdisk").await;
    let snap = env
        .post(
            &format!("/vms/{vm}/snapshots"),
            json!({"description": "before the change"}),
        )
        .await;
    assert_eq!(snap.status, 201, "{snap}");
    let snap = snap.id();
    // The VM changes after the snapshot; the clone is made of the snapshot.
    let r = env
        .put(
            &format!("/vms/{vm}"),
            json!({"memory": (3u64 << 30).to_string()}),
        )
        .await;
    assert_eq!(r.status, 200, "{r}");
    let r = env
        .post(
            "/vms",
            json!({"name": "fromsnap", "snapshots": {"snapshot": [{"id": snap}]}}),
        )
        .await;
    assert!(r.status == 201 || r.status == 202, "{r}");
    let clone = r.id();
    assert_eq!(r.body["memory"], (2u64 << 30).to_string(), "{r}");
    assert_eq!(
        r.body["template"]["id"],
        "00000000-0000-0000-0000-000000000000"
    );
    assert_eq!(
        r.body["cluster"]["id"],
        env.get(&format!("/vms/{vm}")).await.body["cluster"]["id"]
    );
    let atts = env.list(&format!("/vms/{clone}/diskattachments")).await;
    assert_eq!(atts.len(), 1, "{atts:?}");
    let copy = atts[0]["disk"]["id"].as_str().unwrap().to_string();
    assert_ne!(copy, disk, "the clone's disk is a new disk");
    assert_eq!(atts[0]["bootable"], "true", "attached as the source has it");
    assert_eq!(atts[0]["interface"], "virtio");
    let d = env
        .wait("copied disk ok", &format!("/disks/{copy}"), |d| {
            d["status"] == "ok"
        })
        .await;
    assert_eq!(d["alias"], "srcdisk");
    assert_ne!(
        d["image_id"],
        env.get(&format!("/disks/{disk}")).await.body["image_id"]
    );
    // Both VMs go their own ways: removing the clone leaves the source's disk.
    let r = env.delete(&format!("/vms/{clone}")).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(env.get(&format!("/disks/{disk}")).await.status, 200);
    // A snapshot that does not exist is a 404; nothing is made.
    let r = env
        .post(
            "/vms",
            json!({"name": "nosnap", "snapshots": {"snapshot": [{"id": "8a1e9a33-0000-4000-8000-000000000000"}]}}),
        )
        .await;
    assert_eq!(r.status, 404, "{r}");
    assert!(env.names("/vms").await.iter().all(|n| n != "nosnap"));
    env.stop().await;
}

/// `vm_backup` (the snapshot way): a snapshot's disk is attached to another VM read-only,
/// though the disk is attached to its own VM and not shareable; detaching it (even with
/// `detach_only=false`) and removing that VM leave the disk to its owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_disk_is_attached_to_a_backup_vm() {
    let mut env = Env::start().await;
    env.add_host("h1").await;
    env.data_domain("data1", "h1").await;
    let vm = env.add_vm("data").await;
    let disk = vm_with_disk(&env, &vm, "datadisk").await;
    let snap = env
        .post(
            &format!("/vms/{vm}/snapshots"),
            json!({"description": "backup"}),
        )
        .await;
    assert_eq!(snap.status, 201, "{snap}");
    let snap = snap.id();
    let backup = env.add_vm("backup").await;
    let atts = format!("/vms/{backup}/diskattachments");
    // Without the snapshot it is refused, as oVirt refuses it.
    let r = env
        .post(
            &atts,
            json!({"interface": "virtio", "active": "true", "disk": {"id": disk}}),
        )
        .await;
    assert_eq!(r.status, 409, "{r}");
    let r = env
        .post(
            &atts,
            json!({"interface": "virtio", "active": "true",
                   "disk": {"id": disk, "snapshot": {"id": snap}}}),
        )
        .await;
    assert_eq!(r.status, 201, "{r}");
    assert_eq!(r.body["disk"]["id"], disk);
    assert_eq!(r.body["disk"]["snapshot"]["id"], snap, "{r}");
    assert_eq!(r.body["read_only"], "true");
    let listed = env.list(&atts).await;
    assert_eq!(listed.len(), 1);
    // A snapshot that does not hold the disk is a 404.
    let other = env.add_vm("other").await;
    let r = env
        .post(
            &format!("/vms/{other}/diskattachments"),
            json!({"interface": "virtio", "disk": {"id": disk, "snapshot": {"id": "8a1e9a33-0000-4000-8000-000000000000"}}}),
        )
        .await;
    assert_eq!(r.status, 404, "{r}");
    // The backup VM can be started with the snapshot's volume.
    let r = env.post(&format!("/vms/{backup}/start"), json!({})).await;
    assert_eq!(r.status, 200, "{r}");
    env.wait("backup up", &format!("/vms/{backup}"), |v| {
        v["status"] == "up"
    })
    .await;
    let r = env.post(&format!("/vms/{backup}/stop"), json!({})).await;
    assert_eq!(r.status, 200, "{r}");
    env.wait("backup down", &format!("/vms/{backup}"), |v| {
        v["status"] == "down"
    })
    .await;
    let r = env
        .delete(&format!("{atts}/{disk}?detach_only=false"))
        .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(env.get(&format!("/disks/{disk}")).await.status, 200);
    let r = env
        .post(
            &atts,
            json!({"interface": "virtio", "disk": {"id": disk, "snapshot": {"id": snap}}}),
        )
        .await;
    assert_eq!(r.status, 201, "{r}");
    let r = env.delete(&format!("/vms/{backup}")).await;
    assert_eq!(r.status, 200, "{r}");
    let d = env.get(&format!("/disks/{disk}")).await;
    assert_eq!(d.status, 200, "removing the backup VM leaves the disk: {d}");
    assert_eq!(
        env.list(&format!("/vms/{vm}/diskattachments")).await.len(),
        1
    );
    env.stop().await;
}

/// `change_vm_cd` / `get_vm_cdrom` with `current=true`: the running VM's medium (a run-once
/// CD, or one changed for this run only), while without `current` the stored CD-ROM shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_current_cdrom_is_the_running_vms_medium() {
    let mut env = Env::start().await;
    env.add_host("h1").await;
    let vm = env.add_vm("withcd").await;
    let cds = format!("/vms/{vm}/cdroms");
    let cd = env.list(&cds).await[0]["id"].as_str().unwrap().to_string();
    let r = env
        .put(
            &format!("{cds}/{cd}"),
            json!({"file": {"id": "stored.iso"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{r}");
    // A run-once CD is the medium of this run.
    let r = env
        .post(
            &format!("/vms/{vm}/start"),
            json!({"vm": {"cdroms": {"cdrom": [{"file": {"id": "runonce.iso"}}]}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{r}");
    env.wait("up", &format!("/vms/{vm}"), |v| v["status"] == "up")
        .await;
    let current = env.get(&format!("{cds}/{cd}?current=true")).await;
    assert_eq!(current.status, 200, "{current}");
    assert_eq!(current.body["file"]["id"], "runonce.iso", "{current}");
    assert_eq!(current.body["id"], cd);
    let stored = env.get(&format!("{cds}/{cd}")).await;
    assert_eq!(stored.body["file"]["id"], "stored.iso", "{stored}");
    // A change for this run only.
    let r = env
        .put(
            &format!("{cds}/{cd}?current=true"),
            json!({"file": {"id": "thisrun.iso"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{r}");
    let listed = env.list(&format!("{cds}?current=true")).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["file"]["id"], "thisrun.iso", "{listed:?}");
    assert_eq!(env.list(&cds).await[0]["file"]["id"], "stored.iso");
    // Ejected for this run: no file.
    let r = env
        .put(
            &format!("{cds}/{cd}?current=true"),
            json!({"file": {"id": ""}}),
        )
        .await;
    assert_eq!(r.status, 200, "{r}");
    let current = env.get(&format!("{cds}/{cd}?current=true")).await;
    assert!(current.body.get("file").is_none(), "{current}");
    // Once down, the stored CD-ROM is the current one again.
    let r = env.post(&format!("/vms/{vm}/stop"), json!({})).await;
    assert_eq!(r.status, 200, "{r}");
    env.wait("down", &format!("/vms/{vm}"), |v| v["status"] == "down")
        .await;
    let current = env.get(&format!("{cds}/{cd}?current=true")).await;
    assert_eq!(current.body["file"]["id"], "stored.iso", "{current}");
    env.stop().await;
}

/// The domain's used bytes once its host has been asked again (they change after each
/// volume operation).
async fn used_of(env: &Env, sd: &str) -> i64 {
    support::int(&env.get(&format!("/storagedomains/{sd}")).await.body["used"])
}

/// `remove_vm` of a VM with snapshots: every volume of its disks goes, the ones its snapshots
/// froze too, so the domain holds what it held before the VM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_vm_deletes_its_snapshots_volumes() {
    let mut env = Env::start().await;
    env.add_host("h1").await;
    let sd = env.data_domain("data1", "h1").await;
    let before = used_of(&env, &sd).await;
    let vm = env.add_vm("snapped").await;
    vm_with_disk(&env, &vm, "chain").await;
    for d in ["one", "two"] {
        let r = env
            .post(&format!("/vms/{vm}/snapshots"), json!({"description": d}))
            .await;
        assert_eq!(r.status, 201, "{r}");
    }
    // Three volumes now: two frozen, one active.
    let grown = env
        .wait("volumes counted", &format!("/storagedomains/{sd}"), |d| {
            support::int(&d["used"]) > before
        })
        .await;
    assert!(support::int(&grown["used"]) > before);
    let r = env.delete(&format!("/vms/{vm}")).await;
    assert_eq!(r.status, 200, "{r}");
    env.wait("all volumes gone", &format!("/storagedomains/{sd}"), |d| {
        support::int(&d["used"]) == before
    })
    .await;
    assert_eq!(used_of(&env, &sd).await, before);
    env.stop().await;
}

/// `add_vm_pool` with `prestarted_vms`: the pool monitor starts that many of the pool's VMs
/// (oVirt's VmPoolMonitor; the harness runs it every 300 ms instead of 5 minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_monitor_starts_prestarted_vms() {
    let mut env = Env::start().await;
    env.add_host("h1").await;
    let r = env
        .post(
            "/vmpools",
            json!({"name": "prepool", "size": "3", "prestarted_vms": "2",
                   "cluster": {"name": "Default"}, "template": {"name": "Blank"}}),
        )
        .await;
    assert!(r.status == 201 || r.status == 202, "{r}");
    let pool = r.id();
    let search = "/vms?search=name%3Dprepool-*";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let vms = env.list(search).await;
        let up = vms.iter().filter(|v| v["status"] == "up").count();
        if up == 2 {
            assert_eq!(vms.len(), 3);
            assert!(vms.iter().all(|v| v["vm_pool"]["id"] == pool.as_str()));
            break;
        }
        assert!(up < 3, "more than the prestarted VMs run: {vms:?}");
        assert!(
            std::time::Instant::now() < deadline,
            "not prestarted: {vms:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Rounds after that start nothing more.
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    let vms = env.list(search).await;
    assert_eq!(vms.iter().filter(|v| v["status"] != "down").count(), 2);
    env.stop().await;
}

/// `vm_backup` reads the VM's configuration with `all_content=true`: oVirt adds
/// `initialization.configuration`, an OVF document of the VM (type `ovf`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_content_carries_the_vms_ovf() {
    let mut env = Env::start().await;
    env.add_host("h1").await;
    env.data_domain("data1", "h1").await;
    let vm = env.add_vm("ovfvm").await;
    let r = env
        .put(&format!("/vms/{vm}"), json!({"description": "a <b> & c"}))
        .await;
    assert_eq!(r.status, 200, "{r}");
    let disk = vm_with_disk(&env, &vm, "ovfdisk").await;
    let plain = env.get(&format!("/vms/{vm}")).await;
    assert!(
        plain.body["initialization"]["configuration"].is_null(),
        "{plain}"
    );
    let full = env.get(&format!("/vms/{vm}?all_content=true")).await;
    assert_eq!(full.status, 200, "{full}");
    let conf = &full.body["initialization"]["configuration"];
    assert_eq!(conf["type"], "ovf", "{full}");
    let data = conf["data"].as_str().unwrap();
    assert!(data.starts_with("<?xml"), "{data}");
    assert!(data.ends_with("</ovf:Envelope>"), "{data}");
    assert!(data.contains("<Name>ovfvm</Name>"), "{data}");
    assert!(
        data.contains("<Description>a &lt;b&gt; &amp; c</Description>"),
        "{data}"
    );
    assert!(data.contains(&format!("ovf:fileRef=\"{disk}/")), "{data}");
    assert!(data.contains("ovf:disk-alias=\"ovfdisk\""), "{data}");
    assert!(
        data.contains("<rasd:VirtualQuantity>1024</rasd:VirtualQuantity>"),
        "{data}"
    );
    env.stop().await;
}
