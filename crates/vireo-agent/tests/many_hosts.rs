//! `--hosts N`: many simulated hosts in one process, each its own listener and identity.

mod common;

use std::collections::HashSet;

use common::*;
use vireo_agent_proto::Hypervisor;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_hosts_start_enroll_and_answer_independently() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("agents");
    let agent = start_agent(&data, 50).await;
    let pki = std::sync::Arc::new(engine(&tmp.path().join("engine")));
    let hosts = agent.hosts().to_vec();
    assert_eq!(hosts.len(), 50);
    assert_eq!(
        hosts
            .iter()
            .map(|h| h.addr.port())
            .collect::<HashSet<_>>()
            .len(),
        50,
        "one port each"
    );
    for h in &hosts {
        assert_eq!(h.data_dir, data.join(format!("host-{}", h.index)));
    }

    let mut set = tokio::task::JoinSet::new();
    for h in hosts.clone() {
        let pki = pki.clone();
        set.spawn(async move {
            let id = format!("host-{}", h.index);
            enroll(&pki, h.addr.port(), &id).await;
            let caps = mtls(&pki, h.addr.port()).capabilities().await.unwrap();
            assert_eq!(caps.host_id.as_deref(), Some(id.as_str()));
            caps.nics[0].mac.clone()
        });
    }
    let mut macs = HashSet::new();
    while let Some(mac) = set.join_next().await {
        macs.insert(mac.unwrap());
    }
    assert_eq!(macs.len(), 50, "every host has its own hardware addresses");
    agent.stop().await;

    // Every host comes back with its own enrollment.
    let agent = start_agent(&data, 50).await;
    for h in agent.hosts().iter().step_by(7) {
        let caps = mtls(&pki, h.addr.port()).capabilities().await.unwrap();
        assert_eq!(caps.host_id, Some(format!("host-{}", h.index)));
    }
    agent.stop().await;
}

#[tokio::test]
async fn a_stopped_agent_closes_its_ports() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = start_agent(tmp.path(), 3).await;
    let addrs: Vec<_> = agent.hosts().iter().map(|h| h.addr).collect();
    agent.stop().await;
    for addr in addrs {
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "{addr} still open"
        );
    }
}
