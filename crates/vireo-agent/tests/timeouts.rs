//! The engine's client gives up on agents that hang or are gone, with `Unreachable`.

use std::time::{Duration, Instant};

use vireo_agent::{AgentClient, Timeouts};
use vireo_agent_proto::{ErrorCode, Hypervisor};

fn client(port: u16) -> AgentClient {
    let pki = vireo_pki::Pki::load_or_create(&tempfile::tempdir().unwrap().path().join("pki"), &[])
        .unwrap();
    let timeouts = Timeouts {
        connect: Duration::from_millis(300),
        request: Duration::from_millis(600),
    };
    AgentClient::with_timeouts(
        "127.0.0.1",
        port,
        pki.engine_client_config().unwrap(),
        timeouts,
    )
    .unwrap()
}

#[tokio::test]
async fn a_hung_agent_times_out() {
    // Accepts connections and never says a word, like a wedged process.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            open.push(s);
        }
    });
    let started = Instant::now();
    let err = client(port).stats().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unreachable, "{err}");
    // Bounded by the configured timeouts, not by the test's patience.
    assert!(started.elapsed() < Duration::from_secs(5));
    held.abort();
}

#[tokio::test]
async fn a_vanished_agent_is_unreachable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = client(port).capabilities().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unreachable, "{err}");
}
