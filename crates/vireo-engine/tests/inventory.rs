//! The inventory's rules that need no host: data centers, clusters, networks, MAC pools, VMs
//! and their NICs and CD-ROMs, templates, tags, permissions, external jobs, and the faults
//! oVirt answers when a request breaks its rules.

mod support;

use serde_json::{json, Value};
use support::{int, items, Env};

const BLANK: &str = "00000000-0000-0000-0000-000000000000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_centers_come_with_a_quota_and_the_management_network() {
    let env = Env::start().await;
    let r = env
        .post("/datacenters", json!({"name": "dc1", "local": "false"}))
        .await;
    assert_eq!(r.status, 201, "{r}");
    let dc = r.id();
    assert_eq!(r.body["status"], "uninitialized");
    assert_eq!(r.body["version"]["minor"], "8");
    assert!(
        r.body.get("storage_format").is_none(),
        "no storage format before storage: {r}"
    );
    assert_eq!(
        env.names(&format!("/datacenters/{dc}/networks")).await,
        vec!["ovirtmgmt"]
    );
    assert_eq!(
        env.names(&format!("/datacenters/{dc}/quotas")).await,
        vec!["Default"]
    );
    let net = env.list(&format!("/datacenters/{dc}/networks")).await[0].clone();
    let profiles = env
        .list(&format!(
            "/networks/{}/vnicprofiles",
            net["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(profiles.len(), 1);
    assert_eq!(profiles[0]["name"], "ovirtmgmt");

    // Names are unique; unsupported versions are refused; status is the engine's.
    let dup = env
        .post("/datacenters", json!({"name": "dc1", "local": "false"}))
        .await;
    assert_eq!(dup.status, 409, "{dup}");
    assert!(dup.detail().contains("name is already in use"), "{dup}");
    let old = env
        .post(
            "/datacenters",
            json!({"name": "dc2", "local": "false", "version": {"major": "4", "minor": "1"}}),
        )
        .await;
    assert_eq!(old.status, 400, "{old}");
    let upd = env
        .put(
            &format!("/datacenters/{dc}"),
            json!({"status": "up", "description": "d"}),
        )
        .await;
    assert_eq!(upd.status, 200, "{upd}");
    assert_eq!(upd.body["status"], "uninitialized");
    assert_eq!(upd.body["description"], "d");

    // Removal takes its networks and quotas along.
    let del = env.delete(&format!("/datacenters/{dc}")).await;
    assert_eq!(del.status, 200, "{del}");
    assert!(env
        .list(&format!("/networks?search=datacenter.id%3D{dc}"))
        .await
        .is_empty());
    assert_eq!(env.get(&format!("/datacenters/{dc}")).await.status, 404);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_check_their_cpu_and_attach_networks_of_their_data_center() {
    let env = Env::start().await;
    let dc = env
        .post("/datacenters", json!({"name": "dc1", "local": "false"}))
        .await
        .id();
    let other = env
        .post("/datacenters", json!({"name": "dc2", "local": "false"}))
        .await
        .id();
    let bad_cpu = env
        .post(
            "/clusters",
            json!({"name": "c0", "data_center": {"id": dc}, "cpu": {"type": "Pentium 4"}}),
        )
        .await;
    assert_eq!(bad_cpu.status, 400, "{bad_cpu}");
    assert!(
        bad_cpu.detail().contains("CPU is not supported"),
        "{bad_cpu}"
    );
    let missing_dc = env
        .post(
            "/clusters",
            json!({"name": "c0", "data_center": {"name": "nowhere"}}),
        )
        .await;
    assert_eq!(missing_dc.status, 404, "{missing_dc}");
    assert!(
        missing_dc.detail().contains("Entity not found"),
        "{missing_dc}"
    );

    let r = env.post("/clusters", json!({"name": "c1", "data_center": {"name": "dc1"}, "cpu": {"type": "Intel Nehalem Family"}})).await;
    assert_eq!(r.status, 201, "{r}");
    let cl = r.id();
    assert_eq!(r.body["cpu"]["architecture"], "x86_64");
    // The data center's management network is attached, and a CPU profile made.
    let nets = env.list(&format!("/clusters/{cl}/networks")).await;
    assert_eq!(nets.len(), 1, "{nets:?}");
    assert_eq!(nets[0]["name"], "ovirtmgmt");
    assert_eq!(nets[0]["required"], "true");
    assert!(items(&nets[0], "usages", "usage").contains(&&json!("management")));
    assert_eq!(
        env.names(&format!("/clusters/{cl}/cpuprofiles")).await,
        vec!["c1"]
    );
    assert_eq!(
        env.names(&format!("/datacenters/{dc}/clusters")).await,
        vec!["c1"]
    );

    // Attaching: by id or name, once, only networks of the same data center.
    let net = env
        .post(
            "/networks",
            json!({"name": "net1", "data_center": {"id": dc}, "vlan": {"id": "10"}}),
        )
        .await
        .id();
    let foreign = env
        .post(
            "/networks",
            json!({"name": "net2", "data_center": {"id": other}}),
        )
        .await
        .id();
    let a = env
        .post(
            &format!("/clusters/{cl}/networks"),
            json!({"id": net, "required": "false"}),
        )
        .await;
    assert_eq!(a.status, 201, "{a}");
    assert_eq!(a.body["id"], net.as_str());
    assert_eq!(a.body["required"], "false");
    assert_eq!(
        a.body["vlan"]["id"], "10",
        "the attachment shows the network: {a}"
    );
    let again = env
        .post(&format!("/clusters/{cl}/networks"), json!({"name": "net1"}))
        .await;
    assert_eq!(again.status, 409, "{again}");
    let wrong = env
        .post(&format!("/clusters/{cl}/networks"), json!({"id": foreign}))
        .await;
    assert_eq!(wrong.status, 409, "{wrong}");
    let upd = env
        .put(
            &format!("/clusters/{cl}/networks/{net}"),
            json!({"required": "true"}),
        )
        .await;
    assert_eq!(upd.status, 200, "{upd}");
    assert_eq!(upd.body["required"], "true");
    // A network renamed is seen renamed through the cluster too.
    env.put(&format!("/networks/{net}"), json!({"name": "net1b"}))
        .await;
    assert_eq!(
        env.get(&format!("/clusters/{cl}/networks/{net}"))
            .await
            .body["name"],
        "net1b"
    );
    let mgmt = nets[0]["id"].as_str().unwrap();
    let detach_mgmt = env.delete(&format!("/clusters/{cl}/networks/{mgmt}")).await;
    assert_eq!(detach_mgmt.status, 409, "{detach_mgmt}");
    assert_eq!(
        env.delete(&format!("/clusters/{cl}/networks/{net}"))
            .await
            .status,
        200
    );
    assert_eq!(env.list(&format!("/clusters/{cl}/networks")).await.len(), 1);

    // A cluster with VMs stays.
    let vm = env
        .post(
            "/vms",
            json!({"name": "v1", "cluster": {"id": cl}, "template": {"name": "Blank"}}),
        )
        .await;
    assert_eq!(vm.status, 201, "{vm}");
    let busy = env.delete(&format!("/clusters/{cl}")).await;
    assert_eq!(busy.status, 409, "{busy}");
    assert!(busy.detail().contains("VMs"), "{busy}");
    env.delete(&format!("/vms/{}", vm.id())).await;
    assert_eq!(env.delete(&format!("/clusters/{cl}")).await.status, 200);
    assert!(env
        .list(&format!("/cpuprofiles?search=cluster.id%3D{cl}"))
        .await
        .is_empty());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_get_a_vnic_profile_and_keep_their_rules() {
    let env = Env::start().await;
    let dc = env.default_dc().await;
    let r = env
        .post(
            "/networks",
            json!({"name": "blue", "data_center": {"id": dc}, "vlan": {"id": "100"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{r}");
    let net = r.id();
    assert_eq!(r.body["vdsm_name"], "blue");
    assert!(items(&r.body, "usages", "usage").contains(&&json!("vm")));
    let profiles = env.list(&format!("/networks/{net}/vnicprofiles")).await;
    assert_eq!(profiles.len(), 1);
    assert_eq!(profiles[0]["name"], "blue");
    assert!(env
        .names("/vnicprofiles")
        .await
        .contains(&"blue".to_string()));

    let range = env
        .post(
            "/networks",
            json!({"name": "red", "data_center": {"id": dc}, "vlan": {"id": "5000"}}),
        )
        .await;
    assert_eq!(range.status, 400, "{range}");
    let taken = env
        .post(
            "/networks",
            json!({"name": "red", "data_center": {"id": dc}, "vlan": {"id": "100"}}),
        )
        .await;
    assert_eq!(taken.status, 409, "{taken}");
    assert!(
        taken.detail().contains("VLAN ID (100) is already in use"),
        "{taken}"
    );
    let dup = env
        .post(
            "/networks",
            json!({"name": "blue", "data_center": {"id": dc}}),
        )
        .await;
    assert_eq!(dup.status, 409, "{dup}");
    // The same name in another data center is fine.
    let dc2 = env
        .post("/datacenters", json!({"name": "dc2", "local": "false"}))
        .await
        .id();
    assert_eq!(
        env.post(
            "/networks",
            json!({"name": "blue", "data_center": {"id": dc2}})
        )
        .await
        .status,
        201
    );

    let mgmt = env
        .list("/networks?search=name%3Dovirtmgmt%20and%20datacenter%3DDefault")
        .await;
    assert_eq!(mgmt.len(), 1, "{mgmt:?}");
    let keep = env
        .delete(&format!("/networks/{}", mgmt[0]["id"].as_str().unwrap()))
        .await;
    assert_eq!(keep.status, 409, "{keep}");
    assert!(keep.detail().contains("Management Network"), "{keep}");

    // A profile in use by a NIC stays; the network too.
    let vm = env.add_vm("v1").await;
    let pid = profiles[0]["id"].as_str().unwrap();
    let nic = env
        .post(
            &format!("/vms/{vm}/nics"),
            json!({"name": "nic1", "vnic_profile": {"id": pid}}),
        )
        .await;
    assert_eq!(nic.status, 201, "{nic}");
    assert_eq!(
        env.delete(&format!("/vnicprofiles/{pid}")).await.status,
        409
    );
    assert_eq!(env.delete(&format!("/networks/{net}")).await.status, 409);
    env.delete(&format!("/vms/{vm}/nics/{}", nic.id())).await;
    assert_eq!(env.delete(&format!("/networks/{net}")).await.status, 200);
    assert_eq!(
        env.get(&format!("/vnicprofiles/{pid}")).await.status,
        404,
        "the profile goes with its network"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vms_take_the_template_and_instance_type_and_refuse_what_ovirt_refuses() {
    let env = Env::start().await;
    let r = env
        .post(
            "/vms",
            json!({"name": "web1", "description": "My VM", "cluster": {"name": "Default"}, "template": {"name": "Blank"},
                   "memory": (512u64 << 20).to_string(), "os": {"boot": {"devices": {"device": ["hd", "cdrom"]}}}}),
        )
        .await;
    assert_eq!(r.status, 201, "{r}");
    let vm = &r.body;
    assert_eq!(vm["status"], "down");
    assert_eq!(vm["origin"], "ovirt");
    assert_eq!(vm["type"], "server");
    assert_eq!(int(&vm["memory"]), 512 << 20);
    assert_eq!(int(&vm["memory_policy"]["guaranteed"]), 512 << 20);
    assert_eq!(int(&vm["memory_policy"]["max"]), 4 * (512 << 20));
    assert_eq!(int(&vm["cpu"]["topology"]["sockets"]), 1);
    assert_eq!(vm["template"]["id"], BLANK);
    assert_eq!(vm["original_template"]["id"], BLANK);
    assert_eq!(items(&vm["os"], "boot", "devices").len(), 0);
    assert_eq!(
        vm["os"]["boot"]["devices"]["device"],
        json!(["hd", "cdrom"])
    );
    assert_eq!(vm["os"]["type"], "other");
    assert!(vm["creation_time"].is_number(), "{vm}");
    assert!(
        vm["cpu_profile"]["id"].is_string(),
        "the cluster's CPU profile: {vm}"
    );
    assert!(vm["href"]
        .as_str()
        .unwrap()
        .ends_with(vm["id"].as_str().unwrap()));

    // Blank's memory when none is given; an instance type's hardware over the template's.
    let plain = env
        .post(
            "/vms",
            json!({"name": "plain", "cluster": {"name": "Default"}, "template": {"id": BLANK}}),
        )
        .await;
    assert_eq!(int(&plain.body["memory"]), 1 << 30, "{plain}");
    let medium = env
        .post("/vms", json!({"name": "med", "cluster": {"name": "Default"}, "template": {"name": "Blank"}, "instance_type": {"name": "Medium"}}))
        .await;
    assert_eq!(medium.status, 201, "{medium}");
    assert_eq!(int(&medium.body["memory"]), 4 << 30);
    assert_eq!(int(&medium.body["cpu"]["topology"]["sockets"]), 2);
    assert!(medium.body["instance_type"]["id"].is_string());

    // Every VM has its CD-ROM, whose file is an ISO name.
    let id = r.id();
    let cds = env.list(&format!("/vms/{id}/cdroms")).await;
    assert_eq!(cds.len(), 1);
    assert_eq!(cds[0]["id"], BLANK);
    let cd = env
        .put(
            &format!("/vms/{id}/cdroms/{BLANK}"),
            json!({"file": {"id": "CentOS-7.iso"}}),
        )
        .await;
    assert_eq!(cd.status, 200, "{cd}");
    assert_eq!(cd.body["file"]["id"], "CentOS-7.iso");
    let eject = env
        .put(
            &format!("/vms/{id}/cdroms/{BLANK}"),
            json!({"file": {"id": ""}}),
        )
        .await;
    assert!(eject.body.get("file").is_none(), "{eject}");
    assert_eq!(
        env.post(
            &format!("/vms/{id}/cdroms"),
            json!({"file": {"id": "x.iso"}})
        )
        .await
        .status,
        409
    );

    // Refusals: missing inputs, references to nothing, bad names and memory, duplicates.
    let no_template = env
        .post("/vms", json!({"name": "x", "cluster": {"name": "Default"}}))
        .await;
    assert_eq!(no_template.status, 400, "{no_template}");
    assert!(no_template.detail().contains("template"), "{no_template}");
    let no_cluster = env
        .post(
            "/vms",
            json!({"name": "x", "cluster": {"name": "nope"}, "template": {"name": "Blank"}}),
        )
        .await;
    assert_eq!(no_cluster.status, 404, "{no_cluster}");
    assert_eq!(no_cluster.body["reason"], "Operation Failed");
    assert!(
        no_cluster
            .detail()
            .contains("Entity not found: Cluster: name=nope"),
        "{no_cluster}"
    );
    let no_tpl = env
        .post(
            "/vms",
            json!({"name": "x", "cluster": {"name": "Default"}, "template": {"name": "nope"}}),
        )
        .await;
    assert_eq!(no_tpl.status, 404, "{no_tpl}");
    let bad_name = env
        .post(
            "/vms",
            json!({"name": "a b", "cluster": {"name": "Default"}, "template": {"name": "Blank"}}),
        )
        .await;
    assert_eq!(bad_name.status, 400, "{bad_name}");
    assert!(
        bad_name.detail().contains("special characters"),
        "{bad_name}"
    );
    let bad_mem = env
        .post("/vms", json!({"name": "m", "cluster": {"name": "Default"}, "template": {"name": "Blank"}, "memory": "1073741824", "memory_policy": {"guaranteed": "2147483648"}}))
        .await;
    assert_eq!(bad_mem.status, 400, "{bad_mem}");
    assert!(
        bad_mem
            .detail()
            .contains("Physical Memory Guaranteed cannot exceed Memory Size"),
        "{bad_mem}"
    );
    let dup = env
        .post(
            "/vms",
            json!({"name": "web1", "cluster": {"name": "Default"}, "template": {"name": "Blank"}}),
        )
        .await;
    assert_eq!(dup.status, 409, "{dup}");
    assert!(dup.detail().contains("Cannot add VM"), "{dup}");
    let rename = env
        .put(&format!("/vms/{}", plain.id()), json!({"name": "web1"}))
        .await;
    assert_eq!(rename.status, 409, "{rename}");
    assert!(rename.detail().contains("Cannot edit VM"), "{rename}");

    // Updates keep what the engine owns; a running VM is not removed.
    let upd = env
        .put(
            &format!("/vms/{id}"),
            json!({"memory": (1u64 << 30).to_string(), "status": "up"}),
        )
        .await;
    assert_eq!(upd.status, 200, "{upd}");
    assert_eq!(upd.body["status"], "down");
    assert_eq!(int(&upd.body["memory"]), 1 << 30);
    let store = env.store().await;
    let rec = store.get("vms", &id).await.unwrap().unwrap();
    let mut doc: Value = serde_json::from_str(&rec.doc).unwrap();
    doc["status"] = json!("up");
    store
        .write(|tx| {
            let w = vireo_store::ObjectWrite::new("vms", rec.id.clone(), doc.to_string())
                .name("web1")
                .unique(vireo_store::NameScope::Global);
            Box::pin(async move { tx.update(&w, None).await })
        })
        .await
        .unwrap();
    store.close().await;
    let running = env.delete(&format!("/vms/{id}")).await;
    assert_eq!(running.status, 409, "{running}");
    assert!(running.detail().contains("VM is running"), "{running}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nics_get_unique_addresses_from_the_clusters_mac_pool() {
    let env = Env::start().await;
    let pool = env
        .post("/macpools", json!({"name": "small", "ranges": {"range": [{"from": "02:00:00:00:00:00", "to": "02:00:00:00:00:02"}]}}))
        .await;
    assert_eq!(pool.status, 201, "{pool}");
    let overlap = env
        .post("/macpools", json!({"name": "bad", "ranges": {"range": [{"from": "02:00:00:00:01:00", "to": "02:00:00:00:01:09"}, {"from": "02:00:00:00:01:05", "to": "02:00:00:00:01:0f"}]}}))
        .await;
    assert_eq!(overlap.status, 400, "{overlap}");
    let empty = env.post("/macpools", json!({"name": "none"})).await;
    assert_eq!(empty.status, 400, "{empty}");
    let dc = env.default_dc().await;
    let cl = env
        .post(
            "/clusters",
            json!({"name": "c1", "data_center": {"id": dc}, "mac_pool": {"id": pool.id()}}),
        )
        .await
        .id();
    let vm = env
        .post(
            "/vms",
            json!({"name": "v1", "cluster": {"id": cl}, "template": {"name": "Blank"}}),
        )
        .await
        .id();
    let mut macs = Vec::new();
    for n in 0..3 {
        let nic = env
            .post(
                &format!("/vms/{vm}/nics"),
                json!({"name": format!("nic{n}")}),
            )
            .await;
        assert_eq!(nic.status, 201, "{nic}");
        assert_eq!(nic.body["interface"], "virtio");
        assert_eq!(nic.body["plugged"], "true");
        macs.push(nic.body["mac"]["address"].as_str().unwrap().to_string());
    }
    macs.sort();
    assert_eq!(
        macs,
        vec![
            "02:00:00:00:00:00",
            "02:00:00:00:00:01",
            "02:00:00:00:00:02"
        ]
    );
    let full = env
        .post(&format!("/vms/{vm}/nics"), json!({"name": "nic9"}))
        .await;
    assert_eq!(full.status, 409, "{full}");
    assert!(full.detail().contains("Not enough MAC addresses"), "{full}");
    let same_name = env
        .post(&format!("/vms/{vm}/nics"), json!({"name": "nic0"}))
        .await;
    assert_eq!(same_name.status, 409, "{same_name}");
    // A freed address is given again; an address in use is refused.
    let nics = env.list(&format!("/vms/{vm}/nics")).await;
    let first = nics.iter().find(|n| n["name"] == "nic0").unwrap();
    let freed = first["mac"]["address"].as_str().unwrap().to_string();
    assert_eq!(
        env.delete(&format!("/vms/{vm}/nics/{}", first["id"].as_str().unwrap()))
            .await
            .status,
        200
    );
    let again = env
        .post(&format!("/vms/{vm}/nics"), json!({"name": "nic3"}))
        .await;
    assert_eq!(again.body["mac"]["address"], freed.as_str());
    let vm2 = env.add_vm("v2").await;
    let taken = env
        .post(
            &format!("/vms/{vm2}/nics"),
            json!({"name": "n", "mac": {"address": freed}}),
        )
        .await;
    assert_eq!(taken.status, 409, "{taken}");
    let bad = env
        .post(
            &format!("/vms/{vm2}/nics"),
            json!({"name": "n", "mac": {"address": "zz:00"}}),
        )
        .await;
    assert_eq!(bad.status, 400, "{bad}");
    // The Default pool gives addresses from its own range; it cannot be removed; a pool in use
    // by a cluster cannot either.
    let d = env
        .post(&format!("/vms/{vm2}/nics"), json!({"name": "n"}))
        .await;
    assert!(
        d.body["mac"]["address"]
            .as_str()
            .unwrap()
            .starts_with("56:6f:"),
        "{d}"
    );
    let def = env.list("/macpools?search=name%3DDefault").await;
    assert_eq!(
        env.delete(&format!("/macpools/{}", def[0]["id"].as_str().unwrap()))
            .await
            .status,
        409
    );
    assert_eq!(
        env.delete(&format!("/macpools/{}", pool.id())).await.status,
        409
    );
    // NICs of another VM are not reachable through this one.
    let other = env.get(&format!("/vms/{vm}/nics/{}", d.id())).await;
    assert_eq!(other.status, 404, "{other}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_are_made_from_vms_with_versions_and_blank_stays() {
    let env = Env::start().await;
    let vm = env.add_vm("src").await;
    env.post(&format!("/vms/{vm}/nics"), json!({"name": "nic1"}))
        .await;
    let t = env
        .post("/templates", json!({"name": "tpl", "vm": {"id": vm}}))
        .await;
    assert!(t.status == 201 || t.status == 202, "{t}");
    let tid = t.id();
    let t = env
        .wait("template ok", &format!("/templates/{tid}"), |t| {
            t["status"] == "ok"
        })
        .await;
    assert_eq!(t["version"]["version_number"], "1");
    assert_eq!(t["version"]["base_template"]["id"], tid.as_str());
    assert_eq!(
        env.names(&format!("/templates/{tid}/nics")).await,
        vec!["nic1"]
    );
    assert!(env.list(&format!("/templates/{tid}/nics")).await[0]
        .get("mac")
        .is_none());
    let v2 = env.post("/templates", json!({"name": "tpl", "vm": {"id": vm}, "version": {"base_template": {"id": tid}, "version_name": "second"}})).await;
    assert!(v2.status == 201 || v2.status == 202, "{v2}");
    assert_eq!(v2.body["version"]["version_number"], "2");
    let dup = env
        .post("/templates", json!({"name": "tpl", "vm": {"id": vm}}))
        .await;
    assert_eq!(dup.status, 409, "{dup}");

    // A VM from the template gets its NICs (with new addresses) and settings.
    let from = env
        .post(
            "/vms",
            json!({"name": "child", "cluster": {"name": "Default"}, "template": {"name": "tpl"}}),
        )
        .await;
    assert_eq!(from.status, 201, "{from}");
    assert_eq!(
        from.body["template"]["id"],
        tid.as_str(),
        "the base version by name"
    );
    let nics = env.list(&format!("/vms/{}/nics", from.id())).await;
    assert_eq!(nics.len(), 1);
    assert!(nics[0]["mac"]["address"].is_string());

    let used = env.delete(&format!("/templates/{tid}")).await;
    assert_eq!(used.status, 409, "{used}");
    assert!(used.detail().contains("child"), "{used}");
    let blank = env.delete(&format!("/templates/{BLANK}")).await;
    assert_eq!(blank.status, 409, "{blank}");
    assert!(blank.detail().contains("Blank"), "{blank}");
    env.delete(&format!("/vms/{}", from.id())).await;
    let versions = env.delete(&format!("/templates/{tid}")).await;
    assert_eq!(versions.status, 409, "{versions}");
    assert_eq!(
        env.delete(&format!("/templates/{}", v2.id())).await.status,
        200
    );
    assert_eq!(env.delete(&format!("/templates/{tid}")).await.status, 200);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_form_a_tree_and_are_searched_with_their_sub_tags() {
    let env = Env::start().await;
    let web = env.post("/tags", json!({"name": "web"})).await;
    assert_eq!(web.status, 201, "{web}");
    assert_eq!(web.body["parent"]["id"], BLANK, "under the root tag");
    let front = env
        .post("/tags", json!({"name": "front", "parent": {"name": "web"}}))
        .await
        .id();
    let vm1 = env.add_vm("a1").await;
    let vm2 = env.add_vm("a2").await;
    let t = env
        .post(&format!("/vms/{vm1}/tags"), json!({"name": "front"}))
        .await;
    assert_eq!(t.status, 201, "{t}");
    assert_eq!(t.body["name"], "front");
    assert_eq!(t.body["vm"]["id"], vm1.as_str());
    assert_eq!(
        env.post(&format!("/vms/{vm1}/tags"), json!({"id": front}))
            .await
            .status,
        409
    );
    env.post(&format!("/vms/{vm2}/tags"), json!({"id": web.id()}))
        .await;
    assert_eq!(env.names("/vms?search=tag%3Dfront").await, vec!["a1"]);
    assert_eq!(
        env.names("/vms?search=tag%3Dweb").await,
        vec!["a1", "a2"],
        "a parent tag finds sub-tags"
    );
    // Cycles and the root are refused; a rename is seen by search.
    let cycle = env
        .put(
            &format!("/tags/{}", web.id()),
            json!({"parent": {"id": front}}),
        )
        .await;
    assert_eq!(cycle.status, 409, "{cycle}");
    assert_eq!(env.delete(&format!("/tags/{BLANK}")).await.status, 409);
    env.put(&format!("/tags/{front}"), json!({"name": "edge"}))
        .await;
    assert_eq!(env.names("/vms?search=tag%3Dedge").await, vec!["a1"]);
    assert!(env.names("/vms?search=tag%3Dfront").await.is_empty());
    // Removing a tag removes its sub-tags and their assignments.
    assert_eq!(env.delete(&format!("/tags/{}", web.id())).await.status, 200);
    assert_eq!(env.get(&format!("/tags/{front}")).await.status, 404);
    assert!(env.list(&format!("/vms/{vm1}/tags")).await.is_empty());
    assert!(env.names("/vms?search=tag%3Dedge").await.is_empty());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_are_given_on_objects_and_listed_there() {
    let env = Env::start().await;
    let vm = env.add_vm("p1").await;
    let users = env.list("/users").await;
    let admin = users[0]["id"].as_str().unwrap().to_string();
    let p = env
        .post(
            &format!("/vms/{vm}/permissions"),
            json!({"role": {"name": "UserRole"}, "user": {"id": admin}}),
        )
        .await;
    assert_eq!(p.status, 201, "{p}");
    assert_eq!(p.body["vm"]["id"], vm.as_str());
    let on_vm = env.list(&format!("/vms/{vm}/permissions")).await;
    assert_eq!(on_vm.len(), 1, "{on_vm:?}");
    assert_eq!(
        env.post(
            &format!("/vms/{vm}/permissions"),
            json!({"role": {"name": "UserRole"}, "user": {"id": admin}})
        )
        .await
        .status,
        409
    );
    let of_user = env.list(&format!("/users/{admin}/permissions")).await;
    assert!(
        of_user.iter().any(|x| x["id"] == p.body["id"]),
        "{of_user:?}"
    );
    let no_role = env
        .post(
            &format!("/vms/{vm}/permissions"),
            json!({"role": {"name": "NoSuchRole"}, "user": {"id": admin}}),
        )
        .await;
    assert_eq!(no_role.status, 404, "{no_role}");
    // Permissions go with their object.
    env.delete(&format!("/vms/{vm}")).await;
    assert_eq!(
        env.get(&format!("/permissions/{}", p.id())).await.status,
        404
    );
    // The role held stays out of reach of removal.
    let roles = env.list("/roles?search=name%3DSuperUser").await;
    assert_eq!(
        env.delete(&format!("/roles/{}", roles[0]["id"].as_str().unwrap()))
            .await
            .status,
        409
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_jobs_and_steps_start_end_and_are_found_by_correlation_id() {
    let env = Env::start().await;
    let j = env
        .call(
            reqwest::Method::POST,
            "/jobs",
            Some(json!({"description": "backup run"})),
            &[("Correlation-Id", "backup-42")],
        )
        .await;
    assert_eq!(j.status, 201, "{j}");
    assert_eq!(j.body["status"], "started");
    assert_eq!(j.body["external"], "true");
    let job = j.id();
    let s = env
        .post(
            &format!("/jobs/{job}/steps"),
            json!({"description": "copy", "type": "executing"}),
        )
        .await;
    assert_eq!(s.status, 201, "{s}");
    assert_eq!(s.body["number"], "0");
    let found = env.list("/jobs?search=correlation_id%3Dbackup-42").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["id"], job.as_str());
    let end_step = env
        .post(
            &format!("/jobs/{job}/steps/{}/end", s.id()),
            json!({"succeeded": "true"}),
        )
        .await;
    assert_eq!(end_step.status, 200, "{end_step}");
    let end = env
        .post(&format!("/jobs/{job}/end"), json!({"succeeded": "false"}))
        .await;
    assert_eq!(end.status, 200, "{end}");
    assert_eq!(end.body["status"], "complete");
    let ended = env.get(&format!("/jobs/{job}")).await;
    assert_eq!(ended.body["status"], "failed");
    assert!(ended.body["end_time"].is_number());
    assert_eq!(
        env.post(&format!("/jobs/{job}/end"), json!({}))
            .await
            .status,
        409,
        "ends once"
    );
    assert_eq!(
        env.post(&format!("/jobs/{job}/clear"), json!({}))
            .await
            .status,
        200
    );
    assert_eq!(env.post("/jobs", json!({})).await.status, 400);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_and_sub_collections_of_missing_owners() {
    let env = Env::start().await;
    let vm = env.add_vm("f1").await;
    env.post(&format!("/vms/{vm}/nics"), json!({"name": "nic1"}))
        .await;
    let r = env
        .get(&format!(
            "/vms/{vm}?follow=nics,template,cluster.data_center"
        ))
        .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(items(&r.body, "nics", "nic").len(), 1, "{r}");
    assert_eq!(r.body["template"]["name"], "Blank", "{r}");
    assert_eq!(r.body["cluster"]["data_center"]["name"], "Default", "{r}");
    assert_eq!(env.get("/vms?follow=nosuch").await.status, 400);
    let missing = env
        .get("/vms/00000000-0000-0000-0000-00000000dead/nics")
        .await;
    assert_eq!(missing.status, 404, "{missing}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_make_their_vms_and_affinity_keeps_both_sides() {
    let env = Env::start().await;
    let p = env
        .post("/vmpools", json!({"name": "pool", "size": "3", "cluster": {"name": "Default"}, "template": {"name": "Blank"}}))
        .await;
    assert_eq!(p.status, 201, "{p}");
    let pid = p.id();
    let q = |s: &str| s.replace('=', "%3D");
    assert_eq!(
        env.names(&format!("/vms?search={}", q("pool=pool"))).await,
        vec!["pool-1", "pool-2", "pool-3"]
    );
    let grown = env
        .put(&format!("/vmpools/{pid}"), json!({"size": "4"}))
        .await;
    assert_eq!(grown.status, 200, "{grown}");
    assert_eq!(
        env.list(&format!("/vms?search={}", q("pool=pool")))
            .await
            .len(),
        4
    );
    assert_eq!(
        env.put(&format!("/vmpools/{pid}"), json!({"size": "2"}))
            .await
            .status,
        400
    );
    assert_eq!(env.delete(&format!("/vmpools/{pid}")).await.status, 200);
    assert!(env
        .list(&format!("/vms?search={}", q("name=pool-*")))
        .await
        .is_empty());

    // Affinity labels: attached from either side, seen from both; groups hold VMs.
    let vm = env.add_vm("aff").await;
    let label = env
        .post("/affinitylabels", json!({"name": "gpu"}))
        .await
        .id();
    let a = env
        .post(&format!("/affinitylabels/{label}/vms"), json!({"id": vm}))
        .await;
    assert_eq!(a.status, 201, "{a}");
    assert_eq!(
        env.names(&format!("/vms/{vm}/affinitylabels")).await,
        vec!["gpu"]
    );
    assert_eq!(
        env.delete(&format!("/vms/{vm}/affinitylabels/{label}"))
            .await
            .status,
        200
    );
    assert!(env
        .list(&format!("/affinitylabels/{label}/vms"))
        .await
        .is_empty());
    let cl = env.list("/clusters?search=name%3DDefault").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let g = env
        .post(
            &format!("/clusters/{cl}/affinitygroups"),
            json!({"name": "ag1"}),
        )
        .await;
    assert_eq!(g.status, 201, "{g}");
    let gid = g.id();
    assert_eq!(
        env.post(
            &format!("/clusters/{cl}/affinitygroups/{gid}/vms"),
            json!({"id": vm})
        )
        .await
        .status,
        201
    );
    assert_eq!(
        env.names(&format!("/clusters/{cl}/affinitygroups/{gid}/vms"))
            .await,
        vec!["aff"]
    );
    assert_eq!(
        env.post(
            &format!("/clusters/{cl}/affinitygroups"),
            json!({"name": "ag1"})
        )
        .await
        .status,
        409
    );
    // A VM removed leaves its groups.
    env.delete(&format!("/vms/{vm}")).await;
    assert!(env
        .list(&format!("/clusters/{cl}/affinitygroups/{gid}/vms"))
        .await
        .is_empty());
    env.stop().await;
}
