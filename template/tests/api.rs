//! The surface the agent and `nctl validate` use: options, external functions,
//! `functions_used`, values and the clock.

mod common;

use std::collections::BTreeSet;

use common::{data, options, FakeSources};
use nomos_template::{builtin_names, NoSources, Options, Template, TemplateError, Value};

#[test]
fn functions_used_lists_only_the_external_functions_called() {
    let text = r#"{{ env "A" }}{{ with nomadVar "x" }}{{ .k | toUpper }}{{ end }}{{ define "t" }}{{ env "B" }}{{ end }}"#;
    let template = Template::parse("t.tpl", text, &options()).unwrap();
    let used: BTreeSet<String> = ["env", "nomadVar"].into_iter().map(String::from).collect();
    assert_eq!(template.functions_used(), used);
    let plain = Template::parse("p.tpl", "{{ .x | toUpper }}", &options()).unwrap();
    assert!(plain.functions_used().is_empty());
}

#[test]
fn external_names_are_unknown_unless_the_caller_declares_them() {
    let err = Template::parse("t.tpl", "{{ env \"HOME\" }}", &Options::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "template: t.tpl:1:4: function \"env\" not defined"
    );
}

#[test]
fn a_declared_external_name_takes_precedence_over_a_built_in() {
    struct Upper;
    impl nomos_template::Sources for Upper {
        fn call(&self, name: &str, args: &[Value]) -> Result<Value, String> {
            Ok(Value::from(format!("{name}:{}", args.len())))
        }
    }
    let opts = Options {
        external_functions: BTreeSet::from(["toUpper".to_string()]),
        ..Options::default()
    };
    let template = Template::parse("t", "{{ \"a\" | toUpper }}", &opts).unwrap();
    assert_eq!(template.render(&Value::Null, &Upper).unwrap(), "toUpper:1");
    assert_eq!(
        template.functions_used(),
        BTreeSet::from(["toUpper".to_string()])
    );
}

#[test]
fn no_sources_fails_every_external_call() {
    let template = Template::parse("t", "{{ env \"A\" }}", &options()).unwrap();
    let err = template.render(&Value::Null, &NoSources).unwrap_err();
    assert!(
        matches!(err, TemplateError::Source { ref function, .. } if function == "env"),
        "{err}"
    );
}

#[test]
fn default_options_use_go_delimiters_and_tolerate_missing_keys() {
    let opts = Options::default();
    assert_eq!(
        (opts.left_delim.as_str(), opts.right_delim.as_str()),
        ("{{", "}}")
    );
    assert!(!opts.missing_key_error);
    let template = Template::parse("t", "{{ .nope }}", &opts).unwrap();
    assert_eq!(
        template.render(&data("{}"), &NoSources).unwrap(),
        "<no value>"
    );
    assert_eq!(template.name(), "t");
}

#[test]
fn empty_delimiters_are_refused() {
    let opts = Options {
        right_delim: String::new(),
        ..Options::default()
    };
    assert!(matches!(
        Template::parse("t", "x", &opts),
        Err(TemplateError::Parse { .. })
    ));
}

#[test]
fn a_template_renders_repeatedly_with_different_data() {
    let template = Template::parse("t", "{{ range . }}{{ . }},{{ end }}", &options()).unwrap();
    assert_eq!(
        template.render(&data("[1,2]"), &FakeSources).unwrap(),
        "1,2,"
    );
    assert_eq!(
        template
            .render(&data(r#"{"b":2,"a":1}"#), &FakeSources)
            .unwrap(),
        "1,2,"
    );
}

#[test]
fn render_reads_the_real_clock() {
    let template = Template::parse("t", "{{ timestamp \"2006\" }}", &options()).unwrap();
    let year: i32 = template
        .render(&Value::Null, &NoSources)
        .unwrap()
        .parse()
        .unwrap();
    assert!(year >= 2024);
}

#[test]
fn every_function_the_brief_names_is_built_in() {
    let names: BTreeSet<&str> = builtin_names().collect();
    let wanted = "and or not len index slice print printf println eq ne lt le gt ge html js urlquery \
        toLower toUpper toTitle trimSpace split join replaceAll contains containsAll containsAny \
        containsNone containsNotAll in regexMatch regexReplaceAll base64Encode base64Decode \
        base64URLEncode base64URLDecode toJSON toJSONPretty parseJSON parseInt parseUint parseFloat \
        parseBool add subtract multiply divide modulo minimum maximum indent sha256Hex timestamp \
        toYAML trim trimPrefix trimSuffix loop";
    for name in wanted.split_whitespace() {
        assert!(names.contains(name), "{name} is missing");
    }
}

#[test]
fn values_convert_to_and_from_json() {
    let json: serde_json::Value =
        serde_json::from_str(r#"{"z":1,"a":[true,null,2.5,"s",{"k":[]}]}"#).unwrap();
    let value = Value::from(json.clone());
    let Value::Map(map) = &value else {
        panic!("not a map")
    };
    assert_eq!(map.keys().collect::<Vec<_>>(), ["z", "a"], "order is kept");
    assert_eq!(serde_json::Value::from(value), json);
    assert_eq!(
        serde_json::Value::from(Value::Float(f64::NAN)),
        serde_json::Value::Null
    );
}

#[test]
fn templates_values_and_errors_can_cross_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Template>();
    assert_send_sync::<Value>();
    assert_send_sync::<TemplateError>();
}
