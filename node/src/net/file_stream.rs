//! `/ipm/file/2`: one stream per download. The recipient asks for a transfer from the length
//! of its partial file (or for one range of it, when several members share the file: see
//! `net::multi_download`); the sender checks the transfer with the event loop once, then a
//! blocking thread reads the file in large buffers and the stream's flow control paces the
//! copy. Every step is bounded: headers by [`MAX_STREAM_HEADER_LEN`] and [`HEADER_TIMEOUT`],
//! each buffer by [`IDLE_TIMEOUT`], streams waiting for their request by [`Slots`] per peer
//! and in all, and files going out by [`Uploads`]: per peer, per address and network for room
//! shares, in all, with a reserve for direct transfers; a room share held past its lease
//! ends at its next buffer when a request waits for its place (see `logic::upload_slots`).

use std::{
    collections::HashMap,
    future::Future,
    io::{self, Read, Seek, SeekFrom},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream, StreamProtocol};
use libp2p_stream::{Control, IncomingStreams, OpenStreamError};
use tracing::debug;

use ipm_protocol::{
    decode, encode,
    file_stream::{
        header_len, header_prefix, StreamAnswer, StreamRequest, FILE_STREAM_PROTOCOL,
        MAX_STREAM_HEADER_LEN,
    },
    Payload, TransferId,
};

use crate::{
    logic::{
        address_key::AddressKey,
        upload_slots::{Busy, Ticket, UploadClass, UploadLimits, UploadSlots},
    },
    net::download::{FetchError, Opened},
};

/// The protocol of streamed file transfer.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new(FILE_STREAM_PROTOCOL);
/// Bytes read from the file, or from the stream, at once.
pub const BUFFER_LEN: usize = 1024 * 1024;
/// Longest wait for a stream to open (a dial included) or for a header.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest wait for one buffer to be written to, or read from, a stream: a peer that stops
/// reading or writing for that long loses its stream.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// File buffers read ahead of the stream by the sender's reader thread.
const READ_AHEAD: usize = 2;
/// Streams one peer may have open to this node at once (one per download).
pub const STREAMS_PER_PEER: usize = 8;
/// Streams waiting for their request, from everyone: each holds little memory and
/// [`HEADER_TIMEOUT`] at most.
pub const HANDSHAKES: usize = 256;
/// Files served at once, to everyone: each holds `READ_AHEAD + 1` buffers. Some are kept
/// for direct transfers, and one address may hold only a few of the rest (see
/// [`UploadLimits::node`]).
pub const UPLOADS: UploadLimits = UploadLimits::node();
/// Least time between two reports of the bytes sent on one stream.
pub const SENT_REPORT_EVERY: Duration = Duration::from_millis(250);

/// What the event loop says about a request for a file: the file to send and its offered
/// size, or the reason to refuse.
pub type Authorized = Result<(PathBuf, u64), String>;

/// What the event loop grants a stream's request: the file to send, its offered size, the
/// kind of upload it is and the address its peer counts under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The file to send.
    pub path: PathBuf,
    /// Its offered size.
    pub size: u64,
    /// A direct transfer (or a contact's) or a room share.
    pub class: UploadClass,
    /// The address the peer's uploads count under.
    pub address: AddressKey,
}

/// What the event loop says about a stream's request: a [`Grant`], or the reason to refuse.
pub type Granted = Result<Grant, String>;

/// Counted places, per peer and in all; a [`Slot`] gives its place back when dropped.
#[derive(Clone, Debug)]
pub struct Slots {
    inner: Arc<Mutex<SlotCounts>>,
    per_peer: usize,
    total: usize,
}

#[derive(Debug, Default)]
struct SlotCounts {
    by_peer: HashMap<PeerId, usize>,
    all: usize,
}

/// One taken place of [`Slots`].
#[derive(Debug)]
pub struct Slot {
    slots: Slots,
    peer: PeerId,
}

impl Slots {
    /// At most `per_peer` places per peer and `total` in all.
    pub fn new(per_peer: usize, total: usize) -> Self {
        Self {
            inner: Arc::default(),
            per_peer,
            total,
        }
    }

    /// A place for `peer`, if one is free.
    pub fn take(&self, peer: PeerId) -> Option<Slot> {
        let mut counts = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if counts.all >= self.total {
            return None;
        }
        let used = counts.by_peer.entry(peer).or_insert(0);
        if *used >= self.per_peer {
            return None;
        }
        *used += 1;
        counts.all += 1;
        Some(Slot {
            slots: self.clone(),
            peer,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.slots.inner.lock().unwrap_or_else(|e| e.into_inner());
        counts.all = counts.all.saturating_sub(1);
        if let Some(used) = counts.by_peer.get_mut(&self.peer) {
            *used = used.saturating_sub(1);
            if *used == 0 {
                counts.by_peer.remove(&self.peer);
            }
        }
    }
}

/// The places of files going out, shared by every stream being served; an [`Upload`] gives
/// its place back when dropped.
#[derive(Clone, Debug)]
pub struct Uploads {
    inner: Arc<Mutex<UploadSlots<PeerId, AddressKey>>>,
}

/// One taken place of [`Uploads`].
#[derive(Debug)]
pub struct Upload {
    uploads: Uploads,
    ticket: Ticket,
}

impl Uploads {
    /// No place taken, within `limits`.
    pub fn new(limits: UploadLimits) -> Self {
        Self {
            inner: Arc::new(Mutex::new(UploadSlots::new(limits))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, UploadSlots<PeerId, AddressKey>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `peer` holds every place one peer may.
    pub fn peer_full(&self, peer: &PeerId) -> bool {
        self.lock().peer_full(peer)
    }

    /// A place for the upload `grant` allows to `peer`, or why there is none.
    pub fn take(&self, peer: PeerId, grant: &Grant) -> Result<Upload, Busy> {
        let now = std::time::Instant::now();
        let ticket = self.lock().take(&peer, &grant.address, grant.class, now)?;
        Ok(Upload {
            uploads: self.clone(),
            ticket,
        })
    }
}

impl Upload {
    /// Whether this upload must end to give its place to a waiting request.
    pub fn must_yield(&self) -> bool {
        self.uploads.lock().must_yield(self.ticket)
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        self.uploads.lock().give_back(self.ticket);
    }
}

/// Writes one length-prefixed header.
async fn write_header<T: Payload>(
    stream: &mut (impl AsyncWrite + Unpin),
    header: &T,
) -> io::Result<()> {
    let bytes = encode(header);
    let prefix = header_prefix(bytes.len())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "header too long"))?;
    stream.write_all(&prefix).await?;
    stream.write_all(&bytes).await?;
    stream.flush().await
}

/// Reads one length-prefixed header, its length checked before anything is allocated.
async fn read_header<T: Payload>(stream: &mut (impl AsyncRead + Unpin)) -> io::Result<T> {
    let invalid = |e: ipm_protocol::DecodeError| io::Error::new(io::ErrorKind::InvalidData, e);
    let mut prefix = [0u8; 2];
    stream.read_exact(&mut prefix).await?;
    let len = header_len(prefix).map_err(invalid)?;
    let mut bytes = vec![0u8; len];
    stream.read_exact(&mut bytes).await?;
    decode(&bytes, MAX_STREAM_HEADER_LEN).map_err(invalid)
}

async fn within<T>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("{what}: timed out")))?
}

/// Asks `peer` for `transfer` from `offset` over a new stream; on success the stream is
/// positioned at the first byte, and exactly `expected` bytes follow.
pub async fn open(
    control: &mut Control,
    peer: PeerId,
    transfer: TransferId,
    offset: u64,
    expected: u64,
) -> Result<Opened<Stream>, FetchError> {
    let request = StreamRequest {
        transfer,
        offset,
        end: None,
    };
    match ask(control, peer, request).await? {
        Some((stream, len)) if len == expected => Ok(Opened::Stream(stream)),
        Some((_, len)) => Err(FetchError::Fatal(format!(
            "the sender offers {len} bytes from offset {offset} instead of {expected}"
        ))),
        None => Ok(Opened::Unsupported),
    }
}

/// Asks `peer` for the bytes `offset..end` of `transfer`, a file of `size` bytes, over a new
/// stream. A sender that knows ranges sends exactly those; one that does not sends to the
/// end of the file, and the caller reads only up to `end` (then drops the stream).
pub async fn open_range(
    control: &mut Control,
    peer: PeerId,
    transfer: TransferId,
    (offset, end): (u64, u64),
    size: u64,
) -> Result<Opened<Stream>, FetchError> {
    let request = StreamRequest {
        transfer,
        offset,
        end: Some(end),
    };
    match ask(control, peer, request).await? {
        Some((stream, len)) if len == end - offset || len == size - offset => {
            Ok(Opened::Stream(stream))
        }
        Some((_, len)) => Err(FetchError::Fatal(format!(
            "the sender offers {len} bytes from offset {offset} instead of {}",
            end - offset
        ))),
        None => Ok(Opened::Unsupported),
    }
}

/// Sends `request` on a new stream to `peer`: the stream and the length the sender
/// announces, or `None` when the peer does not speak `/ipm/file/2`.
async fn ask(
    control: &mut Control,
    peer: PeerId,
    request: StreamRequest,
) -> Result<Option<(Stream, u64)>, FetchError> {
    let retry = |e: io::Error| FetchError::Retry(e.to_string());
    let opened = tokio::time::timeout(HEADER_TIMEOUT, control.open_stream(peer, PROTOCOL))
        .await
        .map_err(|_| FetchError::Retry("the sender did not answer in time".into()))?;
    let mut stream = match opened {
        Ok(stream) => stream,
        Err(OpenStreamError::UnsupportedProtocol(_)) => return Ok(None),
        Err(e) => return Err(FetchError::Retry(e.to_string())),
    };
    within(
        HEADER_TIMEOUT,
        "request",
        write_header(&mut stream, &request),
    )
    .await
    .map_err(retry)?;
    let answer: StreamAnswer = within(HEADER_TIMEOUT, "answer", read_header(&mut stream))
        .await
        .map_err(retry)?;
    match answer {
        StreamAnswer::Sending { len } => Ok(Some((stream, len))),
        StreamAnswer::Busy => Err(FetchError::Retry("the sender is busy".into())),
        StreamAnswer::Error(reason) => {
            Err(FetchError::Fatal(format!("the sender refused: {reason}")))
        }
    }
}

/// Serves the file streams peers open until the node stops: each request is checked by
/// `authorize` (the event loop) before any file is opened. `report(peer, transfer, bytes,
/// size)` tells how far each stream is: when it starts, at most every
/// [`SENT_REPORT_EVERY`], and with `bytes == size` once the file is sent whole.
pub async fn serve_all<A, Fut, R>(mut incoming: IncomingStreams, authorize: A, report: R)
where
    A: Fn(PeerId, TransferId) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Granted> + Send,
    R: Fn(PeerId, TransferId, u64, u64) + Clone + Send + Sync + 'static,
{
    let handshakes = Slots::new(STREAMS_PER_PEER, HANDSHAKES);
    let uploads = Uploads::new(UPLOADS);
    while let Some((peer, stream)) = incoming.next().await {
        let Some(slot) = handshakes.take(peer) else {
            debug!(%peer, "too many file streams opening: one dropped");
            continue;
        };
        let authorize = authorize.clone();
        let report = report.clone();
        let uploads = uploads.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_one(peer, stream, slot, &uploads, authorize, report).await {
                debug!(%peer, "file stream ended: {e}");
            }
        });
    }
}

async fn serve_one<A, Fut, R>(
    peer: PeerId,
    mut stream: Stream,
    handshake: Slot,
    uploads: &Uploads,
    authorize: A,
    report: R,
) -> io::Result<()>
where
    A: Fn(PeerId, TransferId) -> Fut,
    Fut: Future<Output = Granted>,
    R: Fn(PeerId, TransferId, u64, u64),
{
    let request: StreamRequest =
        within(HEADER_TIMEOUT, "request", read_header(&mut stream)).await?;
    let refuse = StreamAnswer::Error;
    // A peer holding all its places is told so without asking the event loop.
    if uploads.peer_full(&peer) {
        drop(handshake);
        return answer(&mut stream, &StreamAnswer::Busy).await;
    }
    let granted = authorize(peer, request.transfer).await;
    drop(handshake);
    let grant = match granted {
        Ok(grant) => grant,
        Err(reason) => {
            return answer(&mut stream, &refuse(reason)).await;
        }
    };
    let upload = match uploads.take(peer, &grant) {
        Ok(upload) => upload,
        Err(why) => {
            debug!(%peer, "file stream busy: {why}");
            return answer(&mut stream, &StreamAnswer::Busy).await;
        }
    };
    let Grant { path, size, .. } = grant;
    let offset = request.offset;
    let end = request.end.unwrap_or(size);
    let opened = tokio::task::spawn_blocking(move || open_source(path, size, offset, end))
        .await
        .map_err(io::Error::other)?;
    let file = match opened {
        Ok(Ok(file)) => file,
        Ok(Err(reason)) => {
            return answer(&mut stream, &refuse(reason)).await;
        }
        Err(e) => {
            let reason = format!("cannot read the file: {e}");
            return answer(&mut stream, &refuse(reason)).await;
        }
    };
    let len = end - offset;
    answer(&mut stream, &StreamAnswer::Sending { len }).await?;
    let transfer = request.transfer;
    let progress = |sent| report(peer, transfer, offset + sent, size);
    let sent = send_file(&mut stream, file, len, progress, || upload.must_yield()).await?;
    within(IDLE_TIMEOUT, "close", stream.close()).await?;
    drop(upload);
    match sent {
        // Whole once a stream reached the end (a range of a multi-source download may not).
        Sent::Whole => report(peer, transfer, end, size),
        // The downloader asks again for the rest.
        Sent::Yielded(bytes) => debug!(%peer, "upload gave its place up after {bytes} bytes"),
    }
    Ok(())
}

/// Writes `answer` to a stream's request.
async fn answer(stream: &mut Stream, answer: &StreamAnswer) -> io::Result<()> {
    within(HEADER_TIMEOUT, "answer", write_header(stream, answer)).await
}

/// Opens an offered file at `offset`, checking it still has its offered size and that
/// `offset..end` lies within it.
fn open_source(
    path: PathBuf,
    size: u64,
    offset: u64,
    end: u64,
) -> io::Result<Result<std::fs::File, String>> {
    let mut file = std::fs::File::open(path)?;
    if file.metadata()?.len() != size {
        return Ok(Err("the file changed since it was offered".into()));
    }
    if offset > size || end > size || end < offset {
        return Ok(Err("range beyond the end of the file".into()));
    }
    file.seek(SeekFrom::Start(offset))?;
    Ok(Ok(file))
}

/// How far [`send_file`] went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sent {
    /// Every byte asked for.
    Whole,
    /// This many bytes, then the upload gave its place up.
    Yielded(u64),
}

/// Copies `len` bytes of `file` to `stream`: a blocking thread reads ahead a few large
/// buffers, this task writes them as the stream takes them. `progress(sent)` is called
/// at the start and at most every [`SENT_REPORT_EVERY`] while bytes go out; `must_yield()`
/// before each buffer, to stop early when the upload must give its place up.
async fn send_file(
    stream: &mut (impl AsyncWrite + Unpin),
    file: std::fs::File,
    len: u64,
    mut progress: impl FnMut(u64),
    mut must_yield: impl FnMut() -> bool,
) -> io::Result<Sent> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<io::Result<Vec<u8>>>(READ_AHEAD);
    let (free_tx, mut free_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(READ_AHEAD + 1);
    let reader = tokio::task::spawn_blocking(move || {
        let mut file = file;
        let mut left = len;
        while left > 0 {
            let want = left.min(BUFFER_LEN as u64) as usize;
            let mut buf = free_rx.try_recv().unwrap_or_default();
            buf.resize(want, 0);
            let read = file.read_exact(&mut buf).map(|()| buf);
            let failed = read.is_err();
            if tx.blocking_send(read).is_err() || failed {
                return;
            }
            left -= want as u64;
        }
    });
    let mut sent = 0u64;
    progress(0);
    let mut reported = std::time::Instant::now();
    while sent < len {
        if must_yield() {
            drop(rx);
            let _ = reader.await;
            within(IDLE_TIMEOUT, "flush", stream.flush()).await?;
            return Ok(Sent::Yielded(sent));
        }
        let buf = match rx.recv().await {
            Some(read) => read?,
            None => return Err(io::Error::other("the file reader stopped")),
        };
        within(IDLE_TIMEOUT, "send", stream.write_all(&buf)).await?;
        sent += buf.len() as u64;
        let _ = free_tx.try_send(buf);
        if sent < len && reported.elapsed() >= SENT_REPORT_EVERY {
            progress(sent);
            reported = std::time::Instant::now();
        }
    }
    drop(rx);
    let _ = reader.await;
    within(IDLE_TIMEOUT, "flush", stream.flush()).await?;
    Ok(Sent::Whole)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn slots_hold_per_peer_and_in_all_and_come_back() {
        let slots = Slots::new(2, 3);
        let (a, b) = (PeerId::random(), PeerId::random());
        let a1 = slots.take(a).unwrap();
        let _a2 = slots.take(a).unwrap();
        assert!(slots.take(a).is_none(), "per peer");
        let _b1 = slots.take(b).unwrap();
        assert!(slots.take(PeerId::random()).is_none(), "in all");
        drop(a1);
        assert!(slots.take(a).is_some());
        // Many cheap keys take no more than the total, and leave nothing behind.
        let many = Slots::new(1, 10);
        let held: Vec<_> = (0..100)
            .filter_map(|_| many.take(PeerId::random()))
            .collect();
        assert_eq!(held.len(), 10);
        drop(held);
        assert!(many.inner.lock().unwrap().by_peer.is_empty());
    }

    #[tokio::test]
    async fn headers_over_the_limit_are_refused_before_reading_them() {
        let mut wire = futures::io::Cursor::new(vec![0xff, 0xff, 1, 2, 3]);
        let got: io::Result<StreamRequest> = read_header(&mut wire).await;
        assert_eq!(got.unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn a_file_is_sent_whole_from_its_offset() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        let content: Vec<u8> = (0..3 * BUFFER_LEN + 17).map(|i| (i % 253) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let offset = BUFFER_LEN as u64 + 5;
        let size = content.len() as u64;
        let file = open_source(path.clone(), size, offset, size)
            .unwrap()
            .unwrap();
        let mut out = futures::io::Cursor::new(Vec::new());
        let mut reports = Vec::new();
        let sent = send_file(&mut out, file, size - offset, |s| reports.push(s), || false)
            .await
            .unwrap();
        assert_eq!(sent, Sent::Whole);
        assert_eq!(out.into_inner(), content[offset as usize..]);
        assert_eq!(reports.first(), Some(&0), "the start is reported");
        assert!(open_source(path.clone(), 5, 0, 5).unwrap().is_err());
        // A range: from its offset to its end only; one past the end is refused.
        let end = 2 * BUFFER_LEN as u64 + 3;
        let file = open_source(path.clone(), size, offset, end)
            .unwrap()
            .unwrap();
        let mut out = futures::io::Cursor::new(Vec::new());
        send_file(&mut out, file, end - offset, |_| (), || false)
            .await
            .unwrap();
        assert_eq!(out.into_inner(), content[offset as usize..end as usize]);
        // An upload asked to give its place up stops at the next buffer.
        let file = open_source(path.clone(), size, 0, size).unwrap().unwrap();
        let mut out = futures::io::Cursor::new(Vec::new());
        let mut asked = 0;
        let must_yield = || {
            asked += 1;
            asked > 1
        };
        let sent = send_file(&mut out, file, size, |_| (), must_yield)
            .await
            .unwrap();
        assert_eq!(sent, Sent::Yielded(BUFFER_LEN as u64));
        assert_eq!(out.into_inner(), content[..BUFFER_LEN]);
        assert!(open_source(path, size, 0, size + 1).unwrap().is_err());
    }
}
