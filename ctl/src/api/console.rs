//! The web console: HTML, CSS and JS modules built into the binary (no
//! build step, nothing fetched from elsewhere), served with a strict
//! Content-Security-Policy. The page itself is public; everything it shows
//! comes from the guarded API.

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Api;

/// The console's files: name, content type, contents.
const ASSETS: &[(&str, &str, &str)] = &[
    ("index.html", "text/html; charset=utf-8", include_str!("../../console/index.html")),
    ("app.js", "text/javascript; charset=utf-8", include_str!("../../console/app.js")),
    ("api.js", "text/javascript; charset=utf-8", include_str!("../../console/api.js")),
    ("dom.js", "text/javascript; charset=utf-8", include_str!("../../console/dom.js")),
    ("flows.js", "text/javascript; charset=utf-8", include_str!("../../console/flows.js")),
    ("meters.js", "text/javascript; charset=utf-8", include_str!("../../console/meters.js")),
    ("panels.js", "text/javascript; charset=utf-8", include_str!("../../console/panels.js")),
    ("style.css", "text/css; charset=utf-8", include_str!("../../console/style.css")),
];

/// What the page may load and where it may connect: only this origin.
pub const CSP: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; \
                       script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
                       frame-ancestors 'none'";

fn asset(name: &str) -> Response {
    let Some((_, kind, body)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return super::ApiError::not_found("no such file").into_response();
    };
    let mut r = (StatusCode::OK, *body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

async fn index() -> Response {
    asset("index.html")
}

async fn file(Path(name): Path<String>) -> Response {
    if name == "index.html" {
        super::ApiError::not_found("no such file").into_response()
    } else {
        asset(&name)
    }
}

/// `/` and `/console/{file}`.
pub(super) fn routes() -> Router<Arc<Api>> {
    Router::new().route("/", get(index)).route("/console/{file}", get(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_names_is_served() {
        let (_, _, html) = ASSETS[0];
        for name in ["/console/app.js", "/console/style.css"] {
            assert!(html.contains(name), "index.html loads {name}");
        }
        // Every module imported by a module is built in.
        for (_, _, body) in ASSETS.iter().filter(|(n, _, _)| n.ends_with(".js")) {
            for import in body.split("from '").skip(1).chain(body.split("from \"").skip(1)) {
                let target = import.split(['\'', '"']).next().unwrap_or_default();
                let name = target.trim_start_matches("./").trim_start_matches("/console/");
                assert!(ASSETS.iter().any(|(n, _, _)| *n == name), "{target} is imported but not built in");
            }
        }
        for (_, _, body) in ASSETS {
            assert!(
                !body.contains("http://") && !body.contains("https://"),
                "nothing fetched from elsewhere"
            );
        }
        for (_, _, body) in ASSETS.iter().filter(|(n, _, _)| n.ends_with(".html")) {
            assert!(
                !body.contains("<script>") && !body.contains(" style=\""),
                "no inline script or style (CSP)"
            );
        }
    }
}
