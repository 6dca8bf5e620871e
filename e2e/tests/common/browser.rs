//! A real headless Chromium for the UI tests, driven over WebDriver: Debian's `chromium` and
//! `chromium-driver`, started per test on a free loopback port with a throw-away profile and
//! every background service off (no update checks, no sync, and host names other than
//! loopback made unresolvable), so the browser talks to nothing but the test's cluster.
//! Missing packages fail the test loudly; they are installed by `scripts/install-deps`.
//!
//! The browser records script errors into `window.__nomosErrors` from the first script of
//! every page (a `Page.addScriptToEvaluateOnNewDocument` of the DevTools protocol), and
//! [`Browser::script_errors`] reads them, so a test can say a page ran without one.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use super::free_port;

/// How long a wait for the page gives up after.
pub const PAGE_WAIT: Duration = Duration::from_secs(20);

/// Records uncaught errors and rejected promises of every page, before its own scripts run.
const ERROR_RECORDER: &str = "window.__nomosErrors = [];\
 window.addEventListener('error', e => window.__nomosErrors.push(String(e.message)));\
 window.addEventListener('unhandledrejection', e => window.__nomosErrors.push(String(e.reason)));";

/// A headless Chromium under chromedriver; both end when it is dropped.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session with a window of 1280×900.
    pub async fn start() -> Browser {
        for (program, package) in [
            ("chromedriver", "chromium-driver"),
            ("chromium", "chromium"),
        ] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {program}")])
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(
                found,
                "the UI tests need {program} (Debian's {package}): run scripts/install-deps"
            );
        }
        let port = free_port();
        let driver = Command::new("chromedriver")
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("a profile dir");
        let Value::Object(caps) = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": chromium_args(profile.path()),
            }
        }) else {
            unreachable!("a JSON object literal")
        };
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                // chromedriver is still starting.
                Err(_) if started.elapsed() < PAGE_WAIT => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no WebDriver session from chromedriver at {url}: {e}"),
            }
        };
        client
            .issue_cmd(DevTools::add_script(ERROR_RECORDER))
            .await
            .expect("install the script-error recorder");
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Opens `url` and waits for `css` to be on the page.
    pub async fn open(&self, url: &str, css: &str) -> Element {
        self.client.goto(url).await.expect("open the page");
        self.find(css).await
    }

    /// Signs in at `{base}/ui/login` with the token `secret`.
    pub async fn login(&self, base: &str, secret: &str) {
        self.open(&format!("{base}/ui/login"), "#secret").await;
        self.find("#secret")
            .await
            .send_keys(secret)
            .await
            .expect("type the token");
        self.click("#login button[type=submit]").await;
    }

    /// Waits for an element matching `css`.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(PAGE_WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: not on the page within {PAGE_WAIT:?}: {e}"))
    }

    /// Waits until the text of the first element matching `css` contains `needle`; that text.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < PAGE_WAIT {
            if let Ok(el) = self.client.find(Locator::Css(css)).await {
                // A page swapped by htmx meanwhile leaves a stale element: look again.
                last = el.text().await.unwrap_or_default();
                if last.contains(needle) {
                    return last;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css}: no {needle:?} within {PAGE_WAIT:?}; last text: {last:?}")
    }

    /// Clicks the element matching `css` once it is there.
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// The script errors the current page has recorded.
    pub async fn script_errors(&self) -> Vec<String> {
        let v = self
            .client
            .execute(
                "return window.__nomosErrors || ['no recorder on this page'];",
                vec![],
            )
            .await
            .expect("read the script errors");
        serde_json::from_value(v).unwrap_or_default()
    }

    /// Saves a PNG of the window at `path` (for the closing notes' screenshots).
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(path, png).expect("write the screenshot");
    }

    /// Ends the session (the browser quits); the driver goes with the drop.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Headless, no sandbox (tests run as root), a private profile, and nothing that phones home:
/// every host name but loopback's fails to resolve.
fn chromium_args(profile: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--metrics-recording-only",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    ]
    .map(String::from)
    .to_vec();
    args.push(format!("--user-data-dir={}", profile.display()));
    args
}

/// Chromium's DevTools commands through chromedriver's `goog/cdp/execute` endpoint.
#[derive(Debug)]
enum DevTools {
    AddScript(String),
}

impl DevTools {
    fn add_script(source: &str) -> DevTools {
        DevTools::AddScript(source.to_string())
    }
}

impl fantoccini::wd::WebDriverCompatibleCommand for DevTools {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session_id.unwrap_or_default();
        base_url.join(&format!("session/{session}/goog/cdp/execute"))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        let body = match self {
            DevTools::AddScript(source) => json!({
                "cmd": "Page.addScriptToEvaluateOnNewDocument",
                "params": { "source": source },
            }),
        };
        (http::Method::POST, Some(body.to_string()))
    }
}
