//! Inline previews of received images: a finished download (its SHA-256 verified) in
//! `downloads/` whose first bytes are a PNG, JPEG, GIF or WebP is served to the page with
//! that image type. The type comes from the bytes, never from the name, and nothing else
//! (SVG, HTML, anything a browser could run) is ever served.

use std::path::Path;

use axum::{
    body::Body,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
};
use tokio::io::AsyncReadExt;

use crate::{
    client::Client,
    store::transfers::{Direction, State},
};

/// Largest image previewed.
pub const MAX_PREVIEW: u64 = 32 << 20;
/// Bytes the image types are told apart by.
const HEAD: usize = 12;
/// Bytes read at once while serving.
const READ_LEN: usize = 64 * 1024;

/// The image type of a file starting with `head`, if it is one the page previews.
pub fn image_type(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if head.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if head.len() >= HEAD && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// Why there is no preview.
#[derive(Debug, thiserror::Error)]
enum NoPreview {
    #[error("no finished download {0}")]
    NoSuchFile(String),
    #[error("not an image shown inline (PNG, JPEG, GIF or WebP)")]
    NotAnImage,
    #[error("too large to preview")]
    TooLarge,
    #[error("cannot read the file: {0}")]
    Read(#[from] std::io::Error),
    #[error("the node is not running")]
    NotRunning,
}

impl NoPreview {
    fn status(&self) -> StatusCode {
        match self {
            NoPreview::NoSuchFile(_) => StatusCode::NOT_FOUND,
            NoPreview::NotAnImage => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            NoPreview::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            NoPreview::Read(_) | NoPreview::NotRunning => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The preview of transfer `id` (as `/transfers` prints it), or why there is none.
pub async fn serve(client: Option<Client>, downloads: &Path, id: &str) -> Response {
    match preview(client, downloads, id).await {
        Ok(response) => response,
        Err(e) => (e.status(), e.to_string()).into_response(),
    }
}

async fn preview(
    client: Option<Client>,
    downloads: &Path,
    id: &str,
) -> Result<Response, NoPreview> {
    let client = client.ok_or(NoPreview::NotRunning)?;
    let transfers = client
        .transfers()
        .await
        .map_err(|_| NoPreview::NotRunning)?;
    let path = transfers
        .into_iter()
        .filter(|t| t.id.to_string() == id && t.direction == Direction::Incoming)
        .find_map(|t| match t.state {
            State::Done { path } => Some(path),
            _ => None,
        })
        .ok_or_else(|| NoPreview::NoSuchFile(id.to_owned()))?;
    // Only what the node itself put in downloads/, not what a link there points to.
    let path = tokio::fs::canonicalize(&path).await?;
    let downloads = tokio::fs::canonicalize(downloads).await?;
    if !path.starts_with(&downloads) {
        return Err(NoPreview::NoSuchFile(id.to_owned()));
    }
    let mut file = tokio::fs::File::open(&path).await?;
    let size = file.metadata().await?.len();
    if size > MAX_PREVIEW {
        return Err(NoPreview::TooLarge);
    }
    let mut head = vec![0u8; HEAD.min(size as usize)];
    file.read_exact(&mut head).await?;
    let kind = image_type(&head).ok_or(NoPreview::NotAnImage)?;
    let rest = futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; READ_LEN];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(buf), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let first = futures::stream::once(async move { Ok::<_, std::io::Error>(head) });
    let body = Body::from_stream(futures::StreamExt::chain(first, rest));
    Ok((
        [
            (header::CONTENT_TYPE, kind.to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
            (header::CONTENT_DISPOSITION, "inline".to_owned()),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_known_by_their_bytes_and_nothing_else_passes() {
        assert_eq!(
            image_type(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Some("image/png")
        );
        assert_eq!(
            image_type(&[0xff, 0xd8, 0xff, 0xe0, 0, 0x10]),
            Some("image/jpeg")
        );
        assert_eq!(image_type(b"GIF89a\x01\0\x01\0"), Some("image/gif"));
        assert_eq!(image_type(b"RIFF\x24\0\0\0WEBPVP8 "), Some("image/webp"));
        // Markup a browser would run, whatever the file is called.
        assert_eq!(
            image_type(b"<svg xmlns=\"http://www.w3.org/2000/svg\""),
            None
        );
        assert_eq!(image_type(b"<!doctype html><script>"), None);
        assert_eq!(image_type(b"RIFF\x24\0\0\0WAVEfmt "), None);
        assert_eq!(image_type(b"\x89PN"), None);
        assert_eq!(image_type(b""), None);
    }
}
