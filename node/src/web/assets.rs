//! The page, embedded in the binary: HTML, CSS and ES modules served as they are, with no
//! build step and nothing loaded from elsewhere; and the headers every answer carries.

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Its path on the server.
    pub path: &'static str,
    /// Its content type.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static str,
}

/// Every file of the page. The same in every copy of ipm: they hold no data.
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("assets/index.html"),
    },
    Asset {
        path: "/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("assets/style.css"),
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/app.js"),
    },
    Asset {
        path: "/chat.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/chat.js"),
    },
    Asset {
        path: "/setup.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/setup.js"),
    },
    Asset {
        path: "/dom.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/dom.js"),
    },
];

/// The embedded file at `path`.
pub fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// What the page may load and run: only its own scripts, styles and socket; no inline
/// script, no frame, no form posted elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// Headers added to every answer.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_runs_no_inline_script() {
        for asset in ASSETS {
            for outside in ["http://", "https://", "//cdn", "@import url("] {
                assert!(
                    !asset.body.contains(outside),
                    "{} names {outside}",
                    asset.path
                );
            }
            assert!(!asset.body.contains("innerHTML"), "{}", asset.path);
        }
        let index = find("/").map(|a| a.body).unwrap_or_default();
        assert!(!index.contains("<script>"));
        assert!(index.contains(r#"<script type="module" src="/app.js"></script>"#));
    }
}
