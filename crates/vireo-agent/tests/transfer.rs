//! The image data path on real volumes: tickets on qcow2 and raw files made with qemu-img,
//! served through qemu-nbd, driven over HTTP as the ovirt-imageio client drives it.

use std::path::Path;
use std::process::Command;

use vireo_agent::transfer::{http, Tickets};
use vireo_agent_proto::TicketSpec;

fn have_qemu_tools() -> bool {
    let ok = ["qemu-img", "qemu-nbd"].iter().all(|t| {
        Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ok && std::env::var_os("CI").is_some() {
        panic!("CI is set and the transfer tests need qemu-img and qemu-nbd (qemu-utils)");
    }
    if !ok {
        eprintln!("SKIPPED (CI unset): qemu-img/qemu-nbd missing");
    }
    ok
}

fn qemu_img(args: &[&str]) -> String {
    let o = Command::new("qemu-img").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn spec(id: &str, ops: &[&str], format: &str) -> TicketSpec {
    TicketSpec {
        id: id.into(),
        domain_id: "sd".into(),
        disk_id: "disk".into(),
        volume_id: "vol".into(),
        ops: ops.iter().map(|s| s.to_string()).collect(),
        format: format.into(),
        timeout_s: 300,
        inactivity_timeout_s: 60,
    }
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn serve(tickets: std::sync::Arc<Tickets>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, http::router(tickets)).await.unwrap();
    });
    format!("http://{addr}/images")
}

fn nbd_processes_for(path: &Path) -> usize {
    let p = path.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| {
            let s = String::from_utf8_lossy(c);
            s.starts_with("qemu-nbd") && s.contains(&p)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_transfer_of_a_qcow2_volume_serves_guest_data() {
    if !have_qemu_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let vol = dir.path().join("vol");
    let v = vol.to_string_lossy().into_owned();
    qemu_img(&["create", "-q", "-f", "qcow2", &v, "16M"]);
    let tickets = Tickets::new();
    let base = serve(tickets.clone()).await;
    let http = client();

    // Unknown ticket: 403, as imageio answers.
    let r = http.get(format!("{base}/nope")).send().await.unwrap();
    assert_eq!(r.status(), 403);

    let st = tickets
        .add(spec("t1", &["write"], "raw"), &vol, "qcow2")
        .await
        .unwrap();
    assert_eq!(st.size, 16 << 20, "the guest size, not the file's");
    assert_eq!(nbd_processes_for(&vol), 1);
    let url = format!("{base}/t1");

    let r = http
        .request(reqwest::Method::OPTIONS, &url)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["allow"], "OPTIONS,GET,PUT,PATCH");
    let o: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        o["features"],
        serde_json::json!(["extents", "zero", "flush"])
    );
    assert_eq!(o["max_writers"], 8);

    // A fresh qcow2 is one zero hole.
    let e: serde_json::Value = http
        .get(format!("{url}/extents"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        e,
        serde_json::json!([{"start": 0, "length": 16 << 20, "zero": true, "hole": true}])
    );

    // 1 MiB of pattern at 2 MiB, flushed later.
    let data: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let r = http
        .put(format!("{url}?flush=n"))
        .header(
            "content-range",
            format!("bytes {}-{}/*", 2 << 20, (3 << 20) - 1),
        )
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // Outside the image: 416; a body longer than the range: 400.
    let r = http
        .put(&url)
        .header(
            "content-range",
            format!("bytes {}-{}/*", 16 << 20, (16 << 20) + 9),
        )
        .body(vec![0u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    let r = http
        .put(&url)
        .header("content-range", "bytes 0-1/*")
        .body(vec![0u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .patch(&url)
        .json(&serde_json::json!({"op": "zero", "offset": 0, "size": 4096, "flush": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .patch(&url)
        .json(&serde_json::json!({"op": "explode"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .patch(&url)
        .json(&serde_json::json!({"op": "flush"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Ranged read back: 206 with Content-Range; a hole reads as zeroes.
    let r = http
        .get(&url)
        .header(
            "range",
            format!("bytes={}-{}", (2 << 20) - 4096, (3 << 20) - 1),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes {}-{}/{}", (2 << 20) - 4096, (3 << 20) - 1, 16 << 20)
    );
    let body = r.bytes().await.unwrap();
    assert!(body[..4096].iter().all(|b| *b == 0));
    assert_eq!(&body[4096..], &data[..]);
    let r = http
        .get(&url)
        .header("range", format!("bytes={}-", 16 << 20))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    let e: Vec<serde_json::Value> = http
        .get(format!("{url}/extents?context=zero"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        e.iter()
            .any(|x| x["zero"] == false && x["start"].as_u64().unwrap() <= 2 << 20),
        "{e:?}"
    );
    let r = http
        .get(format!("{url}/extents?context=dirty"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let st = tickets.status("t1").unwrap();
    assert!(st.transferred >= 2 << 20, "{st:?}");

    // Removing stops qemu-nbd; the qcow2 file now holds the data as a guest sees it.
    tickets.remove("t1").await.unwrap();
    assert_eq!(nbd_processes_for(&vol), 0);
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let raw = dir.path().join("raw");
    qemu_img(&[
        "convert",
        "-f",
        "qcow2",
        "-O",
        "raw",
        &v,
        &raw.to_string_lossy(),
    ]);
    let guest = std::fs::read(&raw).unwrap();
    assert_eq!(&guest[2 << 20..3 << 20], &data[..]);

    // A read ticket: no writes, no zero or flush features.
    tickets
        .add(spec("t2", &["read"], "raw"), &vol, "qcow2")
        .await
        .unwrap();
    let o: serde_json::Value = http
        .request(reqwest::Method::OPTIONS, format!("{base}/t2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(o["features"], serde_json::json!(["extents"]));
    let r = http
        .put(format!("{base}/t2"))
        .body(vec![1u8; 512])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let full = http
        .get(format!("{base}/t2"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(full.len(), 16 << 20);
    assert_eq!(&full[..], &guest[..]);
    tickets.clear().await;
    assert_eq!(nbd_processes_for(&vol), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cow_transfer_moves_the_file_bytes_and_check_catches_bad_images() {
    if !have_qemu_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let vol = dir.path().join("vol");
    let v = vol.to_string_lossy().into_owned();
    qemu_img(&["create", "-q", "-f", "qcow2", &v, "8M"]);
    let file = std::fs::read(&vol).unwrap();
    let tickets = Tickets::new();
    let base = serve(tickets.clone()).await;
    let http = client();
    let st = tickets
        .add(spec("c1", &["read"], "cow"), &vol, "qcow2")
        .await
        .unwrap();
    assert_eq!(st.size, file.len() as u64);
    let got = http
        .get(format!("{base}/c1"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&got[..], &file[..], "the qcow2 bytes as they are");
    tickets.remove("c1").await.unwrap();

    // Upload a qcow2 file made elsewhere over the volume, then verify it.
    let other = dir.path().join("other");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        &other.to_string_lossy(),
        "4M",
    ]);
    let bytes = std::fs::read(&other).unwrap();
    tickets
        .add(spec("c2", &["write"], "cow"), &vol, "qcow2")
        .await
        .unwrap();
    let r = http
        .put(format!("{base}/c2"))
        .header("content-range", format!("bytes 0-{}/*", bytes.len() - 1))
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tickets.remove("c2").await.unwrap();
    let ok = vireo_agent::transfer::control::check(&vol, "qcow2", false, 8 << 20).await;
    assert!(ok.ok, "{ok:?}");
    assert_eq!(ok.virtual_size, 4 << 20);
    let too_big = vireo_agent::transfer::control::check(&vol, "qcow2", false, 1 << 20).await;
    assert!(!too_big.ok);

    // A qcow2 pointing at a backing file of the host is refused.
    let evil = dir.path().join("evil");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        "raw",
        "-b",
        "/etc/hostname",
        &evil.to_string_lossy(),
        "1M",
    ]);
    let r = vireo_agent::transfer::control::check(&evil, "qcow2", false, 8 << 20).await;
    assert!(!r.ok && r.detail.unwrap().contains("backing"));
    // Garbage is not a qcow2.
    std::fs::write(&evil, vec![7u8; 65536]).unwrap();
    let r = vireo_agent::transfer::control::check(&evil, "qcow2", false, 8 << 20).await;
    assert!(!r.ok);
    // A simulated volume (no file) is an honest error.
    let e = tickets
        .add(
            spec("c3", &["read"], "raw"),
            &dir.path().join("missing"),
            "raw",
        )
        .await
        .unwrap_err();
    assert!(e.message.contains("simulated"), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_volumes_are_read_and_written_directly_with_their_holes() {
    if !have_qemu_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let vol = dir.path().join("vol");
    qemu_img(&["create", "-q", "-f", "raw", &vol.to_string_lossy(), "4M"]);
    let tickets = Tickets::new();
    let base = serve(tickets.clone()).await;
    let http = client();
    tickets
        .add(spec("r1", &["write"], "raw"), &vol, "raw")
        .await
        .unwrap();
    assert_eq!(nbd_processes_for(&vol), 0, "no qemu-nbd for a raw volume");
    let url = format!("{base}/r1");
    let o: serde_json::Value = http
        .request(reqwest::Method::OPTIONS, &url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(o["max_writers"], 8);
    let data = vec![0xC3u8; 1 << 20];
    let r = http
        .put(&url)
        .header(
            "content-range",
            format!("bytes {}-{}/*", 1 << 20, (2 << 20) - 1),
        )
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let e: Vec<serde_json::Value> = http
        .get(format!("{url}/extents"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // qemu-img writes the first block of a raw image; after it a hole, then our data.
    let at = |start: u64| e.iter().find(|x| x["start"] == start).cloned();
    assert_eq!(at(1 << 20).unwrap()["hole"], false, "{e:?}");
    assert_eq!(at(1 << 20).unwrap()["length"], 1 << 20, "{e:?}");
    assert!(
        e.iter().any(|x| x["hole"] == true && x["zero"] == true),
        "{e:?}"
    );
    // Zeroing punches the data out again.
    let r = http
        .patch(&url)
        .json(&serde_json::json!({"op": "zero", "offset": 1 << 20, "size": 1 << 19, "flush": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = http
        .get(&url)
        .header("range", format!("bytes={}-{}", 1 << 20, (2 << 20) - 1))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(got[..1 << 19].iter().all(|b| *b == 0));
    assert_eq!(&got[1 << 19..], &data[1 << 19..]);
    tickets.remove("r1").await.unwrap();
    assert_eq!(std::fs::metadata(&vol).unwrap().len(), 4 << 20);
}
