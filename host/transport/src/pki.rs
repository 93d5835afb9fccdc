//! The cluster's certificate authority and its members' certificates.

use luciole_proto::MemberId;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::TransportError;

/// The DNS name every member certificate carries and every connection asks for: members are
/// told apart by the URI name, not by host names.
pub(crate) const SERVER_NAME: &str = "member.luciole";
/// Prefix of the URI name that carries a member id.
const MEMBER_URI: &str = "luciole://member/";

/// A cluster's certificate authority: whoever holds its key can admit members.
pub struct ClusterCa {
    cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa").finish_non_exhaustive()
    }
}

/// A member's certificate (issued by the cluster CA) and private key, and the CA it trusts.
pub struct MemberIdentity {
    /// The member.
    pub id: MemberId,
    /// Its certificate, DER.
    pub cert: CertificateDer<'static>,
    /// Its private key, PKCS#8 DER.
    pub key: PrivatePkcs8KeyDer<'static>,
    /// The cluster CA's certificate, DER: the only root it trusts.
    pub ca: CertificateDer<'static>,
}

impl std::fmt::Debug for MemberIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberIdentity").field("id", &self.id).finish_non_exhaustive()
    }
}

impl MemberIdentity {
    pub(crate) fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }

    /// Its certificate, PEM.
    pub fn cert_pem(&self) -> String {
        pem_of("CERTIFICATE", &self.cert)
    }

    /// Its private key, PEM (PKCS#8).
    pub fn key_pem(&self) -> String {
        pem_of("PRIVATE KEY", self.key.secret_pkcs8_der())
    }

    /// An identity from PEM text: the cluster CA's certificate, the member's certificate and
    /// its PKCS#8 private key. Refused when a text holds no such object, when the certificate
    /// carries no (single) member id, when it was not issued by `ca` (checked as a connection
    /// would check it), or when the key does not belong to it.
    pub fn from_pem(ca: &[u8], cert: &[u8], key: &[u8]) -> Result<Self, TransportError> {
        use rustls::pki_types::pem::PemObject;
        let read = |what: &str, e: rustls::pki_types::pem::Error| {
            TransportError::Pki(format!("{what}: {e}"))
        };
        let ca = CertificateDer::from_pem_slice(ca).map_err(|e| read("the CA certificate", e))?;
        let cert =
            CertificateDer::from_pem_slice(cert).map_err(|e| read("the member certificate", e))?;
        let key = PrivatePkcs8KeyDer::from_pem_slice(key)
            .map_err(|e| read("the member key (PKCS#8 PEM)", e))?;
        let id = member_id_of(&cert).ok_or_else(|| {
            TransportError::Pki("the member certificate carries no luciole member id".into())
        })?;
        issued_by(&cert, &ca)?;
        let provider = rustls::crypto::ring::default_provider();
        rustls::sign::CertifiedKey::from_der(
            vec![cert.clone()],
            PrivateKeyDer::Pkcs8(key.clone_key()),
            &provider,
        )
        .map_err(|e| {
            TransportError::Pki(format!("the key does not belong to the member certificate ({e})"))
        })?;
        Ok(Self { id, cert, key, ca })
    }
}

/// Whether `cert` is a member certificate issued by `ca`, as a connecting peer would check it.
fn issued_by(
    cert: &CertificateDer<'static>,
    ca: &CertificateDer<'static>,
) -> Result<(), TransportError> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).map_err(|e| TransportError::Pki(format!("the CA certificate: {e}")))?;
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
            .build()
            .map_err(|e| TransportError::Pki(e.to_string()))?;
    let now = rustls::pki_types::UnixTime::now();
    verifier.verify_client_cert(cert, &[], now).map(|_| ()).map_err(|e| {
        TransportError::Pki(format!("the member certificate does not check against the CA: {e}"))
    })
}

fn pem_of(tag: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(tag, der.to_vec()))
}

impl ClusterCa {
    /// A new CA named `cluster`.
    pub fn generate(cluster: &str) -> Result<Self, TransportError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(pki)?;
        params.distinguished_name.push(DnType::CommonName, format!("luciole cluster {cluster}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().map_err(pki)?;
        let cert = params.self_signed(&key).map_err(pki)?;
        let cert = cert.der().clone();
        let issuer = Issuer::new(params, key);
        Ok(Self { cert, issuer })
    }

    /// The CA's certificate, DER.
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The CA's certificate, PEM.
    pub fn cert_pem(&self) -> String {
        pem_of("CERTIFICATE", &self.cert)
    }

    /// The CA's private key, PEM: whoever reads it can admit members; keep it off the nodes.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// A certificate for member `id`, with a fresh key.
    pub fn issue(&self, id: MemberId) -> Result<MemberIdentity, TransportError> {
        let mut params = CertificateParams::new(vec![SERVER_NAME.to_string()]).map_err(pki)?;
        params.distinguished_name.push(DnType::CommonName, format!("luciole member {id}"));
        let uri = format!("{MEMBER_URI}{:032x}", id.0);
        params.subject_alt_names.push(SanType::URI(uri.try_into().map_err(pki)?));
        let key = KeyPair::generate().map_err(pki)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(pki)?;
        Ok(MemberIdentity {
            id,
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            ca: self.cert.clone(),
        })
    }
}

fn pki(e: impl std::fmt::Display) -> TransportError {
    TransportError::Pki(e.to_string())
}

/// The member id a certificate carries, if it carries exactly one. Only meaningful for a
/// certificate already verified against the cluster CA.
pub fn member_id_of(cert: &CertificateDer<'_>) -> Option<MemberId> {
    use x509_parser::extensions::GeneralName;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let names = parsed.subject_alternative_name().ok()??;
    let mut ids = names.value.general_names.iter().filter_map(|name| match name {
        GeneralName::URI(uri) => {
            let hex = uri.strip_prefix(MEMBER_URI)?;
            (hex.len() == 32).then(|| u128::from_str_radix(hex, 16).ok()).flatten()
        }
        _ => None,
    });
    let id = ids.next()?;
    ids.next().is_none().then_some(MemberId(id))
}
