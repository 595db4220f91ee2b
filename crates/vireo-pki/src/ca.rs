//! The certificate authority: creating it, loading it back, signing with it,
//! and checking that a stored certificate really is one of its own.

use rcgen::{Certificate, CertificateParams, CertificateSigningRequestParams, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use crate::names::{self, Name};
use crate::{issue, PkiError};

/// The CA with its private key.
pub(crate) struct Ca {
    /// The exact text of ca.pem, handed out unchanged so that fingerprints
    /// computed over the file and over the API agree.
    pem: String,
    /// DER of the certificate in `pem`.
    der: CertificateDer<'static>,
    /// rcgen signs "as" a `Certificate`; for a loaded CA this one is rebuilt
    /// from the file's subject and key identifier, which is all that goes into
    /// the certificates it issues. Its own bytes are never published.
    signer: Certificate,
    key: KeyPair,
}

/// What a stored end-entity certificate looks like, once we know it is ours.
pub(crate) struct LeafInfo {
    pub(crate) names: Vec<Name>,
    /// Unix time, seconds.
    pub(crate) not_after: i64,
}

/// Parses the first CERTIFICATE block of a PEM text.
pub(crate) fn cert_der_from_pem(
    pem: &str,
    what: &str,
) -> Result<CertificateDer<'static>, PkiError> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| PkiError::Cert(format!("{what}: no PEM certificate: {e}")))
}

fn parse_x509<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>, PkiError> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| PkiError::Cert(format!("{what}: unparsable certificate: {e}")))
}

impl Ca {
    /// Makes a new CA. Returns it with its key in PEM, for the caller to store.
    pub(crate) fn generate(host: &str) -> Result<(Ca, String), PkiError> {
        let key = KeyPair::generate().map_err(PkiError::cert("generating CA key"))?;
        let signer = issue::ca_params(host)?
            .self_signed(&key)
            .map_err(PkiError::cert("self-signing the CA"))?;
        let key_pem = key.serialize_pem();
        let ca = Ca {
            pem: signer.pem(),
            der: signer.der().clone(),
            signer,
            key,
        };
        Ok((ca, key_pem))
    }

    /// Loads a stored CA, refusing anything that is not a CA certificate with
    /// its matching key: signing with a mismatched key would issue
    /// certificates that no client can verify.
    pub(crate) fn load(pem: String, key_pem: &str) -> Result<Ca, PkiError> {
        let der = cert_der_from_pem(&pem, "ca.pem")?;
        let key = KeyPair::from_pem(key_pem).map_err(PkiError::cert("ca.key"))?;
        {
            let x509 = parse_x509(&der, "ca.pem")?;
            if !x509.is_ca() {
                return Err(PkiError::Cert("ca.pem is not a CA certificate".into()));
            }
            if x509.public_key().raw != key.public_key_der().as_slice() {
                return Err(PkiError::Cert("ca.key does not belong to ca.pem".into()));
            }
        }
        let signer = CertificateParams::from_ca_cert_der(&der)
            .map_err(PkiError::cert("ca.pem"))?
            .self_signed(&key)
            .map_err(PkiError::cert("re-creating the CA signer"))?;
        Ok(Ca {
            pem,
            der,
            signer,
            key,
        })
    }

    pub(crate) fn pem(&self) -> &str {
        &self.pem
    }

    pub(crate) fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// Issues a certificate for a new key pair; returns (cert PEM, key PEM).
    pub(crate) fn issue_with_new_key(
        &self,
        params: CertificateParams,
        what: &str,
    ) -> Result<(String, String), PkiError> {
        let key =
            KeyPair::generate().map_err(PkiError::cert(format_args!("generating {what} key")))?;
        let cert = params
            .signed_by(&key, &self.signer, &self.key)
            .map_err(PkiError::cert(format_args!("signing {what} certificate")))?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    pub(crate) fn sign_csr(
        &self,
        csr: CertificateSigningRequestParams,
    ) -> Result<String, PkiError> {
        let cert = csr
            .signed_by(&self.signer, &self.key)
            .map_err(PkiError::cert("signing host certificate"))?;
        Ok(cert.pem())
    }

    /// Checks a stored end-entity certificate and key: `None` unless the
    /// certificate parses, was signed by this CA, and `key_pem` is its key.
    /// Anything else (a leftover from an earlier CA, a half-replaced pair
    /// after a crash) is simply re-issued by the caller.
    pub(crate) fn inspect_leaf(&self, cert_pem: &str, key_pem: &str) -> Option<LeafInfo> {
        let der = cert_der_from_pem(cert_pem, "leaf").ok()?;
        let cert = parse_x509(&der, "leaf").ok()?;
        let ca = parse_x509(&self.der, "ca.pem").ok()?;
        if cert.issuer().as_raw() != ca.subject().as_raw()
            || cert.verify_signature(Some(ca.public_key())).is_err()
        {
            return None;
        }
        let key = KeyPair::from_pem(key_pem).ok()?;
        if cert.public_key().raw != key.public_key_der().as_slice() {
            return None;
        }
        Some(LeafInfo {
            names: names::names_in_cert(&cert),
            not_after: cert.validity().not_after.timestamp(),
        })
    }
}
