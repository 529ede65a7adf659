//! Which source each published metadata value comes from, in order of trust:
//! 1. the prolog's job record (root, from the scheduler daemon's environment);
//! 2. what the kernel and the scheduler's root-made folders attest: the uid in the cgroup path
//!    (Slurm v1 `uid_<N>`, OAR 3 `oar-u<N>`), the user in OAR 2's folder name, the uid owning
//!    the job's processes (`/proc/<pid>/status`), and names from the user database;
//! 3. the job's environment (`SLURM_JOB_ACCOUNT`, …), which the job's user controls: used only
//!    for what nothing above gives, and then marked ([`MetadataSource::Environment`]).
//!
//! An environment value that contradicts an attested one is ignored and reported (once per
//! job, by the caller).

use super::cgroup::Found;
use super::env::JobEnv;
use super::passwd::Passwd;
use super::record::Record;
use super::MetadataSource;

/// The metadata to publish for one job.
#[derive(Debug, Default)]
pub(crate) struct Meta<'a> {
    pub uid: Option<u32>,
    pub user: Option<&'a str>,
    pub account: Option<&'a str>,
    pub partition: Option<&'a str>,
    pub job_name: Option<&'a str>,
    pub sluid: Option<&'a str>,
    pub source: MetadataSource,
    /// What the environment claimed against an attested value, if anything.
    pub contradiction: Option<String>,
}

pub(crate) fn resolve<'a>(
    found: &'a Found,
    kernel_uid: Option<u32>,
    record: Option<&'a Record>,
    env: Option<&'a JobEnv>,
    passwd: &'a mut Passwd,
) -> Meta<'a> {
    let sluid = found
        .sluid
        .as_deref()
        .or_else(|| record.and_then(|r| r.sluid.as_deref()));
    // The uid the kernel or the root-made path attests.
    let path_uid = found
        .uid
        .or(kernel_uid)
        .or_else(|| found.user.as_deref().and_then(|u| passwd.uid(u)));
    let known = Known {
        path_user: found.user.as_deref(),
        path_uid,
        sluid,
        env,
        passwd,
    };
    match record {
        Some(r) => from_record(r, known),
        None => from_kernel(known),
    }
}

/// What both cases start from: the path's user, the attested uid, the SLUID, the environment.
struct Known<'a> {
    path_user: Option<&'a str>,
    path_uid: Option<u32>,
    sluid: Option<&'a str>,
    env: Option<&'a JobEnv>,
    passwd: &'a mut Passwd,
}

/// `user`, else the user database's name of `uid`.
fn named<'a>(passwd: &'a mut Passwd, user: Option<&'a str>, uid: Option<u32>) -> Option<&'a str> {
    match (user, uid) {
        (Some(u), _) => Some(u),
        (None, Some(uid)) => passwd.name(uid),
        (None, None) => None,
    }
}

/// A text value of the environment, if any.
fn env_text(env: Option<&JobEnv>, f: fn(&JobEnv) -> &Option<String>) -> Option<&str> {
    env.and_then(|e| f(e).as_deref())
}

/// The first value the environment claims against an attested one.
#[derive(Default)]
struct Contradiction(Option<String>);

impl Contradiction {
    fn note(&mut self, what: &str, claimed: &str, attested: &str) {
        if self.0.is_none() && claimed != attested {
            self.0 = Some(format!(
                "its environment claims {what} {:?}, attested {:?}",
                super::clip(claimed),
                super::clip(attested)
            ));
        }
    }
}

/// A job with a prolog's record: the record's values, the path's user and the attested uid
/// where it has none.
fn from_record<'a>(r: &'a Record, k: Known<'a>) -> Meta<'a> {
    let mut contradiction = Contradiction::default();
    let uid = r.uid.or(k.path_uid);
    if let (Some(e), Some(a)) = (k.env.and_then(|e| e.uid), uid) {
        if e != a {
            contradiction.note("uid", &e.to_string(), &a.to_string());
        }
    }
    for (claimed, attested, what) in [
        (
            env_text(k.env, |e| &e.account),
            r.account.as_deref(),
            "account",
        ),
        (
            env_text(k.env, |e| &e.partition),
            r.partition.as_deref(),
            "partition",
        ),
        (env_text(k.env, |e| &e.user), r.user.as_deref(), "user"),
    ] {
        if let (Some(c), Some(a)) = (claimed, attested) {
            contradiction.note(what, c, a);
        }
    }
    let user = match (r.user.as_deref(), k.path_user) {
        (Some(u), _) | (None, Some(u)) => Some(u),
        (None, None) => None,
    };
    let user = named(k.passwd, user, uid);
    Meta {
        uid,
        user,
        account: r.account.as_deref(),
        partition: r.partition.as_deref(),
        job_name: r.job_name.as_deref(),
        sluid: k.sluid,
        source: MetadataSource::Prolog,
        contradiction: contradiction.0,
    }
}

/// A job without a record: what the kernel and the path attest, then the environment for what
/// they do not give (marked so).
fn from_kernel(k: Known<'_>) -> Meta<'_> {
    let mut contradiction = Contradiction::default();
    let mut source = MetadataSource::Kernel;
    let uid = match (k.path_uid, k.env.and_then(|e| e.uid)) {
        (Some(a), Some(e)) => {
            // Compared as numbers: formatting them costs two allocations per job.
            if e != a {
                contradiction.note("uid", &e.to_string(), &a.to_string());
            }
            Some(a)
        }
        (Some(a), None) => Some(a),
        (None, Some(e)) => {
            source = MetadataSource::Environment;
            Some(e)
        }
        (None, None) => None,
    };
    let attested_uid = k.path_uid.is_some();
    let db_user = named(k.passwd, k.path_user, uid);
    let env_user = env_text(k.env, |e| &e.user);
    let user = match (db_user, env_user) {
        (Some(u), Some(e)) => {
            if attested_uid {
                contradiction.note("user", e, u);
            }
            Some(u)
        }
        (Some(u), None) => Some(u),
        // A uid attested but unknown to the user database: published as a number only, never
        // named by the job's own claim.
        (None, Some(_)) if attested_uid => None,
        (None, Some(e)) => {
            source = MetadataSource::Environment;
            Some(e)
        }
        (None, None) => None,
    };
    let account = env_text(k.env, |e| &e.account);
    let partition = env_text(k.env, |e| &e.partition);
    let job_name = env_text(k.env, |e| &e.job_name);
    if account.is_some() || partition.is_some() || job_name.is_some() {
        source = MetadataSource::Environment;
    }
    Meta {
        uid,
        user,
        account,
        partition,
        job_name,
        sluid: k.sluid,
        source,
        contradiction: contradiction.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(uid: Option<u32>, user: &str, account: &str) -> JobEnv {
        JobEnv {
            uid,
            user: Some(user.into()),
            account: Some(account.into()),
            ..JobEnv::default()
        }
    }

    fn passwd() -> Passwd {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("passwd");
        std::fs::write(
            &path,
            "root:x:0:0::/:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n",
        )
        .expect("write");
        let mut p = Passwd::new(path, false);
        p.refresh(&mut Vec::new());
        p
    }

    /// `exec env SLURM_JOB_ACCOUNT=victim SLURM_JOB_UID=0 SLURM_JOB_USER=root` in a job of
    /// `nobody`: with the prolog's record, nothing the job claims is published.
    #[test]
    fn the_record_wins_over_a_forged_environment() {
        let mut p = passwd();
        let rec = Record {
            job_id: "5".into(),
            user: Some("nobody".into()),
            uid: Some(65534),
            account: Some("own-project".into()),
            ..Record::default()
        };
        let forged = env(Some(0), "root", "victim-project");
        let found = Found::default();
        let m = resolve(&found, Some(65534), Some(&rec), Some(&forged), &mut p);
        assert_eq!(m.uid, Some(65534));
        assert_eq!(m.user, Some("nobody"));
        assert_eq!(m.account, Some("own-project"));
        assert_eq!(m.source, MetadataSource::Prolog);
        assert!(m.contradiction.is_some());
    }

    /// Without a record, the kernel's uid wins over the environment's; the account can only
    /// be the job's claim, and is marked so.
    #[test]
    fn the_kernel_uid_wins_and_the_claimed_account_is_marked() {
        let mut p = passwd();
        let forged = env(Some(0), "root", "victim-project");
        let found = Found::default();
        let m = resolve(&found, Some(65534), None, Some(&forged), &mut p);
        assert_eq!(m.uid, Some(65534));
        assert_eq!(m.user, Some("nobody"));
        assert_eq!(m.account, Some("victim-project"));
        assert_eq!(m.source, MetadataSource::Environment);
        assert!(m.contradiction.is_some());
        // An attested uid the database lacks: a number, not the job's chosen name.
        let claimed = env(None, "root", "a");
        let m = resolve(&found, Some(4242), None, Some(&claimed), &mut p);
        assert_eq!((m.uid, m.user), (Some(4242), None));
        // Nothing from the environment: the kernel's facts alone.
        let m = resolve(&found, Some(65534), None, None, &mut p);
        assert_eq!(m.source, MetadataSource::Kernel);
    }
}
