//! Go text/template syntax: text, actions, trimming, comments, delimiters,
//! pipelines, variables, control structures and template definitions.

mod common;

use common::{check_table, options, render_with};
use nomos_template::Options;

const DATA: &str = r#"{
    "Name": "web",
    "Count": 3,
    "Ratio": 0.5,
    "Empty": "",
    "Zero": 0,
    "Null": null,
    "Flag": true,
    "Tags": ["a", "b", "c"],
    "NoTags": [],
    "Meta": {"zone": "eu", "owner": "ops"},
    "Nested": {"inner": {"deep": "bottom"}},
    "Ports": [{"Label": "http", "Value": 80}, {"Label": "db", "Value": 5432}]
}"#;

#[test]
fn text_and_simple_actions_render_like_go() {
    check_table(&[
        ("plain text", DATA, "plain text"),
        ("", DATA, ""),
        ("{{ .Name }}", DATA, "web"),
        ("{{.Name}}-{{.Count}}", DATA, "web-3"),
        ("{{ .Ratio }} {{ .Flag }} {{ .Zero }}", DATA, "0.5 true 0"),
        ("{{ .Tags }}", DATA, "[a b c]"),
        ("{{ .Meta }}", DATA, "map[owner:ops zone:eu]"),
        ("{{ .Nested.inner.deep }}", DATA, "bottom"),
        ("{{ .Missing }}", DATA, "<no value>"),
        ("{{ .Missing.deeper }}", DATA, "<no value>"),
        ("{{ .Null }}", DATA, "<no value>"),
        ("{{ . }}", r#""just a string""#, "just a string"),
        ("{{ $ }}", "7", "7"),
        (
            "{{ 42 }} {{ -7 }} {{ 0x1F }} {{ 0o17 }} {{ 017 }} {{ 0b101 }} {{ 1_000 }}",
            DATA,
            "42 -7 31 15 15 5 1000",
        ),
        (
            "{{ 1.5 }} {{ 1e3 }} {{ .5 }} {{ 1e6 }}",
            DATA,
            "1.5 1000 0.5 1e+06",
        ),
        ("{{ 'a' }} {{ '\\n' }}", DATA, "97 10"),
        (r#"{{ "dq\t\"x\"" }}"#, DATA, "dq\t\"x\""),
        ("{{ `raw \\n {{ }}` }}", DATA, "raw \\n {{ }}"),
        ("{{ true }} {{ false }}", DATA, "true false"),
        ("{{ print nil }}", DATA, "<nil>"),
        ("multi\n{{\n  .Name\n}}\nline", DATA, "multi\nweb\nline"),
        ("{{ \"é✓\" }}", DATA, "é✓"),
        ("{{ \"}}\" }}{{ print \"{{\" }}", DATA, "}}{{"),
        ("{{ 1. }} {{ +2 }}", DATA, "1 2"),
        ("a }} b", DATA, "a }} b"),
    ]);
}

#[test]
fn trim_markers_and_comments_follow_go() {
    check_table(&[
        ("a  {{- .Name -}}  b", DATA, "awebb"),
        ("a\n\n{{- .Name }}\n", DATA, "aweb\n"),
        ("{{ .Name -}}\n\t x", DATA, "webx"),
        ("a {{-3}}", DATA, "a -3"),
        ("x{{/* a comment */}}y", DATA, "xy"),
        ("x  {{- /* trimmed */ -}}  y", DATA, "xy"),
        ("{{/* multi\nline */}}z", DATA, "z"),
        ("{{- .Name -}}", DATA, "web"),
        ("{{ range .Tags -}}\n  {{ . }}\n{{- end }}", DATA, "abc"),
    ]);
}

#[test]
fn custom_delimiters_leave_braces_alone() {
    let opts = Options {
        left_delim: "[[".to_string(),
        right_delim: "]]".to_string(),
        ..options()
    };
    let got = render_with("{{ .Name }} [[ .Name ]] [[- \" x\" -]] !", DATA, &opts).unwrap();
    assert_eq!(got, "{{ .Name }} web x!");
    let opts = Options {
        left_delim: "<%".to_string(),
        right_delim: "%>".to_string(),
        ..options()
    };
    let got = render_with("<% range .Tags %><% . %>,<% end %>", DATA, &opts).unwrap();
    assert_eq!(got, "a,b,c,");
}

#[test]
fn pipelines_parentheses_and_variables_work() {
    check_table(&[
        ("{{ .Name | printf \"%s!\" }}", DATA, "web!"),
        ("{{ .Name | printf \"%s-%s\" \"x\" }}", DATA, "x-web"),
        ("{{ \"A\" | toLower | printf \"<%s>\" }}", DATA, "<a>"),
        ("{{ printf \"%d\" (len .Tags) }}", DATA, "3"),
        ("{{ (index .Ports 1).Label }}", DATA, "db"),
        ("{{ ((1)) }}", DATA, "1"),
        ("{{ $x := .Name }}{{ $x }}", DATA, "web"),
        ("{{ $x := 1 }}{{ $x = 2 }}{{ $x }}", DATA, "2"),
        ("{{ $m := .Meta }}{{ $m.zone }}", DATA, "eu"),
        (
            "{{ with .Meta }}{{ $.Name }}/{{ .zone }}{{ end }}",
            DATA,
            "web/eu",
        ),
        (
            "{{ $x := 1 }}{{ if true }}{{ $x = 5 }}{{ end }}{{ $x }}",
            DATA,
            "5",
        ),
        ("{{ if true }}{{ $y := 3 }}{{ $y }}{{ end }}", DATA, "3"),
        (
            "{{ $n := 0 }}{{ range .Tags }}{{ $n = add $n 1 }}{{ end }}{{ $n }}",
            DATA,
            "3",
        ),
        ("{{ $x := \"a\" }}{{ $x | printf \"%s%s\" $x }}", DATA, "aa"),
    ]);
}

#[test]
fn if_else_chains_use_go_truthiness() {
    check_table(&[
        ("{{ if .Flag }}yes{{ end }}", DATA, "yes"),
        ("{{ if .Empty }}yes{{ else }}no{{ end }}", DATA, "no"),
        ("{{ if .Zero }}yes{{ else }}no{{ end }}", DATA, "no"),
        ("{{ if .NoTags }}yes{{ else }}no{{ end }}", DATA, "no"),
        ("{{ if .Missing }}yes{{ else }}no{{ end }}", DATA, "no"),
        ("{{ if .Null }}yes{{ else }}no{{ end }}", DATA, "no"),
        ("{{ if .Meta }}yes{{ end }}", DATA, "yes"),
        (
            "{{ if eq .Count 1 }}one{{ else if eq .Count 3 }}three{{ else }}many{{ end }}",
            DATA,
            "three",
        ),
        (
            "{{ if false }}a{{ else if false }}b{{ else }}c{{ end }}",
            DATA,
            "c",
        ),
        ("{{ if $v := .Name }}{{ $v }}{{ end }}", DATA, "web"),
        (
            "{{ if and .Flag .Name }}{{ and .Flag .Name }}{{ end }}",
            DATA,
            "web",
        ),
        ("{{ or .Empty .Zero \"fallback\" }}", DATA, "fallback"),
        ("{{ and .Flag .Zero .Name }}", DATA, "0"),
        ("{{ or .Empty }}", DATA, ""),
        ("{{ and false (index .NoTags 5) }}", DATA, "false"),
        ("{{ or true (index .NoTags 5) }}", DATA, "true"),
        ("{{ not .Flag }} {{ not .Empty }}", DATA, "false true"),
        ("{{ .Name | and true }}", DATA, "web"),
    ]);
}

#[test]
fn with_sets_dot_and_falls_back_to_else() {
    check_table(&[
        ("{{ with .Meta }}{{ .zone }}{{ end }}", DATA, "eu"),
        ("{{ with .Missing }}x{{ else }}none{{ end }}", DATA, "none"),
        (
            "{{ with $z := .Meta.zone }}{{ $z }}{{ . }}{{ end }}",
            DATA,
            "eueu",
        ),
        (
            "{{ with .Empty }}x{{ else with .Name }}{{ . }}{{ end }}",
            DATA,
            "web",
        ),
        (
            "{{ with .Nested }}{{ with .inner }}{{ .deep }}{{ end }}{{ end }}",
            DATA,
            "bottom",
        ),
    ]);
}

#[test]
fn range_iterates_lists_maps_and_ints() {
    check_table(&[
        ("{{ range .Tags }}{{ . }};{{ end }}", DATA, "a;b;c;"),
        ("{{ range $i, $t := .Tags }}{{ $i }}={{ $t }} {{ end }}", DATA, "0=a 1=b 2=c "),
        ("{{ range $t := .Tags }}{{ $t }}{{ end }}", DATA, "abc"),
        ("{{ range $k, $v := .Meta }}{{ $k }}:{{ $v }},{{ end }}", DATA, "owner:ops,zone:eu,"),
        ("{{ range .Meta }}{{ . }},{{ end }}", DATA, "ops,eu,"),
        ("{{ range .NoTags }}x{{ else }}empty{{ end }}", DATA, "empty"),
        ("{{ range .Missing }}x{{ else }}none{{ end }}", DATA, "none"),
        ("{{ range .Ports }}{{ .Label }}:{{ .Value }} {{ end }}", DATA, "http:80 db:5432 "),
        ("{{ range 3 }}{{ . }}{{ end }}", DATA, "012"),
        ("{{ range .Tags }}{{ if eq . \"b\" }}{{ break }}{{ end }}{{ . }}{{ end }}", DATA, "a"),
        ("{{ range .Tags }}{{ if eq . \"b\" }}{{ continue }}{{ end }}{{ . }}{{ end }}", DATA, "ac"),
        ("{{ range .Tags }}{{ range $.Tags }}{{ if eq . \"b\" }}{{ break }}{{ end }}{{ . }}{{ end }}|{{ end }}", DATA, "a|a|a|"),
        ("{{ range $i, $p := .Ports }}{{ $.Name }}{{ $i }}{{ end }}", DATA, "web0web1"),
        ("{{ $last := \"\" }}{{ range .Tags }}{{ $last = . }}{{ end }}{{ $last }}", DATA, "c"),
        ("{{ range $i, $e := loop 2 }}{{ $i }}{{ $e }}{{ end }}", DATA, "0011"),
    ]);
}

#[test]
fn define_template_and_block_compose() {
    check_table(&[
        ("{{ define \"t\" }}[{{ . }}]{{ end }}{{ template \"t\" .Name }}", DATA, "[web]"),
        ("{{ template \"t\" }}{{ define \"t\" }}no dot: {{ . }}{{ end }}", DATA, "no dot: <no value>"),
        ("{{ define \"item\" }}{{ .Label }}={{ .Value }}{{ end }}{{ range .Ports }}{{ template \"item\" . }};{{ end }}", DATA, "http=80;db=5432;"),
        ("{{ block \"b\" .Meta }}zone {{ .zone }}{{ end }}!", DATA, "zone eu!"),
        ("{{ define \"a\" }}{{ template \"b\" . }}{{ end }}{{ define \"b\" }}B{{ . }}{{ end }}{{ template \"a\" 1 }}", DATA, "B1"),
        ("{{ define \"root\" }}{{ $.Name }}{{ end }}{{ template \"root\" . }}", DATA, "web"),
        ("{{ define \"count\" }}{{ if gt . 0 }}{{ . }}{{ template \"count\" subtract 1 . }}{{ end }}{{ end }}{{ template \"count\" 3 }}", DATA, "321"),
    ]);
}

#[test]
fn external_functions_are_called_with_their_arguments() {
    check_table(&[
        ("{{ env \"NOMAD_ALLOC_ID\" }}", DATA, "a1b2"),
        (
            "{{ with nomadVar \"nomad/jobs/web\" }}{{ .user }}:{{ .pass }}{{ end }}",
            DATA,
            "admin:s3cret",
        ),
        (
            "{{ range $k, $v := nomadVar \"nomad/jobs/web\" }}{{ $k }} {{ end }}",
            DATA,
            "pass user ",
        ),
        ("{{ \"NOMAD_ALLOC_ID\" | env | toUpper }}", DATA, "A1B2"),
    ]);
}
