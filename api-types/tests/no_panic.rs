//! Fuzzing with proptest: whatever the input, parsing returns jobs or diagnostics, never
//! panics. Inputs are arbitrary strings and bytes, and fixture files with random edits
//! (which reach much deeper into the parser than random text does).
//! The cargo-fuzz target in `/fuzz` drives the same entry points.

use nomos_api::{parse_source, parse_stored_spec, ParseOptions};
use proptest::prelude::*;

/// 256 cases by default; `PROPTEST_CASES=100000` for a longer hunt.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256)
}

const NAMES: &[&str] = &["job.hcl", "job.nomad", "job.yaml", "job.json", "job"];

fn fixtures() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let ext = p.extension()?.to_str()?.to_string();
            matches!(ext.as_str(), "hcl" | "nomad" | "yaml" | "json")
                .then(|| std::fs::read_to_string(p).ok())?
        })
        .collect();
    out.sort();
    out
}

fn check(source: &str) {
    for name in NAMES {
        let r = parse_source(name, source, &ParseOptions::default());
        if let Err(d) = r {
            assert!(!d.is_empty(), "an error without diagnostics for {name}");
        }
    }
    let _ = parse_stored_spec("/nomos/jobs/default/x", source.as_bytes());
}

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    Duplicate(usize, usize),
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut s: Vec<char> = text.chars().collect();
    for e in edits {
        let n = s.len().max(1);
        match e {
            Edit::Delete(at, len) => {
                let at = at % n;
                let end = (at + len).min(s.len());
                if at < end {
                    s.drain(at..end);
                }
            }
            Edit::Insert(at, t) => {
                let at = (at % n).min(s.len());
                for (i, c) in t.chars().enumerate() {
                    s.insert(at + i, c);
                }
            }
            Edit::Duplicate(at, len) => {
                let at = at % n;
                let end = (at + len).min(s.len());
                let piece: Vec<char> = s[at.min(end)..end].to_vec();
                for (i, c) in piece.into_iter().enumerate() {
                    s.insert(end + i, c);
                }
            }
        }
    }
    s.into_iter().collect()
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1usize..20).prop_map(|(a, l)| Edit::Delete(a, l)),
        (
            any::<usize>(),
            prop_oneof![
                Just("{".to_string()),
                Just("}".to_string()),
                Just("\"".to_string()),
                Just("${".to_string()),
                Just("%{ if x }".to_string()),
                Just("<<EOF\n".to_string()),
                Just("- ".to_string()),
                Just(": ".to_string()),
                Just("[".to_string()),
                Just("-1".to_string()),
                Just("99999999999999999999".to_string()),
                Just("var.".to_string()),
                Just("local.x".to_string()),
                Just("\u{0}".to_string()),
                Just("é".to_string()),
                Just("format(\"%999999d\", 1)".to_string()),
                Just("format(\"%\")".to_string()),
                Just("format(\"%.99999999f\", 1)".to_string()),
                Just("substr(\"abc\", -9, 99999999999)".to_string()),
                Just("slice([1], 2, 1)".to_string()),
                Just(
                    "[for a in range(1000) : [for b in range(1000) : [for c in range(1000) : c]]]"
                        .to_string()
                ),
                Just("range(1e9)".to_string()),
                "[ -~]{0,8}",
            ]
        )
            .prop_map(|(a, t)| Edit::Insert(a, t)),
        (any::<usize>(), 1usize..40).prop_map(|(a, l)| Edit::Duplicate(a, l)),
    ]
}

const ARGS: &[&str] = &[
    "1e300",
    "-1e300",
    "-1",
    "0",
    "1",
    "1.5",
    "129",
    "\"10.0.0.0/8\"",
    "\"::/0\"",
    "\"10.0.0.1/32\"",
    "[1, 2]",
    "[]",
    "[[1], [2, 3]]",
    "{ a = 1 }",
    "\"(\"",
    "\"a b\"",
    "null",
    "true",
    "\"2024-01-01T00:00:00Z\"",
    "\"-1h\"",
    "\"999999999h\"",
    "\"x\"",
    "\"%s %d\"",
    "\"a: [1, *x]\"",
    "\"dns\"",
    "var.missing",
    "1 / 0",
    "node.unique.name",
    "docker",
];

/// A job whose meta calls one function with random arguments.
fn call_source(name: &str, args: &[&str]) -> String {
    format!(
        "job \"x\" {{\n  meta = {{\n    a = {name}({})\n  }}\n  group \"g\" {{\n    task \"t\" {{\n      driver = \"raw_exec\"\n    }}\n  }}\n}}\n",
        args.join(", ")
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn function_calls_with_arbitrary_arguments_never_panic(
        name in prop::sample::select(nomos_api::hcl::function_names().collect::<Vec<_>>()),
        args in proptest::collection::vec(prop::sample::select(ARGS), 0..5),
    ) {
        check(&call_source(name, &args));
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        check(&s);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let s = String::from_utf8_lossy(&bytes);
        check(&s);
        let _ = parse_stored_spec("k", &bytes);
    }

    #[test]
    fn edited_fixtures_never_panic(which in any::<prop::sample::Index>(), edits in proptest::collection::vec(edit(), 1..6)) {
        let all = fixtures();
        let text = which.get(&all);
        check(&apply(text, &edits));
    }
}
