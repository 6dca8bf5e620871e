//! YAML and JSON front end: Kubernetes-style manifests (`apiVersion: nomos/v1`, `kind: Job`,
//! `metadata`, `spec` in canonical snake_case, several documents per YAML file), bare canonical
//! jobs (what the API stores), and Nomad's own JSON (`{"Job": {...}}` with PascalCase keys and
//! nanosecond durations, as `nomad job inspect` prints it).
//!
//! YAML (and JSON, a subset of it) is read with serde-saphyr into a tree whose every node keeps
//! its line and column, so later errors (serde's, validation's) point at the right place.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};
use serde_saphyr::Spanned;

use crate::diag::{Diagnostic, Pos};
use crate::fieldpath::{index, join, PosMap};
use crate::frontend::RawJob;

/// A YAML/JSON value with the position (1-based line and column) where it starts; unknown
/// positions are 0:0. Read with [`read_yaml_tree`].
#[derive(Debug, Clone)]
pub struct SNode {
    pub pos: Pos,
    pub node: Node,
}

/// A YAML/JSON value. Mappings keep their entries in source order, duplicates included, each as
/// (key, position of the key, value).
#[derive(Debug, Clone)]
pub enum Node {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<SNode>),
    Map(Vec<(String, Pos, SNode)>),
}

struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KV;
        impl Visitor<'_> for KV {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
                Ok(Key("null".into()))
            }
        }
        d.deserialize_any(KV)
    }
}

fn loc_pos(l: &serde_saphyr::Location) -> Pos {
    Pos::new(l.line() as u32, l.column() as u32)
}

fn spanned(s: Spanned<Node>) -> SNode {
    SNode {
        pos: loc_pos(&s.referenced),
        node: s.value,
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NV;
        impl<'de> Visitor<'de> for NV {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
                Ok(Node::UInt(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Str(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
                Ok(Node::Str(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = a.next_element::<Spanned<Node>>()? {
                    items.push(spanned(item));
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(k) = a.next_key::<Spanned<Key>>()? {
                    let v = a.next_value::<Spanned<Node>>()?;
                    items.push((k.value.0, loc_pos(&k.referenced), spanned(v)));
                }
                Ok(Node::Map(items))
            }
        }
        d.deserialize_any(NV)
    }
}

impl SNode {
    /// A tree for a value read without positions (every position unknown).
    fn unpositioned(value: Value) -> SNode {
        let node = match value {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(b),
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => Node::UInt(u),
                (None, Some(i), _) => Node::Int(i),
                (None, None, f) => Node::Float(f.unwrap_or(f64::NAN)),
            },
            Value::String(s) => Node::Str(s),
            Value::Array(items) => Node::Seq(items.into_iter().map(SNode::unpositioned).collect()),
            Value::Object(m) => Node::Map(
                m.into_iter()
                    .map(|(k, v)| (k, Pos::default(), SNode::unpositioned(v)))
                    .collect(),
            ),
        };
        SNode {
            pos: Pos::default(),
            node,
        }
    }

    /// Converts to JSON, recording every path's position (paths relative to `path`).
    pub(crate) fn to_value(&self, path: &str, pos: &mut PosMap) -> Value {
        pos.insert(path, self.pos);
        match &self.node {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(i) => Value::from(*i),
            Node::UInt(u) => Value::from(*u),
            Node::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Node::Str(s) => Value::String(s.clone()),
            Node::Seq(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, n)| n.to_value(&index(path, i), pos))
                    .collect(),
            ),
            Node::Map(items) => {
                let mut m = Map::new();
                for (k, kpos, v) in items {
                    let p = join(path, k);
                    pos.insert(p.clone(), *kpos);
                    let val = v.to_value(&p, pos);
                    m.insert(k.clone(), val);
                }
                Value::Object(m)
            }
        }
    }
}

fn yaml_error(file: &str, e: &serde_saphyr::Error) -> Diagnostic {
    let pos = e.location().map(|l| loc_pos(&l)).unwrap_or_default();
    let msg = e.without_snippet().to_string();
    let msg = msg.lines().next().unwrap_or("invalid YAML");
    let msg = match msg.find(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    // serde-saphyr's advice to its callers ("set DuplicateKeyPolicy in Options") is not for users.
    let msg = msg.split(", set DuplicateKeyPolicy").next().unwrap_or(msg);
    Diagnostic::error(file, pos, format!("invalid YAML: {msg}"))
}

/// One document: its value, and the positions of its paths (empty when not tracked).
#[derive(Debug, Clone, Default)]
pub(crate) struct Doc {
    pub value: Value,
    pub pos: PosMap,
}

impl Doc {
    fn spanned(n: SNode) -> Doc {
        let mut pos = PosMap::default();
        let value = n.to_value("", &mut pos);
        Doc { value, pos }
    }

    /// The documents of a top-level list (a JSON array is read like multi-document YAML).
    fn split(self) -> Vec<Doc> {
        let Value::Array(items) = self.value else {
            return vec![self];
        };
        items
            .into_iter()
            .enumerate()
            .map(|(i, value)| {
                let prefix = format!("[{i}]");
                let mut pos = PosMap::default();
                for (path, p) in &self.pos.0 {
                    if let Some(rest) = path.strip_prefix(&prefix) {
                        pos.set(rest.strip_prefix('.').unwrap_or(rest).to_string(), *p);
                    }
                }
                Doc { value, pos }
            })
            .collect()
    }
}

/// Reads every document of a YAML or JSON text. Without `positions`, JSON is read by
/// serde_json alone (fast; every position unknown).
pub(crate) fn read_documents(
    file: &str,
    source: &str,
    positions: bool,
) -> Result<Vec<Doc>, Vec<Diagnostic>> {
    if is_json(source) && !positions {
        return match serde_json::from_str::<Value>(source) {
            Ok(value) => Ok(vec![Doc {
                value,
                pos: PosMap::default(),
            }]),
            Err(e) => Err(vec![Diagnostic::error(file, Pos::default(), e.to_string())]),
        };
    }
    Ok(read_yaml_tree(file, source)?
        .into_iter()
        .map(Doc::spanned)
        .collect())
}

fn is_json(source: &str) -> bool {
    let trimmed = source.trim_start();
    trimmed.starts_with('{') || trimmed.starts_with('[')
}

/// Reads a YAML or JSON text (JSON when it starts with `{` or `[`) into trees that keep every
/// key's and value's position: one tree per document, empty documents left out, so a JSON text
/// gives one. For readers that walk the tree themselves, such as `nctl`'s agent configuration
/// files. Errors read `file:line:col: invalid YAML: ...` (or `invalid JSON`).
pub fn read_yaml_tree(file: &str, source: &str) -> Result<Vec<SNode>, Vec<Diagnostic>> {
    if is_json(source) {
        // JSON: serde-saphyr gives positions; serde_json is the fallback for what YAML rejects.
        if let Ok(n) = serde_saphyr::from_str::<Spanned<Node>>(source) {
            return Ok(vec![spanned(n)]);
        }
        return match serde_json::from_str::<Value>(source) {
            Ok(value) => Ok(vec![SNode::unpositioned(value)]),
            Err(e) => Err(vec![Diagnostic::error(
                file,
                Pos::new(e.line() as u32, e.column() as u32),
                format!("invalid JSON: {}", strip_json_pos(&e.to_string())),
            )]),
        };
    }
    match serde_saphyr::from_str_multiple::<Spanned<Node>, Vec<_>>(source) {
        Ok(docs) => Ok(docs
            .into_iter()
            .map(spanned)
            .filter(|n| !matches!(n.node, Node::Null))
            .collect()),
        Err(e) => Err(vec![yaml_error(file, &e)]),
    }
}

fn strip_json_pos(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Parses a YAML/JSON file holding manifests, canonical jobs or Nomad JSON.
pub(crate) fn parse_manifest(
    file: &str,
    source: &str,
    warnings: &mut Vec<Diagnostic>,
    soft: &mut Vec<Diagnostic>,
    positions: bool,
) -> Result<Vec<RawJob>, Vec<Diagnostic>> {
    let docs = read_documents(file, source, positions)?;
    let mut out = Vec::new();
    let mut errors = Vec::new();
    if docs.is_empty() {
        return Err(vec![Diagnostic::error(
            file,
            Pos::new(1, 1),
            "no job found: the file is empty",
        )]);
    }
    for doc in docs {
        // A JSON array of documents is accepted like a multi-document YAML file.
        for item in doc.split() {
            match document_to_job(file, item, warnings, soft) {
                Ok(raw) => out.push(raw),
                Err(mut e) => errors.append(&mut e),
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// One document: manifest, Nomad JSON, or canonical job.
pub(crate) fn document_to_job(
    file: &str,
    doc: Doc,
    warnings: &mut Vec<Diagnostic>,
    soft: &mut Vec<Diagnostic>,
) -> Result<RawJob, Vec<Diagnostic>> {
    let Doc {
        value,
        pos: src_pos,
    } = doc;
    let Value::Object(obj) = &value else {
        return Err(vec![Diagnostic::error(
            file,
            src_pos.lookup(""),
            format!(
                "expected a job (a mapping with apiVersion, kind, metadata and spec), found {}",
                kind_of(&value)
            ),
        )]);
    };
    if obj.contains_key("Job") || obj.contains_key("TaskGroups") {
        return crate::nomad_json::convert(file, &value, &src_pos, warnings);
    }
    if obj.contains_key("apiVersion") || obj.contains_key("kind") || obj.contains_key("spec") {
        return manifest_to_job(file, obj, &src_pos, soft);
    }
    // A bare canonical job.
    let mut raw = RawJob {
        value,
        pos: src_pos,
        failed: Vec::new(),
    };
    normalize_durations(file, &mut raw.value, "", &raw.pos, soft);
    Ok(raw)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

const MANIFEST_KEYS: &[&str] = &["apiVersion", "kind", "metadata", "spec"];
const METADATA_KEYS: &[&str] = &["name", "namespace", "labels", "annotations"];

/// Errors found in a manifest, each at the source position of a path in it.
struct ManifestErrors<'a> {
    file: &'a str,
    src: &'a PosMap,
    errors: Vec<Diagnostic>,
}

impl ManifestErrors<'_> {
    fn at(&mut self, path: &str, msg: String) {
        self.errors
            .push(Diagnostic::error(self.file, self.src.lookup(path), msg));
    }
}

/// A `nomos/v1` `Job` manifest: its `spec` is the canonical job, and `metadata` gives its id,
/// namespace and labels.
fn manifest_to_job(
    file: &str,
    obj: &Map<String, Value>,
    src: &PosMap,
    soft: &mut Vec<Diagnostic>,
) -> Result<RawJob, Vec<Diagnostic>> {
    let mut errors = ManifestErrors {
        file,
        src,
        errors: Vec::new(),
    };
    check_envelope(&mut errors, obj);
    let mut job = match obj.get("spec") {
        Some(Value::Object(spec)) => spec.clone(),
        Some(other) => {
            errors.at(
                "spec",
                format!("spec must be a mapping, found {}", kind_of(other)),
            );
            Map::new()
        }
        None => {
            errors.at("", "missing spec".into());
            Map::new()
        }
    };
    let mut pos = PosMap::default();
    for (path, p) in &src.0 {
        if let Some(rest) = path.strip_prefix("spec.") {
            pos.set(rest.to_string(), *p);
        }
    }
    pos.set("", src.lookup("spec"));
    match obj.get("metadata") {
        Some(Value::Object(meta)) => {
            for (k, v) in meta {
                apply_metadata(&mut errors, k, v, &mut job, &mut pos);
            }
        }
        Some(other) => errors.at(
            "metadata",
            format!("metadata must be a mapping, found {}", kind_of(other)),
        ),
        None => errors.at("", "missing metadata (with at least `name`)".into()),
    }
    let mut value = Value::Object(job);
    normalize_durations(file, &mut value, "", &pos, soft);
    if errors.errors.is_empty() {
        Ok(RawJob {
            value,
            pos,
            failed: Vec::new(),
        })
    } else {
        Err(errors.errors)
    }
}

/// The manifest's own fields: only `apiVersion: nomos/v1`, `kind: Job`, `metadata`, `spec`.
fn check_envelope(errors: &mut ManifestErrors<'_>, obj: &Map<String, Value>) {
    for k in obj.keys() {
        if !MANIFEST_KEYS.contains(&k.as_str()) {
            let hint = hint(k, MANIFEST_KEYS);
            errors.at(k, format!("unknown manifest field \"{k}\"{hint}: expected apiVersion, kind, metadata, spec"));
        }
    }
    for (key, expected) in [("apiVersion", "nomos/v1"), ("kind", "Job")] {
        match obj.get(key).and_then(Value::as_str) {
            Some(found) if found == expected => {}
            Some(other) => errors.at(
                key,
                format!("unsupported {key} \"{other}\": expected \"{expected}\""),
            ),
            None => errors.at("", format!("missing {key}: expected \"{expected}\"")),
        }
    }
}

/// One `metadata` field: `name` becomes the job's id (it must agree with `spec.id`),
/// `namespace` and `labels` the job's; `annotations` are accepted and not kept.
fn apply_metadata(
    errors: &mut ManifestErrors<'_>,
    k: &str,
    v: &Value,
    job: &mut Map<String, Value>,
    pos: &mut PosMap,
) {
    let path = format!("metadata.{k}");
    let field = match (k, v) {
        ("name", Value::String(s)) => {
            if let Some(Value::String(id)) = job.get("id") {
                if id != s {
                    errors.at(
                        &path,
                        format!("metadata.name \"{s}\" differs from spec.id \"{id}\""),
                    );
                }
            }
            "id"
        }
        ("namespace", Value::String(_)) => "namespace",
        ("labels", Value::Object(_)) => "labels",
        ("annotations", _) => return,
        ("name" | "namespace", other) => {
            errors.at(
                &path,
                format!("metadata.{k} must be a string, found {}", kind_of(other)),
            );
            return;
        }
        ("labels", other) => {
            errors.at(
                &path,
                format!(
                    "metadata.labels must be a mapping, found {}",
                    kind_of(other)
                ),
            );
            return;
        }
        _ => {
            let hint = hint(k, METADATA_KEYS);
            errors.at(&path, format!("unknown metadata field \"{k}\"{hint}"));
            return;
        }
    };
    job.insert(field.into(), v.clone());
    pos.set(field, errors.src.lookup(&path));
}

fn hint(word: &str, candidates: &[&str]) -> String {
    crate::diag::did_you_mean(word, candidates.iter().copied())
        .map(|s| format!(" (did you mean \"{s}\"?)"))
        .unwrap_or_default()
}

/// Lets manifests write `*_ns` fields as `"30s"`-style strings.
fn normalize_durations(
    file: &str,
    v: &mut Value,
    path: &str,
    pos: &PosMap,
    errors: &mut Vec<Diagnostic>,
) {
    match v {
        Value::Object(m) => {
            let mut bad = Vec::new();
            for (k, val) in m.iter_mut() {
                let p = join(path, k);
                if k.ends_with("_ns") {
                    if let Value::String(s) = val {
                        match crate::duration::parse_duration(s) {
                            Ok(ns) => *val = Value::from(ns),
                            Err(e) => {
                                errors.push(Diagnostic::error(
                                    file,
                                    pos.lookup(&p),
                                    format!("{p}: {e}"),
                                ));
                                bad.push(k.clone());
                            }
                        }
                        continue;
                    }
                }
                if matches!(
                    k.as_str(),
                    "config" | "meta" | "env" | "labels" | "ignored" | "volumes"
                ) {
                    continue;
                }
                normalize_durations(file, val, &p, pos, errors);
            }
            // Reported above; dropped so serde does not report them again.
            for k in bad {
                m.shift_remove(&k);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                normalize_durations(file, item, &index(path, i), pos, errors);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys of a map node with their positions, and each value's position.
    fn entries(n: &SNode) -> Vec<(String, Pos, Pos)> {
        let Node::Map(items) = &n.node else {
            panic!("not a map: {n:?}");
        };
        items
            .iter()
            .map(|(k, kpos, v)| (k.clone(), *kpos, v.pos))
            .collect()
    }

    #[test]
    fn a_yaml_tree_keeps_key_and_value_positions_and_every_document() {
        let docs = read_yaml_tree("f.yaml", "a: 1\nb:\n  c: x\n---\n---\nd: [1]\n").expect("valid");
        assert_eq!(docs.len(), 2, "the empty document is left out");
        assert_eq!(
            entries(&docs[0]),
            [
                ("a".into(), Pos::new(1, 1), Pos::new(1, 4)),
                ("b".into(), Pos::new(2, 1), Pos::new(3, 3)),
            ]
        );
        assert_eq!(docs[1].pos, Pos::new(6, 1));
    }

    #[test]
    fn a_json_tree_is_one_document_with_positions() {
        let docs = read_yaml_tree("f.json", "{\n  \"a\": {\"b\": true}\n}").expect("valid");
        assert_eq!(docs.len(), 1);
        assert_eq!(
            entries(&docs[0]),
            [("a".into(), Pos::new(2, 3), Pos::new(2, 8))]
        );
        let errs = read_yaml_tree("f.json", "{\"a\": 1").expect_err("invalid");
        assert!(errs[0].message.starts_with("invalid"), "{}", errs[0]);
    }

    #[test]
    fn duplicate_keys_are_reported_without_the_library_advice() {
        let errs = read_yaml_tree("f.yaml", "a: 1\na: 2\n").expect_err("duplicate");
        assert_eq!(
            errs[0].to_string(),
            "f.yaml:2:1: invalid YAML: duplicate mapping key: a"
        );
    }
}
