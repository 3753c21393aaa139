//! Who may talk to the web UI: the token kept in the data dir, and the Host and Origin checks
//! that keep other sites (and DNS names rebound to loopback) away from it.

use std::{io, path::Path};

use rand::RngCore;

/// Bytes of randomness in a token (shown as twice as many hex digits).
const TOKEN_BYTES: usize = 32;

/// The file of the data dir holding the token (mode 0600).
pub const TOKEN_FILE: &str = "web-token";

/// The secret a page must show on every request and socket.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// The token kept in `dir`, or a new random one written there (mode 0600) when there is
    /// none or it is not a token.
    pub fn load_or_create(dir: &Path) -> io::Result<Self> {
        let path = dir.join(TOKEN_FILE);
        if let Ok(text) = std::fs::read_to_string(&path) {
            let text = text.trim();
            if text.len() == TOKEN_BYTES * 2 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(Self(text.to_owned()));
            }
        }
        let token = Self::random();
        crate::store::data_dir::write_atomic(&path, token.0.as_bytes(), true)?;
        Ok(token)
    }

    /// A new random token.
    pub fn random() -> Self {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::thread_rng().fill_bytes(&mut bytes);
        Self(hex::encode(bytes))
    }

    /// The token as it goes into the URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this token, compared in constant time.
    pub fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// Whether a request's `Host` header may reach a server listening on `port`: `localhost` or
/// an IP literal, with that port. A DNS name is refused, so a site whose name is rebound
/// to 127.0.0.1 cannot read the page.
pub fn host_allowed(host: Option<&str>, port: u16) -> bool {
    let Some(host) = host else {
        return false;
    };
    let Some((name, given_port)) = split_host(host) else {
        return false;
    };
    if given_port != Some(port) && !(given_port.is_none() && port == 80) {
        return false;
    }
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

/// Splits `host[:port]` (with `[v6]` brackets) into the name and the port.
fn split_host(host: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = host.strip_prefix('[') {
        let (name, after) = rest.split_once(']')?;
        return match after {
            "" => Some((name, None)),
            port => Some((name, Some(port.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) => Some((name, Some(port.parse().ok()?))),
        None => Some((host, None)),
    }
}

/// Whether a request's `Origin` header is the page's own: absent (not a browser, or a
/// same-origin GET), or exactly `http://<host>`.
pub fn origin_allowed(origin: Option<&str>, host: &str) -> bool {
    match origin {
        None => true,
        Some(origin) => origin
            .strip_prefix("http://")
            .is_some_and(|rest| rest.eq_ignore_ascii_case(host)),
    }
}

/// The token given in a query string (`token=...`), if any.
pub fn token_in_query(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_themselves() {
        let token = Token::random();
        assert!(token.matches(token.as_str()));
        assert!(!token.matches(""));
        assert!(!token.matches(&token.as_str()[1..]));
        assert!(!token.matches(Token::random().as_str()));
        assert_eq!(token.as_str().len(), 64);
    }

    #[test]
    fn the_token_is_kept_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Token::load_or_create(dir.path()).unwrap();
        let again = Token::load_or_create(dir.path()).unwrap();
        assert!(again.matches(first.as_str()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join(TOKEN_FILE), "short").unwrap();
        let fresh = Token::load_or_create(dir.path()).unwrap();
        assert!(!fresh.matches("short"));
    }

    #[test]
    fn hosts_are_ip_literals_or_localhost_with_the_port() {
        assert!(host_allowed(Some("127.0.0.1:7780"), 7780));
        assert!(host_allowed(Some("localhost:7780"), 7780));
        assert!(host_allowed(Some("[::1]:7780"), 7780));
        assert!(host_allowed(Some("192.168.1.5:7780"), 7780));
        assert!(!host_allowed(Some("127.0.0.1:7781"), 7780));
        assert!(!host_allowed(Some("evil.example:7780"), 7780));
        assert!(!host_allowed(Some("127.0.0.1.nip.io:7780"), 7780));
        assert!(!host_allowed(Some("127.0.0.1"), 7780));
        assert!(!host_allowed(Some("[::1"), 7780));
        assert!(!host_allowed(None, 7780));
    }

    #[test]
    fn only_the_page_itself_is_an_allowed_origin() {
        assert!(origin_allowed(None, "127.0.0.1:7780"));
        assert!(origin_allowed(
            Some("http://127.0.0.1:7780"),
            "127.0.0.1:7780"
        ));
        assert!(!origin_allowed(
            Some("http://evil.example"),
            "127.0.0.1:7780"
        ));
        assert!(!origin_allowed(Some("null"), "127.0.0.1:7780"));
        assert!(!origin_allowed(
            Some("https://127.0.0.1:7780"),
            "127.0.0.1:7780"
        ));
        assert!(!origin_allowed(
            Some("http://127.0.0.1:7781"),
            "127.0.0.1:7780"
        ));
    }

    #[test]
    fn the_token_is_read_from_the_query() {
        assert_eq!(token_in_query(Some("a=1&token=abc")), Some("abc"));
        assert_eq!(token_in_query(Some("a=1")), None);
        assert_eq!(token_in_query(None), None);
    }
}
