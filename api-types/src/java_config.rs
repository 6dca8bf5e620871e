//! A `java` task's `config` block (Nomad's java driver settings), read strictly: known keys
//! only, strings and lists of strings, exactly one of `jar_path` and `class`. Job validation
//! refuses a config this rejects, and the agent's java driver reads its config with it.

use indexmap::IndexMap;

use crate::job::Value;

/// A java task's `config` block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JavaConfig {
    /// The jar to run with `-jar`, relative to the task directory (or under the allocation
    /// directory, as `${NOMAD_TASK_DIR}/app.jar` gives).
    pub jar_path: Option<String>,
    /// The main class to run instead of a jar.
    pub class: Option<String>,
    /// `-cp`, passed as written.
    pub class_path: Option<String>,
    pub jvm_options: Vec<String>,
    pub args: Vec<String>,
}

/// Settings of Nomad's java driver that Nomos does not offer (its isolation is exec's).
const UNSUPPORTED_KEYS: &[&str] = &["pid_mode", "ipc_mode", "cap_add", "cap_drop", "work_dir"];

/// Reads a java task's config: known keys only, strings and lists of strings, and exactly one
/// of `jar_path` and `class`.
pub fn parse_java_config(config: &IndexMap<String, Value>) -> Result<JavaConfig, String> {
    let mut out = JavaConfig::default();
    for (key, value) in config {
        match key.as_str() {
            "jar_path" => out.jar_path = Some(string_setting(key, value)?),
            "class" => out.class = Some(string_setting(key, value)?),
            "class_path" => out.class_path = Some(string_setting(key, value)?),
            "jvm_options" => out.jvm_options = list_setting(key, value)?,
            "args" => out.args = list_setting(key, value)?,
            k if UNSUPPORTED_KEYS.contains(&k) => {
                return Err(format!(
                    "config.{k} is a setting of Nomad's java driver that Nomos does not support \
                     (java tasks are isolated as exec tasks are)"
                ))
            }
            k => {
                return Err(format!(
                    "unknown key config.{k} (the java driver takes jar_path, class, class_path, \
                     jvm_options and args)"
                ))
            }
        }
    }
    match (&out.jar_path, &out.class) {
        (None, None) => Err("config needs jar_path or class".into()),
        (Some(_), Some(_)) => Err("set only one of config.jar_path and config.class (a jar's \
                                   main class comes from its manifest)"
            .into()),
        _ => Ok(out),
    }
}

fn string_setting(key: &str, value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
        Value::String(_) => Err(format!("config.{key} is empty")),
        other => Err(format!(
            "config.{key} must be a string, found {}",
            kind_of(other)
        )),
    }
}

fn list_setting(key: &str, value: &Value) -> Result<Vec<String>, String> {
    let not_list = |found: &Value| {
        format!(
            "config.{key} must be a list of strings, found {}",
            kind_of(found)
        )
    };
    let Value::Array(items) = value else {
        return Err(not_list(value));
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(s) => Ok(s.clone()),
            other => Err(not_list(other)),
        })
        .collect()
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a block",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(value: serde_json::Value) -> IndexMap<String, Value> {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn configs_are_read_strictly_with_errors_naming_the_key() {
        // (config, Ok(jar, class, class_path, options, args) or Err(part of the message))
        type Want = Result<(Option<&'static str>, Option<&'static str>), &'static str>;
        let cases: Vec<(serde_json::Value, Want)> = vec![
            (
                json!({"jar_path": "local/app.jar"}),
                Ok((Some("local/app.jar"), None)),
            ),
            (
                json!({"class": "Hello", "class_path": "local", "jvm_options": ["-Xms8m"], "args": ["a"]}),
                Ok((None, Some("Hello"))),
            ),
            (json!({}), Err("needs jar_path or class")),
            (
                json!({"jvm_options": ["-Xms8m"]}),
                Err("needs jar_path or class"),
            ),
            (
                json!({"jar_path": "a.jar", "class": "Hello"}),
                Err("only one of"),
            ),
            (
                json!({"jar_path": 3}),
                Err("config.jar_path must be a string, found a number"),
            ),
            (json!({"jar_path": " "}), Err("config.jar_path is empty")),
            (
                json!({"class": ["Hello"]}),
                Err("config.class must be a string, found a list"),
            ),
            (
                json!({"class": "H", "args": "one"}),
                Err("config.args must be a list of strings, found a string"),
            ),
            (
                json!({"class": "H", "jvm_options": [1]}),
                Err("config.jvm_options must be a list of strings, found a number"),
            ),
            (
                json!({"class": "H", "command": "/bin/sh"}),
                Err("unknown key config.command"),
            ),
            (
                json!({"class": "H", "cap_add": ["net_raw"]}),
                Err("config.cap_add is a setting of Nomad's java driver"),
            ),
        ];
        for (input, want) in cases {
            let got = parse_java_config(&config(input.clone()));
            match (got, want) {
                (Ok(c), Ok((jar, class))) => {
                    assert_eq!(c.jar_path.as_deref(), jar, "{input}");
                    assert_eq!(c.class.as_deref(), class, "{input}");
                }
                (Err(e), Err(part)) => assert!(e.contains(part), "{input}: {e}"),
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }
}
