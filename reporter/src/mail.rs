//! Mail: one message per recipient and scope, each holding only what the recipients mapping
//! grants (a user their own jobs, a project lead the project, an administrator the cluster).
//! The message is `multipart/alternative` of a plain-text part and a `multipart/related` HTML part
//! whose charts are inline PNG referenced by `cid:`.

use crate::config::{Smtp, SmtpSecurity};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MailError(pub String);

/// A rendered report ready to be mailed.
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
    /// Content id (without `cid:`) → PNG bytes.
    pub images: Vec<(String, Vec<u8>)>,
}

pub fn message(from: &str, to: &str, r: &Rendered) -> Result<Message, MailError> {
    let from: Mailbox = from
        .parse()
        .map_err(|e| MailError(format!("smtp.from {from:?} is not an address: {e}")))?;
    let to_box: Mailbox = to
        .parse()
        .map_err(|e| MailError(format!("recipient {to:?} is not an address: {e}")))?;
    let mut related = MultiPart::related().singlepart(SinglePart::html(r.html.clone()));
    for (cid, png) in &r.images {
        let ct = ContentType::parse("image/png").map_err(|e| MailError(e.to_string()))?;
        related = related.singlepart(Attachment::new_inline(cid.clone()).body(png.clone(), ct));
    }
    Message::builder()
        .from(from)
        .to(to_box)
        .subject(r.subject.clone())
        .multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::plain(r.text.clone()))
                .multipart(related),
        )
        .map_err(|e| MailError(format!("cannot build the message to {to}: {e}")))
}

pub fn transport(s: &Smtp) -> Result<SmtpTransport, MailError> {
    let tls_params = || -> Result<TlsParameters, MailError> {
        let mut b = TlsParameters::builder(s.host.clone());
        if let Some(ca) = &s.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                MailError(format!("cannot read smtp.ca_file {}: {e}", ca.display()))
            })?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| MailError(format!("smtp.ca_file {}: {e}", ca.display())))?;
            b = b.add_root_certificate(cert);
        }
        b.build()
            .map_err(|e| MailError(format!("TLS settings for {}: {e}", s.host)))
    };
    let (tls, port) = match s.security {
        SmtpSecurity::Starttls => (Tls::Required(tls_params()?), 587),
        SmtpSecurity::Tls => (Tls::Wrapper(tls_params()?), 465),
        SmtpSecurity::None => (Tls::None, 25),
    };
    let mut b = SmtpTransport::builder_dangerous(s.host.clone())
        .port(s.port.unwrap_or(port))
        .tls(tls)
        .timeout(Some(std::time::Duration::from_secs(60)));
    if let Some(user) = &s.username {
        let pass = match &s.password_file {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| {
                    MailError(format!(
                        "cannot read smtp.password_file {}: {e}",
                        p.display()
                    ))
                })?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
            None => String::new(),
        };
        b = b.credentials(Credentials::new(user.clone(), pass));
    }
    Ok(b.build())
}

/// Sends one message. The error says whether the server refused it (a bad or unknown address:
/// a re-run will not help until it is fixed), deferred it (try again later), or could not be
/// reached or spoken to (check the `smtp` settings).
pub fn send(t: &SmtpTransport, m: &Message, host: &str) -> Result<(), MailError> {
    t.send(m).map(|_| ()).map_err(|e| {
        MailError(if e.is_permanent() {
            format!("SMTP server {host} refused the message: {e}")
        } else if e.is_transient() {
            format!("SMTP server {host} deferred the message (a re-run may deliver it): {e}")
        } else {
            format!(
                "SMTP server {host} failed: {e}. Check smtp.host, smtp.port, smtp.security and the credentials in the config."
            )
        })
    })
}
