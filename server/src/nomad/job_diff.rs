//! Nomad's job diff between two jobs written in Nomad's JSON shape (what `GET /v1/job/:id`
//! answers, [`nomos_api::nomad_out::job_to_nomad`]): `JobDiff {Type, ID, Fields, Objects,
//! TaskGroups: [TaskGroupDiff {Type, Name, Fields, Objects, Tasks: [TaskDiff {Type, Name,
//! Fields, Objects, Annotations}], Updates}]}`, each `ObjectDiff {Type, Name, Fields, Objects}`
//! and each `FieldDiff {Type, Name, Old, New, Annotations}`; `Type` is `Added`, `Deleted`,
//! `Edited` or `None`.
//!
//! The rules follow Nomad's: a scalar is a field (`Count`, `Driver`, `KillTimeout`); a map of
//! scalars (`Meta`, `Env`) is one field per key (`Meta[owner]`); a nested block is an object
//! named after its key (`Resources`, `Update`, `RestartPolicy`), recursively; a task's `Config`
//! is one object whose fields are its flattened paths (`args[0]`, `labels[0][app]`); a list of
//! blocks is one object per element under Nomad's singular name (`Constraint`, `Service`,
//! `Network`, `Static Port`), matched by `Name` or `Label` when every element has a distinct
//! one and otherwise as a set (an edited constraint is one `Deleted` and one `Added`); a list
//! of scalars (`Datacenters`, `Tags`) is one object whose fields carry the added and removed
//! elements. Groups and tasks are matched by name and listed by name, unchanged ones as `None`.
//! Fields are sorted by name; objects keep the job's order. Values are written as text
//! (durations in nanoseconds), and a field whose old text is empty is `Added`, one whose new
//! text is empty `Deleted`. Annotations are always `null` (Nomos does not annotate which
//! changes force a replacement; the plan's `Annotations.DesiredTGUpdates` says what happens).

use std::collections::{BTreeMap, BTreeSet};

use indexmap::IndexMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// Fields of the job the diff leaves out, as Nomad does (bookkeeping, and `Update`, which
/// Nomad copies into the groups), and the groups (diffed as `TaskGroups`).
const JOB_SKIP: &[&str] = &[
    "ID",
    "Status",
    "StatusDescription",
    "Version",
    "Stable",
    "CreateIndex",
    "ModifyIndex",
    "JobModifyIndex",
    "Update",
    "SubmitTime",
    "NomadTokenID",
    "VaultToken",
    "TaskGroups",
];
const GROUP_SKIP: &[&str] = &["Name", "Tasks"];
const TASK_SKIP: &[&str] = &["Name"];

/// Maps of scalars, written as one field per key (`Meta[owner]`).
const FLAT_MAPS: &[&str] = &["Meta", "Env", "GetterOptions", "GetterHeaders"];

/// Nomad's name of one element of a list (or map) of blocks.
fn element_name(key: &str) -> &str {
    match key {
        "Constraints" => "Constraint",
        "Affinities" => "Affinity",
        "Spreads" => "Spread",
        "Services" => "Service",
        "Checks" => "Check",
        "Networks" => "Network",
        "ReservedPorts" => "Static Port",
        "DynamicPorts" => "Dynamic Port",
        "Artifacts" => "Artifact",
        "Templates" => "Template",
        "Devices" => "Device",
        "VolumeMounts" => "VolumeMount",
        "Volumes" => "Volume",
        "Identities" => "Identity",
        other => other,
    }
}

/// Maps whose values are blocks, one object per entry (a group's `Volumes`).
const BLOCK_MAPS: &[&str] = &["Volumes"];

/// The kind of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DiffType {
    None,
    Added,
    Deleted,
    Edited,
}

/// One changed field.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FieldDiff {
    pub r#type: DiffType,
    pub name: String,
    pub old: String,
    pub new: String,
    pub annotations: Option<Vec<String>>,
}

/// One changed block.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ObjectDiff {
    pub r#type: DiffType,
    pub name: String,
    #[serde(serialize_with = "null_if_empty")]
    pub fields: Vec<FieldDiff>,
    #[serde(serialize_with = "null_if_empty")]
    pub objects: Vec<ObjectDiff>,
}

/// The diff of one task: a block's, with its annotations.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskDiff {
    #[serde(flatten)]
    pub diff: ObjectDiff,
    pub annotations: Option<Vec<String>>,
}

/// The diff of one task group: a block's, with its tasks and the plan's updates of it
/// (`{"create": 2}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskGroupDiff {
    #[serde(flatten)]
    pub diff: ObjectDiff,
    #[serde(serialize_with = "null_if_empty")]
    pub tasks: Vec<TaskDiff>,
    pub updates: Option<IndexMap<String, u64>>,
}

/// The diff of a job.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobDiff {
    pub r#type: DiffType,
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(serialize_with = "null_if_empty")]
    pub fields: Vec<FieldDiff>,
    #[serde(serialize_with = "null_if_empty")]
    pub objects: Vec<ObjectDiff>,
    #[serde(serialize_with = "null_if_empty")]
    pub task_groups: Vec<TaskGroupDiff>,
}

fn null_if_empty<S: Serializer, T: Serialize>(items: &[T], s: S) -> Result<S::Ok, S::Error> {
    if items.is_empty() {
        s.serialize_none()
    } else {
        s.collect_seq(items)
    }
}

static NULL: Value = Value::Null;
static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

/// The diff of job `id` from `old` (`None` for a job not stored yet) to `new`; `updates`
/// holds each group's planned updates, written as its `Updates` (a group only the updates
/// name is listed as unchanged).
pub fn job_diff(
    id: &str,
    old: Option<&Value>,
    new: &Value,
    updates: &IndexMap<String, IndexMap<String, u64>>,
) -> JobDiff {
    let old = old.unwrap_or(&NULL);
    let own = members(old, new, JOB_SKIP);
    let mut task_groups: Vec<TaskGroupDiff> = by_name(&old["TaskGroups"], &new["TaskGroups"])
        .into_iter()
        .map(|(name, o, n)| group_diff(name, o, n))
        .collect();
    for (name, planned) in updates {
        let group = match task_groups.iter_mut().find(|g| &g.diff.name == name) {
            Some(group) => group,
            None => {
                task_groups.push(group_diff(name.clone(), &NULL, &NULL));
                task_groups.last_mut().expect("just pushed")
            }
        };
        group.updates = Some(planned.clone()).filter(|u| !u.is_empty());
    }
    let children_changed = task_groups.iter().any(|g| g.diff.r#type != DiffType::None);
    JobDiff {
        r#type: kind(old, new, !own.is_empty() || children_changed),
        id: id.to_string(),
        fields: own.fields,
        objects: own.objects,
        task_groups,
    }
}

fn group_diff(name: String, old: &Value, new: &Value) -> TaskGroupDiff {
    let own = members(old, new, GROUP_SKIP);
    let tasks: Vec<TaskDiff> = by_name(&old["Tasks"], &new["Tasks"])
        .into_iter()
        .map(|(name, o, n)| task_diff(name, o, n))
        .collect();
    let children_changed = tasks.iter().any(|t| t.diff.r#type != DiffType::None);
    TaskGroupDiff {
        diff: own.into_object(name, kind(old, new, children_changed)),
        tasks,
        updates: None,
    }
}

fn task_diff(name: String, old: &Value, new: &Value) -> TaskDiff {
    let own = members(old, new, TASK_SKIP);
    TaskDiff {
        diff: own.into_object(name, kind(old, new, false)),
        annotations: None,
    }
}

/// Added when only `new` is there, Deleted when only `old` is, otherwise Edited when
/// something inside changed.
fn kind(old: &Value, new: &Value, changed: bool) -> DiffType {
    match (old.is_null(), new.is_null()) {
        (true, false) => DiffType::Added,
        (false, true) => DiffType::Deleted,
        _ if changed => DiffType::Edited,
        _ => DiffType::None,
    }
}

/// The elements of two lists of named blocks (groups, tasks) paired by `Name`, sorted by
/// it; `Null` stands for a side without the element.
fn by_name<'a>(old: &'a Value, new: &'a Value) -> Vec<(String, &'a Value, &'a Value)> {
    let named = |list: &'a Value| -> BTreeMap<String, &'a Value> {
        list.as_array()
            .into_iter()
            .flatten()
            .map(|item| (text(&item["Name"]), item))
            .collect()
    };
    let (old, new) = (named(old), named(new));
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let pick = |side: &BTreeMap<String, &'a Value>| side.get(name).copied();
            let (o, n) = (pick(&old).unwrap_or(&NULL), pick(&new).unwrap_or(&NULL));
            (name.clone(), o, n)
        })
        .collect()
}

/// The fields and objects of one block.
#[derive(Default)]
struct Members {
    fields: Vec<FieldDiff>,
    objects: Vec<ObjectDiff>,
}

impl Members {
    fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.objects.is_empty()
    }

    /// The block named `name` with these members, of type `r#type`, except that `None`
    /// becomes `Edited` when some member changed.
    fn into_object(self, name: String, r#type: DiffType) -> ObjectDiff {
        let r#type = match r#type {
            DiffType::None if !self.is_empty() => DiffType::Edited,
            other => other,
        };
        ObjectDiff {
            r#type,
            name,
            fields: self.fields,
            objects: self.objects,
        }
    }
}

/// What differs between the members of two blocks (`Null` for a missing one), `skip` aside.
fn members(old: &Value, new: &Value, skip: &[&str]) -> Members {
    let (old, new) = (
        old.as_object().unwrap_or(&EMPTY),
        new.as_object().unwrap_or(&EMPTY),
    );
    let mut out = Members::default();
    let keys = old
        .keys()
        .chain(new.keys().filter(|k| !old.contains_key(*k)));
    for key in keys.filter(|k| !skip.contains(&k.as_str())) {
        let (o, n) = (old.get(key).unwrap_or(&NULL), new.get(key).unwrap_or(&NULL));
        if o != n {
            member(key, o, n, &mut out);
        }
    }
    out.fields.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Adds the diff of member `key` of a block, by the shape of its value.
fn member(key: &str, old: &Value, new: &Value, out: &mut Members) {
    match sample(old, new) {
        Value::Object(_) if key == "Config" => out.objects.extend(config_diff(old, new)),
        Value::Object(_) if FLAT_MAPS.contains(&key) => {
            out.fields.extend(map_fields(key, old, new));
        }
        Value::Object(_) if BLOCK_MAPS.contains(&key) => {
            out.objects
                .extend(block_map_diffs(element_name(key), old, new));
        }
        Value::Object(_) => out.objects.extend(object_diff(key, old, new)),
        Value::Array(items) if items.iter().all(is_scalar) => {
            out.objects.extend(set_diff(key, old, new));
        }
        Value::Array(_) => out.objects.extend(list_diffs(element_name(key), old, new)),
        _ => out.fields.extend(field(key, text(old), text(new))),
    }
}

/// The side whose shape decides how a member is diffed: the new one unless it is null or
/// empty.
fn sample<'a>(old: &'a Value, new: &'a Value) -> &'a Value {
    let empty = match new {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    };
    if empty && !old.is_null() {
        old
    } else {
        new
    }
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Array(_) | Value::Object(_))
}

/// A value as the diff writes it: strings as they are, `null` as empty, the rest as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A changed field, or none when the two texts are equal.
fn field(name: &str, old: String, new: String) -> Option<FieldDiff> {
    if old == new {
        return None;
    }
    let r#type = if old.is_empty() {
        DiffType::Added
    } else if new.is_empty() {
        DiffType::Deleted
    } else {
        DiffType::Edited
    };
    Some(FieldDiff {
        r#type,
        name: name.to_string(),
        old,
        new,
        annotations: None,
    })
}

/// The diff of one block named `name`, or none when nothing in it changed.
fn object_diff(name: &str, old: &Value, new: &Value) -> Option<ObjectDiff> {
    let object = members(old, new, &[]).into_object(name.to_string(), kind(old, new, false));
    (object.r#type != DiffType::None).then_some(object)
}

/// One field per key of a map of scalars: `Meta[owner]`.
fn map_fields(key: &str, old: &Value, new: &Value) -> Vec<FieldDiff> {
    let (old, new) = (
        old.as_object().unwrap_or(&EMPTY),
        new.as_object().unwrap_or(&EMPTY),
    );
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    names
        .into_iter()
        .filter_map(|k| {
            let side = |m: &Map<String, Value>| text(m.get(k).unwrap_or(&NULL));
            field(&format!("{key}[{k}]"), side(old), side(new))
        })
        .collect()
}

/// One object per entry of a map of blocks (a group's `Volumes`), named `name`.
fn block_map_diffs(name: &str, old: &Value, new: &Value) -> Vec<ObjectDiff> {
    let (old, new) = (
        old.as_object().unwrap_or(&EMPTY),
        new.as_object().unwrap_or(&EMPTY),
    );
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            object_diff(
                name,
                old.get(k).unwrap_or(&NULL),
                new.get(k).unwrap_or(&NULL),
            )
        })
        .collect()
}

/// A task's `Config`: one object whose fields are the flattened paths of both sides.
fn config_diff(old: &Value, new: &Value) -> Option<ObjectDiff> {
    let (mut old_flat, mut new_flat) = (BTreeMap::new(), BTreeMap::new());
    flatten("", old, &mut old_flat);
    flatten("", new, &mut new_flat);
    let names: BTreeSet<&String> = old_flat.keys().chain(new_flat.keys()).collect();
    let fields: Vec<FieldDiff> = names
        .into_iter()
        .filter_map(|k| {
            let side = |m: &BTreeMap<String, String>| m.get(k).cloned().unwrap_or_default();
            field(k, side(&old_flat), side(&new_flat))
        })
        .collect();
    let present = |v: &Value| v.as_object().is_some_and(|m| !m.is_empty());
    let r#type = match (present(old), present(new)) {
        (false, true) => DiffType::Added,
        (true, false) => DiffType::Deleted,
        _ if fields.is_empty() => return None,
        _ => DiffType::Edited,
    };
    Some(ObjectDiff {
        r#type,
        name: "Config".into(),
        fields,
        objects: Vec::new(),
    })
}

/// Writes every scalar under `value` as `path -> text`: map keys as `key` at the top and
/// `[key]` below it, list elements as `[i]`.
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
    let below = |key: &str| {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}[{key}]")
        }
    };
    match value {
        Value::Object(map) => map.iter().for_each(|(k, v)| flatten(&below(k), v, out)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| flatten(&format!("{prefix}[{i}]"), v, out)),
        scalar => {
            out.insert(prefix.to_string(), text(scalar));
        }
    }
}

/// A list of scalars as a set: one object named `name` whose fields are the removed
/// elements (`Deleted`) and the added ones (`Added`).
fn set_diff(name: &str, old: &Value, new: &Value) -> Option<ObjectDiff> {
    let elements =
        |v: &Value| -> BTreeSet<String> { v.as_array().into_iter().flatten().map(text).collect() };
    let (old, new) = (elements(old), elements(new));
    let removed = old
        .difference(&new)
        .filter_map(|e| field(name, e.clone(), String::new()));
    let added = new
        .difference(&old)
        .filter_map(|e| field(name, String::new(), e.clone()));
    let mut fields: Vec<FieldDiff> = removed.chain(added).collect();
    fields.sort_by(|a, b| (&a.old, &a.new).cmp(&(&b.old, &b.new)));
    let has = |t: DiffType| fields.iter().any(|f| f.r#type == t);
    let r#type = match (has(DiffType::Added), has(DiffType::Deleted)) {
        (true, true) => DiffType::Edited,
        (true, false) => DiffType::Added,
        (false, true) => DiffType::Deleted,
        (false, false) => return None,
    };
    Some(ObjectDiff {
        r#type,
        name: name.to_string(),
        fields,
        objects: Vec::new(),
    })
}

/// A list of blocks, one object per changed element named `name`: matched by `Name` (or
/// `Label`) when every element on both sides has a distinct one, otherwise as a set.
fn list_diffs(name: &str, old: &Value, new: &Value) -> Vec<ObjectDiff> {
    let items = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let (old, new) = (items(old), items(new));
    if let (Some(old_keys), Some(new_keys)) = (element_keys(&old), element_keys(&new)) {
        let removed_or_edited = old.iter().zip(&old_keys).filter_map(|(o, key)| {
            let n = new_keys.iter().position(|k| k == key).map(|i| &new[i]);
            object_diff(name, o, n.unwrap_or(&NULL))
        });
        let added = new
            .iter()
            .zip(&new_keys)
            .filter(|(_, key)| !old_keys.contains(key));
        let added = added.filter_map(|(n, _)| object_diff(name, &NULL, n));
        return removed_or_edited.chain(added).collect();
    }
    let removed = old.iter().filter(|o| !new.contains(o));
    let added = new.iter().filter(|n| !old.contains(n));
    removed
        .filter_map(|o| object_diff(name, o, &NULL))
        .chain(added.filter_map(|n| object_diff(name, &NULL, n)))
        .collect()
}

/// Each element's `Name` (or `Label`) when every element has a distinct, non-empty one.
fn element_keys(items: &[Value]) -> Option<Vec<String>> {
    let keys: Vec<String> = items
        .iter()
        .map(|item| {
            let key = item.get("Name").or_else(|| item.get("Label"));
            key.and_then(Value::as_str)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
        })
        .collect::<Option<_>>()?;
    let distinct: BTreeSet<&String> = keys.iter().collect();
    (distinct.len() == keys.len()).then_some(keys)
}

#[cfg(test)]
mod tests;
