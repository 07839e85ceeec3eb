//! A real headless Chromium driven through `chromedriver` (WebDriver over
//! plain loopback HTTP), for tests of the server-rendered dashboard.
//!
//! `chromedriver` runs in its own process group, so dropping [`Browser`]
//! (also on a failed assertion) ends it and the Chromium it started.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver child in its own process group; the whole group is
/// killed on drop.
struct Driver {
    child: Child,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let pgid = self.child.id();
        // The negative id names the group this child leads: chromedriver
        // and the browser processes it started, nothing else.
        let _ = Command::new("kill")
            .args(["-9", "--", &format!("-{pgid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Browser {
    pub client: Client,
    /// Where [`Browser::shot`] writes PNGs.
    pub shots: PathBuf,
    // Dropped after `client`: the driver outlives the session.
    _driver: Driver,
    _profile: tempfile::TempDir,
}

/// False (after saying so) when `OUTPOST_SKIP_BROWSER=1`; panics with
/// the install command when Chromium or chromedriver is missing.
pub fn available() -> bool {
    if std::env::var("OUTPOST_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!("\n!!!!! SKIPPING the browser test: OUTPOST_SKIP_BROWSER=1 !!!!!\n");
        return false;
    }
    for p in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(p).is_file(),
            "{p} is missing: install Chromium and its driver with \
             `apt-get install chromium chromium-driver` (CI installs them), \
             or set OUTPOST_SKIP_BROWSER=1 to skip this test"
        );
    }
    true
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `$CARGO_TARGET_DIR/screenshots`, else `target/screenshots` in the
/// workspace.
pub fn screenshot_dir() -> PathBuf {
    let base = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
    };
    base.join("screenshots")
}

fn spawn_driver() -> (Driver, u16) {
    // The port is free a moment ago; another process taking it in
    // between is retried.
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port();
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {CHROMEDRIVER}: {e}"));
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let driver = Driver { child };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.contains("started successfully") => return (driver, port),
                Ok(l) => last = l,
                Err(_) => break,
            }
        }
    }
    panic!("chromedriver did not start; last line: {last:?}");
}

impl Browser {
    /// Starts chromedriver and a fresh headless Chromium session.
    pub async fn start() -> Browser {
        Self::start_with(&[]).await
    }

    /// [`Browser::start`] with extra Chromium flags.
    pub async fn start_with(extra: &[&str]) -> Browser {
        let (driver, port) = spawn_driver();
        let profile = tempfile::tempdir().unwrap();
        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1280,900".into(),
            // Site hosts are `<project>.localhost`; make sure they reach
            // the edge on this machine whatever the resolver says.
            "--host-resolver-rules=MAP *.localhost 127.0.0.1".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": CHROMIUM, "args": args }),
        );
        // Confirmation dialogs are handled explicitly by the test; one
        // left open fails the next command instead of being answered.
        caps.insert("unhandledPromptBehavior".into(), json!("ignore"));
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("starting a Chromium session through chromedriver: {e}"));
        let shots = screenshot_dir();
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            client,
            shots,
            _driver: driver,
            _profile: profile,
        }
    }

    /// Ends the WebDriver session (the driver is killed on drop).
    pub async fn close(self) {
        let Browser {
            client,
            _driver,
            _profile,
            ..
        } = self;
        let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// The current URL's path (and query).
    pub async fn path(&self) -> String {
        let u = self.client.current_url().await.unwrap();
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        }
    }

    /// Polls `check` until it returns Some, or panics with `what` and the
    /// page's URL and text after `secs`.
    pub async fn until<T, F, Fut>(&self, secs: u64, what: &str, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        if let Some(v) = crate::support::poll(secs, check).await {
            return v;
        }
        let url = self.client.current_url().await.map(|u| u.to_string());
        let text = self.body_text().await;
        panic!("timed out after {secs}s waiting for {what}; at {url:?}; page text:\n{text}");
    }

    /// Waits for a success message containing `text`.
    pub async fn wait_flash(&self, text: &str) {
        self.until(20, &format!("the message {text:?}"), || async {
            let t = self.try_text(".flash-success").await?;
            t.contains(text).then_some(())
        })
        .await
    }

    /// Waits for the browser to be at `path` (exact, query ignored).
    pub async fn wait_path(&self, path: &str) {
        self.until(20, &format!("the page {path}"), || async {
            let u = self.client.current_url().await.ok()?;
            (u.path() == path && self.ready().await).then_some(())
        })
        .await
    }

    /// Waits for a path starting with `prefix`; returns the full path.
    pub async fn wait_path_prefix(&self, prefix: &str) -> String {
        self.until(20, &format!("a page under {prefix}"), || async {
            let u = self.client.current_url().await.ok()?;
            (u.path().starts_with(prefix) && self.ready().await).then(|| u.path().to_string())
        })
        .await
    }

    async fn ready(&self) -> bool {
        matches!(
            self.client.execute("return document.readyState", vec![]).await,
            Ok(Value::String(s)) if s == "complete"
        )
    }

    /// Waits for an element matching `css` to exist.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.until(20, &format!("element {css}"), || async {
            self.client.find(Locator::Css(css)).await.ok()
        })
        .await
    }

    pub async fn exists(&self, css: &str) -> bool {
        self.client
            .find_all(Locator::Css(css))
            .await
            .is_ok_and(|v| !v.is_empty())
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    /// The text of the first element matching `css`, if there is one now.
    pub async fn try_text(&self, css: &str) -> Option<String> {
        let e = self.client.find(Locator::Css(css)).await.ok()?;
        e.text().await.ok()
    }

    /// The visible text of the whole page.
    pub async fn body_text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(b) => b.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Replaces the value of the input matching `css`.
    pub async fn fill(&self, css: &str, value: &str) {
        let e = self.find(css).await;
        e.clear().await.unwrap();
        e.send_keys(value).await.unwrap();
    }

    pub async fn select(&self, css: &str, value: &str) {
        self.find(css)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("choosing {value:?} in {css}: {e}"));
    }

    pub async fn click(&self, css: &str) {
        // The page may be replaced between finding the element and
        // clicking it (a redirect finishing, a script rendering): a stale
        // element is found again, a few times.
        // The dashboard scrolls smoothly (unless the user prefers reduced
        // motion), so a click that WebDriver scrolls to may land while the
        // page still moves and hit something else: the element is brought
        // to the middle at once first, and a covered click is tried again.
        let mut tries = 0;
        loop {
            let element = self.find(css).await;
            if let Ok(arg) = serde_json::to_value(&element) {
                let _ = self
                    .client
                    .execute(
                        "arguments[0].scrollIntoView({block: 'center', inline: 'center', behavior: 'instant'})",
                        vec![arg],
                    )
                    .await;
            }
            match element.click().await {
                Ok(_) => return,
                Err(e)
                    if tries < 5
                        && (e.to_string().contains("stale element")
                            || e.to_string().contains("click intercepted")) =>
                {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(e) => panic!("clicking {css}: {e}"),
            }
        }
    }

    /// Clicks a button that asks `confirm()` first, checks the question
    /// contains `expect`, and accepts it.
    pub async fn click_confirm(&self, css: &str, expect: &str) {
        let e = self.find(css).await;
        // With the dialog open, the click may report it rather than
        // succeed; either way the dialog is answered below.
        let _ = e.click().await;
        let text = self
            .until(
                10,
                &format!("a confirmation after clicking {css}"),
                || async { self.client.get_alert_text().await.ok() },
            )
            .await;
        assert!(
            text.contains(expect),
            "confirmation {text:?} does not mention {expect:?}"
        );
        self.client.accept_alert().await.unwrap();
    }

    /// Presses Enter in the input matching `css` (submitting its form the
    /// way a keyboard user does), checks the confirmation it asks
    /// contains `expect`, and accepts it.
    pub async fn enter_confirm(&self, css: &str, expect: &str) {
        let _ = self.find(css).await.send_keys("\u{E007}").await;
        let text = self
            .until(
                10,
                &format!("a confirmation after Enter in {css}"),
                || async { self.client.get_alert_text().await.ok() },
            )
            .await;
        assert!(
            text.contains(expect),
            "confirmation {text:?} does not mention {expect:?}"
        );
        self.client.accept_alert().await.unwrap();
    }

    /// Saves a PNG of the whole page (the window grows to the page's
    /// height for the shot) as `<shots>/<name>.png`.
    pub async fn shot(&self, name: &str) -> PathBuf {
        // How much taller the page is than the viewport.
        let measure = "return Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0) - window.innerHeight";
        for _ in 0..3 {
            let Ok(v) = self.client.execute(measure, vec![]).await else {
                break;
            };
            let extra = v.as_i64().unwrap_or(0);
            if extra <= 0 {
                break;
            }
            let (_, height) = self.client.get_window_size().await.unwrap_or((1280, 900));
            let h = (height as i64 + extra).clamp(900, 5000) as u32;
            if self.client.set_window_size(1280, h).await.is_err() || h == 5000 {
                break;
            }
        }
        let png = self.client.screenshot().await.unwrap();
        let _ = self.client.set_window_size(1280, 900).await;
        assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
        let p = self.shots.join(format!("{name}.png"));
        std::fs::write(&p, png).unwrap();
        p
    }
}
