//! The server asked by the real `dig`, as a user would. `dig` is required: install it with
//! `scripts/install-deps` (Debian's dnsutils). Without it this test fails, it does not skip.

mod common;

use common::*;

async fn dig(args: &[String]) -> String {
    let out = tokio::process::Command::new("dig")
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run dig ({e}): install it with scripts/install-deps (Debian package dnsutils)"));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "dig {args:?} failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn args(port: u16, rest: &[&str]) -> Vec<String> {
    let mut v = vec![
        "@127.0.0.1".to_string(),
        "-p".into(),
        port.to_string(),
        "+time=2".into(),
        "+tries=1".into(),
    ];
    v.extend(rest.iter().map(|s| s.to_string()));
    v
}

#[tokio::test]
async fn dig_gets_srv_records_with_the_targets_addresses() {
    let s = start(|_| {}).await;
    let port = s.addr.port();
    for transport in ["+notcp", "+tcp"] {
        let out = dig(&args(
            port,
            &["SRV", "backend.service.default.nomos", transport],
        ))
        .await;
        assert!(out.contains("status: NOERROR"), "{transport}: {out}");
        assert!(out.contains("flags: qr aa rd;"), "{transport}: {out}");
        let lines = |section: &str| -> Vec<String> {
            out.split(section)
                .nth(1)
                .unwrap_or("")
                .lines()
                .skip(1)
                .take_while(|l| !l.trim().is_empty())
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect()
        };
        let mut answers = lines(";; ANSWER SECTION:");
        answers.sort();
        assert_eq!(
            answers,
            [
                "backend.service.default.nomos. 5 IN SRV 1 1 8080 n1.node.dc1.nomos.",
                "backend.service.default.nomos. 5 IN SRV 1 1 8081 n2.node.dc1.nomos.",
            ],
            "{transport}: {out}"
        );
        let mut additional = lines(";; ADDITIONAL SECTION:");
        additional.retain(|l| !l.starts_with(';'));
        additional.sort();
        assert_eq!(
            additional,
            [
                "n1.node.dc1.nomos. 5 IN A 10.0.0.1",
                "n2.node.dc1.nomos. 5 IN A 10.0.0.2"
            ],
            "{transport}: {out}"
        );
    }
    let short = dig(&args(port, &["+short", "A", "v2.backend.service.nomos"])).await;
    assert_eq!(short.trim(), "10.0.0.2");
    let nx = dig(&args(port, &["A", "nope.service.nomos"])).await;
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
}
