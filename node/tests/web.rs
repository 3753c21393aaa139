//! The web UI in a real browser: headless Chromium driven over WebDriver (`fantoccini` and
//! chromedriver) against real `ipm` processes, each serving its page: chat, private messages
//! and their receipts, files chosen or dropped with their progress on both sides, images
//! previewed inline, uploads cleaned away, inert peer text, the token, Host and Origin checks,
//! and the registration and login pages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/browser.rs"]
mod browser;
mod support;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use browser::{open_chat, raw_http, start_web_node, Browser, Driver};
use support::procs;

fn port_of(url: &str) -> u16 {
    url.trim_start_matches("http://")
        .split(['/', '#'])
        .next()
        .and_then(|host| host.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap()
}

fn token_of(url: &str) -> &str {
    url.split("#token=").nth(1).unwrap()
}

/// Waits until the people pane lists `peer`.
fn wait_for_user(browser: &Browser, peer: &str) {
    browser.wait_js(
        "the user in the people pane",
        "return document.querySelector(`#people .user[data-peer='${arguments[0]}']`) !== null",
        json!([peer]),
    );
}

/// Waits until a timeline line's text is exactly `text`, and returns that line's author.
fn wait_for_line(browser: &Browser, text: &str) -> String {
    browser
        .wait_js(
            &format!("the line {text:?}"),
            "for (const l of document.querySelectorAll('#timeline .line')) { \
               const t = l.querySelector('.text'); \
               if (t && t.textContent === arguments[0]) return l.querySelector('.from').textContent; } \
             return null;",
            json!([text]),
        )
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Polls `done` until it holds, within the same bound as every wait on a page.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + browser::PAGE_WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "{what} did not happen");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Records, from now on, the state of every transfer in the files pane whose progress bar
/// was drawn on screen; [`progress_seen`] reads them.
fn watch_progress(browser: &Browser) {
    browser.js(
        "window.ipmProgressSeen = new Set(); \
         const look = () => { for (const t of document.querySelectorAll('#transfers .transfer')) { \
             const p = t.querySelector('progress'); if (!p) continue; \
             const r = p.getBoundingClientRect(); \
             if (r.width > 0 && r.height > 0) window.ipmProgressSeen.add(t.dataset.state); } }; \
         new MutationObserver(look).observe(document.getElementById('transfers'), \
           { childList: true, subtree: true, attributes: true }); look();",
        json!([]),
    );
}

/// The transfer states whose progress bar [`watch_progress`] saw on screen.
fn progress_seen(browser: &Browser) -> Vec<String> {
    serde_json::from_value(browser.js("return [...window.ipmProgressSeen]", json!([]))).unwrap()
}

/// Drops `file` on alice's timeline as a person would: the browser reads it from disk (a
/// file input), and a `drop` event carrying it in a `DataTransfer` lands on the pane.
fn drop_file(browser: &Browser, file: &Path) {
    browser.js(
        "const i = document.createElement('input'); i.type = 'file'; i.id = 'test-drop-source'; \
         document.body.append(i);",
        json!([]),
    );
    browser.choose_file("#test-drop-source", file);
    browser.js(
        "const i = document.getElementById('test-drop-source'); \
         const data = new DataTransfer(); data.items.add(i.files[0]); i.remove(); \
         const pane = document.getElementById('timeline-pane'); \
         for (const type of ['dragenter', 'dragover', 'drop']) { \
           pane.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: data })); }",
        json!([]),
    );
}

/// Waits for bob's page to finish the download offered next: accepts it, and returns its
/// transfer id and the SHA-256 the page shows.
fn accept_and_finish(b: &Browser) -> (String, String) {
    let offered = b
        .wait_js(
            "the offer",
            "const t = document.querySelector('#transfers .transfer[data-state=offered]'); \
             return t && t.dataset.transfer",
            json!([]),
        )
        .as_str()
        .unwrap()
        .to_owned();
    b.click(&format!(
        "#transfers .transfer[data-transfer='{offered}'] button.accept"
    ));
    let shown = b.wait_js(
        "the finished download",
        "const t = document.querySelector(`#transfers .transfer[data-transfer='${arguments[0]}'][data-state=done]`); \
         if (!t) return null; const p = t.querySelector('progress'); \
         return p && p.value === p.max && p.max > 1 ? t.querySelector('.sha256').textContent : null;",
        json!([offered]),
    );
    (offered, shown.as_str().unwrap().to_owned())
}

/// The files under `dir`'s `web-uploads/`, by name.
fn uploads(dir: &Path) -> Vec<String> {
    let Ok(folders) = std::fs::read_dir(dir.join("web-uploads")) else {
        return Vec::new();
    };
    folders
        .flatten()
        .flat_map(|f| std::fs::read_dir(f.path()).into_iter().flatten().flatten())
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .collect()
}

/// What the page's own `fetch` of `path` with its token gets: status and the headers the
/// preview is judged by.
fn fetch_in_page(browser: &Browser, path: &str) -> Value {
    browser.js(
        "window.ipmFetched = null; \
         fetch(arguments[0], { headers: { 'x-ipm-token': sessionStorage.getItem('ipm-token') } }) \
           .then((r) => { window.ipmFetched = { status: r.status, \
             type: r.headers.get('content-type'), nosniff: r.headers.get('x-content-type-options') }; });",
        json!([path]),
    );
    browser.wait_js("the fetch", "return window.ipmFetched", json!([]))
}

fn say(browser: &Browser, text: &str) {
    browser.type_into("#line", text);
    browser.click("#send");
}

/// The tests of this file run their browsers one test at a time: several headless Chromiums
/// starting together on a small, loaded machine miss chromedriver's start-up deadline.
fn one_browser_test_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static BROWSERS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    BROWSERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn two_pages_chat_send_files_and_show_peer_text_as_text() {
    let _one_at_a_time = one_browser_test_at_a_time();
    let root = tempfile::tempdir().unwrap();
    let (_bootstrap, addr) = procs::start_bootstrap(&root.path().join("boot"));
    let (alice_dir, bob_dir) = (root.path().join("alice"), root.path().join("bob"));
    // An upload an earlier run left behind, that no offer names.
    let left = alice_dir.join("web-uploads").join("0123456789abcdef");
    std::fs::create_dir_all(&left).unwrap();
    std::fs::write(left.join("left-behind.bin"), b"old").unwrap();
    let (alice, alice_url) = start_web_node(Some("alice"), &alice_dir, &addr, &[]);
    let (bob, bob_url) = start_web_node(Some("bob"), &bob_dir, &addr, &[]);
    for node in [&alice, &bob] {
        node.wait_event("the name registration", |v| v["event"] == "registered");
    }
    let (alice_peer, bob_peer) = (procs::peer_id(&alice_dir), procs::peer_id(&bob_dir));

    let driver = Driver::start();
    let (a, b) = (driver.browser(), driver.browser());
    open_chat(&a, &alice_url);
    open_chat(&b, &bob_url);
    wait_for_user(&a, &bob_peer);
    wait_for_user(&b, &alice_peer);

    // A line typed in alice's page shows in bob's, signed by alice.
    procs::wait_for_lobby_peers(&alice_dir, 1);
    say(&a, "hello from the page :smile:");
    assert_eq!(wait_for_line(&b, "hello from the page 😄"), "alice");
    assert_eq!(wait_for_line(&a, "hello from the page 😄"), "alice");

    // A private message from bob's page: delivered, and in its own conversation at alice's.
    b.click(&format!(
        "#people .user[data-peer='{alice_peer}'] button.message"
    ));
    b.wait_js(
        "the private conversation",
        "return document.getElementById('conversation-title').textContent === 'alice'",
        json!([]),
    );
    say(&b, "just between us");
    b.wait_js(
        "the delivered mark",
        "const l = [...document.querySelectorAll('#timeline .line.own')].pop(); \
         return l && l.querySelector('.text').textContent === 'just between us' \
           && l.querySelector('.state-delivered') !== null",
        json!([]),
    );
    a.click(&format!(
        "#conversation-list .conversation[data-key='@{bob_peer}']"
    ));
    assert_eq!(wait_for_line(&a, "just between us"), "bob");
    // Shown in alice's page, so bob's page says she read it.
    b.wait_js(
        "the read mark",
        "const l = [...document.querySelectorAll('#timeline .line.own')].pop(); \
         return l && l.querySelector('.text').textContent === 'just between us' \
           && l.querySelector('.state-read') !== null",
        json!([]),
    );
    wait_until("the left-behind upload removed", || !left.exists());

    // A file chosen in alice's page, accepted in bob's, arrives whole; both pages show its
    // progress, and alice's copy for sending goes once it is sent.
    let file = root.path().join("photo.bin");
    let data: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let sha = hex::encode(Sha256::digest(&data));
    a.click(&format!(
        "#people .user[data-peer='{bob_peer}'] button.message"
    ));
    watch_progress(&a);
    watch_progress(&b);
    a.choose_file("#file-input", &file);
    let (photo, shown) = accept_and_finish(&b);
    assert_eq!(shown, sha);
    let got = std::fs::read(bob_dir.join("downloads").join("photo.bin")).unwrap();
    assert_eq!(hex::encode(Sha256::digest(&got)), sha);
    a.wait_js(
        "the sent file in alice's page",
        "const t = document.querySelector(`#transfers .transfer[data-transfer='${arguments[0]}'][data-state=sent]`); \
         const p = t && t.querySelector('progress'); return p && p.max > 1 && p.value === p.max",
        json!([photo]),
    );
    assert!(
        progress_seen(&b).contains(&"downloading".into()),
        "{:?}",
        progress_seen(&b)
    );
    assert!(
        progress_seen(&a).contains(&"sending".into()),
        "{:?}",
        progress_seen(&a)
    );
    wait_until("alice's upload of the photo removed", || {
        !uploads(&alice_dir).contains(&"photo.bin".to_owned())
    });

    // An image dropped on alice's timeline goes to bob, and shows in his page, inline.
    let image = root.path().join("screen.png");
    let png = b.screenshot();
    std::fs::write(&image, &png).unwrap();
    watch_progress(&b);
    drop_file(&a, &image);
    let (screen, shown) = accept_and_finish(&b);
    assert_eq!(shown, hex::encode(Sha256::digest(&png)));
    let got = std::fs::read(bob_dir.join("downloads").join("screen.png")).unwrap();
    assert_eq!(got, png);
    assert!(
        progress_seen(&b).contains(&"downloading".into()),
        "{:?}",
        progress_seen(&b)
    );
    let width = b.wait_js(
        "the inline image",
        "const i = document.querySelector(`#timeline .line[data-transfer='${arguments[0]}'] img.preview`); \
         return i && i.complete ? i.naturalWidth : null",
        json!([screen]),
    );
    let png_width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    assert_eq!(width, json!(png_width), "the image's width, from its IHDR");
    let fetched = fetch_in_page(&b, &format!("/api/preview/{screen}"));
    assert_eq!(
        fetched,
        json!({"status": 200, "type": "image/png", "nosniff": "nosniff"})
    );

    // Markup named like an image is a file like any other: never shown, never served.
    let trick = root.path().join("trick.png");
    std::fs::write(
        &trick,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(3)\"><script>alert(4)</script></svg>",
    )
    .unwrap();
    a.choose_file("#file-input", &trick);
    let (trick, _) = accept_and_finish(&b);
    b.wait_js(
        "the line of the received markup",
        "return document.querySelector(`#timeline .line[data-transfer='${arguments[0]}']`) !== null",
        json!([trick]),
    );
    let fetched = fetch_in_page(&b, &format!("/api/preview/{trick}"));
    assert_eq!(fetched["status"], 415, "{fetched}");
    let images = b.js(
        "return document.querySelectorAll('#timeline img').length",
        json!([]),
    );
    assert_eq!(images, json!(1), "only the PNG is shown");
    assert_eq!(b.alert(), None, "markup received as a file ran");

    // Whatever a peer types stays text in the other page: markup is shown, never run.
    let hostile = "<img src=x onerror=alert(1)>";
    procs::ctl_ok(&alice_dir, &["/away", hostile]);
    a.click("#conversation-list .conversation[data-key='lobby']");
    b.click("#conversation-list .conversation[data-key='lobby']");
    say(&a, "<script>alert(2)</script>");
    assert_eq!(wait_for_line(&b, "<script>alert(2)</script>"), "alice");
    b.wait_js(
        "the away text",
        "const u = document.querySelector(`#people .user[data-peer='${arguments[0]}'] .away`); \
         return u && u.textContent === `away: ${arguments[1]}`",
        json!([alice_peer, hostile]),
    );
    let injected = b.js(
        "return document.querySelectorAll('#chat img, #chat script, body script:not([src])').length",
        json!([]),
    );
    assert_eq!(injected, json!(0));
    assert_eq!(b.alert(), None, "a script of a peer ran");

    if let Some(path) = std::env::var_os("IPM_WEB_SCREENSHOT") {
        say(&b, "see you at the chess club :chess_pawn:");
        wait_for_line(&a, "see you at the chess club ♟️");
        // Bob's private conversation: the read mark, files received, an image inline.
        b.click(&format!(
            "#conversation-list .conversation[data-key='@{alice_peer}']"
        ));
        b.wait_js(
            "the inline image, drawn again",
            "const i = document.querySelector('#timeline img.preview'); \
             return i && i.complete && i.naturalWidth > 0",
            json!([]),
        );
        std::fs::write(path, b.screenshot()).unwrap();
    }

    // The token, the Host and the Origin guard every request and socket.
    let port = port_of(&alice_url);
    let token = token_of(&alice_url);
    let upgrade = |path: &str, host: &str, origin: &str| {
        raw_http(
            port,
            &format!(
                "GET {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            ),
        )
        .0
    };
    let here = format!("127.0.0.1:{port}");
    let origin = format!("http://{here}");
    assert_eq!(upgrade("/ws", &here, &origin), 401, "socket without token");
    assert_eq!(
        upgrade("/ws?token=00", &here, &origin),
        401,
        "socket with a wrong token"
    );
    assert_eq!(
        upgrade(&format!("/ws?token={token}"), &here, "http://evil.example"),
        403,
        "socket from another site"
    );
    assert_eq!(
        upgrade(
            &format!("/ws?token={token}"),
            &format!("rebound.example:{port}"),
            &origin
        ),
        403,
        "socket through a rebound DNS name"
    );
    let post = |headers: &str| {
        raw_http(
            port,
            &format!(
                "POST /api/upload?name=x HTTP/1.1\r\nHost: {here}\r\n{headers}Content-Length: 2\r\n\
                 Connection: close\r\n\r\nhi"
            ),
        )
        .0
    };
    assert_eq!(post(""), 401, "upload without token");
    assert_eq!(
        post(&format!(
            "x-ipm-token: {token}\r\nOrigin: http://evil.example\r\n"
        )),
        403,
        "upload from another site"
    );
    assert_eq!(
        post(&format!("x-ipm-token: {token}\r\n")),
        200,
        "upload with the token"
    );
    let (status, _) = raw_http(
        port,
        &format!("GET / HTTP/1.1\r\nHost: evil.example:{port}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(status, 403, "page through a foreign Host");
    // A page opened without the token says so and reaches nothing.
    let c = driver.browser();
    c.goto(&format!("http://{here}/"));
    c.wait_js(
        "the missing token notice",
        "return document.getElementById('banner').textContent.includes('No token')",
        json!([]),
    );
}

#[test]
fn a_first_run_registers_in_the_page_and_a_sealed_identity_logs_in_there() {
    let _one_at_a_time = one_browser_test_at_a_time();
    let root = tempfile::tempdir().unwrap();
    let (_bootstrap, addr) = procs::start_bootstrap(&root.path().join("boot"));
    let alice_dir = root.path().join("alice");
    let alice = procs::start_node("alice", &alice_dir, &addr);
    alice.wait_event("alice's registration", |v| v["event"] == "registered");

    let dir = root.path().join("carol");
    let (carol, url) = start_web_node(None, &dir, &addr, &[]);
    let driver = Driver::start();
    let page = driver.browser();
    page.goto(&url);
    page.wait_js(
        "the registration page",
        "return !document.getElementById('register').hidden",
        json!([]),
    );
    // A name held by another user is refused in plain words; another one is taken.
    page.type_into("#reg-name", "alice");
    page.click("#register-submit");
    page.wait_js(
        "the refusal",
        "return document.getElementById('register-error').textContent.includes('registered to another user')",
        json!([]),
    );
    page.js("document.getElementById('reg-name').value = ''", json!([]));
    page.type_into("#reg-name", "carol");
    page.type_into("#reg-geo", "48.8566,2.3522");
    page.type_into("#reg-interests", "chess, Board Games");
    page.type_into("#reg-pass", "correct horse");
    page.type_into("#reg-pass2", "correct horse");
    page.click("#register-submit");
    page.wait_js(
        "the chat window of carol",
        "return !document.getElementById('chat').hidden && document.getElementById('me-name').textContent === 'carol'",
        json!([]),
    );
    let status = procs::ctl_ok(&dir, &["/list-geo"]);
    assert!(status.contains("48.8566"), "{status}");
    drop(carol);
    drop(page);

    // The identity is sealed now: the next run asks for the passphrase in the page.
    let (_carol, url) = start_web_node(None, &dir, &addr, &[]);
    let page = driver.browser();
    page.goto(&url);
    page.wait_js(
        "the login page",
        "return !document.getElementById('login').hidden && document.getElementById('login-name').textContent.includes('carol')",
        json!([]),
    );
    page.type_into("#login-pass", "wrong horse");
    page.click("#login-submit");
    page.wait_js(
        "the wrong passphrase notice",
        "const t = document.getElementById('login-error').textContent; return t !== '' && !t.startsWith('Opening')",
        json!([]),
    );
    page.js(
        "document.getElementById('login-pass').value = ''",
        json!([]),
    );
    page.type_into("#login-pass", "correct horse");
    page.click("#login-submit");
    page.wait_js(
        "the chat window after login",
        "return !document.getElementById('chat').hidden && document.getElementById('me-name').textContent === 'carol'",
        json!([]),
    );
}
