//! The rustls server configuration of the web configuration file's `tls_server_config`:
//! certificates and keys (inline or in files), versions, Go-named cipher suites and curves, and
//! client certificate verification (Go's `client_auth_type` semantics, `client_allowed_sans`).
//! A setting rustls cannot honour is an error when its absence would weaken security, a warning
//! otherwise.

use super::{bad, Problem, TlsFile};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A PEM value written inline or in a file.
fn pem_source(
    inline: &Option<String>,
    file: &Option<PathBuf>,
    inline_key: &str,
    file_key: &str,
    dir: &Path,
) -> Result<Option<(Vec<u8>, String)>, Problem> {
    match (inline, file) {
        (Some(_), Some(_)) => bad(
            &format!("tls_server_config.{file_key}"),
            format!("set either {inline_key} (inline PEM) or {file_key}, not both"),
        ),
        (Some(s), None) if !s.trim().is_empty() => Ok(Some((
            s.as_bytes().to_vec(),
            format!("inline {inline_key}"),
        ))),
        (None, Some(p)) if !p.as_os_str().is_empty() => {
            let full = dir.join(p);
            match std::fs::read(&full) {
                Ok(b) => Ok(Some((b, full.display().to_string()))),
                Err(e) => bad(
                    &format!("tls_server_config.{file_key}"),
                    format!("cannot read {}: {e}", full.display()),
                ),
            }
        }
        _ => Ok(None),
    }
}

fn certificates(
    pem: &[u8],
    origin: &str,
    key: &str,
) -> Result<Vec<CertificateDer<'static>>, Problem> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
    match certs {
        Ok(c) if !c.is_empty() => Ok(c),
        Ok(_) => bad(key, format!("{origin} holds no PEM certificate")),
        Err(e) => bad(key, format!("{origin}: not a PEM certificate: {e}")),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

fn tls_version(s: &str, key: &str) -> Result<u8, Problem> {
    match s {
        "TLS10" => Ok(10),
        "TLS11" => Ok(11),
        "TLS12" => Ok(12),
        "TLS13" => Ok(13),
        _ => bad(
            key,
            format!("{s:?} is not one of TLS10, TLS11, TLS12, TLS13"),
        ),
    }
}

/// Go's name of a rustls TLS 1.2 suite is rustls's name (both follow the IANA registry), except
/// Go's short names for ChaCha20 without `_SHA256`.
fn go_suite_name(s: &str) -> String {
    match s {
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
            format!("{s}_SHA256")
        }
        _ => s.to_string(),
    }
}

fn build_provider(t: &TlsFile, warnings: &mut Vec<String>) -> Result<CryptoProvider, Problem> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(wanted) = &t.cipher_suites {
        let key = "tls_server_config.cipher_suites";
        let (tls13, tls12): (Vec<_>, Vec<_>) = provider
            .cipher_suites
            .iter()
            .copied()
            .partition(|s| s.version() == &rustls::version::TLS13);
        let mut chosen = Vec::new();
        let mut skipped = Vec::new();
        for name in wanted {
            let go = go_suite_name(name);
            if let Some(s) = tls12
                .iter()
                .find(|s| format!("{:?}", s.suite()) == go)
                .copied()
            {
                if !chosen
                    .iter()
                    .any(|c: &rustls::SupportedCipherSuite| c.suite() == s.suite())
                {
                    chosen.push(s);
                }
            } else if name.starts_with("TLS_AES_") || name.starts_with("TLS_CHACHA20_") {
                // TLS 1.3 suites are not configurable, in Go as in rustls: all are offered.
            } else if name.starts_with("TLS_") {
                skipped.push(name.clone());
            } else {
                return bad(key, format!("{name:?} is not a TLS cipher suite name"));
            }
        }
        if !skipped.is_empty() {
            warnings.push(format!(
                "{key}: {} not offered by rustls (it offers only AEAD suites with forward \
                 secrecy), skipped",
                skipped.join(", ")
            ));
        }
        if chosen.is_empty() && !wanted.is_empty() {
            let offered: Vec<String> = tls12.iter().map(|s| format!("{:?}", s.suite())).collect();
            return bad(
                key,
                format!(
                    "none of the listed TLS 1.2 suites is available; rustls offers {}",
                    offered.join(", ")
                ),
            );
        }
        if !wanted.is_empty() {
            chosen.extend(tls13);
            provider.cipher_suites = chosen;
        }
    }
    if let Some(curves) = &t.curve_preferences {
        let key = "tls_server_config.curve_preferences";
        let all = provider.kx_groups.clone();
        let mut chosen = Vec::new();
        for c in curves {
            let group = match c.as_str() {
                "X25519" => Some(rustls::NamedGroup::X25519),
                "CurveP256" | "P256" => Some(rustls::NamedGroup::secp256r1),
                "CurveP384" | "P384" => Some(rustls::NamedGroup::secp384r1),
                "CurveP521" | "P521" | "X25519MLKEM768" => None,
                _ => {
                    return bad(
                        key,
                        format!(
                            "{c:?} is not one of X25519, CurveP256, CurveP384, CurveP521, \
                             X25519MLKEM768"
                        ),
                    )
                }
            };
            match group.and_then(|g| all.iter().find(|k| k.name() == g)) {
                Some(k) => chosen.push(*k),
                None => warnings.push(format!(
                    "{key}: {c} is not offered by rustls with ring, skipped"
                )),
            }
        }
        if chosen.is_empty() && !curves.is_empty() {
            return bad(
                key,
                "none of the listed curves is available; rustls offers X25519, CurveP256, CurveP384",
            );
        }
        if !curves.is_empty() {
            provider.kx_groups = chosen;
        }
    }
    Ok(provider)
}

pub(super) fn build_tls(
    t: &TlsFile,
    dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<Option<Arc<ServerConfig>>, Problem> {
    let Some(ServerIdentity {
        chain,
        private,
        cert,
        key,
        key_key,
    }) = server_identity(t, dir)?
    else {
        return Ok(None);
    };
    let versions = protocol_versions(t, warnings)?;
    let (auth, ca, ca_key, sans) = client_auth(t, dir, warnings)?;
    let provider = Arc::new(build_provider(t, warnings)?);
    let verifier = client_verifier(auth, &ca, ca_key, sans, &provider)?;

    let builder =
        match ServerConfig::builder_with_provider(provider).with_protocol_versions(&versions) {
            Ok(b) => b,
            Err(e) => {
                return bad(
                    "tls_server_config.cipher_suites",
                    format!("no cipher suite left for the TLS versions allowed: {e}"),
                )
            }
        };
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = match builder.with_single_cert(chain, private) {
        Ok(c) => c,
        Err(e) => {
            return bad(
                key_key,
                format!(
                    "{} and {} do not make a usable certificate and key: {e}",
                    cert.1, key.1
                ),
            )
        }
    };
    config.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// The server's certificate chain and private key, with where each came from.
struct ServerIdentity {
    chain: Vec<CertificateDer<'static>>,
    private: PrivateKeyDer<'static>,
    cert: (Vec<u8>, String),
    key: (Vec<u8>, String),
    /// The key that names the private key, for errors.
    key_key: &'static str,
}

/// The certificate and key; `None` for plain HTTP (neither set).
fn server_identity(t: &TlsFile, dir: &Path) -> Result<Option<ServerIdentity>, Problem> {
    let cert = pem_source(&t.cert, &t.cert_file, "cert", "cert_file", dir)?;
    let key = pem_source(&t.key, &t.key_file, "key", "key_file", dir)?;
    let (cert, key) = match (cert, key) {
        (None, None) => {
            // exporter-toolkit serves plain HTTP without a certificate; say so if anything else
            // was set, since those settings would silently do nothing.
            let other = t.client_auth_type.is_some()
                || t.client_ca_file.is_some()
                || t.client_ca.is_some()
                || t.client_allowed_sans.is_some();
            if other {
                return bad(
                    "tls_server_config.cert_file",
                    "client certificate settings without a server certificate: set cert_file \
                     and key_file to turn TLS on",
                );
            }
            return Ok(None);
        }
        (Some(_), None) => {
            return bad(
                "tls_server_config.key_file",
                "cert_file is set but key_file is not",
            )
        }
        (None, Some(_)) => {
            return bad(
                "tls_server_config.cert_file",
                "key_file is set but cert_file is not",
            )
        }
        (Some(c), Some(k)) => (c, k),
    };
    let cert_key = if t.cert.is_some() {
        "tls_server_config.cert"
    } else {
        "tls_server_config.cert_file"
    };
    let key_key = if t.key.is_some() {
        "tls_server_config.key"
    } else {
        "tls_server_config.key_file"
    };
    let chain = certificates(&cert.0, &cert.1, cert_key)?;
    let private = match PrivateKeyDer::from_pem_slice(&key.0) {
        Ok(k) => k,
        Err(e) => return bad(key_key, format!("{}: no PEM private key: {e}", key.1)),
    };
    Ok(Some(ServerIdentity {
        chain,
        private,
        cert,
        key,
        key_key,
    }))
}

/// The TLS versions offered: TLS 1.2 and 1.3 within min_version..max_version.
fn protocol_versions(
    t: &TlsFile,
    warnings: &mut Vec<String>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, Problem> {
    let min = match &t.min_version {
        Some(v) => tls_version(v, "tls_server_config.min_version")?,
        None => 12,
    };
    let max = match &t.max_version {
        Some(v) => tls_version(v, "tls_server_config.max_version")?,
        None => 13,
    };
    if max < 12 {
        return bad(
            "tls_server_config.max_version",
            "rustls speaks TLS 1.2 and 1.3 only; TLS 1.0 and 1.1 are obsolete (RFC 8996)",
        );
    }
    if min > max {
        return bad(
            "tls_server_config.min_version",
            format!("TLS{min} is above max_version TLS{max}"),
        );
    }
    if min < 12 {
        warnings.push(format!(
            "tls_server_config.min_version: TLS{min} is not offered (rustls speaks TLS 1.2 and \
             1.3 only; RFC 8996 deprecates older versions): the minimum is TLS12"
        ));
    }
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if max >= 13 {
        versions.push(&rustls::version::TLS13);
    }
    if min <= 12 {
        versions.push(&rustls::version::TLS12);
    }
    Ok(versions)
}

/// How clients authenticate: the client_auth_type, the client CA (PEM and origin), the key that
/// names it, and the allowed SANs.
#[allow(clippy::type_complexity)]
fn client_auth(
    t: &TlsFile,
    dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<
    (
        ClientAuth,
        Option<(Vec<u8>, String)>,
        &'static str,
        Vec<String>,
    ),
    Problem,
> {
    let auth = match t.client_auth_type.as_deref() {
        None | Some("") | Some("NoClientCert") => ClientAuth::NoClientCert,
        Some("RequestClientCert") => ClientAuth::RequestClientCert,
        Some("RequireAnyClientCert") => ClientAuth::RequireAnyClientCert,
        Some("VerifyClientCertIfGiven") => ClientAuth::VerifyClientCertIfGiven,
        Some("RequireAndVerifyClientCert") => ClientAuth::RequireAndVerifyClientCert,
        Some(other) => {
            return bad(
                "tls_server_config.client_auth_type",
                format!(
                    "{other:?} is not one of NoClientCert, RequestClientCert, \
                     RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
                ),
            )
        }
    };
    let ca = pem_source(
        &t.client_ca,
        &t.client_ca_file,
        "client_ca",
        "client_ca_file",
        dir,
    )?;
    let ca_key = if t.client_ca.is_some() {
        "tls_server_config.client_ca"
    } else {
        "tls_server_config.client_ca_file"
    };
    if ca.is_some() && auth == ClientAuth::NoClientCert {
        return bad(
            ca_key,
            "a client CA is set but client_auth_type is NoClientCert: set client_auth_type: \
             RequireAndVerifyClientCert to require client certificates",
        );
    }
    let sans: Vec<String> = t.client_allowed_sans.clone().unwrap_or_default();
    if !sans.is_empty()
        && !matches!(
            auth,
            ClientAuth::RequireAnyClientCert | ClientAuth::RequireAndVerifyClientCert
        )
    {
        return bad(
            "tls_server_config.client_allowed_sans",
            "needs client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert (the \
             others let a client connect without a certificate, leaving no SAN to check)",
        );
    }
    if sans.iter().any(|s| s.contains('@') && !s.contains(':')) {
        warnings.push(
            "tls_server_config.client_allowed_sans: e-mail addresses are never matched \
             (only DNS names, IP addresses and URIs are read from client certificates)"
                .into(),
        );
    }
    if auth == ClientAuth::RequestClientCert || auth == ClientAuth::RequireAnyClientCert {
        warnings.push(format!(
            "tls_server_config.client_auth_type: {auth:?} does not verify client certificates; \
             use RequireAndVerifyClientCert to authenticate clients"
        ));
    }
    Ok((auth, ca, ca_key, sans))
}

/// The client certificate verifier for `auth`, with the SAN check when SANs are listed.
fn client_verifier(
    auth: ClientAuth,
    ca: &Option<(Vec<u8>, String)>,
    ca_key: &str,
    sans: Vec<String>,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, Problem> {
    let verifier: Option<Arc<dyn ClientCertVerifier>> = match auth {
        ClientAuth::NoClientCert => None,
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            Some(Arc::new(AnyClientCert {
                provider: provider.clone(),
                mandatory: auth == ClientAuth::RequireAnyClientCert,
            }))
        }
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            let Some((pem, origin)) = &ca else {
                return bad(
                    "tls_server_config.client_auth_type",
                    format!("{auth:?} needs client_ca_file, the CA that signs client certificates"),
                );
            };
            let mut roots = RootCertStore::empty();
            for c in certificates(pem, origin, ca_key)? {
                if let Err(e) = roots.add(c) {
                    return bad(ca_key, format!("{origin}: unusable CA certificate: {e}"));
                }
            }
            let mut b =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            if auth == ClientAuth::VerifyClientCertIfGiven {
                b = b.allow_unauthenticated();
            }
            match b.build() {
                Ok(v) => Some(v),
                Err(e) => return bad(ca_key, format!("{origin}: {e}")),
            }
        }
    };
    Ok(match (verifier, sans.is_empty()) {
        (Some(v), false) => Some(Arc::new(SanCheck {
            inner: v,
            allowed: sans,
        }) as Arc<dyn ClientCertVerifier>),
        (v, _) => v,
    })
}

/// `RequestClientCert` and `RequireAnyClientCert`: asks for a certificate and checks only that
/// the client holds its key, not who issued it (Go's semantics).
#[derive(Debug)]
struct AnyClientCert {
    provider: Arc<CryptoProvider>,
    mandatory: bool,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `client_allowed_sans`: after the inner verifier accepted the chain, the certificate must carry
/// a subject alternative name equal to one of the list (DNS name, IP address or URI).
#[derive(Debug)]
struct SanCheck {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

/// Whether the certificate has a DNS, IP or URI subject alternative name in `allowed`.
pub fn san_allowed(cert: &CertificateDer<'_>, allowed: &[String]) -> bool {
    let Ok(ee) = webpki::EndEntityCert::try_from(cert) else {
        return false;
    };
    allowed.iter().any(|want| {
        if let Ok(ip) = want.parse::<std::net::IpAddr>() {
            let name = rustls::pki_types::ServerName::IpAddress(ip.into());
            return ee.verify_is_valid_for_subject_name(&name).is_ok();
        }
        // Exact comparison, as exporter-toolkit does (a wildcard in the certificate matches
        // only the same wildcard in the list).
        ee.valid_dns_names().any(|d| d.eq_ignore_ascii_case(want))
            || ee.valid_uri_names().any(|u| u == want)
    })
}

impl ClientCertVerifier for SanCheck {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if san_allowed(end_entity, &self.allowed) {
            Ok(ok)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webconfig::WebSecurity;

    #[test]
    fn tls_settings() {
        let ca = rcgen_pair();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.pem"), &ca.0).unwrap();
        std::fs::write(dir.path().join("k.pem"), &ca.1).unwrap();
        let base = "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n";
        let load = |extra: &str| {
            let p = dir.path().join("web.yml");
            std::fs::write(&p, format!("{base}{extra}")).unwrap();
            WebSecurity::load(&p).map_err(|e| e.0)
        };
        let s = load("").unwrap();
        assert!(s.tls.is_some() && s.warnings.is_empty());
        let s = load("  min_version: TLS13\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_RSA_WITH_AES_128_CBC_SHA]\n  curve_preferences: [X25519, CurveP521]\n").unwrap();
        assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
        let s = load(
            "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305, TLS_AES_128_GCM_SHA256]\n",
        )
        .unwrap();
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        // Each refused setting: the error names the key to fix.
        for (extra, named) in [
            ("  cipher_suites: [AES128]\n", "cipher_suites"),
            ("  curve_preferences: [CurveP999]\n", "curve_preferences"),
            ("  max_version: TLS11\n", "max_version"),
            (
                "  min_version: TLS13\n  max_version: TLS12\n",
                "min_version",
            ),
            (
                "  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n",
                "cipher_suites",
            ),
            (
                "  client_auth_type: RequireAndVerifyClientCert\n",
                "client_ca_file",
            ),
            ("  client_ca_file: c.pem\n", "NoClientCert"),
            ("  client_auth_type: Sometimes\n", "client_auth_type"),
        ] {
            let e = load(extra).unwrap_err();
            assert!(e.contains(named), "{extra:?}: {e}");
        }
        assert!(
            load("  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: c.pem\n")
                .is_ok()
        );
        assert!(load("  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: c.pem\n  client_allowed_sans: [a]\n").unwrap_err().contains("client_allowed_sans"));
        std::fs::write(dir.path().join("k.pem"), rcgen_pair().1).unwrap();
        let e = load("").unwrap_err();
        assert!(e.contains("key_file") && e.contains("do not make"), "{e}");
        std::fs::write(dir.path().join("k.pem"), "garbage").unwrap();
        assert!(load("").unwrap_err().contains("key_file"));
    }
    #[test]
    fn allowed_sans_match_exactly() {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![
            "scraper.example.org".to_string(),
            "10.0.0.1".to_string(),
        ])
        .unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der = cert.der();
        let ok = |names: &[&str]| {
            let v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            san_allowed(der, &v)
        };
        assert!(ok(&["scraper.example.org"]));
        assert!(ok(&["SCRAPER.example.org"]));
        assert!(ok(&["x", "10.0.0.1"]));
        assert!(!ok(&["example.org"]));
        assert!(!ok(&["*.example.org"]));
        assert!(!ok(&["10.0.0.2"]));
        assert!(!ok(&[]));
        assert!(!san_allowed(
            &CertificateDer::from(vec![1, 2, 3]),
            &["x".into()]
        ));
    }
    /// A self-signed certificate for 127.0.0.1: (cert PEM, key PEM).
    fn rcgen_pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}
