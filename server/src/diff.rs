//! The pure diff of two jobs, field by field, over their canonical JSON. Array elements that
//! carry a `name` or `label` are matched by it (`groups[web].count`), others by position.
//! `apply` reports it as "what changed" and `plan` shows it before anything is written.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How one field differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

/// One differing field: its path and both values (`{Path, Kind, Old, New}` in the API's
/// answers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Change {
    pub path: String,
    pub kind: ChangeKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<Value>| v.as_ref().map(short).unwrap_or_default();
        match self.kind {
            ChangeKind::Added => write!(f, "+ {}: {}", self.path, show(&self.new)),
            ChangeKind::Removed => write!(f, "- {}: {}", self.path, show(&self.old)),
            ChangeKind::Changed => {
                write!(
                    f,
                    "~ {}: {} => {}",
                    self.path,
                    show(&self.old),
                    show(&self.new)
                )
            }
        }
    }
}

/// A value shortened for one line of output.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        let cut: String = s.chars().take(57).collect();
        format!("{cut}...")
    } else {
        s
    }
}

/// Every difference between `old` and `new`, in document order. `old = None` (a new job) is a
/// single `Added` change at the root.
pub fn diff_jobs(old: Option<&Value>, new: &Value) -> Vec<Change> {
    match old {
        None => vec![Change {
            path: "job".into(),
            kind: ChangeKind::Added,
            old: None,
            new: Some(new.get("id").cloned().unwrap_or(Value::Null)),
        }],
        Some(old) => {
            let mut out = Vec::new();
            diff_values("", old, new, &mut out);
            out
        }
    }
}

/// Appends the differences between two JSON values found under `path`.
pub fn diff_values(path: &str, old: &Value, new: &Value, out: &mut Vec<Change>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                let p = join(path, k);
                match b.get(k) {
                    Some(vb) => diff_values(&p, va, vb, out),
                    None => out.push(removed(p, va)),
                }
            }
            for (k, vb) in b {
                if !a.contains_key(k) {
                    out.push(added(join(path, k), vb));
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if keyed(a) && keyed(b) => {
            for va in a {
                let key = element_key(va).unwrap_or_default();
                let p = format!("{path}[{key}]");
                match b.iter().find(|vb| element_key(vb) == Some(key.clone())) {
                    Some(vb) => diff_values(&p, va, vb, out),
                    None => out.push(removed(p, va)),
                }
            }
            for vb in b {
                let key = element_key(vb).unwrap_or_default();
                if !a.iter().any(|va| element_key(va) == Some(key.clone())) {
                    out.push(added(format!("{path}[{key}]"), vb));
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                let p = format!("{path}[{i}]");
                match (a.get(i), b.get(i)) {
                    (Some(va), Some(vb)) => diff_values(&p, va, vb, out),
                    (Some(va), None) => out.push(removed(p, va)),
                    (None, Some(vb)) => out.push(added(p, vb)),
                    (None, None) => {}
                }
            }
        }
        _ if old == new => {}
        _ => out.push(Change {
            path: path.to_string(),
            kind: ChangeKind::Changed,
            old: Some(old.clone()),
            new: Some(new.clone()),
        }),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn added(path: String, v: &Value) -> Change {
    Change {
        path,
        kind: ChangeKind::Added,
        old: None,
        new: Some(v.clone()),
    }
}

fn removed(path: String, v: &Value) -> Change {
    Change {
        path,
        kind: ChangeKind::Removed,
        old: Some(v.clone()),
        new: None,
    }
}

/// The `name` (or `label`) of an array element, if it is an object that has one.
fn element_key(v: &Value) -> Option<String> {
    let obj = v.as_object()?;
    obj.get("name")
        .or_else(|| obj.get("label"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Whether every element has a distinct name, so elements can be matched by it.
fn keyed(items: &[Value]) -> bool {
    let keys: Vec<String> = items.iter().filter_map(element_key).collect();
    if keys.len() != items.len() || items.is_empty() {
        return false;
    }
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    sorted.len() == keys.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn diff_table() {
        struct Case {
            name: &'static str,
            old: Value,
            new: Value,
            want: Vec<&'static str>,
        }
        let cases = vec![
            Case {
                name: "equal",
                old: json!({"a": 1}),
                new: json!({"a": 1}),
                want: vec![],
            },
            Case {
                name: "scalar change",
                old: json!({"a": 1}),
                new: json!({"a": 2}),
                want: vec!["~ a: 1 => 2"],
            },
            Case {
                name: "added and removed keys",
                old: json!({"a": 1}),
                new: json!({"b": true}),
                want: vec!["- a: 1", "+ b: true"],
            },
            Case {
                name: "named elements match by name",
                old: json!({"groups": [{"name": "web", "count": 1}, {"name": "db", "count": 1}]}),
                new: json!({"groups": [{"name": "db", "count": 1}, {"name": "web", "count": 3}]}),
                want: vec!["~ groups[web].count: 1 => 3"],
            },
            Case {
                name: "named element added",
                old: json!({"groups": [{"name": "web"}]}),
                new: json!({"groups": [{"name": "web"}, {"name": "api"}]}),
                want: vec![r#"+ groups[api]: {"name":"api"}"#],
            },
            Case {
                name: "plain arrays by position",
                old: json!({"dcs": ["a", "b"]}),
                new: json!({"dcs": ["a"]}),
                want: vec![r#"- dcs[1]: "b""#],
            },
            Case {
                name: "nested task config",
                old: json!({"groups": [{"name": "g", "tasks": [{"name": "t", "config": {"args": ["1"]}}]}]}),
                new: json!({"groups": [{"name": "g", "tasks": [{"name": "t", "config": {"args": ["2"]}}]}]}),
                want: vec![r#"~ groups[g].tasks[t].config.args[0]: "1" => "2""#],
            },
        ];
        for c in cases {
            let got: Vec<String> = diff_jobs(Some(&c.old), &c.new)
                .iter()
                .map(|ch| ch.to_string())
                .collect();
            assert_eq!(got, c.want, "case {}", c.name);
        }
    }

    #[test]
    fn a_new_job_is_one_added_change() {
        let changes = diff_jobs(None, &json!({"id": "web"}));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].to_string(), r#"+ job: "web""#);
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (0i64..5).prop_map(|n| json!(n)),
            "[ab]{0,2}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-c]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn diff_is_empty_exactly_when_values_are_equal(a in arb_json(), b in arb_json()) {
            let mut out = Vec::new();
            diff_values("", &a, &b, &mut out);
            prop_assert_eq!(out.is_empty(), a == b);
        }

        #[test]
        fn a_value_never_differs_from_itself(a in arb_json()) {
            let mut out = Vec::new();
            diff_values("", &a, &a, &mut out);
            prop_assert!(out.is_empty());
        }
    }
}
