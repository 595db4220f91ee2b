//! End-to-end tests of the engine PKI: files on disk, certificate contents,
//! and real TLS handshakes over loopback TCP.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use vireo_pki::{client_config_trusting, host_csr, Pki, PkiError};
use x509_parser::prelude::*;

const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// Runs `check` on the parsed certificate of `pem`.
fn with_x509<R>(pem: &str, check: impl FnOnce(&X509Certificate<'_>) -> R) -> R {
    let der = der(pem);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    check(&cert)
}

/// Path validation as a TLS client does it, against a store holding only `ca_pem`.
fn verify_server_cert(ca_pem: &str, cert_pem: &str, name: &str) -> Result<(), rustls::Error> {
    let mut roots = RootCertStore::empty();
    roots.add(der(ca_pem)).unwrap();
    let verifier = WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    verifier
        .verify_server_cert(
            &der(cert_pem),
            &[],
            &ServerName::try_from(name.to_string()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
}

/// What the server side of a test connection saw.
#[derive(Debug)]
struct Served {
    /// Number of certificates the client presented.
    client_certs: usize,
}

/// Accepts one connection on a loopback port, handshakes, answers "ping" with "pong".
fn serve_once(config: Arc<ServerConfig>) -> (SocketAddr, JoinHandle<Result<Served, String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let (mut sock, _) = listener.accept().map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        sock.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut conn = ServerConnection::new(config).map_err(|e| e.to_string())?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
        }
        let client_certs = conn.peer_certificates().map_or(0, |c| c.len());
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let mut line = String::new();
        BufReader::new(&mut tls)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        if line != "ping\n" {
            return Err(format!("unexpected request {line:?}"));
        }
        tls.write_all(b"pong\n").map_err(|e| e.to_string())?;
        tls.conn.send_close_notify();
        tls.flush().map_err(|e| e.to_string())?;
        Ok(Served { client_certs })
    });
    (addr, handle)
}

/// Connects to `addr` presenting SNI/verifying `name`, sends "ping", expects
/// "pong". Returns the negotiated ALPN protocol.
fn ping(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    name: &str,
) -> Result<Option<Vec<u8>>, String> {
    let mut sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    sock.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let server_name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let mut conn = ClientConnection::new(config, server_name).map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
    }
    let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(b"ping\n").map_err(|e| e.to_string())?;
    tls.flush().map_err(|e| e.to_string())?;
    // With TLS 1.3 the server judges the client certificate after the
    // client's handshake is done, so a refusal shows up here, on first read.
    let mut line = String::new();
    BufReader::new(&mut tls)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    if line != "pong\n" {
        return Err(format!("unexpected answer {line:?}"));
    }
    Ok(alpn)
}

/// A client that offers h2 and http/1.1, as an HTTP client would.
fn http_client(ca_pem: &str) -> Arc<ClientConfig> {
    let mut config = (*client_config_trusting(ca_pem).unwrap()).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

#[test]
fn first_start_creates_everything_quickly_and_reload_keeps_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");

    let started = Instant::now();
    let pki = Pki::load_or_create(&dir, &[]).unwrap();
    let created = started.elapsed();

    let started = Instant::now();
    let again = Pki::load_or_create(&dir, &[]).unwrap();
    let reloaded = started.elapsed();
    println!("vireo-pki: first-start creation {created:?}, reload {reloaded:?}");
    // Budget is "well under a second"; the bound is loose for a busy CI box.
    assert!(
        created < Duration::from_secs(5),
        "creation took {created:?}"
    );

    for f in [
        "ca.pem",
        "ca.key",
        "server.pem",
        "server.key",
        "engine-client.pem",
        "engine-client.key",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    assert_eq!(pki.ca_pem(), again.ca_pem());
    assert_eq!(
        pki.server_cert_pem(),
        again.server_cert_pem(),
        "server cert re-issued needlessly"
    );
    assert_eq!(pki.engine_client_cert_pem(), again.engine_client_cert_pem());
    assert_eq!(
        pki.ca_pem().as_bytes(),
        fs::read(dir.join("ca.pem")).unwrap()
    );
    assert_eq!(pki.ca_der(), der(pki.ca_pem()).as_ref());
    // No temporary files are left behind.
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 6);
}

#[test]
fn ca_pem_is_a_ten_year_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(tmp.path(), &[]).unwrap();
    let pem = fs::read_to_string(tmp.path().join("ca.pem")).unwrap();
    with_x509(&pem, |ca| {
        assert!(ca.is_ca());
        let bc = ca.basic_constraints().unwrap().unwrap();
        assert!(bc.critical, "basicConstraints must be critical on a CA");
        let ku = ca.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign());
        let cn = ca
            .subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap();
        assert!(cn.starts_with("vireo CA "), "CN {cn:?}");
        let (host, random) = cn["vireo CA ".len()..].rsplit_once('.').unwrap();
        assert!(!host.is_empty() && random.len() == 8, "CN {cn:?}");
        let years = (ca.validity().not_after.timestamp() - ca.validity().not_before.timestamp())
            as f64
            / (365.25 * 86400.0);
        assert!((9.9..10.1).contains(&years), "validity {years} years");
        // Self-signed.
        assert_eq!(ca.issuer().as_raw(), ca.subject().as_raw());
        ca.verify_signature(None).unwrap();
    });
    assert_eq!(pki.ca_pem(), pem);
}

#[test]
fn server_cert_chains_to_ca_and_covers_names() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = names(&["engine.example.test", "10.1.2.3", "[fd00::7]"]);
    let pki = Pki::load_or_create(tmp.path(), &extra).unwrap();
    let server = fs::read_to_string(tmp.path().join("server.pem")).unwrap();
    assert_eq!(server, pki.server_cert_pem());

    for name in [
        "localhost",
        "127.0.0.1",
        "::1",
        "engine.example.test",
        "ENGINE.example.test",
        "10.1.2.3",
        "fd00::7",
    ] {
        verify_server_cert(pki.ca_pem(), &server, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    if !host.is_empty() && host != "localhost" {
        verify_server_cert(pki.ca_pem(), &server, host).unwrap_or_else(|e| panic!("{host}: {e}"));
    }
    assert!(verify_server_cert(pki.ca_pem(), &server, "other.example.test").is_err());
    assert!(verify_server_cert(pki.ca_pem(), &server, "10.1.2.4").is_err());

    // A different CA does not vouch for it.
    let other = tempfile::tempdir().unwrap();
    let other = Pki::load_or_create(other.path(), &[]).unwrap();
    assert!(verify_server_cert(other.ca_pem(), &server, "localhost").is_err());

    with_x509(&server, |c| {
        assert!(!c.is_ca());
        let eku = c.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth);
        let years = (c.validity().not_after.timestamp() - c.validity().not_before.timestamp())
            as f64
            / (365.25 * 86400.0);
        assert!((4.9..5.1).contains(&years), "validity {years} years");
        let cn = c
            .subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap();
        assert_eq!(cn, "engine.example.test");
    });
}

#[test]
fn new_extra_name_reissues_server_cert_only() {
    let tmp = tempfile::tempdir().unwrap();
    let first = Pki::load_or_create(tmp.path(), &names(&["a.example.test"])).unwrap();
    // Same names, in another spelling: nothing to do.
    let same = Pki::load_or_create(tmp.path(), &names(&["A.example.test."])).unwrap();
    assert_eq!(first.server_cert_pem(), same.server_cert_pem());

    let second =
        Pki::load_or_create(tmp.path(), &names(&["a.example.test", "b.example.test"])).unwrap();
    assert_eq!(first.ca_pem(), second.ca_pem(), "CA must be kept");
    assert_eq!(
        first.engine_client_cert_pem(),
        second.engine_client_cert_pem()
    );
    assert_ne!(first.server_cert_pem(), second.server_cert_pem());
    assert_eq!(
        fs::read_to_string(tmp.path().join("server.pem")).unwrap(),
        second.server_cert_pem()
    );
    for name in ["a.example.test", "b.example.test", "localhost"] {
        verify_server_cert(second.ca_pem(), second.server_cert_pem(), name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }

    // Dropping a name later does not re-issue, and names once covered stay covered.
    let third = Pki::load_or_create(tmp.path(), &names(&["c.example.test"])).unwrap();
    for name in ["a.example.test", "b.example.test", "c.example.test"] {
        verify_server_cert(third.ca_pem(), third.server_cert_pem(), name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn files_have_strict_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested").join("pki");
    Pki::load_or_create(&dir, &[]).unwrap();
    assert_eq!(mode(&dir), 0o700);
    for key in ["ca.key", "server.key", "engine-client.key"] {
        assert_eq!(mode(&dir.join(key)), 0o600, "{key}");
    }
    for cert in ["ca.pem", "server.pem", "engine-client.pem"] {
        assert_eq!(mode(&dir.join(cert)), 0o644, "{cert}");
    }

    // A key made readable by others is tightened on the next start.
    fs::set_permissions(dir.join("ca.key"), fs::Permissions::from_mode(0o644)).unwrap();
    Pki::load_or_create(&dir, &[]).unwrap();
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
}

#[test]
fn https_handshake_over_loopback() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(tmp.path(), &[]).unwrap();
    let ca_pem = fs::read_to_string(tmp.path().join("ca.pem")).unwrap();

    for name in ["localhost", "127.0.0.1"] {
        let (addr, server) = serve_once(pki.server_tls_config().unwrap());
        let alpn = ping(addr, http_client(&ca_pem), name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]), "h2 preferred");
        let served = server.join().unwrap().unwrap();
        assert_eq!(served.client_certs, 0);
    }

    // An HTTP/1.1-only client still gets in.
    let (addr, server) = serve_once(pki.server_tls_config().unwrap());
    let mut h1 = (*client_config_trusting(&ca_pem).unwrap()).clone();
    h1.alpn_protocols = vec![b"http/1.1".to_vec()];
    let alpn = ping(addr, Arc::new(h1), "localhost").unwrap();
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    server.join().unwrap().unwrap();

    // A name the certificate does not cover is refused by the client.
    let (addr, server) = serve_once(pki.server_tls_config().unwrap());
    let err = ping(addr, http_client(&ca_pem), "not-in-san.example.test").unwrap_err();
    assert!(
        err.contains("NotValidForName") || err.contains("not valid for name"),
        "{err}"
    );
    assert!(server.join().unwrap().is_err());
}

#[test]
fn host_csr_flow_gives_mutual_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(tmp.path(), &[]).unwrap();

    // Agent side: key + CSR; engine side: sign; agent side: serve.
    let (csr, host_key) = host_csr(&names(&["host1.example.test", "127.0.0.1"])).unwrap();
    assert!(csr.contains("BEGIN CERTIFICATE REQUEST"));
    let host_cert = pki
        .sign_host_csr(&csr, &names(&["host1.example.test", "127.0.0.1"]))
        .unwrap();
    with_x509(&host_cert, |c| {
        let eku = c.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        assert!(!c.is_ca());
        let years = (c.validity().not_after.timestamp() - c.validity().not_before.timestamp())
            as f64
            / (365.25 * 86400.0);
        assert!((4.9..5.1).contains(&years));
    });
    let agent = || Pki::agent_server_config(pki.ca_pem(), &host_cert, &host_key).unwrap();

    // The engine, presenting its client certificate, gets in.
    for name in ["host1.example.test", "127.0.0.1"] {
        let (addr, server) = serve_once(agent());
        ping(addr, pki.engine_client_config().unwrap(), name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(server.join().unwrap().unwrap().client_certs, 1);
    }

    // A client without a certificate is refused.
    let (addr, server) = serve_once(agent());
    assert!(ping(
        addr,
        client_config_trusting(pki.ca_pem()).unwrap(),
        "host1.example.test"
    )
    .is_err());
    let err = server.join().unwrap().unwrap_err();
    assert!(
        err.contains("NoCertificatesPresented") || err.contains("no certificates"),
        "{err}"
    );

    // So is an engine of another installation (its client cert is from another CA),
    // and that engine does not trust this agent either.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Pki::load_or_create(other_dir.path(), &[]).unwrap();
    let (addr, server) = serve_once(agent());
    let mut foreign = (*other.engine_client_config().unwrap()).clone();
    foreign
        .dangerous()
        .set_certificate_verifier(Arc::new(AcceptAnyServer));
    assert!(ping(addr, Arc::new(foreign), "host1.example.test").is_err());
    assert!(server.join().unwrap().is_err());

    let (addr, server) = serve_once(agent());
    assert!(ping(
        addr,
        other.engine_client_config().unwrap(),
        "host1.example.test"
    )
    .is_err());
    let _ = server.join().unwrap();
}

#[test]
fn signed_host_cert_has_only_the_engines_names() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(tmp.path(), &[]).unwrap();
    // The agent asks for more than it should get.
    let (csr, _key) = host_csr(&names(&["host1.example.test", "engine.example.test"])).unwrap();
    let cert = pki
        .sign_host_csr(&csr, &names(&["host1.example.test"]))
        .unwrap();
    verify_server_cert(pki.ca_pem(), &cert, "host1.example.test").unwrap();
    assert!(verify_server_cert(pki.ca_pem(), &cert, "engine.example.test").is_err());

    // Signing the same CSR twice gives distinct serials.
    let again = pki
        .sign_host_csr(&csr, &names(&["host1.example.test"]))
        .unwrap();
    let serial = |pem: &str| with_x509(pem, |c| c.raw_serial().to_vec());
    assert_ne!(serial(&cert), serial(&again));
}

#[test]
fn bad_csr_and_names_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(tmp.path(), &[]).unwrap();
    let (csr, _) = host_csr(&names(&["h.example.test"])).unwrap();

    assert!(matches!(
        pki.sign_host_csr("not a csr", &names(&["h.example.test"])),
        Err(PkiError::Cert(_))
    ));
    assert!(matches!(
        pki.sign_host_csr(&csr, &[]),
        Err(PkiError::Cert(_))
    ));
    assert!(matches!(
        pki.sign_host_csr(&csr, &names(&["bad name"])),
        Err(PkiError::Cert(_))
    ));
    assert!(matches!(host_csr(&[]), Err(PkiError::Cert(_))));

    // A CSR whose content no longer matches its signature (tampered in
    // transit: the requested name changed, the signature kept).
    let mut bytes = CertificateSigningRequestDer::from_pem_slice(csr.as_bytes())
        .unwrap()
        .as_ref()
        .to_vec();
    let at = bytes
        .windows(b"h.example.test".len())
        .position(|w| w == b"h.example.test")
        .unwrap();
    bytes[at] = b'x';
    let tampered = pem_encode("CERTIFICATE REQUEST", &bytes);
    let err = pki
        .sign_host_csr(&tampered, &names(&["h.example.test"]))
        .unwrap_err();
    assert!(matches!(err, PkiError::Cert(_)), "{err}");
    // The same bytes untampered go through, so the encoder above is sound.
    bytes[at] = b'h';
    pki.sign_host_csr(
        &pem_encode("CERTIFICATE REQUEST", &bytes),
        &names(&["h.example.test"]),
    )
    .unwrap();

    let other = tempfile::tempdir().unwrap();
    assert!(matches!(
        Pki::load_or_create(other.path(), &names(&["no spaces allowed"])),
        Err(PkiError::Cert(_))
    ));
}

#[test]
fn broken_leaf_files_are_reissued_but_a_lost_ca_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let first = Pki::load_or_create(dir, &[]).unwrap();

    // A server key that does not belong to server.pem (e.g. a crash between
    // writing the new key and the new certificate): re-issued, CA kept.
    fs::copy(dir.join("engine-client.key"), dir.join("server.key")).unwrap();
    let second = Pki::load_or_create(dir, &[]).unwrap();
    assert_eq!(first.ca_pem(), second.ca_pem());
    assert_ne!(first.server_cert_pem(), second.server_cert_pem());
    let (addr, server) = serve_once(second.server_tls_config().unwrap());
    ping(addr, http_client(second.ca_pem()), "localhost").unwrap();
    server.join().unwrap().unwrap();

    // A missing engine client certificate is simply issued again.
    fs::remove_file(dir.join("engine-client.pem")).unwrap();
    let third = Pki::load_or_create(dir, &[]).unwrap();
    assert!(dir.join("engine-client.pem").exists());
    assert_eq!(first.ca_pem(), third.ca_pem());

    // The CA key gone: refuse, never make a new CA behind the hosts' backs.
    let key = fs::read(dir.join("ca.key")).unwrap();
    fs::remove_file(dir.join("ca.key")).unwrap();
    let err = Pki::load_or_create(dir, &[]).unwrap_err();
    assert!(matches!(err, PkiError::Cert(_)), "{err}");
    fs::write(dir.join("ca.key"), key).unwrap();

    // The CA certificate gone while certificates it issued remain: refuse too.
    fs::remove_file(dir.join("ca.pem")).unwrap();
    let err = Pki::load_or_create(dir, &[]).unwrap_err();
    assert!(err.to_string().contains("ca.pem"), "{err}");

    // A CA key that does not match ca.pem: refuse.
    let mismatch = tempfile::tempdir().unwrap();
    Pki::load_or_create(mismatch.path(), &[]).unwrap();
    fs::copy(
        mismatch.path().join("server.key"),
        mismatch.path().join("ca.key"),
    )
    .unwrap();
    assert!(Pki::load_or_create(mismatch.path(), &[]).is_err());
}

#[test]
fn interrupted_first_start_recovers() {
    // A crash after ca.key was written but before ca.pem: a clean first start.
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("ca.key"), "half-written garbage").unwrap();
    let pki = Pki::load_or_create(tmp.path(), &[]).unwrap();
    verify_server_cert(pki.ca_pem(), pki.server_cert_pem(), "localhost").unwrap();
}

#[test]
fn pki_is_shareable_and_debug_hides_keys() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Pki>();
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(tmp.path(), &[]).unwrap();
    let shown = format!("{pki:?}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    assert!(shown.contains("Pki"));
}

/// PEM-encodes DER (the crate's dependencies only decode PEM).
fn pem_encode(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// For the "foreign engine" case only: lets the handshake reach the point
/// where the agent judges the client certificate.
#[derive(Debug)]
struct AcceptAnyServer;

impl rustls::client::danger::ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
