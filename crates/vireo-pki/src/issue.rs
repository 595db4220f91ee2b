//! Certificate profiles: what each kind of certificate we issue looks like.
//!
//! Keys are ECDSA P-256 throughout (rcgen's default): generation takes
//! microseconds where RSA-3072 takes a noticeable part of a second, which
//! matters for the engine's start-up budget, and every TLS stack that talks to
//! an oVirt-compatible engine (curl/OpenSSL, Java, Go, Python) accepts it.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use time::{Duration, OffsetDateTime};

use crate::names::Name;
use crate::PkiError;

/// The CA lives ten years.
pub(crate) const CA_VALIDITY_DAYS: i64 = 3650;
/// Server, engine-client and host certificates live five years.
pub(crate) const LEAF_VALIDITY_DAYS: i64 = 5 * 365;
/// Certificates start a day in the past: hosts whose clocks lag the engine's
/// would otherwise reject a freshly issued certificate as "not yet valid"
/// (oVirt's own CA does the same).
const BACKDATE: Duration = Duration::days(1);

/// The organisation in every subject, so certificates are recognisable in a
/// browser's or `openssl x509`'s output.
const ORGANIZATION: &str = "vireo";

/// Fills `buf` from the OS random source.
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<(), PkiError> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| PkiError::Cert("the system random source failed".into()))
}

/// A random positive serial. rcgen would otherwise derive the serial from the
/// public key, and re-signing the same host CSR would then reuse a serial
/// under one issuer, which RFC 5280 forbids and some clients reject.
fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    random_bytes(&mut bytes)?;
    bytes[0] &= 0x7f; // positive, so the DER INTEGER needs no padding byte
    Ok(SerialNumber::from_slice(&bytes))
}

fn subject(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn.push(DnType::CommonName, common_name);
    dn
}

fn base(common_name: &str, validity_days: i64) -> Result<CertificateParams, PkiError> {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(common_name);
    params.serial_number = Some(random_serial()?);
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(validity_days);
    Ok(params)
}

fn leaf(common_name: &str, names: &[Name]) -> Result<CertificateParams, PkiError> {
    let mut params = base(common_name, LEAF_VALIDITY_DAYS)?;
    params.is_ca = IsCa::ExplicitNoCa;
    // ECDSA keys only sign in TLS; keyEncipherment would be wrong for them.
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // Lets clients pick the right CA if the operator ever rotates it.
    params.use_authority_key_identifier_extension = true;
    params.subject_alt_names = names.iter().map(Name::to_san).collect::<Result<_, _>>()?;
    Ok(params)
}

/// The CA: CN "vireo CA <hostname>.<random>". The random part keeps two
/// installations on equally named machines from having CAs with the same
/// subject, which confuses browsers and trust stores holding both.
pub(crate) fn ca_params(host: &str) -> Result<CertificateParams, PkiError> {
    let mut suffix = [0u8; 4];
    random_bytes(&mut suffix)?;
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let mut params = base(&format!("vireo CA {host}.{suffix}"), CA_VALIDITY_DAYS)?;
    // Path length 0: the CA signs end-entity certificates only, so a leaked
    // host key can never be turned into a sub-CA even if mis-issued as one.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

/// The engine's HTTPS certificate.
pub(crate) fn server_params(
    common_name: &str,
    names: &[Name],
) -> Result<CertificateParams, PkiError> {
    let mut params = leaf(common_name, names)?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    Ok(params)
}

/// The certificate the engine presents to host agents. Agents check only that
/// it chains to the CA (client certificates are not name-checked in TLS).
pub(crate) fn engine_client_params() -> Result<CertificateParams, PkiError> {
    let mut params = leaf("vireo engine", &[])?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    Ok(params)
}

/// A host agent's certificate: it serves the engine (serverAuth) and may call
/// back into it (clientAuth).
pub(crate) fn host_params(names: &[Name]) -> Result<CertificateParams, PkiError> {
    let first = names
        .first()
        .ok_or_else(|| PkiError::Cert("a host certificate needs at least one name".into()))?;
    let mut params = leaf(&first.to_string(), names)?;
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    Ok(params)
}

/// Parses a host's CSR, keeping only its public key: names, subject and
/// extensions are decided by the engine, never by what the agent asked for.
/// rcgen checks the CSR's self-signature, proving the agent holds the key.
pub(crate) fn csr_with_profile(
    csr_pem: &str,
    names: &[Name],
) -> Result<CertificateSigningRequestParams, PkiError> {
    let mut csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(PkiError::cert(
        "host CSR is not a valid, self-signed PKCS#10 request",
    ))?;
    csr.params = host_params(names)?;
    Ok(csr)
}

/// A new key pair and a CSR for it, as a host agent makes them.
pub(crate) fn new_csr(names: &[Name]) -> Result<(String, String), PkiError> {
    let first = names
        .first()
        .ok_or_else(|| PkiError::Cert("a host CSR needs at least one name".into()))?;
    let key = KeyPair::generate().map_err(PkiError::cert("generating host key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(&first.to_string());
    params.subject_alt_names = names.iter().map(Name::to_san).collect::<Result<_, _>>()?;
    let csr = params
        .serialize_request(&key)
        .map_err(PkiError::cert("building host CSR"))?;
    let csr_pem = csr.pem().map_err(PkiError::cert("encoding host CSR"))?;
    Ok((csr_pem, key.serialize_pem()))
}
