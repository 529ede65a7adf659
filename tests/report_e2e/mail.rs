//! The month report (`month::month_report_from_prometheus_matches_ground_truth`) mailed to a real
//! SMTP server (aiosmtpd), its parts read back by Python's email package.

use super::*;

pub(super) fn mail_to_smtp(prom_url: &str) {
    let sink = SmtpSink::start(&[]);
    let port = sink.port;
    let dir = tempfile::tempdir().expect("smtp dir");
    let cfg = dir.path().join("site.yaml");
    std::fs::write(
        &cfg,
        format!(
            "site_name: Test <cluster>\nsmtp:\n  host: 127.0.0.1\n  port: {port}\n  security: none\n  from: joulebook <report@example.org>\nrecipients:\n  admins: [admin@example.org]\n  projects:\n    proj-a: [lead-a@example.org]\n  users:\n    alice: [alice@example.org]\n"
        ),
    )
    .expect("config");
    let o = report_october(prom_url, &["--config", &cfg.to_string_lossy(), "email"]);
    ok(&o);
    // --dry-run writes the same messages as .eml files and sends nothing.
    let outbox = dir.path().join("outbox");
    ok(&report_october(
        prom_url,
        &[
            "--config",
            &cfg.to_string_lossy(),
            "--out",
            &outbox.to_string_lossy(),
            "email",
            "--dry-run",
        ],
    ));
    let mut eml: Vec<String> = std::fs::read_dir(&outbox)
        .expect("outbox")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    eml.sort();
    assert_eq!(
        eml,
        [
            "report-project-proj-a-to-lead-a_example.org.eml",
            "report-to-admin_example.org.eml",
            "report-user-alice-to-alice_example.org.eml"
        ]
    );
    let msgs = sink.received();
    let to: Vec<&str> = msgs.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        to,
        [
            "admin@example.org",
            "alice@example.org",
            "lead-a@example.org"
        ]
    );
    messages_are_complete_and_each_its_own(&msgs);
}

/// Each message has its plain, HTML and inline chart parts; alice's holds her jobs only; the
/// admin's shows what the files show (escaped names, nodes by name, `other` not measured, ML
/// CO2 n/a).
fn messages_are_complete_and_each_its_own(msgs: &[(String, String)]) {
    for (to, m) in msgs {
        assert!(
            m.contains("multipart/alternative"),
            "{to}: not multipart/alternative"
        );
        assert!(
            m.contains("multipart/related"),
            "{to}: no multipart/related"
        );
        assert!(m.contains("Content-Type: text/plain"), "{to}: no text part");
        assert!(m.contains("Content-Type: text/html"), "{to}: no html part");
        assert!(
            m.contains("Content-Type: image/png") && m.contains("Content-ID: <projects>"),
            "{to}: no inline chart"
        );
        let html = decode_parts(m, "html");
        assert!(
            !html.is_empty() && !html.contains("<script>"),
            "{to}: unescaped name in the HTML part"
        );
    }
    let alice = &msgs[1].1;
    let decoded = decode_parts(alice, "");
    assert!(
        decoded.contains("train-final") || decoded.contains("1001"),
        "alice's mail lacks her job"
    );
    assert!(
        !decoded.contains("1003") && !decoded.contains("bob"),
        "alice's mail shows bob's job"
    );
    let admin = decode_parts(&msgs[0].1, "html");
    assert!(
        admin.contains("cid:daily") && admin.contains("&lt;script&gt;"),
        "admin mail"
    );
    // The mail shows what the files show: nodes by name, `other` not measured, ML CO2 n/a.
    assert!(
        admin.contains(">n1</td>") && !admin.contains(":9977"),
        "{admin}"
    );
    assert!(admin.contains("not measured on this cluster"), "{admin}");
    assert!(
        admin.contains("† ML CO2 Impact counts GPU-hours"),
        "{admin}"
    );
    let text = decode_parts(&msgs[0].1, "plain");
    assert!(
        text.contains("other: not measured on this cluster"),
        "{text}"
    );
}

/// The decoded text parts of a message whose subtype starts with `subtype` ("" for all), parsed
/// by Python's email package (an independent MIME parser).
fn decode_parts(m: &str, subtype: &str) -> String {
    let out = Command::new("python3")
        .args(["-c", "import sys,email\nm=email.message_from_string(sys.stdin.read())\nfor p in m.walk():\n  if p.get_content_maintype()=='text' and p.get_content_subtype().startswith(sys.argv[1]): print(p.get_payload(decode=True).decode())", subtype])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(m.as_bytes())?;
            c.wait_with_output()
        })
        .expect("python3 email parser");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
