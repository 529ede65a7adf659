//! `joulebook-report email`: every recipient is attempted, the failures are listed at the end
//! (exit 1), and each delivery goes into the period's send record ([`crate::sent`]) at once, so
//! that a re-run sends only what was not delivered (`--resend`: everything).

use super::{build, charts, now, runtime, stem, usage, write_all, Cli, EmailArgs, Fail};
use crate::config::Config;
use crate::data::Dataset;
use crate::mail;
use crate::model::ScopeKind;
use crate::period::{Period, Zone};
use crate::render::{self, Renderer};
use crate::sent::SendRecord;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Mails every recipient its report. Every address is attempted; those that failed are listed at
/// the end (exit 1). Deliveries go into the period's send record (see [`crate::sent`]), so that a
/// re-run sends only what was not delivered, unless `--resend`.
pub(super) fn send_all(
    cli: &Cli,
    cfg: &Config,
    renderer: &Renderer,
    ds: &Dataset,
    period: &Period,
    zone: &Zone,
    args: &EmailArgs,
) -> Result<(), Fail> {
    let sends = sends(cfg)?;
    let dry_run = args.dry_run;
    let transport = if dry_run {
        None
    } else {
        Some(mail::transport(&cfg.smtp).map_err(|e| usage(e.to_string()))?)
    };
    let out = cli.out.out.clone();
    if dry_run && out.is_none() {
        return Err(usage("--dry-run writes .eml files: give --out DIR"));
    }
    let record_dir = record_dir(args.state_dir.as_deref(), out.as_deref(), dry_run);
    let mut record = SendRecord::open(record_dir.as_deref(), period, cli.sel.cluster.as_deref())
        .map_err(runtime)?;
    if !dry_run {
        record.save().map_err(runtime)?;
    }
    let shown = record
        .path()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if record_dir.is_none() && !dry_run {
        eprintln!("joulebook-report: warning: no send record (give --state-dir DIR, or --out DIR): a re-run sends every message again");
    }
    let mut eml = Vec::new();
    let (mut failed, mut total) = (Vec::new(), 0);
    for (kind, to) in sends {
        let name = stem(&kind);
        let todo: Vec<&String> = to
            .iter()
            .filter(|a| {
                let done = !args.resend && record.contains(&name, a);
                if done {
                    println!(
                        "already sent {name} to {a} (recorded in {shown}; --resend sends it again)"
                    );
                }
                !done
            })
            .collect();
        total += todo.len();
        if todo.is_empty() {
            continue;
        }
        let rendered = match mail_of(cli, cfg, renderer, ds, &kind, zone) {
            Ok(r) => r,
            Err(Fail(_, e)) => {
                failed.extend(todo.iter().map(|a| format!("{name} to {a}: {e}")));
                continue;
            }
        };
        for addr in todo {
            let sent =
                mail::message(&cfg.smtp.from, addr, &rendered).and_then(|msg| match &transport {
                    Some(t) => mail::send(t, &msg, &cfg.smtp.host),
                    None => {
                        let file = format!("{name}-to-{}.eml", stem_addr(addr));
                        eml.push((file, msg.formatted()));
                        Ok(())
                    }
                });
            match sent {
                Err(e) => failed.push(format!("{name} to {addr}: {e}")),
                Ok(()) if !dry_run => {
                    println!("sent {name} to {addr}");
                    record.add(&name, addr, now()).map_err(|e| {
                        runtime(format!("{e}; stopped after sending {name} to {addr}, so that a re-run does not send the same messages twice"))
                    })?;
                }
                Ok(()) => {}
            }
        }
    }
    if let Some(dir) = out.filter(|_| dry_run) {
        write_all(&dir, &eml)?;
        for (name, _) in &eml {
            println!("{}", dir.join(name).display());
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    let recorded = (record_dir.is_some() && !dry_run).then_some(shown.as_str());
    Err(undelivered(&failed, total, recorded))
}

/// Each report to mail and its addresses (admins: the cluster's), from `recipients` in the
/// config; none is a usage error.
fn sends(cfg: &Config) -> Result<Vec<(ScopeKind, &Vec<String>)>, Fail> {
    let rc = &cfg.recipients;
    let mut sends: Vec<(ScopeKind, &Vec<String>)> = Vec::new();
    if !rc.admins.is_empty() {
        sends.push((ScopeKind::Cluster, &rc.admins));
    }
    for (p, to) in &rc.projects {
        sends.push((ScopeKind::Project(p.clone()), to));
    }
    for (u, to) in &rc.users {
        sends.push((ScopeKind::User(u.clone()), to));
    }
    if sends.is_empty() {
        return Err(usage(
            "no recipients: add recipients.admins, recipients.projects or recipients.users to the config",
        ));
    }
    Ok(sends)
}

/// The error listing the `failed` deliveries of `total`; `recorded`: the send record's path,
/// where the others were recorded.
fn undelivered(failed: &[String], total: usize, recorded: Option<&str>) -> Fail {
    runtime(format!(
        "{} of {total} messages not delivered{}:\n  {}",
        failed.len(),
        match recorded {
            Some(shown) =>
                format!(" (the others were, recorded in {shown}: a re-run sends only these)"),
            None => String::new(),
        },
        failed.join("\n  ")
    ))
}

/// The send record's folder: `--state-dir`, else systemd's `$STATE_DIRECTORY` (the unit's
/// `StateDirectory=`), else `--out` (not with `--dry-run`, whose `--out` is the outbox).
fn record_dir(flag: Option<&Path>, out: Option<&Path>, dry_run: bool) -> Option<PathBuf> {
    let systemd = std::env::var_os("STATE_DIRECTORY")
        .and_then(|v| std::env::split_paths(&v).next())
        .filter(|p| !p.as_os_str().is_empty());
    flag.map(Path::to_path_buf)
        .or(systemd)
        .or_else(|| out.filter(|_| !dry_run).map(Path::to_path_buf))
}

/// One scope's message, rendered once for all its addresses.
fn mail_of(
    cli: &Cli,
    cfg: &Config,
    renderer: &Renderer,
    ds: &Dataset,
    kind: &ScopeKind,
    zone: &Zone,
) -> Result<mail::Rendered, Fail> {
    let report = build(cli, cfg, ds, kind.clone(), zone).for_display();
    let pngs = charts(&report)?;
    let images: BTreeMap<String, String> = pngs
        .iter()
        .map(|(n, _)| (n.to_string(), format!("cid:{n}")))
        .collect();
    let scope = match kind {
        ScopeKind::Cluster => cfg.site_name.clone(),
        ScopeKind::Project(p) => format!("project {p}"),
        ScopeKind::User(u) => format!("user {u}"),
    };
    Ok(mail::Rendered {
        subject: cfg
            .smtp
            .subject
            .replace("{period}", &report.period.label)
            .replace("{scope}", &scope),
        html: renderer
            .render(render::HTML, &report, &images)
            .map_err(|e| usage(e.to_string()))?,
        text: renderer
            .render(render::TXT, &report, &images)
            .map_err(|e| usage(e.to_string()))?,
        images: pngs.into_iter().map(|(n, p)| (n.to_string(), p)).collect(),
    })
}

fn stem_addr(a: &str) -> String {
    a.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
