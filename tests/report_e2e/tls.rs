//! Prometheus behind TLS with the site's CA and basic auth.

use super::*;

/// bcrypt of "joulebook-test" (cost 4), for Prometheus' basic_auth_users.
const BCRYPT: &str = "$2b$04$8eRxXipbkhaseaoyxUvXGuxabnhYE9jDnHw2suHfr634MeAG.mNky";

fn openssl(dir: &Path, args: &[&str]) {
    need("openssl", "openssl");
    let o = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn tls_with_site_ca_and_basic_auth() {
    let certs = tempfile::tempdir().expect("certs");
    let d = certs.path();
    site_ca_and_server_certificate(d);
    std::fs::write(d.join("password"), "joulebook-test\n").expect("password");
    std::fs::write(d.join("wrong"), "nope\n").expect("password");
    let web = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  reader: {BCRYPT}\n",
        d.join("srv.pem").display(),
        d.join("srv.key").display()
    );
    let s = scenario::generate();
    let prom = prometheus_with(&s, Some(&web));
    let url = format!("https://127.0.0.1:{}", prom.port);
    let out = tempfile::tempdir().expect("out");
    let ca = d.join("ca.pem").to_string_lossy().to_string();
    let pw = d.join("password").to_string_lossy().to_string();
    let r = month_report(
        &url,
        out.path(),
        &[
            "--format",
            "json",
            "--ca-file",
            &ca,
            "--basic-auth-user",
            "reader",
            "--basic-auth-password-file",
            &pw,
        ],
    );
    let it = r["headline"]["it_energy_j"].as_f64().expect("it_energy_j");
    assert!(close(it, s.node_energy_oct, 1e-9));

    let o_dir = out.path().join("x").to_string_lossy().to_string();
    let wrong = d.join("wrong").to_string_lossy().to_string();
    let o = report_october(
        &url,
        &[
            "--out",
            &o_dir,
            "--ca-file",
            &ca,
            "--basic-auth-user",
            "reader",
            "--basic-auth-password-file",
            &wrong,
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("refused the credentials"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = report_october(
        &url,
        &[
            "--out",
            &o_dir,
            "--attempts",
            "1",
            "--basic-auth-user",
            "reader",
            "--basic-auth-password-file",
            &pw,
        ],
    );
    assert_eq!(o.status.code(), Some(1), "an unknown CA must be refused");
    assert!(!Path::new(&o_dir).exists(), "nothing written on failure");
}

/// In `d`: a site CA (`ca.pem`, `ca.key`) and a server certificate it signed for 127.0.0.1
/// (`srv.pem`, `srv.key`), made with openssl.
fn site_ca_and_server_certificate(d: &Path) {
    std::fs::write(d.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("ext");
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=joulebook test CA",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
}
