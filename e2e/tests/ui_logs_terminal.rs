//! The allocation page's console in a real headless Chromium (tests/common/browser.rs): live
//! logs that start with the last N lines, follow a line the task prints after the page
//! opened, switch to stderr and search within what is shown; a terminal (xterm.js over the
//! exec websocket with `ws_handshake=true`) that runs what is typed, gives the command the
//! page's size and follows the window's, and shows the exit code;
//! and with ACLs on, a token without `alloc-exec` gets no terminal and no shell. No page
//! raises a script error. Screenshots go to `target/ui-screenshots/` (logs.png,
//! terminal.png).

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::Locator;
use serde_json::{json, Value};

mod common;

use common::browser::Browser;
use common::*;

/// WebDriver's Enter key.
const ENTER: &str = "\u{E007}";

fn screenshots() -> PathBuf {
    let dir = workspace_root().join("target/ui-screenshots");
    std::fs::create_dir_all(&dir).expect("a screenshot dir");
    dir
}

/// A raw_exec job whose task prints 300 lines, one to stderr, then waits for `go` to exist
/// before printing one more line.
fn chatty_job(c: &Cluster) -> String {
    let go = c.dir.path().join("go");
    let script = format!(
        "i=1\nwhile [ $i -le 300 ]; do echo \"boot line $i\"; i=$((i+1)); done\n\
         echo 'stderr says hi' >&2\n\
         while [ ! -e {go} ]; do sleep 0.2; done\n\
         echo 'printed after the page opened'\nexec sleep 3600\n",
        go = go.display()
    );
    let script = c.write_file("chatty.sh", &script);
    let job = format!(
        r#"job "chatty" {{
  datacenters = ["*"]
  group "g" {{
    task "t" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["{script}"]
      }}
      resources {{
        cpu    = 20
        memory = 32
      }}
    }}
  }}
}}
"#
    );
    c.write_file("chatty.hcl", &job)
}

/// Applies the chatty job (with `token`'s environment set by the caller) and answers its
/// running allocation's ID.
fn run_chatty(c: &Cluster, nctl: impl Fn(&[&str])) -> String {
    let file = chatty_job(c);
    nctl(&["apply", "-f", &file]);
    let mut id = String::new();
    c.wait_for("chatty to run", Duration::from_secs(90), |c| {
        let r = c.running("chatty");
        if let Some(a) = r.first() {
            id = a["ID"].as_str().unwrap_or_default().to_string();
        }
        (!id.is_empty(), format!("{r:?}"))
    });
    id
}

async fn count_lines(b: &Browser) -> (u64, String, String) {
    let v = b
        .client
        .execute(
            "var l = document.querySelectorAll('#logs .log-lines .line');\
             return [l.length, l.length ? l[0].textContent : '', l.length ? l[l.length-1].textContent : ''];",
            vec![],
        )
        .await
        .expect("count the log lines");
    (
        v[0].as_u64().unwrap_or(0),
        v[1].as_str().unwrap_or_default().to_string(),
        v[2].as_str().unwrap_or_default().to_string(),
    )
}

/// Waits until the log panel shows `n` lines from `first` to `last`.
async fn wait_lines(b: &Browser, n: u64, first: &str, last: &str) {
    let mut got = (0, String::new(), String::new());
    for _ in 0..200 {
        got = count_lines(b).await;
        if got == (n, first.to_string(), last.to_string()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("expected {n} lines {first:?}..{last:?}, found {got:?}");
}

/// The last `ROWS COLS` line `stty size` printed in the terminal, once it differs from
/// `before`.
async fn tty_size(b: &Browser, before: Option<(u32, u32)>) -> (u32, u32) {
    let mut text = String::new();
    for _ in 0..100 {
        text = b
            .find("#terminal .xterm-rows")
            .await
            .text()
            .await
            .unwrap_or_default();
        let last = text.lines().rev().find_map(|l| {
            let mut it = l.split_whitespace().map(|w| w.parse::<u32>().ok());
            match (it.next(), it.next(), it.next()) {
                (Some(Some(r)), Some(Some(c)), None) => Some((r, c)),
                _ => None,
            }
        });
        if let Some(size) = last.filter(|s| Some(*s) != before) {
            return size;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no new stty size in the terminal: {text}");
}

async fn scroll_to(b: &Browser, id: &str) {
    b.client
        .execute(
            "document.getElementById(arguments[0]).scrollIntoView();",
            vec![json!(id)],
        )
        .await
        .expect("scroll");
}

#[test]
fn logs_follow_live_from_the_last_lines_and_the_terminal_runs_what_is_typed() {
    require_busybox();
    let c = Cluster::start("uilogs");
    let id = run_chatty(&c, |args| {
        c.ok(args);
    });
    let go = c.dir.path().join("go");
    let base = format!("http://{}", c.http_addr);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let b = Browser::start().await;
        b.open(&format!("{base}/ui/allocation/{id}"), "#logs .log-lines")
            .await;
        b.wait_text("#logs .log-status", "following").await;
        // The last 200 lines by default.
        wait_lines(&b, 200, "boot line 101", "boot line 300").await;

        // The last 50 only.
        let lines = b.find("#logs select[name=lines]").await;
        lines.select_by_value("50").await.expect("pick 50 lines");
        wait_lines(&b, 50, "boot line 251", "boot line 300").await;
        b.wait_text("#logs .log-count", "50 lines").await;

        // A line printed after the page opened shows without a reload.
        std::fs::write(&go, "").unwrap();
        wait_lines(&b, 51, "boot line 251", "printed after the page opened").await;

        // The search keeps the matching lines, marked.
        let search = b.find("#logs input[name=search]").await;
        search.send_keys("line 27").await.expect("type a search");
        b.wait_text("#logs .log-count", "10 of 51 lines match")
            .await;
        let marks = b
            .client
            .find_all(Locator::Css("#logs .log-lines .line:not([hidden]) mark"))
            .await
            .unwrap();
        assert_eq!(marks.len(), 10);
        assert_eq!(marks[0].text().await.unwrap(), "line 27");
        scroll_to(&b, "logs").await;
        b.screenshot(&screenshots().join("logs.png")).await;
        search.clear().await.unwrap();
        search.send_keys("after").await.unwrap();
        b.wait_text("#logs .log-count", "1 of 51 lines match").await;
        search.clear().await.unwrap();

        // stderr is its own stream.
        let stream = b.find("#logs select[name=type]").await;
        stream.select_by_value("stderr").await.expect("pick stderr");
        b.wait_text("#logs .log-lines", "stderr says hi").await;

        // The terminal: a shell in the task, what is typed runs, the exit code shows.
        b.click("#terminal button[name=connect]").await;
        b.wait_text("#terminal .term-status", "connected").await;
        let keys = b.find("#terminal .xterm-helper-textarea").await;
        keys.send_keys(&format!("echo $((6*7)){ENTER}"))
            .await
            .expect("type into the terminal");
        b.wait_text("#terminal .xterm-rows", "42").await;
        scroll_to(&b, "terminal").await;
        b.screenshot(&screenshots().join("terminal.png")).await;
        // The command's terminal has the page's size, and follows the window's.
        keys.send_keys(&format!("stty size{ENTER}")).await.unwrap();
        let (rows, wide) = tty_size(&b, None).await;
        assert!(rows > 0 && wide > 40, "{rows} {wide}");
        b.client.set_window_size(900, 900).await.unwrap();
        keys.send_keys(&format!("stty size{ENTER}")).await.unwrap();
        let (_, narrow) = tty_size(&b, Some((rows, wide))).await;
        assert!(
            narrow < wide,
            "{narrow} columns after narrowing from {wide}"
        );
        keys.send_keys(&format!("exit 3{ENTER}")).await.unwrap();
        b.wait_text("#terminal .term-status", "exited with code 3")
            .await;
        b.wait_text("#terminal .xterm-rows", "[exited with code 3]")
            .await;
        assert_eq!(b.script_errors().await, Vec::<String>::new());
        b.close().await;
    });
}

/// Opens the exec websocket from the page as the terminal does, with the cookie's token in
/// the handshake, and answers how it ended: `{code, reason, frames}`.
const EXEC_FROM_PAGE: &str = r#"
var done = arguments[arguments.length - 1];
var token = (document.cookie.match(/nomos-token=([^;]*)/) || [])[1] || "";
var url = "ws://" + location.host + "/v1/client/allocation/" + arguments[0] +
  "/exec?task=t&tty=true&ws_handshake=true&command=" +
  encodeURIComponent(JSON.stringify(["/bin/sh", "-c", "echo ran"]));
var ws = new WebSocket(url);
var frames = [];
ws.onopen = function () {
  ws.send(JSON.stringify({ version: 1, auth_token: decodeURIComponent(token) }));
};
ws.onmessage = function (e) { frames.push(e.data); };
ws.onclose = function (e) { done({ code: e.code, reason: e.reason, frames: frames }); };
"#;

#[test]
fn with_acls_a_token_without_alloc_exec_gets_no_shell() {
    require_busybox();
    let c = Cluster::start_acl_server("uilogsacl");
    let _agent = c.start_agent("uilogs-acl-node");
    let root = secret_id(&c.ok(&["acl", "bootstrap"]));
    let as_root = |args: &[&str]| {
        let mut all = vec!["--token", root.as_str()];
        all.extend_from_slice(args);
        c.ok(&all);
    };
    let policy = c.write_file(
        "reader.hcl",
        "namespace \"default\" {\n  capabilities = [\"read-job\", \"read-logs\"]\n}\n",
    );
    as_root(&["acl", "policy", "apply", "reader", &policy]);
    let out = c.ok(&[
        "--token", &root, "acl", "token", "create", "--name", "reader", "--policy", "reader",
    ]);
    let reader = secret_id(&out);
    let id = {
        let file = chatty_job(&c);
        as_root(&["apply", "-f", &file]);
        let mut id = String::new();
        c.wait_for("chatty to run", Duration::from_secs(90), |c| {
            let out = c.nctl(&[
                "--token", &root, "get", "allocs", "--job", "chatty", "-o", "json",
            ]);
            let allocs: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            if let Some(a) = allocs
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["ClientStatus"] == "running" && a["DesiredStatus"] == "run")
            {
                id = a["ID"].as_str().unwrap_or_default().to_string();
            }
            (!id.is_empty(), format!("{allocs}"))
        });
        id
    };
    let base = format!("http://{}", c.http_addr);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let b = Browser::start().await;
        b.login(&base, &reader).await;
        b.open(&format!("{base}/ui/allocation/{id}"), "#terminal")
            .await;
        // The reader may read the logs, and is offered no terminal.
        b.wait_text("#logs .log-lines", "boot line 300").await;
        b.wait_text("#terminal", "needs the alloc-exec capability")
            .await;
        let screens = b
            .client
            .find_all(Locator::Css("#terminal .term-screen"))
            .await
            .unwrap();
        assert!(screens.is_empty(), "a terminal was offered");
        // Nor does the websocket run anything for its token.
        let ended = b
            .client
            .execute_async(EXEC_FROM_PAGE, vec![json!(id)])
            .await
            .expect("the exec socket ends");
        assert_eq!(ended["code"], 1008, "{ended}");
        assert_eq!(ended["reason"], "Permission denied", "{ended}");
        assert_eq!(ended["frames"], json!([]), "{ended}");
        assert_eq!(b.script_errors().await, Vec::<String>::new());
        b.close().await;
    });
}

/// The `Secret ID` line of `nctl acl bootstrap` / `acl token create`.
fn secret_id(out: &str) -> String {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Secret ID"))
        .map(|rest| rest.trim_start_matches([' ', '=', ':']).trim().to_string())
        .unwrap_or_else(|| panic!("no Secret ID in {out}"))
}
