//! Templates as Nomad users write them in job files, rendered end to end.

use std::collections::BTreeSet;

use nomos_template::{Options, Sources, Template, Value};

struct Cluster;

impl Sources for Cluster {
    fn call(&self, name: &str, args: &[Value]) -> Result<Value, String> {
        let instance = |address: &str, port: i64, tags: &[&str]| {
            Value::map([
                ("Address", Value::from(address)),
                ("Port", Value::Int(port)),
                (
                    "Tags",
                    Value::list(tags.iter().map(|t| Value::from(*t)).collect()),
                ),
            ])
        };
        match (name, args) {
            ("env", [Value::String(key)]) if key == "NOMAD_ALLOC_INDEX" => Ok(Value::from("2")),
            ("env", [_]) => Ok(Value::from("")),
            ("nomadService", [Value::String(service)]) if service == "api" => {
                Ok(Value::list(vec![
                    instance("10.0.0.1", 8080, &["v1", "canary"]),
                    instance("10.0.0.2", 8081, &["v1"]),
                ]))
            }
            ("nomadService", [_]) => Ok(Value::list(Vec::new())),
            ("nomadVar", [Value::String(path)]) if path == "nomad/jobs/web" => {
                Ok(Value::map([("db_password", Value::from("hunter2"))]))
            }
            _ => Err(format!("no data for {name}")),
        }
    }
}

fn render(text: &str) -> String {
    let opts = Options {
        external_functions: ["env", "nomadService", "nomadVar"]
            .into_iter()
            .map(String::from)
            .collect::<BTreeSet<_>>(),
        ..Options::default()
    };
    let template = Template::parse("local/out", text, &opts).expect("parses");
    template.render(&Value::Null, &Cluster).expect("renders")
}

#[test]
fn an_nginx_upstream_lists_service_instances() {
    let text = r#"upstream backend {
{{- range nomadService "api" }}
  server {{ .Address }}:{{ .Port }};{{ if .Tags | contains "canary" }} # canary{{ end }}
{{- else }}
  server 127.0.0.1:65535; # force a 502
{{- end }}
}
"#;
    assert_eq!(
        render(text),
        "upstream backend {\n  server 10.0.0.1:8080; # canary\n  server 10.0.0.2:8081;\n}\n"
    );
    let empty = text.replace("\"api\"", "\"none\"");
    assert_eq!(
        render(&empty),
        "upstream backend {\n  server 127.0.0.1:65535; # force a 502\n}\n"
    );
}

#[test]
fn an_env_file_reads_variables_and_the_environment() {
    let text = r#"{{ with nomadVar "nomad/jobs/web" -}}
DB_PASSWORD={{ .db_password | toJSON }}
{{ end -}}
INDEX={{ env "NOMAD_ALLOC_INDEX" | parseInt | add 1 }}
REGION={{ or (env "REGION") "global" }}
"#;
    assert_eq!(
        render(text),
        "DB_PASSWORD=\"hunter2\"\nINDEX=3\nREGION=global\n"
    );
}

#[test]
fn a_config_file_uses_definitions_and_formatting() {
    let text = r#"{{ define "peer" }}{{ printf "%-10s" .Address }}port={{ .Port }}{{ end -}}
# generated {{ timestamp "2006" | len }} digits
{{ range $i, $s := nomadService "api" -}}
peer.{{ $i }} = {{ template "peer" $s }}
{{ end -}}
total = {{ len (nomadService "api") }}"#;
    assert_eq!(
        render(text),
        "# generated 4 digits\npeer.0 = 10.0.0.1  port=8080\npeer.1 = 10.0.0.2  port=8081\ntotal = 2"
    );
}

#[test]
fn services_group_by_tag() {
    let text = r#"{{ range $tag, $s := nomadService "api" | byTag }}{{ $tag }}={{ range $s }}{{ .Port }} {{ end }}{{ end }}"#;
    assert_eq!(render(text), "canary=8080 v1=8080 8081 ");
}
