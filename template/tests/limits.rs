//! Every budget is enforced with a clear error, never a hang, a stack overflow
//! or unbounded memory.

mod common;

use common::{data, options, render, FakeSources};
use nomos_template::{
    Template, TemplateError, MAX_NESTING_DEPTH, MAX_OUTPUT_BYTES, MAX_RANGE_ITERATIONS,
    MAX_RENDER_DEPTH, MAX_TEMPLATE_BYTES, MAX_TEMPLATE_CALL_DEPTH,
};

fn limit_what(err: &TemplateError) -> &'static str {
    match err {
        TemplateError::Limit { what, .. } => what,
        other => panic!("expected a limit error, got {other:?}"),
    }
}

#[test]
fn template_text_over_the_size_limit_is_refused() {
    let text = "x".repeat(MAX_TEMPLATE_BYTES + 1);
    let err = Template::parse("big.tpl", &text, &options()).unwrap_err();
    assert!(
        matches!(err, TemplateError::TextTooLarge { size, limit, .. }
        if size == MAX_TEMPLATE_BYTES + 1 && limit == MAX_TEMPLATE_BYTES)
    );
    assert!(Template::parse("ok.tpl", &"x".repeat(MAX_TEMPLATE_BYTES), &options()).is_ok());
}

#[test]
fn blocks_nested_past_the_limit_are_a_parse_error() {
    let deep = |n: usize| format!("{}x{}", "{{ if true }}".repeat(n), "{{ end }}".repeat(n));
    assert_eq!(render(&deep(MAX_NESTING_DEPTH), "{}").unwrap(), "x");
    let err = render(&deep(MAX_NESTING_DEPTH + 1), "{}").unwrap_err();
    assert_eq!(
        err.to_string(),
        "template: test.tpl:1:1304: nesting deeper than the limit of 100"
    );
}

#[test]
fn parentheses_nested_past_the_limit_are_a_parse_error() {
    let deep = |n: usize| format!("{{{{ {}1{} }}}}", "(".repeat(n), ")".repeat(n));
    assert_eq!(render(&deep(MAX_NESTING_DEPTH), "{}").unwrap(), "1");
    let err = render(&deep(100_000), "{}").unwrap_err();
    assert!(
        err.to_string().contains("nesting deeper than the limit"),
        "{err}"
    );
}

#[test]
fn range_iterations_are_counted_across_all_loops() {
    let err = render(
        "{{ range loop 1000 }}{{ range loop 1001 }}{{ end }}{{ end }}",
        "{}",
    )
    .unwrap_err();
    assert_eq!(limit_what(&err), "number of range iterations");
    assert!(
        err.to_string().starts_with(
            "template: test.tpl:1:31: number of range iterations exceeds the limit of 1000000"
        ),
        "{err}"
    );
    let err = render("{{ range 2000000 }}{{ end }}", "{}").unwrap_err();
    assert_eq!(limit_what(&err), "number of range iterations");
    let err = render("{{ loop 2000000 }}", "{}").unwrap_err();
    assert!(
        err.to_string()
            .contains("exceeds the limit of 1000000 iterations"),
        "{err}"
    );
    assert!(render(
        &format!("{{{{ range loop {MAX_RANGE_ITERATIONS} }}}}{{{{ end }}}}"),
        "{}"
    )
    .is_ok());
}

#[test]
fn output_past_the_size_limit_stops_the_render() {
    let chunk = "y".repeat(20_000);
    let text = format!("{{{{ range loop 1000 }}}}{chunk}{{{{ end }}}}");
    let err = render(&text, "{}").unwrap_err();
    assert_eq!(limit_what(&err), "output size in bytes");
    let fits = format!(
        "{{{{ range loop {} }}}}{chunk}{{{{ end }}}}",
        MAX_OUTPUT_BYTES / 20_000
    );
    assert!(render(&fits, "{}").is_ok());
}

#[test]
fn growing_a_string_in_a_loop_hits_the_value_limit() {
    let text =
        "{{ $s := \"xxxxxxxx\" }}{{ range loop 40 }}{{ $s = printf \"%s%s\" $s $s }}{{ end }}";
    let err = render(text, "{}").unwrap_err();
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
    let text = "{{ $s := printf \"%65536s\" \"\" }}{{ $s | replaceAll \" \" $s }}";
    let err = render(text, "{}").unwrap_err();
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
    let err = render("{{ printf \"%999999999d\" 1 }}", "{}").unwrap_err();
    assert!(err.to_string().contains("width or precision"), "{err}");
}

#[test]
fn a_define_that_calls_itself_fails_cleanly() {
    let text = "{{ define \"r\" }}{{ template \"r\" . }}{{ end }}{{ template \"r\" . }}";
    let err = render(text, "{}").unwrap_err();
    assert_eq!(limit_what(&err), "depth of nested template calls");
    assert!(err
        .to_string()
        .ends_with(&format!("exceeds the limit of {MAX_TEMPLATE_CALL_DEPTH}")));
    // On a small stack too, as on an agent's worker thread.
    let handle = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || {
            let template = Template::parse("r.tpl", text, &options()).unwrap();
            template.render(&data("{}"), &FakeSources).is_err()
        })
        .unwrap();
    assert!(handle.join().unwrap());
}

#[test]
fn exponentially_branching_templates_run_out_of_steps() {
    let mut text = String::from("{{ define \"t0\" }}x{{ end }}");
    for i in 1..=40 {
        let prev = i - 1;
        text.push_str(&format!(
            "{{{{ define \"t{i}\" }}}}{{{{ template \"t{prev}\" }}}}{{{{ template \"t{prev}\" }}}}{{{{ end }}}}"
        ));
    }
    text.push_str("{{ template \"t40\" }}");
    let err = render(&text, "{}").unwrap_err();
    assert!(matches!(err, TemplateError::Limit { .. }), "{err}");
}

/// Defines `t0..t{calls}`, each nesting a range, a with and an if around a call to the next;
/// the last one evaluates `parens` nested parentheses.
fn deep_template(calls: usize, parens: usize) -> String {
    let mut text = String::new();
    for i in 0..calls {
        let next = i + 1;
        text.push_str(&format!(
            "{{{{ define \"t{i}\" }}}}{{{{ range loop 1 }}}}{{{{ with 1 }}}}{{{{ if true }}}}\
             {{{{ template \"t{next}\" . }}}}{{{{ end }}}}{{{{ end }}}}{{{{ end }}}}{{{{ end }}}}"
        ));
    }
    let leaf = format!("{}1{}", "(".repeat(parens), ")".repeat(parens));
    text.push_str(&format!(
        "{{{{ define \"t{calls}\" }}}}{{{{ {leaf} }}}}{{{{ end }}}}{{{{ template \"t0\" . }}}}"
    ));
    text
}

fn render_on_small_stack(text: String) -> Result<String, TemplateError> {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let template = Template::parse("deep.tpl", &text, &options())?;
            template.render(&data("{}"), &FakeSources)
        })
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn the_deepest_allowed_render_fits_a_two_mib_stack() {
    // 4 levels per call: 36 calls and 5 parentheses make 149 levels.
    let calls = (MAX_RENDER_DEPTH - 6) / 4;
    assert_eq!(render_on_small_stack(deep_template(calls, 5)).unwrap(), "1");
    let err = render_on_small_stack(deep_template(calls + 1, 5)).unwrap_err();
    assert_eq!(
        limit_what(&err),
        "depth of nested blocks, template calls and parentheses"
    );
    let recursive = "{{ define \"r\" }}{{ range loop 1 }}{{ with 1 }}{{ template \"r\" (((.))) }}{{ end }}{{ end }}{{ end }}{{ template \"r\" 1 }}";
    let err = render_on_small_stack(recursive.to_string()).unwrap_err();
    assert!(matches!(err, TemplateError::Limit { .. }), "{err}");
}
