//! Hostile input: arbitrary text never panics the parser, and whatever parses
//! renders to `Ok` or `Err` without panicking.

mod common;

use common::{data, fixed_now, options, FakeSources};
use nomos_template::Template;
use proptest::prelude::*;

const DATA: &str = r#"{"a": [1, "x", null, {"b": 2.5}], "m": {"k": "v"}, "s": "str", "n": 3}"#;

fn parse_and_render(text: &str) {
    if let Ok(template) = Template::parse("fuzz.tpl", text, &options()) {
        let _ = template.render_at(&data(DATA), &FakeSources, fixed_now());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        parse_and_render(&text);
    }

    #[test]
    fn template_like_text_never_panics(
        text in r#"([{}]{1,2}|-|\.|\$[a-z]?|[ \n]|[a-z]{1,6}|"[a-z\\]{0,3}"?|`|'.?'?|[0-9.xeE+_-]{1,4}|[|():=,]|/\*|\*/|if|else|end|range|with|define|template|block|break|continue|index|slice|printf|%[a-z]|loop|nil|true)*"#
    ) {
        parse_and_render(&text);
    }

    #[test]
    fn well_formed_actions_over_any_data_never_panic(
        func in "(len|index|slice|print|printf|eq|lt|not|and|or|toJSON|split|join|add|divide|modulo|indent|toTitle|parseJSON|loop|html|js|urlquery|in|contains)",
        args in prop::collection::vec(r#"(\.a|\.m|\.s|\.n|\.a\.b|nil|-?[0-9]{1,3}|"[a-z,%]{0,4}"|true|\$)"#, 0..4),
    ) {
        parse_and_render(&format!("{{{{ {func} {} }}}}", args.join(" ")));
    }
}
