//! A small WebDriver client for the browser tests: starts `chromedriver`, opens headless
//! Chromium sessions, and finds, types, clicks and polls the DOM over plain HTTP.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

/// Longest a wait on the page may take.
pub const PAGE_WAIT: Duration = Duration::from_secs(30);

/// A running `chromedriver`; stopped when dropped.
pub struct Driver {
    child: Child,
    port: u16,
    profiles: tempfile::TempDir,
}

/// One headless Chromium window.
pub struct Browser {
    port: u16,
    session: String,
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// One HTTP/1.1 exchange on `127.0.0.1:port`: the status and the body.
pub fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    raw_http(port, &request)
}

/// Sends `request` as it is to `127.0.0.1:port`: the status and the body.
pub fn raw_http(port: u16, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    // Read the head, then as much body as it announces (chromedriver keeps the connection
    // open); without a length, until the other side closes.
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let mut want: Option<usize> = None;
    loop {
        if let Some(end) = find_head_end(&raw) {
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
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        },
    )
}

fn find_head_end(raw: &[u8]) -> Option<usize> {
    raw.windows(4).position(|w| w == b"\r\n\r\n")
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

impl Driver {
    /// Starts chromedriver; fails plainly when it or Chromium is not installed.
    pub fn start() -> Driver {
        let driver = find_program(&["chromedriver"]).expect(
            "chromedriver is not installed: apt-get install chromium chromium-driver (.ci/run does)",
        );
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
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                let (status, body) = http(port, "GET", "/status", None);
                if status == 200 && body.contains("\"ready\":true") {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            port,
            profiles: tempfile::tempdir().unwrap(),
        }
    }

    /// A new headless window.
    pub fn browser(&self) -> Browser {
        let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"])
            .expect("chromium is not installed: apt-get install chromium chromium-driver");
        let profile = tempfile::tempdir_in(self.profiles.path()).unwrap().keep();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,860",
                         format!("--user-data-dir={}", profile.display())],
            },
        }}});
        // A cold Chromium (first start after installing, a loaded machine) may miss
        // chromedriver's start-up deadline: it is tried three times.
        let mut tries = 0;
        let (status, body) = loop {
            tries += 1;
            let (status, body) = http(self.port, "POST", "/session", Some(&caps));
            if status == 200 || tries == 3 {
                break (status, body);
            }
            eprintln!("no browser session yet ({status}): {body}");
        };
        assert_eq!(status, 200, "no browser session: {body}");
        let value: Value = serde_json::from_str(&body).unwrap();
        let session = value["value"]["sessionId"].as_str().unwrap().to_owned();
        Browser {
            port: self.port,
            session,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let path = format!("/session/{}{path}", self.session);
        let (status, text) = http(self.port, method, &path, body.as_ref());
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status == 200 {
            Ok(value["value"].clone())
        } else {
            Err(format!("{method} {path}: {status} {text}"))
        }
    }

    /// Opens `url`.
    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })))
            .unwrap();
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub fn js(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .unwrap()
    }

    /// Polls `script` until it returns something truthy, within [`PAGE_WAIT`].
    pub fn wait_js(&self, what: &str, script: &str, args: Value) -> Value {
        let deadline = Instant::now() + PAGE_WAIT;
        loop {
            let value = self.js(script, args.clone());
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() > deadline {
                let page = self.js("return document.body.innerText", json!([]));
                panic!("{what} did not show within {PAGE_WAIT:?}; the page reads:\n{page}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The WebDriver id of the first element matching `css`, waiting for it.
    pub fn find(&self, css: &str) -> String {
        self.wait_js(
            &format!("an element {css}"),
            "return document.querySelector(arguments[0]) !== null",
            json!([css]),
        );
        let value = self
            .call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .unwrap();
        value
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap()
            .to_owned()
    }

    /// Types `text` into the element matching `css`.
    pub fn type_into(&self, css: &str, text: &str) {
        self.on_element(css, "value", json!({ "text": text }));
    }

    /// Clicks the element matching `css`.
    pub fn click(&self, css: &str) {
        self.on_element(css, "click", json!({}));
    }

    /// Runs `action` on the element matching `css`. The page redraws its panes as events
    /// come, so an element found may be replaced before it is used: it is found again
    /// (within the same bound as every wait).
    fn on_element(&self, css: &str, action: &str, body: Value) {
        let deadline = Instant::now() + PAGE_WAIT;
        loop {
            let element = self.find(css);
            match self.call(
                "POST",
                &format!("/element/{element}/{action}"),
                Some(body.clone()),
            ) {
                Ok(_) => return,
                Err(e) if e.contains("stale element") && Instant::now() < deadline => {}
                Err(e) => panic!("{action} on {css}: {e}"),
            }
        }
    }

    /// Chooses `file` in the file input matching `css`.
    pub fn choose_file(&self, css: &str, file: &Path) {
        self.type_into(css, &file.display().to_string());
    }

    /// The text of an open alert, if a script opened one.
    pub fn alert(&self) -> Option<String> {
        self.call("GET", "/alert/text", None)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let value = self.call("GET", "/screenshot", None).unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(value.as_str().unwrap())
            .unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.call("DELETE", "", None);
    }
}
