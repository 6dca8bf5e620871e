//! Failures carry `template: NAME:LINE:COL: message`, at the offending action,
//! both when parsing (syntax, unknown names) and when rendering.

mod common;

use common::{check_errors, data, options, render_with, FakeSources};
use nomos_template::{Options, Template, TemplateError};

const DATA: &str = r#"{"Name": "web", "Tags": ["a", "b"], "Meta": {"zone": "eu"}}"#;

#[test]
fn a_misspelt_function_is_a_parse_error_at_its_position() {
    let text = "[db]\nuser = admin\npassword= {{ nomadvar \"x\" }}\n";
    let err = Template::parse("web.tpl", text, &options()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "template: web.tpl:3:14: function \"nomadvar\" not defined"
    );
    assert_eq!(err.position(), Some((3, 14)));
    assert!(
        matches!(err, TemplateError::UnknownFunction { ref function, .. } if function == "nomadvar")
    );
}

#[test]
fn parse_errors_name_the_exact_position() {
    check_errors(&[
        ("{{ nomadvar \"x\" }}", DATA, "template: test.tpl:1:4: function \"nomadvar\" not defined"),
        ("é {{ nope }}", DATA, "template: test.tpl:1:6: function \"nope\" not defined"),
        ("{{ $x }}", DATA, "template: test.tpl:1:4: undefined variable \"$x\""),
        ("{{ $y = 1 }}", DATA, "template: test.tpl:1:4: undefined variable \"$y\""),
        ("{{ if true }}{{ $z := 1 }}{{ end }}{{ $z }}", DATA, "template: test.tpl:1:39: undefined variable \"$z\""),
        ("a {{ .Name", DATA, "template: test.tpl:1:3: unclosed action"),
        ("{{/* x", DATA, "template: test.tpl:1:1: unclosed comment"),
        ("{{/* x */ .Name }}", DATA, "template: test.tpl:1:1: comment ends before closing delimiter"),
        ("x\n{{ if .Name }}", DATA, "template: test.tpl:2:4: unexpected EOF: {{if}} has no {{end}}"),
        ("{{ range .Tags }}{{ else }}", DATA, "template: test.tpl:1:21: unexpected EOF: {{range}} has no {{end}}"),
        ("{{ end }}", DATA, "template: test.tpl:1:4: unexpected {{end}}"),
        ("{{ else }}", DATA, "template: test.tpl:1:4: unexpected {{else}}"),
        ("{{ break }}", DATA, "template: test.tpl:1:4: {{break}} outside {{range}}"),
        ("{{ if true }}{{ continue }}{{ end }}", DATA, "template: test.tpl:1:17: {{continue}} outside {{range}}"),
        ("{{ template \"nope\" }}", DATA, "template: test.tpl:1:4: no such template \"nope\""),
        ("{{ ( 1 }}", DATA, "template: test.tpl:1:8: unclosed left paren"),
        ("{{ 1) }}", DATA, "template: test.tpl:1:5: unexpected right paren"),
        ("{{ }}", DATA, "template: test.tpl:1:4: missing value for command"),
        ("{{ \"abc }}", DATA, "template: test.tpl:1:4: unterminated quoted string"),
        ("{{ `abc }}", DATA, "template: test.tpl:1:4: unterminated raw quoted string"),
        ("{{ 12ab }}", DATA, "template: test.tpl:1:4: bad number syntax: \"12ab\""),
        ("{{ 99999999999999999999 }}", DATA, "template: test.tpl:1:4: bad number syntax or integer overflow: \"99999999999999999999\""),
        ("{{ # }}", DATA, "template: test.tpl:1:4: unrecognized character in action: '#'"),
        ("{{ .Name | }}", DATA, "template: test.tpl:1:10: missing command after |"),
        ("{{ \"\\q\" }}", DATA, "template: test.tpl:1:4: unknown escape sequence: \\q"),
        ("{{ define \"a\" }}x{{ end }}{{ define \"a\" }}y{{ end }}", DATA, "template: test.tpl:1:30: template \"a\" is defined twice"),
        ("{{ if true }}{{ define \"a\" }}{{ end }}{{ end }}", DATA, "template: test.tpl:1:17: {{define}} is only allowed at the top level"),
        ("{{ define \"a\" }}x", DATA, "template: test.tpl:1:4: unexpected EOF: {{define}} has no {{end}}"),
        ("{{ template nope }}", DATA, "template: test.tpl:1:13: unexpected identifier \"nope\" in template clause: expected a quoted template name"),
        ("{{ printf.x }}", DATA, "template: test.tpl:1:10: unexpected field access: put the value in parentheses"),
        ("{{ if if }}{{ end }}", DATA, "template: test.tpl:1:7: unexpected <if> in if"),
        ("{{ range $i, $v, $w := .Tags }}{{ end }}", DATA, "template: test.tpl:1:16: expected := after variables in range"),
    ]);
}

#[test]
fn render_errors_name_the_exact_position() {
    check_errors(&[
        ("{{ index .Tags 5 }}", DATA, "template: test.tpl:1:4: error calling index: index out of range: 5"),
        ("a\n\n  {{ index .Tags -1 }}", DATA, "template: test.tpl:3:6: error calling index: index out of range: -1"),
        ("{{ index .Meta 1 }}", DATA, "template: test.tpl:1:4: error calling index: value has type int; should be string"),
        ("{{ index nil 1 }}", DATA, "template: test.tpl:1:4: error calling index: index of untyped nil"),
        ("{{ slice .Tags 2 1 }}", DATA, "template: test.tpl:1:4: error calling slice: invalid slice index: 2 > 1"),
        ("{{ .Name 1 }}", DATA, "template: test.tpl:1:4: can't give argument to non-function .Name"),
        ("{{ 1 | .Name }}", DATA, "template: test.tpl:1:8: can't give argument to non-function .Name"),
        ("{{ nil }}", DATA, "template: test.tpl:1:4: nil is not a command"),
        ("{{ len 1 2 }}", DATA, "template: test.tpl:1:4: wrong number of args for len: want 1 got 2"),
        ("{{ len 3 }}", DATA, "template: test.tpl:1:4: error calling len: len of type int"),
        ("{{ \"a\" | replaceAll \"a\" }}", DATA, "template: test.tpl:1:10: wrong number of args for replaceAll: want 3 got 2"),
        ("{{ loop 1 2 3 }}", DATA, "template: test.tpl:1:4: wrong number of args for loop: want 1 to 2 got 3"),
        ("{{ toLower 1 }}", DATA, "template: test.tpl:1:4: error calling toLower: wrong type for value; expected string; got int"),
        ("{{ .Missing | toUpper }}", DATA, "template: test.tpl:1:15: error calling toUpper: invalid value; expected string"),
        ("{{ .Name.x }}", DATA, "template: test.tpl:1:4: can't evaluate field x in type string"),
        ("{{ range .Name }}{{ end }}", DATA, "template: test.tpl:1:10: range can't iterate over web"),
        ("{{ lt 1 \"a\" }}", DATA, "template: test.tpl:1:4: error calling lt: incompatible types for comparison"),
        ("{{ lt true false }}", DATA, "template: test.tpl:1:4: error calling lt: invalid type for comparison"),
        ("{{ eq 1 \"1\" }}", DATA, "template: test.tpl:1:4: error calling eq: incompatible types for comparison"),
        ("{{ eq 1 }}", DATA, "template: test.tpl:1:4: error calling eq: missing argument for comparison"),
        ("{{ divide 0 1 }}", DATA, "template: test.tpl:1:4: error calling divide: divide: integer overflow or division by zero"),
        ("{{ modulo 0 1 }}", DATA, "template: test.tpl:1:4: error calling modulo: modulo: integer overflow or division by zero"),
        ("{{ add 9223372036854775807 1 }}", DATA, "template: test.tpl:1:4: error calling add: add: integer overflow or division by zero"),
        ("{{ add \"a\" 1 }}", DATA, "template: test.tpl:1:4: error calling add: add: unknown type for a (string)"),
        ("{{ indent -1 \"x\" }}", DATA, "template: test.tpl:1:4: error calling indent: indent value must be a positive integer"),
        ("{{ parseBool \"maybe\" }}", DATA, "template: test.tpl:1:4: error calling parseBool: parseBool: parsing \"maybe\": invalid syntax"),
        ("{{ regexMatch \"(\" \"x\" }}", DATA, "template: test.tpl:1:4: error calling regexMatch: regex parse error:\n    (\n    ^\nerror: unclosed group"),
        ("{{ base64Decode \"//8=\" }}", DATA, "template: test.tpl:1:4: error calling base64Decode: base64Decode: decoded bytes are not UTF-8 text"),
        ("{{ join \",\" \"a\" }}", DATA, "template: test.tpl:1:4: error calling join: wrong type for value; expected []string; got string"),
        ("{{ fail }}", DATA, "template: test.tpl:1:4: error calling fail: backend unavailable"),
        ("x {{ nomadVar \"nomad/jobs/x\" }}", DATA, "template: test.tpl:1:6: error calling nomadVar: variable \"nomad/jobs/x\" not found"),
        ("{{ define \"t\" }}{{ index . 3 }}{{ end }}\n{{ template \"t\" .Tags }}", DATA, "template: test.tpl:1:20: error calling index: index out of range: 3"),
    ]);
}

#[test]
fn a_source_error_is_its_own_variant() {
    let template = Template::parse("t", "{{ fail 1 }}", &options()).unwrap();
    let err = template.render(&data("{}"), &FakeSources).unwrap_err();
    assert!(
        matches!(&err, TemplateError::Source { function, message, .. } if function == "fail" && message == "backend unavailable"),
        "{err:?}"
    );
}

#[test]
fn missing_keys_fail_only_with_missing_key_error() {
    let strict = Options {
        missing_key_error: true,
        ..options()
    };
    let cases = [
        (
            "{{ .Missing }}",
            "template: test.tpl:1:4: map has no entry for key \"Missing\"",
        ),
        (
            "\n {{ .Meta.nope }}",
            "template: test.tpl:2:5: map has no entry for key \"nope\"",
        ),
        (
            "{{ $.Meta.zone }}{{ .Meta.zone.x }}",
            "template: test.tpl:1:21: can't evaluate field x in type string",
        ),
    ];
    for (text, want) in cases {
        let err = render_with(text, DATA, &strict).unwrap_err();
        assert_eq!(err.to_string(), want, "{text}");
    }
    let got = render_with("{{ .Missing }}|{{ .Meta.nope }}", DATA, &options()).unwrap();
    assert_eq!(got, "<no value>|<no value>");
    let present = render_with("{{ .Meta.zone }}", DATA, &strict).unwrap();
    assert_eq!(present, "eu");
}

#[test]
fn an_unsupported_sockaddr_expression_is_a_parse_error_at_its_argument() {
    let mut opts = options();
    opts.external_functions.insert("sockaddr".to_string());
    let ok = "{{ sockaddr \"GetPrivateIP\" }} {{ sockaddr \"GetInterfaceIP\" `\"eth0\"` }}";
    assert!(Template::parse("t", ok, &opts).is_ok());
    let piped = "{{ \"GetPrivateIP\" | sockaddr }} {{ sockaddr .Expr }}";
    assert!(
        Template::parse("t", piped, &opts).is_ok(),
        "checked when rendered"
    );
    let text = "ip = {{ sockaddr \"GetPrivateIP\" }}\nall = {{ sockaddr \"GetAllInterfaces | attr \\\"address\\\"\" }}";
    let err = Template::parse("t", text, &opts).unwrap_err();
    assert_eq!(err.position(), Some((2, 19)), "{err}");
    assert!(err.to_string().contains("GetPrivateIPs"), "{err}");
}
