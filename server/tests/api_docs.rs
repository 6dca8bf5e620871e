//! The API's documentation keeps up with its routes: every `/v1` route in the ACL rules table
//! (which lists every route the server serves) has an example request in `docs/`, a console
//! line `$ curl ...` with its method and a path of its shape, shown with the answer.

use std::path::Path;

use nomos_server::acl::rules::ROUTES;

/// The `$ ...` lines of every Markdown file in `docs/` and of the README.
fn console_lines() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/ is readable") {
        let path = entry.expect("a docs/ entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    let mut lines = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a readable doc");
        lines.extend(
            text.lines()
                .map(str::trim_start)
                .filter(|l| l.starts_with("$ "))
                .map(String::from),
        );
    }
    lines
}

/// Each curl call on a console line as `(method, path)`: `-X METHOD`, else POST when it sends
/// a body, else GET; the path is the URL's from `/v1` up to its query.
fn requests(line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for call in line.split("curl ").skip(1) {
        let call = call.split('|').next().unwrap_or(call);
        let Some(start) = call.find("/v1/") else {
            continue;
        };
        let path: String = call[start..]
            .chars()
            .take_while(|c| !matches!(c, '?' | '\'' | '"' | ' '))
            .collect();
        let words: Vec<&str> = call.split_whitespace().collect();
        let method = match words.iter().position(|w| *w == "-X") {
            Some(i) => words.get(i + 1).copied().unwrap_or("GET").to_string(),
            None if words
                .iter()
                .any(|w| matches!(*w, "-d" | "--json" | "--data")) =>
            {
                "POST".to_string()
            }
            None => "GET".to_string(),
        };
        out.push((method, path));
    }
    out
}

/// Whether `path` has the shape of `route` (`{x}` is one segment, `{*x}` the rest).
fn fits(route: &str, path: &str) -> bool {
    let mut have = path.trim_end_matches('/').split('/');
    for want in route.split('/') {
        if want.starts_with("{*") {
            return have.next().is_some_and(|s| !s.is_empty());
        }
        match have.next() {
            Some(seg) if want.starts_with('{') && !seg.is_empty() => {}
            Some(seg) if seg == want => {}
            _ => return false,
        }
    }
    have.next().is_none()
}

/// PUT and POST do the same on every write route (Nomad's rule), so an example of either does.
fn same_method(route: &str, example: &str) -> bool {
    route == example || (matches!(route, "PUT" | "POST") && matches!(example, "PUT" | "POST"))
}

#[test]
fn every_route_has_an_example_request_in_the_docs() {
    let examples: Vec<(String, String)> =
        console_lines().iter().flat_map(|l| requests(l)).collect();
    let missing: Vec<String> = ROUTES
        .iter()
        .filter(|(_, path, _)| path.starts_with("/v1/"))
        .filter(|(method, path, _)| {
            !examples
                .iter()
                .any(|(m, p)| same_method(method, m) && fits(path, p))
        })
        .map(|(method, path, _)| format!("{method} {path}"))
        .collect();
    assert!(
        missing.is_empty(),
        "routes without an example `$ curl ...` line in docs/: {missing:#?}"
    );
}

#[test]
fn requests_are_read_from_console_lines() {
    let cases = [
        (
            "$ curl -s 127.0.0.1:4747/v1/jobs",
            vec![("GET", "/v1/jobs")],
        ),
        (
            "$ curl -s -X PUT '127.0.0.1:4747/v1/job/web/dispatch?x=1' -d '{}'",
            vec![("PUT", "/v1/job/web/dispatch")],
        ),
        (
            "$ curl -s 1:2/v1/job/web | curl -s -X POST 1:2/v1/job/web -d @-",
            vec![("GET", "/v1/job/web"), ("POST", "/v1/job/web")],
        ),
        ("$ nctl get jobs", vec![]),
    ];
    for (line, want) in cases {
        let want: Vec<(String, String)> = want
            .into_iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(requests(line), want, "{line}");
    }
    assert!(fits("/v1/job/{id}/versions", "/v1/job/web/versions"));
    assert!(!fits("/v1/job/{id}", "/v1/job/web/versions"));
    assert!(fits("/v1/var/{*path}", "/v1/var/app/config"));
    assert!(!fits("/v1/var/{*path}", "/v1/var/"));
}
