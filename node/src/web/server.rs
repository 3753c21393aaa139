//! The web server: its routes (the embedded page, the socket, file uploads, image previews)
//! behind one guard that checks Host, Origin and the token of every request.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use axum::{
    body::Body,
    extract::{ws::WebSocketUpgrade, Path, Request, State},
    http::{header, HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use futures::StreamExt;
use tokio::{io::AsyncWriteExt, net::TcpListener};

use crate::logic::offers::DISK_MARGIN;
use crate::web::{
    assets,
    auth::{self, Token},
    preview,
    setup::{Door, Phase},
    socket,
    uploads::Uploads,
};

/// Largest file the page may upload to send or share.
pub const MAX_UPLOAD: u64 = 4 << 30;
/// The header carrying the token on HTTP requests (the socket carries it in its query).
pub const TOKEN_HEADER: &str = "x-ipm-token";

/// What every request handler shares.
#[derive(Debug)]
struct Web {
    token: Token,
    port: u16,
    door: Door,
    uploads: Uploads,
    downloads: PathBuf,
}

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The address is taken or not ours.
    #[error("cannot serve the web UI on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The token file could not be written.
    #[error("cannot keep the web UI's token in {}: {source}", path.display())]
    Token {
        /// The data dir.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A bound web server, not yet serving.
#[derive(Debug)]
pub struct WebServer {
    listener: TcpListener,
    web: Arc<Web>,
    addr: SocketAddr,
}

/// How many ports after the default one are tried when it is taken.
const PORT_TRIES: u16 = 20;

impl WebServer {
    /// Binds `addr`; when `next_free` is set and the port is taken, the next ones are tried.
    /// The token lives in `data_dir`; uploads go to its `web-uploads` folder.
    pub async fn bind(
        addr: SocketAddr,
        next_free: bool,
        data_dir: &std::path::Path,
        door: Door,
    ) -> Result<Self, WebError> {
        let token = Token::load_or_create(data_dir).map_err(|source| WebError::Token {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let tries = if next_free && addr.port() != 0 {
            PORT_TRIES
        } else {
            1
        };
        let mut last = None;
        for offset in 0..tries {
            let mut at = addr;
            at.set_port(addr.port().saturating_add(offset));
            match TcpListener::bind(at).await {
                Ok(listener) => {
                    let addr = listener
                        .local_addr()
                        .map_err(|source| WebError::Bind { addr: at, source })?;
                    let web = Arc::new(Web {
                        token,
                        port: addr.port(),
                        door,
                        uploads: Uploads::new(data_dir.join("web-uploads")),
                        downloads: data_dir.join("downloads"),
                    });
                    return Ok(Self {
                        listener,
                        web,
                        addr,
                    });
                }
                Err(source) => last = Some(WebError::Bind { addr: at, source }),
            }
        }
        Err(last.unwrap_or(WebError::Bind {
            addr,
            source: std::io::ErrorKind::AddrInUse.into(),
        }))
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to open, with the token in its fragment (never sent over the network).
    pub fn url(&self) -> String {
        let host = match self.addr.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        format!(
            "http://{host}:{}/#token={}",
            self.addr.port(),
            self.web.token.as_str()
        )
    }

    /// Serves until the process ends; once the node runs, keeps `web-uploads/` clean.
    pub async fn serve(self) {
        let web = self.web.clone();
        tokio::spawn(async move {
            let mut phase = web.door.phase.clone();
            let client = loop {
                if let Phase::Running(client) = &*phase.borrow_and_update() {
                    break client.clone();
                }
                if phase.changed().await.is_err() {
                    return;
                }
            };
            web.uploads.keep_clean(client).await;
        });
        let router = Router::new()
            .route("/ws", get(open_socket))
            .route("/api/upload", post(upload))
            .route("/api/preview/{transfer}", get(preview_image))
            .fallback(get(asset))
            .layer(middleware::from_fn_with_state(self.web.clone(), guard))
            .with_state(self.web);
        if let Err(e) = axum::serve(self.listener, router).await {
            tracing::warn!("the web UI stopped: {e}");
        }
    }
}

/// Refuses a request with a wrong Host, a foreign Origin, or (but for the page's own files,
/// the same in every copy of ipm) without the token; adds the security headers to the rest.
async fn guard(State(web): State<Arc<Web>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !auth::host_allowed(host, web.port) {
        return refuse(
            StatusCode::FORBIDDEN,
            "wrong Host: open the URL ipm printed",
        );
    }
    let host = host.unwrap_or_default();
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if !auth::origin_allowed(origin, host) {
        return refuse(
            StatusCode::FORBIDDEN,
            "requests from other sites are refused",
        );
    }
    let is_asset =
        request.method() == axum::http::Method::GET && assets::find(request.uri().path()).is_some();
    if !is_asset {
        let given = headers
            .get(TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .or_else(|| auth::token_in_query(request.uri().query()));
        if !given.is_some_and(|t| web.token.matches(t)) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "no valid token: open the URL ipm printed, with its #token=",
            );
        }
    }
    let mut response = next.run(request).await;
    for (name, value) in assets::SECURITY_HEADERS {
        response
            .headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
    response
}

fn refuse(status: StatusCode, why: &'static str) -> Response {
    let mut response = (status, why).into_response();
    for (name, value) in assets::SECURITY_HEADERS {
        response
            .headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
    response
}

async fn asset(request: Request) -> Response {
    match assets::find(request.uri().path()) {
        Some(asset) => ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response(),
        None => (StatusCode::NOT_FOUND, "no such page").into_response(),
    }
}

async fn open_socket(State(web): State<Arc<Web>>, upgrade: WebSocketUpgrade) -> Response {
    let door = web.door.clone();
    upgrade
        .max_message_size(socket::MAX_PAGE_MESSAGE)
        .on_upgrade(move |ws| socket::serve(ws, door))
}

/// The inline preview of a received image (see [`preview`]).
async fn preview_image(State(web): State<Arc<Web>>, Path(transfer): Path<String>) -> Response {
    let client = match &*web.door.phase.borrow() {
        Phase::Running(client) => Some(client.clone()),
        _ => None,
    };
    preview::serve(client, &web.downloads, &transfer).await
}

/// Stores a file the page sends (its name in `?name=`) and answers its path, for
/// `/send-file` and `/share`.
async fn upload(State(web): State<Arc<Web>>, request: Request) -> Response {
    let name = request
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("name=")))
        .map(percent_decode)
        .map(|n| clean_file_name(&n))
        .unwrap_or_else(|| "file".to_owned());
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match store_upload(&web, &name, declared, request.into_body()).await {
        Ok(path) => (
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "path": path }).to_string(),
        )
            .into_response(),
        Err(e @ UploadError::NoSpace { .. }) => {
            (StatusCode::INSUFFICIENT_STORAGE, e.to_string()).into_response()
        }
        Err(e @ UploadError::TooLarge) => {
            (StatusCode::PAYLOAD_TOO_LARGE, e.to_string()).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// Why the page's upload was not stored; nothing of it is left behind.
#[derive(Debug, thiserror::Error)]
enum UploadError {
    /// Larger than [`MAX_UPLOAD`].
    #[error("files above {} GiB cannot be sent", MAX_UPLOAD >> 30)]
    TooLarge,
    /// The declared size does not fit on the disk, the margin left over.
    #[error(
        "not enough disk space for this file: it needs {} MiB and {} MiB must stay free, {} MiB are free",
        mib(*.size), mib(DISK_MARGIN), mib(*.free)
    )]
    NoSpace {
        /// The declared size.
        size: u64,
        /// Bytes free.
        free: u64,
    },
    /// The page stopped sending.
    #[error("the upload was cut: {0}")]
    Cut(axum::Error),
    /// The file could not be written (a full disk, among others).
    #[error("cannot store the upload: {0}")]
    Store(#[from] std::io::Error),
}

/// Bytes in MiB, rounded up.
fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(1024 * 1024)
}

/// Stores the upload in a fresh folder; a declared size is checked against the limit and
/// the free space before the body is read (so the page is not told to go on), and a failed
/// upload leaves nothing behind.
async fn store_upload(
    web: &Web,
    name: &str,
    declared: Option<u64>,
    body: Body,
) -> Result<String, UploadError> {
    if declared.is_some_and(|size| size > MAX_UPLOAD) {
        return Err(UploadError::TooLarge);
    }
    let name_of_folder = Token::random()
        .as_str()
        .get(..16)
        .unwrap_or("upload")
        .to_owned();
    // A few small file-system calls, made here: the page waits for them anyway.
    let dir = web.uploads.new_folder(&name_of_folder)?;
    let stored = match declared {
        Some(size) => match crate::store::data_dir::free_space(&dir) {
            Ok(free) if size.saturating_add(DISK_MARGIN) > free => {
                Err(UploadError::NoSpace { size, free })
            }
            _ => write_upload(&dir.join(name), body).await,
        },
        None => write_upload(&dir.join(name), body).await,
    };
    if stored.is_err() {
        let _ = tokio::fs::remove_dir_all(&dir).await;
    }
    stored
}

/// Writes the body to `path`, at most [`MAX_UPLOAD`] bytes, synced; answers the path.
async fn write_upload(path: &std::path::Path, body: Body) -> Result<String, UploadError> {
    let mut file = tokio::fs::File::create(path).await?;
    let mut stream = body.into_data_stream();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(UploadError::Cut)?;
        total += chunk.len() as u64;
        if total > MAX_UPLOAD {
            return Err(UploadError::TooLarge);
        }
        file.write_all(&chunk).await?;
    }
    file.sync_all().await?;
    Ok(path.display().to_string())
}

/// `%XX` escapes decoded (invalid ones kept as typed), `+` as a space.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A file name safe to create: no folders, no control characters, not hidden, not empty.
fn clean_file_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String = last.chars().filter(|c| !c.is_control()).take(200).collect();
    let clean = clean.trim().trim_start_matches('.').to_owned();
    if clean.is_empty() {
        "file".into()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploaded_names_stay_in_their_folder() {
        assert_eq!(clean_file_name("notes.txt"), "notes.txt");
        assert_eq!(clean_file_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_file_name("a\\b\\c.png"), "c.png");
        assert_eq!(clean_file_name(".."), "file");
        assert_eq!(clean_file_name(".bashrc"), "bashrc");
        assert_eq!(clean_file_name("a\u{1b}[2Jb"), "a[2Jb");
        assert_eq!(clean_file_name(""), "file");
    }

    #[test]
    fn names_are_percent_decoded() {
        assert_eq!(percent_decode("a%20b.txt"), "a b.txt");
        assert_eq!(percent_decode("caf%C3%A9"), "café");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
