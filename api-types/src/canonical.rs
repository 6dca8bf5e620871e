//! The canonical form: the JSON stored under `/nomos/jobs/<ns>/<job>` (every default filled,
//! stable field order from the struct definitions), reading specs back from the store
//! (canonical JSON, or a JSON/YAML manifest written by GitOps or `etcdctl`), and the YAML
//! manifest form printed by `nctl validate -o yaml`.

use serde_json::{json, Value};

use crate::diag::{Diagnostic, Pos};
use crate::job::Job;
use crate::parse::{finish, Parsed};

/// Pretty, stable canonical JSON (field order follows the struct definitions).
pub fn to_canonical_json(job: &Job) -> String {
    serde_json::to_string_pretty(job).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// The identity of a job version's exact content: the first 16 hex digits of the SHA-256 of its
/// compact JSON. Allocations carry it (`job_spec_hash`), so an agent never runs another spec
/// stored under the same job and version number (a job purged and created again starts at
/// version 0 once more).
pub fn spec_hash(job: &Job) -> String {
    use sha2::{Digest, Sha256};
    let bytes = serde_json::to_vec(job).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a spec read from the store. `key` (e.g. `/nomos/jobs/default/web`) names the source
/// in every diagnostic, and each message names the field path. A spec without an id takes the
/// job name and namespace from the key; one that contradicts the key is an error.
pub fn parse_stored_spec(key: &str, value: &[u8]) -> Result<Parsed, Vec<Diagnostic>> {
    let text = match std::str::from_utf8(value) {
        Ok(t) => t,
        Err(e) => {
            return Err(vec![Diagnostic::error(
                key,
                Pos::default(),
                format!("value is not UTF-8: {e}"),
            )]);
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Fast path for what the store mostly holds, valid JSON: no positions are tracked. Only
    // when something is wrong is the text read again with positions, for the diagnostics.
    match stored_spec(key, text, false) {
        Ok(parsed) if parsed.warnings.is_empty() => return Ok(parsed),
        _ => {}
    }
    stored_spec(key, text, true)
}

fn stored_spec(key: &str, text: &str, positions: bool) -> Result<Parsed, Vec<Diagnostic>> {
    let mut warnings = Vec::new();
    let docs = crate::manifest::read_documents(key, text, positions)?;
    let count = docs.len();
    let Some(doc) = docs.into_iter().next() else {
        return Err(vec![Diagnostic::error(
            key,
            Pos::default(),
            "empty value: expected a job spec",
        )]);
    };
    if count > 1 {
        return Err(vec![Diagnostic::error(
            key,
            Pos::default(),
            "a key holds one job, found several documents",
        )]);
    }
    let mut soft = Vec::new();
    let mut raw = crate::manifest::document_to_job(key, doc, &mut warnings, &mut soft)?;
    let parts: Vec<&str> = key.trim_matches('/').split('/').collect();
    if let ([.., "jobs", ns, name], Some(obj)) = (parts.as_slice(), raw.value.as_object_mut()) {
        for (field, expected) in [("id", *name), ("namespace", *ns)] {
            match obj.get(field).and_then(Value::as_str) {
                None | Some("") => {
                    obj.insert(field.into(), json!(expected));
                }
                Some(found) if found != expected => {
                    return Err(vec![Diagnostic::error(
                        key,
                        raw.pos.lookup(field),
                        format!(
                            "{field}: the spec says \"{found}\" but the key says \"{expected}\""
                        ),
                    )]);
                }
                Some(_) => {}
            }
        }
    }
    finish(key, vec![raw], warnings, soft, true)
}

/// The job as a `nomos/v1` YAML manifest.
pub fn to_manifest_yaml(job: &Job) -> String {
    let mut spec = serde_json::to_value(job).unwrap_or(Value::Null);
    if let Some(obj) = spec.as_object_mut() {
        obj.remove("id");
        obj.remove("namespace");
        obj.remove("labels");
    }
    let mut metadata = serde_json::Map::new();
    metadata.insert("name".into(), json!(job.id));
    metadata.insert("namespace".into(), json!(job.namespace));
    if !job.labels.is_empty() {
        metadata.insert("labels".into(), json!(job.labels));
    }
    let doc = json!({"apiVersion": "nomos/v1", "kind": "Job", "metadata": metadata, "spec": spec});
    serde_saphyr::to_string(&doc).unwrap_or_else(|e| format!("# cannot render YAML: {e}\n"))
}
