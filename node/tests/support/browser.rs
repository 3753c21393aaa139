//! Real headless Chromium for the browser tests, driven through `chromedriver` with the
//! `fantoccini` WebDriver client: starts chromedriver on a free port, opens windows with their
//! own profile, and offers the few bounded waits the tests need. `raw_http` sends hand-written
//! HTTP requests for the checks that need no browser.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use fantoccini::{error::CmdError, Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use tokio::runtime::Runtime;

use crate::support::procs;

/// Longest a wait on the page may take.
pub const PAGE_WAIT: Duration = Duration::from_secs(30);

/// How often a wait looks at the page again.
const LOOK_EVERY: Duration = Duration::from_millis(50);

/// A running `chromedriver`; stopped when dropped (drop its browsers first).
pub struct Driver {
    child: Child,
    url: String,
    runtime: Arc<Runtime>,
    profiles: tempfile::TempDir,
}

/// One headless Chromium window; its session is closed when dropped.
pub struct Browser {
    client: Client,
    runtime: Arc<Runtime>,
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

const MISSING: &str = "is not installed: run scripts/test.sh, which installs chromium and \
                       chromium-driver (or apt-get install chromium chromium-driver)";

impl Driver {
    /// Starts chromedriver on a free port; fails plainly when it or Chromium is missing.
    pub fn start() -> Driver {
        let driver =
            find_program(&["chromedriver"]).unwrap_or_else(|| panic!("chromedriver {MISSING}"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + PAGE_WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not start listening"
            );
            std::thread::sleep(LOOK_EVERY);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            runtime: Arc::new(runtime),
            profiles: tempfile::tempdir().unwrap(),
        }
    }

    /// A new headless window of 1400 × 860 with a profile of its own.
    pub fn browser(&self) -> Browser {
        let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"])
            .unwrap_or_else(|| panic!("chromium {MISSING}"));
        let profile = tempfile::tempdir_in(self.profiles.path()).unwrap().keep();
        let caps = json!({
            "browserName": "chrome",
            // An alert a page opens stays open, so a test can see that a script ran.
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,860",
                         format!("--user-data-dir={}", profile.display())],
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(caps);
        // A cold Chromium (first start after installing, a loaded machine) may miss
        // chromedriver's start-up deadline: it is tried three times.
        let mut tries = 0;
        let client = loop {
            tries += 1;
            match self.runtime.block_on(builder.connect(&self.url)) {
                Ok(client) => break client,
                Err(e) if tries < 3 => eprintln!("no browser session yet: {e}"),
                Err(e) => panic!("no browser session: {e}"),
            }
        };
        Browser {
            client,
            runtime: self.runtime.clone(),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a script's value counts as "yes" for a wait.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Number(n) => n.as_f64() != Some(0.0),
        _ => true,
    }
}

impl Browser {
    fn run<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(work)
    }

    /// Opens `url`.
    pub fn goto(&self, url: &str) {
        self.run(self.client.goto(url)).unwrap();
    }

    /// Runs `script` (a function body; `arguments` holds the items of the array `args`) and
    /// returns its value.
    pub fn js(&self, script: &str, args: Value) -> Value {
        let args = match args {
            Value::Array(items) => items,
            Value::Null => Vec::new(),
            one => vec![one],
        };
        self.run(self.client.execute(script, args))
            .unwrap_or_else(|e| panic!("the script failed: {e}\n{script}"))
    }

    /// Polls `script` until it returns something truthy, within [`PAGE_WAIT`], and returns
    /// that value; fails with what the page reads when it does not come.
    pub fn wait_js(&self, what: &str, script: &str, args: Value) -> Value {
        self.try_wait_js(PAGE_WAIT, script, args)
            .unwrap_or_else(|| {
                panic!(
                    "{what} did not show within {PAGE_WAIT:?}; the page reads:\n{}",
                    self.text()
                )
            })
    }

    /// Polls `script` until it returns something truthy, within `within`: that value, or
    /// `None` when it did not come.
    pub fn try_wait_js(&self, within: Duration, script: &str, args: Value) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            let value = self.js(script, args.clone());
            if truthy(&value) {
                return Some(value);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(LOOK_EVERY);
        }
    }

    /// What the page reads (`document.body.innerText`).
    pub fn text(&self) -> String {
        self.js("return document.body.innerText", json!([]))
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the page's text contains `part`, within [`PAGE_WAIT`].
    pub fn wait_for_text(&self, part: &str) {
        self.wait_js(
            &format!("the text {part:?}"),
            "return document.body.innerText.includes(arguments[0])",
            json!([part]),
        );
    }

    /// Types `text` into the element matching `css`.
    pub fn type_into(&self, css: &str, text: &str) {
        self.on_element(css, "typing", |e| async move { e.send_keys(text).await });
    }

    /// Clicks the element matching `css`.
    pub fn click(&self, css: &str) {
        self.on_element(css, "a click", |e| async move { e.click().await });
    }

    /// Chooses `file` in the file input matching `css`.
    pub fn choose_file(&self, css: &str, file: &Path) {
        self.type_into(css, &file.display().to_string());
    }

    /// Runs `action` on the element matching `css`, waiting for it within [`PAGE_WAIT`]. The
    /// page redraws its panes as events come, so an element found may be replaced before it
    /// is used: it is then found again, within the same bound.
    fn on_element<F, Fut>(&self, css: &str, what: &str, action: F)
    where
        F: Fn(fantoccini::elements::Element) -> Fut,
        Fut: std::future::Future<Output = Result<(), CmdError>>,
    {
        let deadline = Instant::now() + PAGE_WAIT;
        loop {
            let found = self.run(
                self.client
                    .wait()
                    .at_most(deadline.saturating_duration_since(Instant::now()))
                    .every(LOOK_EVERY)
                    .for_element(Locator::Css(css)),
            );
            let element = match found {
                Ok(element) => element,
                Err(e) => panic!(
                    "no element {css} within {PAGE_WAIT:?} ({e}); the page reads:\n{}",
                    self.text()
                ),
            };
            match self.run(action(element)) {
                Ok(()) => return,
                Err(e) if e.is_stale_element_reference() && Instant::now() < deadline => {}
                Err(e) => panic!("{what} on {css}: {e}"),
            }
        }
    }

    /// The text of an open alert, if a script opened one.
    pub fn alert(&self) -> Option<String> {
        self.run(self.client.get_alert_text()).ok()
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        self.run(self.client.screenshot()).unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.run(self.client.clone().close());
    }
}

/// Starts `ipm --headless --json --web 127.0.0.1:0` on `dir` (as `name`, when given) and
/// returns it with the URL it printed.
pub fn start_web_node(
    name: Option<&str>,
    dir: &Path,
    bootstrap: &str,
    env: &[(&str, &str)],
) -> (procs::Proc, String) {
    let mut cmd = Command::new(procs::ipm());
    cmd.args(["--headless", "--json", "--no-mdns", "--web", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", bootstrap])
        .env_remove("IPM_PASSPHRASE");
    if let Some(name) = name {
        cmd.args(["--name", name]);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let proc = procs::Proc::spawn(cmd);
    let url = proc.wait_line("the web UI's URL", |line| {
        let v: Value = serde_json::from_str(line).ok()?;
        (v["event"] == "web").then(|| v["url"].as_str().map(str::to_owned))?
    });
    (proc, url)
}

/// Opens `url` and waits for the chat window.
pub fn open_chat(browser: &Browser, url: &str) {
    browser.goto(url);
    browser.wait_js(
        "the chat window",
        "return document.body.dataset.phase === 'running' && !document.getElementById('chat').hidden \
         && document.getElementById('me-name').textContent !== ''",
        json!([]),
    );
}

/// Sends `request` as it is to `127.0.0.1:port`: the status and the body.
pub fn raw_http(port: u16, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    // Read the head, then as much body as it announces; without a length, until the other
    // side closes.
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let mut want: Option<usize> = None;
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if let Some(length) = length {
                want = Some(end + 4 + length);
            }
        }
        if want.is_some_and(|w| raw.len() >= w) {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}
