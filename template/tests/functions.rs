//! Go's built-in functions and consul-template's helpers, argument order included
//! (consul-template takes the piped value last: `{{ "a,b" | split "," }}`).

mod common;

use common::check_table;

const DATA: &str = r#"{
    "Name": "web",
    "Tags": ["a", "b", "c"],
    "Nums": [1, 2, 3],
    "Meta": {"zone": "eu", "owner": "ops"},
    "S": "  padded  ",
    "F": 2.5,
    "JSON": "{\"b\": [1, 2.5, \"x\"], \"a\": null}"
}"#;

#[test]
fn comparisons_follow_go() {
    check_table(&[
        (
            "{{ eq 1 1 }} {{ eq 1 2 }} {{ eq \"a\" \"a\" }} {{ eq .Name \"x\" \"web\" }}",
            DATA,
            "true false true true",
        ),
        (
            "{{ eq nil nil }} {{ eq .Missing nil }} {{ eq .Name nil }}",
            DATA,
            "true true false",
        ),
        ("{{ eq 2 2.0 }} {{ eq true true }}", DATA, "true true"),
        ("{{ ne 1 2 }} {{ ne \"a\" \"a\" }}", DATA, "true false"),
        (
            "{{ lt 1 2 }} {{ le 2 2 }} {{ gt 3 2 }} {{ ge 1 2 }}",
            DATA,
            "true true true false",
        ),
        (
            "{{ lt \"a\" \"b\" }} {{ gt 1.5 1 }} {{ lt -1 0 }}",
            DATA,
            "true true true",
        ),
    ]);
}

#[test]
fn len_index_and_slice_follow_go() {
    check_table(&[
        (
            "{{ len .Tags }} {{ len .Meta }} {{ len .Name }} {{ len \"é\" }}",
            DATA,
            "3 2 3 2",
        ),
        (
            "{{ index .Tags 1 }} {{ index .Meta \"zone\" }} {{ index .Meta \"nope\" }}",
            DATA,
            "b eu <no value>",
        ),
        ("{{ index . \"Meta\" \"owner\" }}", DATA, "ops"),
        ("{{ index .Name 0 }}", DATA, "119"),
        ("{{ index .Tags }}", DATA, "[a b c]"),
        (
            "{{ slice .Tags 1 }} {{ slice .Tags 1 2 }} {{ slice .Tags }} {{ slice .Name 1 3 }}",
            DATA,
            "[b c] [b] [a b c] eb",
        ),
        ("{{ slice .Tags 0 1 2 }}", DATA, "[a]"),
    ]);
}

#[test]
fn print_family_and_escapers_follow_go() {
    check_table(&[
        ("{{ print \"a\" \"b\" 1 2 true }}", DATA, "ab1 2 true"),
        ("{{ print 1 \"a\" 2 }}", DATA, "1a2"),
        ("{{ println \"a\" 1 }}", DATA, "a 1\n"),
        (
            "{{ printf \"%s has %d tags: %v\" .Name (len .Tags) .Tags }}",
            DATA,
            "web has 3 tags: [a b c]",
        ),
        (
            "{{ printf \"%q %x %X %t %5.2f|%-4d|%04d\" \"q\" 255 \"hi\" true 3.14159 7 42 }}",
            DATA,
            "\"q\" ff 6869 true  3.14|7   |0042",
        ),
        (
            "{{ printf \"%v %v\" .F .Meta }}",
            DATA,
            "2.5 map[owner:ops zone:eu]",
        ),
        ("{{ printf \"%d\" \"x\" }}", DATA, "%!d(string=x)"),
        (
            "{{ html \"<a href='x'>&\\\"\" }}",
            DATA,
            "&lt;a href=&#39;x&#39;&gt;&amp;&#34;",
        ),
        (
            "{{ js \"it's <b>\\\"=\\\\\" }}",
            DATA,
            "it\\'s \\u003Cb\\u003E\\\"\\u003D\\\\",
        ),
        ("{{ urlquery \"a b&c=d/é\" }}", DATA, "a+b%26c%3Dd%2F%C3%A9"),
        ("{{ .Name | html }}", DATA, "web"),
        ("{{ html 1 2 }}", DATA, "1 2"),
    ]);
}

#[test]
fn string_helpers_take_the_piped_value_last() {
    check_table(&[
        ("{{ \"HeLLo\" | toLower }} {{ \"abc\" | toUpper }}", DATA, "hello ABC"),
        ("{{ \"hello wide world\" | toTitle }} {{ toTitle \"o'neil mcDonald\" }}", DATA, "Hello Wide World O'neil McDonald"),
        ("[{{ .S | trimSpace }}]", DATA, "[padded]"),
        ("{{ \"xxhixx\" | trim \"x\" }} {{ \"v1.2\" | trimPrefix \"v\" }} {{ \"a.tpl\" | trimSuffix \".tpl\" }}", DATA, "hi 1.2 a"),
        ("{{ \"a,b,c\" | split \",\" }} {{ len (split \",\" \"  \") }}", DATA, "[a b c] 0"),
        ("{{ range \"x:y\" | split \":\" }}<{{ . }}>{{ end }}", DATA, "<x><y>"),
        ("{{ .Tags | join \"-\" }} {{ join \",\" .Nums }}", DATA, "a-b-c 1,2,3"),
        ("{{ \"a.b.c\" | replaceAll \".\" \"/\" }}", DATA, "a/b/c"),
        ("{{ splitToMap \",\" \"=\" \"a=1,b=2,bad\" }}", DATA, "map[a:1 b:2]"),
        ("{{ \"abc123\" | regexMatch \"^[a-z]+[0-9]+$\" }} {{ regexMatch \"^x\" \"abc\" }}", DATA, "true false"),
        ("{{ \"web-01\" | regexReplaceAll \"([a-z]+)-(\\\\d+)\" \"$2.$1\" }}", DATA, "01.web"),
        ("{{ \"hello\" | sha256Hex }}", DATA, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"),
        ("{{ indent 2 \"a\\nb\\n\\nc\" }}", DATA, "  a\n  b\n\n  c"),
        ("{{ \"x\" | indent 0 }}", DATA, "x"),
    ]);
}

#[test]
fn membership_helpers_follow_consul_template() {
    check_table(&[
        ("{{ .Tags | contains \"b\" }} {{ .Tags | contains \"z\" }} {{ \"foobar\" | contains \"oba\" }}", DATA, "true false true"),
        ("{{ in .Tags \"a\" }} {{ \"z\" | in .Tags }} {{ in .Nums 2 }} {{ in .Nums \"2\" }}", DATA, "true false true false"),
        ("{{ .Tags | containsAll (split \",\" \"a,b\") }} {{ .Tags | containsAll (split \",\" \"a,z\") }}", DATA, "true false"),
        ("{{ .Tags | containsAny (split \",\" \"z,b\") }} {{ .Tags | containsAny (split \",\" \"y,z\") }}", DATA, "true false"),
        ("{{ .Tags | containsNone (split \",\" \"y,z\") }} {{ .Tags | containsNone (split \",\" \"a,z\") }}", DATA, "true false"),
        ("{{ .Tags | containsNotAll (split \",\" \"a,z\") }} {{ .Tags | containsNotAll (split \",\" \"a,b\") }}", DATA, "true false"),
    ]);
}

#[test]
fn encoding_helpers_round_trip() {
    check_table(&[
        (
            "{{ \"hello?\" | base64Encode }} {{ \"aGVsbG8/\" | base64Decode }}",
            DATA,
            "aGVsbG8/ hello?",
        ),
        (
            "{{ \"hello?\" | base64URLEncode }} {{ \"aGVsbG8_\" | base64URLDecode }}",
            DATA,
            "aGVsbG8_ hello?",
        ),
        (
            "{{ .Meta | toJSON }}",
            DATA,
            r#"{"owner":"ops","zone":"eu"}"#,
        ),
        (
            "{{ toJSON \"<&>\" }} {{ toUnescapedJSON \"<&>\" }}",
            DATA,
            r#""\u003c\u0026\u003e" "<&>""#,
        ),
        (
            "{{ .Tags | toJSONPretty }}",
            DATA,
            "[\n  \"a\",\n  \"b\",\n  \"c\"\n]",
        ),
        (
            "{{ (.JSON | parseJSON).b }} {{ (parseJSON .JSON).a }}",
            DATA,
            "[1 2.5 x] <no value>",
        ),
        (
            "{{ with parseJSON \"\" }}full{{ else }}empty{{ end }}",
            DATA,
            "empty",
        ),
        (
            "{{ .JSON | parseJSON | toJSON }}",
            DATA,
            r#"{"a":null,"b":[1,2.5,"x"]}"#,
        ),
        ("{{ toYAML .Meta }}", DATA, "owner: ops\nzone: eu"),
        ("{{ 2.0 | toJSON }}", DATA, "2"),
    ]);
}

#[test]
fn parse_helpers_follow_strconv() {
    check_table(&[
        ("{{ \"42\" | parseInt }} {{ parseInt \"-7\" }} {{ parseInt \"\" }}", DATA, "42 -7 0"),
        ("{{ \"42\" | parseUint }} {{ \"2.5\" | parseFloat }} {{ parseFloat \"1e6\" }}", DATA, "42 2.5 1e+06"),
        ("{{ parseBool \"true\" }} {{ parseBool \"F\" }} {{ parseBool \"\" }} {{ parseBool \"1\" }}", DATA, "true false false true"),
        ("{{ add 1 (\"41\" | parseInt) }}", DATA, "42"),
    ]);
}

#[test]
fn math_helpers_take_the_piped_value_last() {
    check_table(&[
        (
            "{{ add 1 2 }} {{ 5 | add 2 }} {{ add 1.5 1 }}",
            DATA,
            "3 7 2.5",
        ),
        (
            "{{ 5 | subtract 2 }} {{ subtract 2 5 }} {{ subtract 0.5 1 }}",
            DATA,
            "3 3 0.5",
        ),
        ("{{ 4 | multiply 3 }} {{ multiply .F 2 }}", DATA, "12 5"),
        (
            "{{ 10 | divide 2 }} {{ 7 | divide 2 }} {{ 7.0 | divide 2 }}",
            DATA,
            "5 3 3.5",
        ),
        ("{{ 10 | modulo 3 }} {{ modulo 4 10 }}", DATA, "1 2"),
        (
            "{{ minimum 3 5 }} {{ maximum 3 5 }} {{ 2.5 | minimum 3 }} {{ maximum -1 -2 }}",
            DATA,
            "3 5 2.5 -1",
        ),
    ]);
}

#[test]
fn loop_and_timestamp_use_the_injected_clock() {
    check_table(&[
        ("{{ range loop 3 }}{{ . }}{{ end }}", DATA, "012"),
        ("{{ range loop 5 8 }}{{ . }}{{ end }}", DATA, "567"),
        ("{{ range loop \"2\" }}{{ . }}{{ end }}", DATA, "01"),
        (
            "{{ range loop 3 1 }}{{ . }}{{ else }}none{{ end }}",
            DATA,
            "none",
        ),
        ("{{ timestamp }}", DATA, "2024-03-07T09:05:04Z"),
        ("{{ timestamp \"unix\" }}", DATA, "1709802304"),
        (
            "{{ timestamp \"2006-01-02 15:04:05 MST Mon Jan\" }}",
            DATA,
            "2024-03-07 09:05:04 UTC Thu Mar",
        ),
    ]);
}
