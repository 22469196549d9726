//! Who may use the API and the console: the API token (a file readable by
//! the `airlift` group), sessions made from it at login (an `HttpOnly`,
//! `SameSite=Strict` cookie and a CSRF token), and a limit on wrong tokens
//! per client address. See docs/http-api.md.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, header};

use super::ApiError;

/// The cookie that carries a session.
pub const COOKIE: &str = "airlift_session";
/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Wrong tokens allowed from one address within [`FAILURE_WINDOW`].
pub const FAILURES_ALLOWED: usize = 5;
/// How long a wrong token counts against its address.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Sessions held at once (the oldest goes first beyond that).
const MAX_SESSIONS: usize = 1024;
/// Addresses whose failures are remembered at once.
const MAX_TRACKED: usize = 10_000;

/// Why the API token could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The file cannot be read or created.
    #[error("API token file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds too short a token.
    #[error("API token file {0}: the token is shorter than 16 characters")]
    Short(PathBuf),
    /// Every local user could read the token.
    #[error("API token file {0} is readable by every user: chmod 640 it (owner airlift, group airlift)")]
    WorldReadable(PathBuf),
}

/// `n` random bytes from the kernel, as lowercase hex.
pub fn random_hex(n: usize) -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Reads the API token from `path`, creating the file (mode 0640, 32 random
/// bytes in hex) when it does not exist.
pub fn load_or_create_token(path: &Path) -> Result<String, TokenError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |source| TokenError::Io { path: path.to_path_buf(), source };
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o640).open(path) {
        Ok(mut file) => {
            // Whatever the umask: the airlift group reads it, nobody else.
            file.set_permissions(std::fs::Permissions::from_mode(0o640)).map_err(io)?;
            let token = random_hex(32).map_err(io)?;
            file.write_all(format!("{token}\n").as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            tracing::info!(file = %path.display(), "created the API token for the web console and the HTTP API");
            return Ok(token);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.permissions().mode() & 0o004 != 0 {
        return Err(TokenError::WorldReadable(path.to_path_buf()));
    }
    if meta.len() > 4096 {
        return Err(io(std::io::Error::other("larger than 4 KiB")));
    }
    let text = std::fs::read_to_string(path).map_err(io)?.trim().to_string();
    if text.chars().count() < 16 {
        return Err(TokenError::Short(path.to_path_buf()));
    }
    Ok(text)
}

/// Constant time for equal lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Clone)]
struct Session {
    csrf: String,
    expires: Instant,
    expires_at_ms: i64,
}

/// What a request proved.
#[derive(Debug, Clone)]
pub enum Credential {
    /// The API token as a bearer token (scripts): no CSRF needed, nothing
    /// ambient for another site to borrow.
    Bearer,
    /// A session cookie; carries the session's CSRF token.
    Session {
        /// The session id (the cookie's value).
        id: String,
        /// Its CSRF token.
        csrf: String,
        /// When it ends, ms since the Unix epoch.
        expires_at_ms: i64,
    },
}

/// The token, the sessions and the failure counts.
#[derive(Debug)]
pub struct Auth {
    token: String,
    ttl: Duration,
    /// Cookies get `Secure` (served over TLS).
    secure: bool,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl Auth {
    /// Sessions made from `token` last `ttl`.
    pub fn new(token: String, ttl: Duration, secure: bool) -> Self {
        Self { token, ttl, secure, sessions: Default::default(), failures: Default::default() }
    }

    /// Whether `ip` has used up its wrong tokens.
    pub fn blocked(&self, ip: IpAddr) -> bool {
        let Ok(mut f) = self.failures.lock() else { return true };
        let now = Instant::now();
        match f.get_mut(&ip) {
            Some(q) => {
                while q.front().is_some_and(|t| now.duration_since(*t) >= FAILURE_WINDOW) {
                    q.pop_front();
                }
                q.len() >= FAILURES_ALLOWED
            }
            None => false,
        }
    }

    fn failed(&self, ip: IpAddr) {
        let Ok(mut f) = self.failures.lock() else { return };
        let now = Instant::now();
        if f.len() >= MAX_TRACKED {
            f.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < FAILURE_WINDOW));
        }
        let q = f.entry(ip).or_default();
        q.push_back(now);
        while q.len() > FAILURES_ALLOWED {
            q.pop_front();
        }
    }

    /// Checks a presented token; a wrong one counts against `ip`.
    pub fn check_token(&self, ip: IpAddr, presented: &str) -> Result<(), ApiError> {
        if self.blocked(ip) {
            return Err(ApiError::too_many("too many wrong tokens from this address; wait a minute"));
        }
        if same(presented.as_bytes(), self.token.as_bytes()) {
            Ok(())
        } else {
            self.failed(ip);
            tracing::warn!(%ip, "HTTP API: wrong token");
            Err(ApiError::unauthorized("wrong token"))
        }
    }

    /// A new session: its cookie's value and the credential.
    pub fn login(&self) -> Result<Credential, ApiError> {
        let id = random_hex(32).map_err(|e| ApiError::failed(format!("no randomness: {e}")))?;
        let csrf = random_hex(32).map_err(|e| ApiError::failed(format!("no randomness: {e}")))?;
        let expires_at_ms = crate::recent::now_ms() + self.ttl.as_millis() as i64;
        let session = Session { csrf: csrf.clone(), expires: Instant::now() + self.ttl, expires_at_ms };
        if let Ok(mut s) = self.sessions.lock() {
            let now = Instant::now();
            s.retain(|_, v| v.expires > now);
            if s.len() >= MAX_SESSIONS
                && let Some(oldest) = s.iter().min_by_key(|(_, v)| v.expires).map(|(k, _)| k.clone())
            {
                s.remove(&oldest);
            }
            s.insert(id.clone(), session);
        }
        Ok(Credential::Session { id, csrf, expires_at_ms })
    }

    /// Ends a session.
    pub fn logout(&self, id: &str) {
        if let Ok(mut s) = self.sessions.lock() {
            s.remove(id);
        }
    }

    /// The `Set-Cookie` value that carries session `id`.
    pub fn cookie(&self, id: &str) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}", self.ttl.as_secs())
    }

    /// The `Set-Cookie` value that removes the session cookie.
    pub fn clear_cookie(&self) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}")
    }

    /// What the request proves: a bearer token or a live session.
    pub fn credential(&self, ip: IpAddr, headers: &HeaderMap) -> Result<Credential, ApiError> {
        if let Some(auth) = headers.get(header::AUTHORIZATION) {
            let presented = auth.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
            self.check_token(ip, presented)?;
            return Ok(Credential::Bearer);
        }
        let id = session_cookie(headers).ok_or_else(|| {
            ApiError::unauthorized("log in first (or send Authorization: Bearer <API token>)")
        })?;
        let now = Instant::now();
        let Ok(mut sessions) = self.sessions.lock() else {
            return Err(ApiError::failed("session table unavailable"));
        };
        match sessions.get(id) {
            Some(s) if s.expires > now => Ok(Credential::Session {
                id: id.to_string(),
                csrf: s.csrf.clone(),
                expires_at_ms: s.expires_at_ms,
            }),
            Some(_) => {
                sessions.remove(id);
                Err(ApiError::unauthorized("the session has expired; log in again"))
            }
            None => Err(ApiError::unauthorized("no such session; log in again")),
        }
    }
}

/// The session cookie's value, if the request carries one.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// Whether `method` changes something.
pub fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A request from another site is refused: its `Origin` (when sent) must be
/// this server's own, and `Sec-Fetch-Site` (when sent) must say
/// `same-origin` or `none`.
pub fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("");
        if site != "same-origin" && site != "none" {
            return Err(ApiError::forbidden(format!("cross-site request ({site}) refused")));
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
    let origin = origin.to_str().unwrap_or("");
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let own = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|rest| !host.is_empty() && rest == host);
    if own {
        Ok(())
    } else {
        let shown: String = origin.chars().take(100).flat_map(char::escape_default).collect();
        Err(ApiError::forbidden(format!("request from another origin ({shown}) refused")))
    }
}

/// A state-changing request made with a session must carry its CSRF token.
pub fn check_csrf(credential: &Credential, headers: &HeaderMap) -> Result<(), ApiError> {
    match credential {
        Credential::Bearer => Ok(()),
        Credential::Session { csrf, .. } => {
            let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
            if same(sent.as_bytes(), csrf.as_bytes()) {
                Ok(())
            } else {
                Err(ApiError::forbidden("missing or wrong X-CSRF-Token header"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn auth() -> Auth {
        Auth::new("0123456789abcdef0123".into(), Duration::from_secs(60), false)
    }

    #[test]
    fn wrong_tokens_block_the_address_but_not_others() {
        let a = auth();
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..FAILURES_ALLOWED {
            assert_eq!(a.check_token(ip, "nope").unwrap_err().status.as_u16(), 401);
        }
        // Blocked: even the right token is refused now.
        assert_eq!(a.check_token(ip, "0123456789abcdef0123").unwrap_err().status.as_u16(), 429);
        assert!(a.check_token("127.0.0.3".parse().unwrap(), "0123456789abcdef0123").is_ok());
    }

    #[test]
    fn a_session_needs_its_cookie_and_its_csrf_token() {
        let a = auth();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let Credential::Session { id, csrf, .. } = a.login().unwrap() else { panic!() };
        let mut h = HeaderMap::new();
        assert_eq!(a.credential(ip, &h).unwrap_err().status.as_u16(), 401);
        h.insert(header::COOKIE, HeaderValue::from_str(&format!("other=1; {COOKIE}={id}")).unwrap());
        let cred = a.credential(ip, &h).unwrap();
        assert_eq!(check_csrf(&cred, &h).unwrap_err().status.as_u16(), 403);
        h.insert(CSRF_HEADER, HeaderValue::from_str(&csrf).unwrap());
        assert!(check_csrf(&cred, &h).is_ok());
        a.logout(&id);
        assert_eq!(a.credential(ip, &h).unwrap_err().status.as_u16(), 401);
    }

    #[test]
    fn an_expired_session_is_refused() {
        let a = Auth::new("0123456789abcdef0123".into(), Duration::from_millis(1), false);
        let Credential::Session { id, .. } = a.login().unwrap() else { panic!() };
        std::thread::sleep(Duration::from_millis(5));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(&format!("{COOKIE}={id}")).unwrap());
        let e = a.credential("127.0.0.1".parse().unwrap(), &h).unwrap_err();
        assert!(e.message.contains("expired"), "{}", e.message);
    }

    #[test]
    fn other_origins_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:9480"));
        assert!(same_origin(&h).is_ok());
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:9480"));
        assert!(same_origin(&h).is_ok());
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(same_origin(&h).is_err());
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(same_origin(&h).is_err());
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:9480"));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(same_origin(&h).is_err());
    }

    #[test]
    fn a_token_file_is_created_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("airlift-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("api-token");
        let _ = std::fs::remove_file(&p);
        let t = load_or_create_token(&p).unwrap();
        assert_eq!(t.len(), 64);
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(load_or_create_token(&p).unwrap(), t);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(load_or_create_token(&p), Err(TokenError::WorldReadable(_))));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&p, "short\n").unwrap();
        assert!(matches!(load_or_create_token(&p), Err(TokenError::Short(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
