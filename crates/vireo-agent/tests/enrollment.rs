//! Enrollment and mutual TLS, end to end: a `vireo_pki::Pki` plays the engine.

mod common;

use common::*;
use vireo_agent::AgentClient;
use vireo_agent_proto::{ErrorCode, GraphicsSpec, Hypervisor, VmOperation, VmSpec, VmState};

fn enrollment_file(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join(vireo_agent::identity::ENROLLMENT_FILE)
}

#[tokio::test]
async fn a_wrong_secret_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = start_agent(&tmp.path().join("agent"), 1).await;
    let port = agent.hosts()[0].addr.port();
    let pki = engine(&tmp.path().join("engine"));

    let err = AgentClient::enroll("127.0.0.1", port, "wrong", &pki, "h1", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::BadSecret, "{err}");
    assert!(!enrollment_file(&tmp.path().join("agent")).exists());
    // Still not enrolled: the engine's client cannot even verify the agent's certificate.
    assert_eq!(
        mtls(&pki, port).capabilities().await.unwrap_err().code,
        ErrorCode::Unreachable
    );
    // And a stranger gets nothing but enrollment.
    let resp = raw(stranger_tls())
        .get(url(port, "/capabilities"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.json::<vireo_agent_proto::AgentError>()
            .await
            .unwrap()
            .code,
        ErrorCode::NotEnrolled
    );
    // The wrong secret answers 403 with a JSON AgentError on the wire.
    let body = serde_json::json!({"secret": "nope", "host_id": "h", "engine_ca_pem": pki.ca_pem(), "names": ["127.0.0.1"]});
    let resp = raw(stranger_tls())
        .post(url(port, "/enroll"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.json::<vireo_agent_proto::AgentError>()
            .await
            .unwrap()
            .code,
        ErrorCode::BadSecret
    );
    // Completing without a started enrollment is refused too.
    let body = serde_json::json!({"secret": SECRET, "cert_pem": pki.ca_pem()});
    let resp = raw(stranger_tls())
        .post(url(port, "/enroll/complete"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    agent.stop().await;
}

#[tokio::test]
async fn enrolled_agent_serves_the_engine_over_mutual_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let agent_dir = tmp.path().join("agent");
    let agent = start_agent(&agent_dir, 1).await;
    let port = agent.hosts()[0].addr.port();
    let pki = engine(&tmp.path().join("engine"));
    enroll(&pki, port, "host-1").await;

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(enrollment_file(&agent_dir))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let client = mtls(&pki, port);
    let caps = client.capabilities().await.unwrap();
    assert_eq!(caps.host_id.as_deref(), Some("host-1"));
    assert_eq!(caps.cpu.sockets, 2);
    assert!(caps.simulated);
    let stats = client.stats().await.unwrap();
    assert_eq!(stats.memory_total, 64 << 30);

    let spec = VmSpec {
        id: "vm-1".into(),
        name: "myvm".into(),
        memory_bytes: 512 << 20,
        sockets: 1,
        cores: 1,
        threads: 1,
        graphics: vec![GraphicsSpec {
            protocol: "vnc".into(),
        }],
        ..VmSpec::default()
    };
    assert_eq!(
        client.create_vm(&spec).await.unwrap().state,
        VmState::WaitForLaunch
    );
    wait_state(&client, "vm-1", VmState::Up).await;
    let ticket = VmOperation::SetTicket {
        protocol: "vnc".into(),
        password: "secret".into(),
        ttl_s: 120,
    };
    client.vm_operation("vm-1", &ticket).await.unwrap();
    assert_eq!(client.list_vms().await.unwrap().len(), 1);
    client
        .vm_operation("vm-1", &VmOperation::Shutdown { timeout_s: 30 })
        .await
        .unwrap();
    wait_state(&client, "vm-1", VmState::Down).await;
    assert_eq!(
        client.get_vm("vm-1").await.unwrap().exit_reason.as_deref(),
        Some("shutdown")
    );
    client
        .vm_operation("vm-1", &VmOperation::Destroy)
        .await
        .unwrap();
    assert_eq!(
        client.get_vm("vm-1").await.unwrap_err().code,
        ErrorCode::NoSuchVm
    );
    agent.stop().await;
}

#[tokio::test]
async fn only_the_engines_certificate_opens_an_enrolled_agent() {
    let tmp = tempfile::tempdir().unwrap();
    let agent_dir = tmp.path().join("agent");
    let agent = start_agent(&agent_dir, 1).await;
    let port = agent.hosts()[0].addr.port();
    let pki = engine(&tmp.path().join("engine"));
    enroll(&pki, port, "host-1").await;

    // No client certificate: TLS works, the API does not.
    let resp = raw(client_tls(pki.ca_pem(), None))
        .get(url(port, "/capabilities"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<vireo_agent_proto::AgentError>()
            .await
            .unwrap()
            .code,
        ErrorCode::Unauthenticated
    );

    // A certificate from another CA: the handshake fails.
    let other = engine(&tmp.path().join("other-engine"));
    let cert = std::fs::read_to_string(other.dir().join("engine-client.pem")).unwrap();
    let key = std::fs::read_to_string(other.dir().join("engine-client.key")).unwrap();
    let foreign = raw(client_tls(pki.ca_pem(), Some((&cert, &key))));
    assert!(foreign
        .get(url(port, "/capabilities"))
        .send()
        .await
        .is_err());

    // A host's certificate from the right CA: hosts do not drive each other.
    let enrollment: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(enrollment_file(&agent_dir)).unwrap())
            .unwrap();
    let (cert, key) = (
        enrollment["cert"]["cert_pem"].as_str().unwrap(),
        enrollment["cert"]["key_pem"].as_str().unwrap(),
    );
    let resp = raw(client_tls(pki.ca_pem(), Some((cert, key))))
        .get(url(port, "/capabilities"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    agent.stop().await;
}

#[tokio::test]
async fn a_restarted_agent_comes_back_enrolled_and_can_be_re_enrolled() {
    let tmp = tempfile::tempdir().unwrap();
    let agent_dir = tmp.path().join("agent");
    let pki = engine(&tmp.path().join("engine"));
    let agent = start_agent(&agent_dir, 1).await;
    enroll(&pki, agent.hosts()[0].addr.port(), "host-1").await;
    agent.stop().await;

    let agent = start_agent(&agent_dir, 1).await;
    let port = agent.hosts()[0].addr.port();
    assert_eq!(
        mtls(&pki, port)
            .capabilities()
            .await
            .unwrap()
            .host_id
            .as_deref(),
        Some("host-1")
    );

    // The engine re-adds the host.
    enroll(&pki, port, "host-1b").await;
    assert_eq!(
        mtls(&pki, port)
            .capabilities()
            .await
            .unwrap()
            .host_id
            .as_deref(),
        Some("host-1b")
    );

    // A reinstalled engine (new CA) that knows the secret takes the host over; the old one
    // is cut off.
    let new_engine = engine(&tmp.path().join("new-engine"));
    enroll(&new_engine, port, "host-2").await;
    assert_eq!(
        mtls(&new_engine, port)
            .capabilities()
            .await
            .unwrap()
            .host_id
            .as_deref(),
        Some("host-2")
    );
    assert_eq!(
        mtls(&pki, port).capabilities().await.unwrap_err().code,
        ErrorCode::Unreachable
    );
    agent.stop().await;
}

#[tokio::test]
async fn bad_requests_get_json_errors_with_their_status() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = start_agent(&tmp.path().join("agent"), 1).await;
    let port = agent.hosts()[0].addr.port();
    let pki = engine(&tmp.path().join("engine"));
    enroll(&pki, port, "host-1").await;
    let cert = std::fs::read_to_string(pki.dir().join("engine-client.pem")).unwrap();
    let key = std::fs::read_to_string(pki.dir().join("engine-client.key")).unwrap();
    let http = raw(client_tls(pki.ca_pem(), Some((&cert, &key))));

    let cases: [(reqwest::Method, &str, &str, u16, ErrorCode); 7] = [
        (
            reqwest::Method::POST,
            "/vms",
            "{not json",
            400,
            ErrorCode::InvalidRequest,
        ),
        (
            reqwest::Method::POST,
            "/vms",
            r#"{"id": 5}"#,
            400,
            ErrorCode::InvalidRequest,
        ),
        (
            reqwest::Method::POST,
            "/vms/x/explode",
            "",
            400,
            ErrorCode::InvalidRequest,
        ),
        (
            reqwest::Method::POST,
            "/vms/x/destroy",
            "",
            404,
            ErrorCode::NoSuchVm,
        ),
        (
            reqwest::Method::GET,
            "/nowhere",
            "",
            404,
            ErrorCode::Unsupported,
        ),
        (
            reqwest::Method::DELETE,
            "/vms",
            "",
            405,
            ErrorCode::Unsupported,
        ),
        (
            reqwest::Method::GET,
            "/storage/domains/nope",
            "",
            404,
            ErrorCode::NoSuchDomain,
        ),
    ];
    for (method, path, body, status, code) in cases {
        let resp = http
            .request(method.clone(), url(port, path))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{method} {path}");
        let err: vireo_agent_proto::AgentError = resp.json().await.unwrap();
        assert_eq!(err.code, code, "{method} {path}: {}", err.message);
    }
    // Too big a body is refused, not buffered.
    let resp = http
        .post(url(port, "/vms"))
        .body(vec![b' '; 2 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    agent.stop().await;
}
