//! Nomad's job diff, built from Nomos's field-by-field changes ([`crate::diff`]): `{Type, ID,
//! Fields, Objects, TaskGroups: [{Type, Name, Fields, Objects, Tasks: [{Type, Name, Fields,
//! Objects, Annotations}], Updates}]}`. A change under `groups[g]` goes to that group, one
//! under `groups[g].tasks[t]` to that task; the rest are the job's fields. A field's `Name` is
//! its path below the object it belongs to (`count`, `config.args[0]`, `resources.cpu`), its
//! `Old` and `New` the values as text. Nested blocks stay fields with dotted names rather than
//! Nomad's `Objects`, which are always `null`.

use indexmap::IndexMap;
use serde_json::{json, Value};

use crate::diff::{Change, ChangeKind};

/// Nomad's diff type of one change.
fn kind_word(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Added => "Added",
        ChangeKind::Removed => "Deleted",
        ChangeKind::Changed => "Edited",
    }
}

fn text(v: &Option<Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// Splits `groups[name]` or `groups[name].rest` (with `segment` = `groups`) into the name and
/// the rest (empty for the element itself).
fn split_element<'a>(path: &'a str, segment: &str) -> Option<(&'a str, &'a str)> {
    let inner = path.strip_prefix(segment)?.strip_prefix('[')?;
    let (name, rest) = inner.split_once(']')?;
    Some((name, rest.strip_prefix('.').unwrap_or(rest)))
}

/// The changes of one object: its own type (when the object itself was added or removed) and
/// its fields.
#[derive(Default)]
struct Node {
    whole: Option<ChangeKind>,
    fields: Vec<Value>,
}

impl Node {
    fn add(&mut self, rest: &str, c: &Change) {
        if rest.is_empty() {
            self.whole = Some(c.kind);
            return;
        }
        self.fields.push(json!({
            "Type": kind_word(c.kind),
            "Name": rest,
            "Old": text(&c.old),
            "New": text(&c.new),
            "Annotations": null,
        }));
    }

    fn kind(&self, children_changed: bool) -> &'static str {
        match self.whole {
            Some(kind) => kind_word(kind),
            None if !self.fields.is_empty() || children_changed => "Edited",
            None => "None",
        }
    }

    fn fields(&self) -> Value {
        if self.fields.is_empty() {
            Value::Null
        } else {
            Value::Array(self.fields.clone())
        }
    }
}

#[derive(Default)]
struct Group {
    own: Node,
    tasks: IndexMap<String, Node>,
}

/// The diff of job `id` from its changes; `updates` holds each group's planned updates
/// (`{"create": 2, "in-place update": 1}`), written as its `Updates`.
pub fn job_diff(
    id: &str,
    changes: &[Change],
    updates: &IndexMap<String, IndexMap<String, u64>>,
) -> Value {
    let mut job = Node::default();
    let mut groups: IndexMap<String, Group> = IndexMap::new();
    for c in changes {
        if c.path == "job" {
            job.whole = Some(c.kind);
            continue;
        }
        let Some((group, rest)) = split_element(&c.path, "groups") else {
            job.add(&c.path, c);
            continue;
        };
        let g = groups.entry(group.to_string()).or_default();
        match split_element(rest, "tasks") {
            Some((task, task_rest)) => g
                .tasks
                .entry(task.to_string())
                .or_default()
                .add(task_rest, c),
            None => g.own.add(rest, c),
        }
    }
    for name in updates.keys() {
        groups.entry(name.clone()).or_default();
    }
    let task_groups: Vec<Value> = groups
        .iter()
        .map(|(name, g)| group_diff(name, g, updates.get(name)))
        .collect();
    let any_group = task_groups.iter().any(|g| g["Type"] != "None");
    json!({
        "Type": job.kind(any_group),
        "ID": id,
        "Fields": job.fields(),
        "Objects": null,
        "TaskGroups": if task_groups.is_empty() { Value::Null } else { Value::Array(task_groups) },
    })
}

fn group_diff(name: &str, g: &Group, updates: Option<&IndexMap<String, u64>>) -> Value {
    let tasks: Vec<Value> = g
        .tasks
        .iter()
        .map(|(task, node)| {
            json!({
                "Type": node.kind(false),
                "Name": task,
                "Fields": node.fields(),
                "Objects": null,
                "Annotations": null,
            })
        })
        .collect();
    json!({
        "Type": g.own.kind(!tasks.is_empty()),
        "Name": name,
        "Fields": g.own.fields(),
        "Objects": null,
        "Tasks": if tasks.is_empty() { Value::Null } else { Value::Array(tasks) },
        "Updates": updates.filter(|u| !u.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(path: &str, kind: ChangeKind, old: Option<Value>, new: Option<Value>) -> Change {
        Change {
            path: path.into(),
            kind,
            old,
            new,
        }
    }

    #[test]
    fn changes_land_on_the_job_its_groups_and_their_tasks() {
        use ChangeKind::*;
        let changes = vec![
            change("priority", Changed, Some(json!(50)), Some(json!(70))),
            change("groups[web].count", Changed, Some(json!(2)), Some(json!(3))),
            change(
                "groups[web].tasks[server].config.args[0]",
                Changed,
                Some(json!("1000")),
                Some(json!("2000")),
            ),
            change("groups[db]", Added, None, Some(json!({"name": "db"}))),
            change("groups[old]", Removed, Some(json!({"name": "old"})), None),
        ];
        let mut updates = IndexMap::new();
        updates.insert(
            "web".to_string(),
            IndexMap::from([("create".to_string(), 1u64)]),
        );
        let d = job_diff("shop", &changes, &updates);
        assert_eq!(d["Type"], "Edited");
        assert_eq!(d["ID"], "shop");
        assert_eq!(d["Fields"][0]["Name"], "priority");
        assert_eq!(
            (&d["Fields"][0]["Old"], &d["Fields"][0]["New"]),
            (&json!("50"), &json!("70"))
        );
        let groups = d["TaskGroups"].as_array().unwrap();
        let names: Vec<(&str, &str)> = groups
            .iter()
            .map(|g| (g["Name"].as_str().unwrap(), g["Type"].as_str().unwrap()))
            .collect();
        assert_eq!(
            names,
            [("web", "Edited"), ("db", "Added"), ("old", "Deleted")]
        );
        assert_eq!(groups[0]["Fields"][0]["Name"], "count");
        assert_eq!(groups[0]["Tasks"][0]["Name"], "server");
        assert_eq!(groups[0]["Tasks"][0]["Type"], "Edited");
        assert_eq!(groups[0]["Tasks"][0]["Fields"][0]["Name"], "config.args[0]");
        assert_eq!(groups[0]["Updates"]["create"], 1);
        assert!(groups[1]["Fields"].is_null() && groups[1]["Updates"].is_null());
    }

    #[test]
    fn a_new_job_is_added_and_an_unchanged_one_is_none() {
        let added = vec![change("job", ChangeKind::Added, None, Some(json!("web")))];
        let mut updates = IndexMap::new();
        updates.insert(
            "g".to_string(),
            IndexMap::from([("create".to_string(), 2u64)]),
        );
        let d = job_diff("web", &added, &updates);
        assert_eq!(d["Type"], "Added");
        assert_eq!(d["TaskGroups"][0]["Type"], "None");
        assert_eq!(d["TaskGroups"][0]["Updates"]["create"], 2);

        let d = job_diff("web", &[], &IndexMap::new());
        assert_eq!(d["Type"], "None");
        assert!(d["Fields"].is_null() && d["TaskGroups"].is_null());
    }

    #[test]
    fn a_task_only_change_marks_its_group_edited() {
        let changes = vec![change(
            "groups[g].tasks[t].env.MODE",
            ChangeKind::Added,
            None,
            Some(json!("fast")),
        )];
        let d = job_diff("web", &changes, &IndexMap::new());
        assert_eq!(d["Type"], "Edited");
        assert_eq!(d["TaskGroups"][0]["Type"], "Edited");
        assert!(d["TaskGroups"][0]["Fields"].is_null());
        assert_eq!(d["TaskGroups"][0]["Tasks"][0]["Fields"][0]["Type"], "Added");
        assert_eq!(d["TaskGroups"][0]["Tasks"][0]["Fields"][0]["New"], "fast");
    }
}
