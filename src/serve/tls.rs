//! HTTPS for `serve` (`--tls-cert`, `--tls-key`) and for its clients
//! (`--ca-file`: a server's own certificate, self-signed or from a private CA),
//! on rustls with the ring provider.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(path: &Path, flag: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("{flag} {}: cannot read", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{flag} {}: not a PEM certificate", path.display()))?;
    anyhow::ensure!(!certificates.is_empty(), "{flag} {}: no certificate in it", path.display());
    Ok(certificates)
}

/// The TLS side of a server with the certificate chain and key at these paths (PEM).
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    let chain = certificates(cert, "--tls-cert")?;
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("--tls-key {}: not a PEM private key", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("--tls-cert and --tls-key do not make a certificate and its key")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A client's TLS settings: the web's root certificates, or only the
/// certificates in `ca_file` (a server's self-signed one).
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for certificate in certificates(path, "--ca-file")? {
                roots.add(certificate).with_context(|| format!("--ca-file {}: a certificate rustls cannot use", path.display()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?.with_root_certificates(roots).with_no_client_auth();
    Ok(Arc::new(config))
}
