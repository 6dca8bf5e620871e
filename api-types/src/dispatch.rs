//! Dispatching a parameterized job, as pure decisions: whether a request fits the parent's
//! `parameterized` block ([`check`]), the child's id ([`child_id`]) and the child job itself
//! ([`child_job`]). The server's endpoint does the I/O.
//!
//! Nomad's rules: the parent must be parameterized and not stopped; `payload` is
//! `optional`, `required` or `forbidden`, and at most [`MAX_PAYLOAD_BYTES`]; every key of
//! `meta_required` must be given and no key outside `meta_required` and `meta_optional` may be;
//! the given meta is merged over the job's. A child is a copy of the parent without its
//! `parameterized` block, named `<parent>/dispatch-<unix seconds>-<8 hex>` (with an id prefix
//! template after `dispatch-`). Nomos ids cannot hold `/` (they are store key segments), so the
//! child's id is its name with `-` in place of the `/`, as for periodic children.
//!
//! With an idempotency token the id's last part is derived from the token instead of the clock
//! and randomness ([`token_suffix`]): the child is created only if absent, so any number of
//! dispatches with one token, from any number of servers at once, make one child while it
//! exists.

use base64::Engine;
use indexmap::IndexMap;
use sha2::{Digest, Sha256};

use crate::job::{Dispatched, Job};
use crate::names;

/// The largest payload a dispatch takes (Nomad's 16 KiB).
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;
/// The longest idempotency token taken.
pub const MAX_TOKEN_BYTES: usize = 256;
/// The longest id prefix template taken.
pub const MAX_PREFIX_BYTES: usize = 64;

/// What a dispatch asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DispatchRequest {
    pub payload: Vec<u8>,
    pub meta: IndexMap<String, String>,
    pub id_prefix_template: String,
    pub idempotency_token: String,
}

/// Why a dispatch of `parent` with `req` is refused, in Nomad's terms; `Ok` when it fits.
pub fn check(parent: &Job, req: &DispatchRequest) -> Result<(), String> {
    let Some(params) = &parent.parameterized else {
        return Err(format!(
            "Specified job \"{}\" is not a parameterized job",
            parent.id
        ));
    };
    if parent.stop {
        return Err(format!("Specified job \"{}\" is stopped", parent.id));
    }
    match params.payload.as_str() {
        "forbidden" if !req.payload.is_empty() => {
            return Err("Payload is not allowed by the parameterized job".into())
        }
        "required" if req.payload.is_empty() => {
            return Err("Payload is required by the parameterized job".into())
        }
        _ => {}
    }
    if req.payload.len() > MAX_PAYLOAD_BYTES {
        return Err(format!(
            "Payload exceeds maximum size; {} > {MAX_PAYLOAD_BYTES}",
            req.payload.len()
        ));
    }
    let missing: Vec<&str> = params
        .meta_required
        .iter()
        .filter(|k| !req.meta.contains_key(k.as_str()))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "Dispatch did not provide required meta keys: {}",
            missing.join(", ")
        ));
    }
    let unpermitted: Vec<&str> = req
        .meta
        .keys()
        .filter(|k| !params.meta_required.contains(k) && !params.meta_optional.contains(k))
        .map(String::as_str)
        .collect();
    if !unpermitted.is_empty() {
        return Err(format!(
            "Dispatch request included unpermitted metadata keys: {}",
            unpermitted.join(", ")
        ));
    }
    check_text("idempotency token", &req.idempotency_token, MAX_TOKEN_BYTES)?;
    check_text(
        "id prefix template",
        &req.id_prefix_template,
        MAX_PREFIX_BYTES,
    )?;
    if !req.id_prefix_template.is_empty() {
        names::check_job_id(&req.id_prefix_template)
            .map_err(|e| format!("id prefix template: {e}"))?;
    }
    Ok(())
}

/// A free-text field: at most `max` bytes, no control characters.
fn check_text(what: &str, text: &str, max: usize) -> Result<(), String> {
    if text.len() > max {
        return Err(format!("the {what} is over the limit of {max} bytes"));
    }
    if text.chars().any(char::is_control) {
        return Err(format!("the {what} holds a control character"));
    }
    Ok(())
}

/// The last part of a child's id for a dispatch with an idempotency token: 8 hex digits of
/// the token's SHA-256, the same on every server.
pub fn token_suffix(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// The child's name, Nomad's `<parent>/dispatch-[<prefix>-]<unix seconds>-<suffix>`; its id is
/// the same with `-` for the `/` ([`child_id`]). With a token, the seconds are left out so
/// the name depends on the token alone.
pub fn child_name(parent: &str, req: &DispatchRequest, unix_secs: i64, random8: &str) -> String {
    let mut name = format!("{parent}/dispatch-");
    if !req.id_prefix_template.is_empty() {
        name.push_str(&req.id_prefix_template);
        name.push('-');
    }
    if req.idempotency_token.is_empty() {
        name.push_str(&format!("{unix_secs}-{random8}"));
    } else {
        name.push_str(&format!("token-{}", token_suffix(&req.idempotency_token)));
    }
    name
}

/// The child's id: its name with `-` for the `/` after the parent's id.
pub fn child_id(parent: &str, name: &str) -> String {
    match name.strip_prefix(parent).and_then(|r| r.strip_prefix('/')) {
        Some(rest) => format!("{parent}-{rest}"),
        None => name.replace('/', "-"),
    }
}

/// The child job: the parent without `parameterized`, under `name` and its id, with the
/// request's meta merged over the job's and the payload recorded for the agent.
pub fn child_job(parent: &Job, req: &DispatchRequest, name: &str) -> Job {
    let mut child = parent.clone();
    child.id = child_id(&parent.id, name);
    child.name = name.to_string();
    child.parameterized = None;
    child.stop = false;
    for (k, v) in &req.meta {
        child.meta.insert(k.clone(), v.clone());
    }
    child.dispatched = Some(Dispatched {
        parent_id: parent.id.clone(),
        payload: base64::engine::general_purpose::STANDARD.encode(&req.payload),
        idempotency_token: req.idempotency_token.clone(),
    });
    child
}

/// The payload a dispatched job carries, decoded; empty for other jobs.
pub fn payload_of(job: &Job) -> Result<Vec<u8>, String> {
    match &job.dispatched {
        Some(d) if !d.payload.is_empty() => base64::engine::general_purpose::STANDARD
            .decode(&d.payload)
            .map_err(|e| format!("the dispatch payload is not base64: {e}")),
        _ => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Parameterized;

    fn parent(payload: &str, required: &[&str], optional: &[&str]) -> Job {
        Job {
            id: "encode".into(),
            name: "encode".into(),
            meta: [("owner".to_string(), "ops".to_string())]
                .into_iter()
                .collect(),
            parameterized: Some(Parameterized {
                payload: payload.into(),
                meta_required: required.iter().map(|s| s.to_string()).collect(),
                meta_optional: optional.iter().map(|s| s.to_string()).collect(),
            }),
            ..Default::default()
        }
    }

    fn req(payload: &[u8], meta: &[(&str, &str)]) -> DispatchRequest {
        DispatchRequest {
            payload: payload.to_vec(),
            meta: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn requests_are_checked_against_the_parameterized_block() {
        let big = vec![b'x'; MAX_PAYLOAD_BYTES + 1];
        let cases: Vec<(Job, DispatchRequest, Option<&str>)> = vec![
            (parent("optional", &[], &[]), req(b"", &[]), None),
            (parent("optional", &[], &[]), req(b"data", &[]), None),
            (
                parent("required", &[], &[]),
                req(b"", &[]),
                Some("required"),
            ),
            (
                parent("forbidden", &[], &[]),
                req(b"x", &[]),
                Some("not allowed"),
            ),
            (
                parent("optional", &[], &[]),
                req(&big, &[]),
                Some("maximum size"),
            ),
            (
                parent("optional", &["email"], &[]),
                req(b"", &[]),
                Some("email"),
            ),
            (
                parent("optional", &["a"], &["b"]),
                req(b"", &[("a", "1"), ("b", "2")]),
                None,
            ),
            (
                parent("optional", &["a"], &[]),
                req(b"", &[("a", "1"), ("zzz", "2")]),
                Some("unpermitted metadata keys: zzz"),
            ),
            (
                Job {
                    id: "plain".into(),
                    ..Default::default()
                },
                req(b"", &[]),
                Some("not a parameterized job"),
            ),
            (
                Job {
                    stop: true,
                    ..parent("optional", &[], &[])
                },
                req(b"", &[]),
                Some("stopped"),
            ),
        ];
        for (i, (job, r, want)) in cases.iter().enumerate() {
            match (check(job, r), want) {
                (Ok(()), None) => {}
                (Err(e), Some(w)) => assert!(e.contains(w), "case {i}: {e}"),
                (got, _) => panic!("case {i}: {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn tokens_and_prefixes_are_bounded_and_named_safely() {
        let job = parent("optional", &[], &[]);
        let mut r = req(b"", &[]);
        r.idempotency_token = "t".repeat(MAX_TOKEN_BYTES + 1);
        assert!(check(&job, &r).unwrap_err().contains("limit"));
        r.idempotency_token = "a\nb".into();
        assert!(check(&job, &r).unwrap_err().contains("control"));
        r.idempotency_token = "ok".into();
        r.id_prefix_template = "../x".into();
        assert!(check(&job, &r).is_err());
        r.id_prefix_template = "nightly".into();
        assert_eq!(check(&job, &r), Ok(()));
    }

    #[test]
    fn names_follow_nomad_and_a_token_fixes_the_name() {
        let mut r = req(b"", &[]);
        assert_eq!(
            child_name("encode", &r, 1_700_000_000, "0a1b2c3d"),
            "encode/dispatch-1700000000-0a1b2c3d"
        );
        r.id_prefix_template = "nightly".into();
        assert_eq!(
            child_name("encode", &r, 1_700_000_000, "0a1b2c3d"),
            "encode/dispatch-nightly-1700000000-0a1b2c3d"
        );
        r.idempotency_token = "prod".into();
        let a = child_name("encode", &r, 1, "11111111");
        let b = child_name("encode", &r, 2, "22222222");
        assert_eq!(
            a, b,
            "one token, one child, whenever and wherever dispatched"
        );
        assert_eq!(
            a,
            format!("encode/dispatch-nightly-token-{}", token_suffix("prod"))
        );
        assert_ne!(token_suffix("prod"), token_suffix("prod2"));
        assert_eq!(child_id("encode", &a), a.replacen('/', "-", 1));
    }

    #[test]
    fn the_child_merges_meta_and_carries_the_payload() {
        let job = parent("optional", &["email"], &["owner"]);
        let r = req(b"\x00payload\xff", &[("email", "a@b"), ("owner", "dev")]);
        let child = child_job(&job, &r, "encode/dispatch-1-abcdef01");
        assert_eq!(child.id, "encode-dispatch-1-abcdef01");
        assert_eq!(child.name, "encode/dispatch-1-abcdef01");
        assert!(child.parameterized.is_none());
        assert_eq!(child.meta["owner"], "dev", "the dispatch's meta wins");
        assert_eq!(child.meta["email"], "a@b");
        assert_eq!(child.parent_id(), Some("encode"));
        assert_eq!(payload_of(&child).unwrap(), b"\x00payload\xff");
        assert_eq!(payload_of(&job).unwrap(), b"");
    }
}
