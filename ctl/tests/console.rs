//! The web console and the HTTP API, against a real ctld and engine running
//! a noise flow on a private `dbus-daemon`:
//! - in headless Chromium driven over WebDriver (Debian's `chromium` and
//!   `chromium-driver`): the login page without a session; after login the
//!   flow, moving meters, a mute click the engine obeys (D-Bus, /metrics),
//!   the page following `airliftctl`, a pull job started from the form, no
//!   console errors, a desktop and a phone-sized screenshot;
//! - with curl: every documented route answers 401 without a credential and
//!   answers with one; missing CSRF tokens, other origins and expired
//!   sessions are refused and change nothing; 1000 wrong logins are
//!   rate-limited; the OpenAPI document validates; every D-Bus method that
//!   changes state has an API route.
//!
//! Every wait is bounded.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Polls `f` every 100 ms until it returns `Some`, for at most `secs`.
fn wait<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A node: a private bus, ctld (which spawns the engine) on a directory
/// with a noise flow; everything killed and removed on drop.
struct Node {
    dir: PathBuf,
    bus: Child,
    bus_address: String,
    ctld: Child,
    http: u16,
    token: String,
}

const FLOW: &str = r#"
[[flow]]
name = "main"
[[flow.input]]
name = "noise"
producer = { test_signal = { kind = "pink_noise", level_dbfs = -20.0, channels = 2 } }
[[flow.processor]]
meter = {}
[[flow.processor]]
loudness = {}
[[flow.output]]
name = "void"
consumer = "null"
"#;

impl Node {
    fn start(tag: &str, extra_http: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("airlift-console-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("bus");
        let bus_address = format!("unix:path={}", socket.display());
        let bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile"])
            .arg(format!("--address={bus_address}"))
            .stdout(Stdio::null())
            .spawn()
            .expect("dbus-daemon is installed");
        wait(10, "dbus-daemon", || socket.exists().then_some(()));
        let http = free_port();
        std::fs::write(
            dir.join("airlift.toml"),
            format!(
                "[engine]\nsocket = \"engine.sock\"\n[spool]\npath = \"spool\"\n[node]\nstate_file = \"state.json\"\n\
                 [http]\nlisten = \"127.0.0.1:{http}\"\n{extra_http}\n{FLOW}"
            ),
        )
        .unwrap();
        let ctld_bin = PathBuf::from(env!("CARGO_BIN_EXE_airlift-ctld"));
        let ctld = Command::new(&ctld_bin)
            .arg("--config")
            .arg(dir.join("airlift.toml"))
            .args(["--dbus-address", &bus_address])
            .arg("--engine-binary")
            .arg(ctld_bin.with_file_name("airlift-engine"))
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(dir.join("ctld.log")).unwrap())
            .spawn()
            .unwrap();
        let token_file = dir.join("api-token");
        let token = wait(20, "the API token file", || {
            std::fs::read_to_string(&token_file).ok().map(|t| t.trim().to_string()).filter(|t| t.len() == 64)
        });
        let node = Self { dir, bus, bus_address, ctld, http, token };
        wait(30, "the engine running the flow", || {
            let (code, body) = node.api("GET", "/api/v1/flows", &[&node.bearer()], None);
            (code == 200 && body.contains("\"state\":\"running\"") && body.contains("\"peak_dbfs\""))
                .then_some(())
        });
        node
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    fn bearer(&self) -> String {
        format!("Authorization: Bearer {}", self.token)
    }

    /// One request with curl: (status, body).
    fn api(&self, method: &str, path: &str, headers: &[&str], body: Option<&str>) -> (u16, String) {
        self.api_from("127.0.0.1", method, path, headers, body)
    }

    /// The same from another loopback address (each has its own limits).
    fn api_from(
        &self,
        from: &str,
        method: &str,
        path: &str,
        headers: &[&str],
        body: Option<&str>,
    ) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "--max-time", "5", "--interface", from, "-X", method, "-w", "\n%{http_code}"]);
        for h in headers {
            cmd.args(["-H", h]);
        }
        if let Some(b) = body {
            cmd.args(["-H", "Content-Type: application/json", "--data-binary", b]);
        }
        let out = cmd.arg(self.url(path)).output().unwrap();
        let all = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = all.rsplit_once('\n').unwrap_or(("", &all));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("ctld.log")).unwrap_or_default()
    }

    fn airliftctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_airliftctl"))
            .args(["--address", &self.bus_address])
            .args(args)
            .output()
            .unwrap()
    }

    fn busctl(&self, args: &[&str]) -> String {
        let out = Command::new("busctl")
            .arg(format!("--address={}", self.bus_address))
            .args(args)
            .output()
            .unwrap();
        text(&out)
    }

    fn list_pulls(&self) -> String {
        self.busctl(&["call", "org.airlift.Node1", "/org/airlift/Node1", "org.airlift.Node1", "ListPulls"])
    }

    /// The loudest channel's peak of flow `main` from /metrics (`-Inf` is silence).
    fn metrics_peak(&self) -> Option<f64> {
        let (_, body) = self.api("GET", "/metrics", &[], None);
        body.lines()
            .filter(|l| l.starts_with("airlift_meter_peak_dbfs{flow=\"main\""))
            .filter_map(|l| match l.rsplit(' ').next()? {
                "-Inf" => Some(f64::NEG_INFINITY),
                v => v.parse::<f64>().ok(),
            })
            .reduce(f64::max)
    }

    /// Logs in as a browser does (curl with a cookie jar): the `Cookie:`
    /// header to send and the session's CSRF token. Checks the cookie is
    /// HttpOnly.
    fn login_with_cookie(&self) -> (String, String) {
        let jar = self.dir.join(format!("cookies-{}", std::process::id()));
        let _ = std::fs::remove_file(&jar);
        let out = Command::new("curl")
            .args(["-s", "-c"])
            .arg(&jar)
            .args(["-H", "Content-Type: application/json", "--data-binary"])
            .arg(json!({ "token": self.token }).to_string())
            .arg(self.url("/api/v1/login"))
            .output()
            .unwrap();
        let session: Value = serde_json::from_slice(&out.stdout).unwrap();
        let csrf = session["csrf"].as_str().unwrap().to_string();
        let jar_text = std::fs::read_to_string(&jar).unwrap();
        assert!(jar_text.contains("#HttpOnly_") && jar_text.contains("airlift_session"), "{jar_text}");
        let value = jar_text.lines().last().unwrap().split('\t').next_back().unwrap();
        (format!("Cookie: airlift_session={value}"), csrf)
    }

    fn state_rows(&self) -> String {
        self.api("GET", "/api/v1/state", &[&self.bearer()], None).1
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.ctld.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.ctld.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.ctld.kill();
        let _ = self.ctld.wait();
        let _ = Command::new("pkill")
            .args(["-9", "-f", &self.dir.join("engine.sock").display().to_string()])
            .status();
        let _ = self.bus.kill();
        let _ = self.bus.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A W3C WebDriver session on chromedriver and headless Chromium.
struct Browser {
    driver: Child,
    base: String,
    profile: PathBuf,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    fn start(tag: &str) -> Self {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (make test-deps: chromium-driver)");
        let profile = std::env::temp_dir().join(format!("airlift-chromium-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        let mut b = Self { driver, base: format!("http://127.0.0.1:{port}"), profile };
        wait(20, "chromedriver", || {
            let (_, v) = b.raw("GET", "/status", None);
            (v["value"]["ready"] == json!(true)).then_some(())
        });
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", "--window-size=1400,1000",
                         format!("--user-data-dir={}", b.profile.display())],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let (code, v) = b.raw("POST", "/session", Some(caps));
        assert_eq!(code, 200, "no WebDriver session: {v}");
        let id = v["value"]["sessionId"].as_str().expect("session id").to_string();
        b.base = format!("{}/session/{id}", b.base);
        b
    }

    fn raw(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "--max-time", "60", "-X", method, "-w", "\n%{http_code}"]);
        if let Some(b) = body {
            cmd.args(["-H", "Content-Type: application/json", "--data-binary", &b.to_string()]);
        }
        let out = cmd.arg(format!("{}{path}", self.base)).output().unwrap();
        let all = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = all.rsplit_once('\n').unwrap_or(("", &all));
        (code.trim().parse().unwrap_or(0), serde_json::from_str(body).unwrap_or(Value::Null))
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (code, v) = self.raw(method, path, body);
        assert_eq!(code, 200, "WebDriver {method} {path}: {v}");
        v["value"].clone()
    }

    fn go(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    fn js(&self, script: &str, args: Value) -> Value {
        self.call("POST", "/execute/sync", Some(json!({ "script": script, "args": args })))
    }

    fn element(&self, css: &str) -> String {
        let v = self.call("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        v[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {v}")).to_string()
    }

    /// Waits until `css` matches an element that is displayed.
    fn visible(&self, css: &str, secs: u64) -> String {
        wait(secs, css, || {
            let shown = self.js(
                "const e = document.querySelector(arguments[0]); return !!e && !e.closest('[hidden]') && e.getClientRects().length > 0;",
                json!([css]),
            );
            (shown == json!(true)).then(|| self.element(css))
        })
    }

    fn click(&self, element: &str) {
        self.call("POST", &format!("/element/{element}/click"), Some(json!({})));
    }

    fn type_into(&self, element: &str, text: &str) {
        self.call("POST", &format!("/element/{element}/value"), Some(json!({ "text": text })));
    }

    fn attribute(&self, css: &str, name: &str) -> Option<String> {
        self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : null;",
            json!([css, name]),
        )
        .as_str()
        .map(str::to_string)
    }

    fn value(&self, css: &str) -> Option<String> {
        self.js("const e = document.querySelector(arguments[0]); return e ? e.value : null;", json!([css]))
            .as_str()
            .map(str::to_string)
    }

    /// The browser's console entries since the last call.
    fn console(&self) -> Vec<Value> {
        let v = self.call("POST", "/se/log", Some(json!({"type": "browser"})));
        v.as_array().cloned().unwrap_or_default()
    }

    fn screenshot(&self, to: &Path) {
        use base64::Engine as _;
        let v = self.call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_default()).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(to, png).unwrap();
    }

    fn resize(&self, width: u32, height: u32) {
        self.call("POST", "/window/rect", Some(json!({"width": width, "height": height})));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.raw("DELETE", "", None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn screenshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

#[test]
fn the_console_drives_the_node_in_a_real_browser() {
    let node = Node::start("browser", "");
    let browser = Browser::start("browser");
    browser.go(&node.url("/"));

    // No session: the login page, not the console.
    let token_field = browser.visible("#token", 20);
    assert_eq!(browser.attribute("#main-view", "hidden").as_deref(), Some(""), "the console is hidden");
    // What the browser logged before login: only the 401 of the session probe.
    for entry in browser.console() {
        let m = entry["message"].as_str().unwrap_or_default();
        assert!(m.contains("401"), "console before login: {entry}");
    }

    // Log in with the token from the file ctld created.
    browser.type_into(&token_field, &node.token);
    browser.click(&browser.element("#login-submit"));
    let flow = r#"section.flow[data-flow="main"]"#;
    browser.visible(flow, 20);
    assert!(browser.attribute("#login-view", "hidden").is_some(), "the login page is gone");
    let state = browser.js(
        "return document.querySelector('section.flow[data-flow=\"main\"] .flow-state').textContent;",
        json!([]),
    );
    assert!(state.as_str().unwrap_or_default().contains("running"), "flow state shown: {state}");

    // The meters move (pink noise: the peak differs from read to read).
    let meter = format!("{flow} .meter[data-channel=\"0\"]");
    let first = wait(10, "a meter value", || browser.attribute(&meter, "data-peak").filter(|v| v != "-inf"));
    let second =
        wait(10, "the meter to move", || browser.attribute(&meter, "data-peak").filter(|v| *v != first));
    assert!(second.parse::<f64>().is_ok() || second == "-inf", "data-peak is a number: {second}");

    // Mute from the page: the engine mutes (D-Bus state, /metrics).
    let input = format!("{flow} div.input[data-input=\"noise\"]");
    let mute = format!("{input} button.mute");
    assert_eq!(browser.attribute(&mute, "aria-pressed").as_deref(), Some("false"));
    browser.click(&browser.element(&mute));
    wait(10, "the mute in the page", || {
        (browser.attribute(&mute, "aria-pressed").as_deref() == Some("true")).then_some(())
    });
    let state = text(&node.airliftctl(&["state"]));
    assert!(
        state.contains("main")
            && state.contains("noise")
            && state.contains("muted")
            && state.contains("true"),
        "{state}"
    );
    wait(10, "silence in /metrics", || (node.metrics_peak() == Some(f64::NEG_INFINITY)).then_some(()));

    // A change with airliftctl shows in the page without a reload.
    let out = node.airliftctl(&["gain", "main", "noise", "-7.5"]);
    assert!(out.status.success(), "{}", text(&out));
    let gain = format!("{input} input.gain");
    wait(10, "the fader to follow airliftctl", || {
        browser.value(&gain).and_then(|v| v.parse::<f64>().ok()).filter(|v| (*v + 7.5).abs() < 0.01)
    });
    let out = node.airliftctl(&["mute", "main", "noise", "--off"]);
    assert!(out.status.success(), "{}", text(&out));
    wait(10, "the mute button to follow airliftctl", || {
        (browser.attribute(&mute, "aria-pressed").as_deref() == Some("false")).then_some(())
    });

    // A pull job from the form appears in ListPulls.
    let url = browser.visible("#pull-url", 5);
    browser.type_into(&url, "srt://127.0.0.1:9?mode=caller&latency=200");
    browser.type_into(&browser.element("#pull-name"), "browser");
    browser.click(&browser.element("#pull-submit"));
    wait(10, "the pull job in ListPulls", || node.list_pulls().contains("\"browser\"").then_some(()));
    browser.visible(r#"#pulls tr[data-pull="browser"]"#, 10);

    // Archive, alarms and health are on the page.
    for part in ["#archive", "#alarms", "#health"] {
        browser.visible(part, 5);
    }
    let health = wait(10, "health", || {
        browser
            .js("const e = document.querySelector('#health .health-status'); return e ? e.textContent : null;", json!([]))
            .as_str()
            .map(str::to_string)
            .filter(|s| !s.is_empty())
    });
    assert!(["healthy", "degraded", "unhealthy"].iter().any(|s| health.contains(s)), "{health}");

    // Nothing went wrong in the page since login.
    let errors: Vec<Value> =
        browser.console().into_iter().filter(|e| e["level"] == json!("SEVERE")).collect();
    assert!(errors.is_empty(), "browser console errors: {errors:?}\n{}", node.log());

    browser.js("window.scrollTo(0, 0);", json!([]));
    std::thread::sleep(Duration::from_millis(800));
    browser.screenshot(&screenshot_dir().join("console.png"));
    // Phone-sized: nothing wider than the screen.
    browser.resize(390, 844);
    browser.js("window.scrollTo(0, 0);", json!([]));
    std::thread::sleep(Duration::from_millis(500));
    let overflow = browser.js("return document.documentElement.scrollWidth - window.innerWidth;", json!([]));
    assert!(overflow.as_i64().unwrap_or(1) <= 0, "page wider than a phone by {overflow} px");
    browser.screenshot(&screenshot_dir().join("console-phone.png"));
    if let Some(to) = std::env::var_os("AIRLIFT_SCREENSHOT") {
        browser.resize(1400, 1100);
        browser.js("window.scrollTo(0, 0);", json!([]));
        std::thread::sleep(Duration::from_millis(800));
        browser.screenshot(Path::new(&to));
    }

    // Logout: the login page again, and the session is gone.
    browser.resize(1400, 1000);
    browser.click(&browser.visible("#logout", 5));
    browser.visible("#token", 10);
}

/// The routes of the OpenAPI document as (method, path with the names of
/// the test node filled in, operationId).
fn documented_routes() -> Vec<(String, String, String)> {
    let doc: Value = serde_json::from_str(airlift_ctl::api::OPENAPI).unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete"] {
            if let Some(op) = item.get(method) {
                let filled =
                    path.replace("{flow}", "main").replace("{input}", "noise").replace("{name}", "probe");
                out.push((method.to_uppercase(), filled, op["operationId"].as_str().unwrap().to_string()));
            }
        }
    }
    out
}

fn body_for(operation: &str, token: &str) -> Option<String> {
    Some(match operation {
        "login" => json!({ "token": token }).to_string(),
        "setGain" => r#"{"db": -3}"#.into(),
        "setMute" => r#"{"muted": false}"#.into(),
        "setPan" => r#"{"pan": 0.25}"#.into(),
        "selectSource" => r#"{"source": "auto"}"#.into(),
        "startPull" => r#"{"url": "srt://127.0.0.1:9?mode=caller", "name": "probe"}"#.into(),
        "resetState" => r#"{"target": "all"}"#.into(),
        _ => return None,
    })
}

#[test]
fn the_api_needs_a_credential_csrf_and_its_own_origin_and_answers_every_documented_route() {
    let node = Node::start("api", "");

    // The document validates as OpenAPI 3.0.
    let doc_file = node.dir.join("openapi.json");
    std::fs::write(&doc_file, airlift_ctl::api::OPENAPI).unwrap();
    let venv = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"))
        .join("airlift/venv/bin/openapi-spec-validator");
    let out = Command::new(&venv)
        .arg(&doc_file)
        .output()
        .unwrap_or_else(|e| panic!("{} ({e}): run `scripts/install-deps --test`", venv.display()));
    assert!(out.status.success(), "OpenAPI document invalid: {}", text(&out));

    let routes = documented_routes();
    assert!(routes.len() >= 25, "{routes:?}");
    // Without a credential: 401 everywhere (login with a wrong token too).
    for (method, path, op) in &routes {
        let body = if op == "login" {
            Some(r#"{"token": "wrong-token-0123456789"}"#.to_string())
        } else {
            body_for(op, "")
        };
        let (code, answer) = node.api_from("127.0.0.3", method, path, &[], body.as_deref());
        assert_eq!(code, 401, "{method} {path} without a credential: {answer}");
        assert!(answer.contains("\"Unauthorized\""), "{method} {path}: JSON error body: {answer}");
    }

    // State-changing requests with a session need the CSRF token and this origin.
    let (code, login) =
        node.api("POST", "/api/v1/login", &[], Some(&json!({ "token": node.token }).to_string()));
    assert_eq!(code, 200, "{login}");
    let csrf = serde_json::from_str::<Value>(&login).unwrap()["csrf"].as_str().unwrap().to_string();
    let (cookie, csrf2) = node.login_with_cookie();
    assert_ne!(csrf, csrf2, "each login is its own session");
    let before = node.state_rows();
    let mute = "/api/v1/flows/main/inputs/noise/mute";
    let on = Some(r#"{"muted": true}"#);
    let csrf_h = format!("X-CSRF-Token: {csrf2}");
    let own = format!("Origin: http://127.0.0.1:{}", node.http);
    for (why, headers) in [
        ("no CSRF token", vec![cookie.as_str()]),
        ("a wrong CSRF token", vec![cookie.as_str(), "X-CSRF-Token: 00"]),
        ("another session's CSRF token", vec![cookie.as_str(), &format!("X-CSRF-Token: {csrf}")]),
        ("another origin", vec![cookie.as_str(), csrf_h.as_str(), "Origin: http://evil.example"]),
        (
            "a cross-site fetch",
            vec![cookie.as_str(), csrf_h.as_str(), own.as_str(), "Sec-Fetch-Site: cross-site"],
        ),
    ] {
        let (code, answer) = node.api("PUT", mute, &headers, on);
        assert_eq!(code, 403, "{why}: {answer}");
    }
    assert_eq!(node.state_rows(), before, "refused requests changed nothing");
    let (code, answer) = node.api("PUT", mute, &[&cookie, &csrf_h, &own], on);
    assert_eq!(code, 204, "{answer}");
    assert!(node.state_rows().contains("\"muted\""), "the accepted one did");
    // Logged out: the cookie is worth nothing.
    let (code, _) = node.api("POST", "/api/v1/logout", &[&cookie, &csrf_h], None);
    assert_eq!(code, 204);
    let (code, _) = node.api("GET", "/api/v1/flows", &[&cookie], None);
    assert_eq!(code, 401);

    // With the bearer token every documented route answers (no 405, no
    // unknown route; a refusal is a named JSON error).
    for (method, path, op) in &routes {
        let (code, answer) = if op == "events" {
            let out = Command::new("curl")
                .args([
                    "-s",
                    "-N",
                    "--max-time",
                    "2",
                    "-H",
                    &node.bearer(),
                    "-w",
                    "\n%{http_code} %{content_type}",
                ])
                .arg(node.url(path))
                .output()
                .unwrap();
            let all = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(all.contains("event: hello") && all.contains("text/event-stream"), "events: {all}");
            (200, all)
        } else {
            node.api(method, path, &[&node.bearer()], body_for(op, &node.token).as_deref())
        };
        assert!(code != 405 && code != 401 && code != 0, "{method} {path}: {code} {answer}");
        assert!(!answer.contains("no such route"), "{method} {path} is documented but not served");
        if code >= 400 {
            let e: Value =
                serde_json::from_str(&answer).unwrap_or_else(|_| panic!("{method} {path}: {answer}"));
            assert!(e["error"].is_string() && e["message"].is_string(), "{method} {path}: {answer}");
        }
    }
    let (code, answer) = node.api("GET", "/api/v1/flows/nope", &[&node.bearer()], None);
    assert_eq!((code, answer.contains("\"NotFound\"")), (404, true), "{answer}");
    let (code, answer) =
        node.api("PUT", "/api/v1/flows/main/inputs/noise/gain", &[&node.bearer()], Some(r#"{"db": 99}"#));
    assert_eq!((code, answer.contains("\"InvalidArgument\"")), (400, true), "{answer}");
    let big = format!("{{\"db\": 1, \"pad\": \"{}\"}}", "x".repeat(100_000));
    let (code, _) = node.api("PUT", "/api/v1/flows/main/inputs/noise/gain", &[&node.bearer()], Some(&big));
    assert_eq!(code, 413, "a body over 64 KiB");

    // Every D-Bus method that changes state has an API route (the document
    // names it in the route's description).
    let xml = node.busctl(&["introspect", "--xml-interface", "org.airlift.Node1", "/org/airlift/Node1"]);
    let read_only = ["ListFlows", "ListPulls", "Status", "RuntimeState", "ListSegments", "ListUploads"];
    let doc = airlift_ctl::api::OPENAPI;
    let node1 = xml
        .split("<interface name=\"org.airlift.Node1\">")
        .nth(1)
        .and_then(|rest| rest.split("</interface>").next())
        .unwrap_or_else(|| panic!("no org.airlift.Node1 in {xml}"));
    let mut methods = 0;
    for m in node1.split("<method name=\"").skip(1).filter_map(|s| s.split('"').next()) {
        if read_only.contains(&m) {
            continue;
        }
        methods += 1;
        assert!(doc.contains(&format!("The D-Bus method `{m}`")), "D-Bus method {m} has no API route");
    }
    assert!(methods >= 10, "{xml}");

    // 1000 wrong logins from one address: 5 are judged, the rest refused
    // unread — and then the right token from that address is refused too,
    // while another address gets in.
    let mut judged = 0;
    let mut limited = 0;
    for _ in 0..1000 {
        let (code, _) = node.api_from(
            "127.0.0.2",
            "POST",
            "/api/v1/login",
            &[],
            Some(r#"{"token": "guess-0123456789abcdef"}"#),
        );
        match code {
            401 => judged += 1,
            429 => limited += 1,
            other => panic!("wrong login answered {other}"),
        }
    }
    assert!(judged <= 5 && limited >= 995, "{judged} judged, {limited} limited");
    let right = json!({ "token": node.token }).to_string();
    let (code, _) = node.api_from("127.0.0.2", "POST", "/api/v1/login", &[], Some(&right));
    assert_eq!(code, 429, "blocked address");
    let (code, _) = node.api("POST", "/api/v1/login", &[], Some(&right));
    assert_eq!(code, 200, "other addresses are not blocked");
}

#[test]
fn an_expired_session_is_refused_and_changes_nothing() {
    let node = Node::start("expiry", "session_minutes = 1");
    let (cookie, csrf) = node.login_with_cookie();
    let csrf = format!("X-CSRF-Token: {csrf}");
    let (code, _) = node.api("GET", "/api/v1/flows", &[&cookie], None);
    assert_eq!(code, 200, "the fresh session works");
    let before = node.state_rows();
    std::thread::sleep(Duration::from_secs(61));
    let (code, answer) = node.api(
        "PUT",
        "/api/v1/flows/main/inputs/noise/mute",
        &[&cookie, &csrf],
        Some(r#"{"muted": true}"#),
    );
    assert_eq!(code, 401, "{answer}");
    assert!(answer.contains("expired"), "{answer}");
    assert_eq!(node.state_rows(), before, "nothing changed");
}
