//! Pulls one file from several members who share it: each source streams the run of pieces
//! `logic::piece_plan` gives it (a range request on `/ipm/file/2`, or chunk requests on
//! `/ipm/file/1` from a node of the previous release), its task writes them at their offsets
//! in the `.part` file and saves the piece map beside it (`<id>.pieces`), so a restart
//! resumes with the pieces on disk. A source that leaves or fails hands its pieces back to
//! the plan, which gives them to the others. Once every piece is written the file is synced
//! and read through once, in order, on a blocking thread, to check its SHA-256 (pieces
//! arrive out of order and the offer only carries the hash of the whole file), then moved
//! into the downloads folder.

use std::{
    fs::File,
    future::Future,
    io,
    os::unix::fs::FileExt,
    path::PathBuf,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
    time::{Duration, Instant},
};

use futures::{stream::FuturesUnordered, AsyncRead, AsyncReadExt, FutureExt, StreamExt};
use sha2::{Digest, Sha256};
use tokio::{sync::mpsc, task::JoinHandle};
use tracing::debug;

use crate::{
    logic::piece_plan::{self, Ended, PiecePlan, PIECE_LEN},
    net::download::{FetchError, Job, Opened, CHUNK_LEN},
    store::transfers::unique_path,
};

/// Bytes read from a stream at once.
const BUFFER_LEN: usize = 1024 * 1024;
/// Longest wait for one buffer to fill.
const STREAM_IDLE: Duration = Duration::from_secs(30);
/// Least time between two progress reports.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// A boxed future, as the sources' openers and fetchers return them.
pub type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;
/// Opens a stream of the bytes `start..end` of the file from one source.
pub type OpenRange<S> = Box<dyn FnMut(u64, u64) -> Boxed<Result<Opened<S>, FetchError>> + Send>;
/// Fetches one chunk `(offset, len)` from one source over `/ipm/file/1`.
pub type FetchChunk = Arc<dyn Fn(u64, u32) -> Boxed<Result<Vec<u8>, FetchError>> + Send + Sync>;

/// `future`, boxed as the openers and fetchers return it.
pub fn boxed<T>(future: impl Future<Output = T> + Send + 'static) -> Boxed<T> {
    Box::pin(future)
}

/// One member the file is pulled from.
pub struct Source<S> {
    /// Who it is, for the logs.
    pub name: String,
    /// Opens its range streams.
    pub open: OpenRange<S>,
    /// Fetches its chunks, when it does not speak `/ipm/file/2`.
    pub fetch: FetchChunk,
}

/// The piece map saved beside the partial file of `job`.
pub fn piece_map_path(job: &Job) -> PathBuf {
    job.downloads
        .join(".partial")
        .join(format!("{}.pieces", job.transfer))
}

/// Whether a download of `job` from several sources was started (and must go on that way).
pub fn has_piece_map(job: &Job) -> bool {
    piece_map_path(job).exists()
}

/// Bytes of `job` on disk: the pieces written of a download from several sources, else the
/// length of the partial file.
pub fn bytes_kept(job: &Job) -> u64 {
    match std::fs::read(piece_map_path(job)) {
        Ok(bytes) => piece_plan::decode_map(&bytes, job.size, PIECE_LEN).map_or(0, |done| {
            PiecePlan::new(job.size, PIECE_LEN, done, 0).done_bytes()
        }),
        Err(_) => std::fs::metadata(job.part_path()).map_or(0, |m| m.len()),
    }
}

/// The partial file and its piece map, shared by the writing tasks. Every write holds the
/// gate open and checks `closed`; closing takes the gate, so once closed nothing writes.
struct Part {
    file: File,
    map_path: PathBuf,
    map: Mutex<Vec<bool>>,
    size: u64,
    gate: RwLock<()>,
    closed: AtomicBool,
}

impl Part {
    /// Runs `write` unless the file is closed.
    fn guarded<T>(&self, write: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        let _open = self.gate.read().unwrap_or_else(|e| e.into_inner());
        if self.closed.load(Ordering::SeqCst) {
            return Err(io::Error::other("the download has ended"));
        }
        write()
    }

    /// Stops every write, waiting for those under way.
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        drop(self.gate.write().unwrap_or_else(|e| e.into_inner()));
    }

    /// Marks `piece` written and saves the map (a new file renamed over the old one).
    fn mark(&self, piece: u64) -> io::Result<()> {
        let _open = self.gate.read().unwrap_or_else(|e| e.into_inner());
        if self.closed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(done) = usize::try_from(piece).ok().and_then(|p| map.get_mut(p)) {
            *done = true;
        }
        let bytes = piece_plan::encode_map(self.size, PIECE_LEN, &map);
        let tmp = self.map_path.with_extension("pieces.tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &self.map_path)
    }
}

/// What a source's task tells the download.
enum Report<S> {
    /// A piece is written and saved in the map.
    Piece(usize, u64),
    /// The task ended; the source comes back for its next run.
    Ended(usize, Source<S>, Result<(), FetchError>),
}

/// A task aborted when dropped: the download's tasks stop with it.
struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}

/// Downloads `job` from `sources`, each with the transfer id it announced; `progress(bytes)`
/// is called as pieces are written. Returns where the verified file now lives.
pub async fn run<S>(
    job: &Job,
    sources: Vec<Source<S>>,
    mut progress: impl FnMut(u64),
) -> Result<PathBuf, String>
where
    S: AsyncRead + Unpin + Send + 'static,
{
    let part_path = job.part_path();
    let io_err = |what: &str, e: io::Error| format!("{what} {}: {e}", part_path.display());
    let (part, done) = open_part(job).await.map_err(|e| io_err("cannot open", e))?;
    let mut plan = PiecePlan::new(job.size, PIECE_LEN, done, sources.len());
    let part = Arc::new(part);
    progress(plan.done_bytes());

    let (tx, mut rx) = mpsc::unbounded_channel::<Report<S>>();
    let mut idle: Vec<Option<Source<S>>> = sources.into_iter().map(Some).collect();
    let ends: Vec<Arc<AtomicU64>> = idle.iter().map(|_| Arc::default()).collect();
    let mut tasks: Vec<Option<Task>> = idle.iter().map(|_| None).collect();
    let mut last_report = Instant::now();
    let mut failure = None;
    while !plan.is_complete() {
        let now = Instant::now();
        for (ix, slot) in idle.iter_mut().enumerate() {
            let Some(run) = slot.as_ref().and_then(|_| plan.assign(ix, now)) else {
                continue;
            };
            let Some(source) = slot.take() else { continue };
            let (start, end) = plan.bytes(run);
            ends[ix].store(end, Ordering::Relaxed);
            debug!(transfer = %job.transfer, source = %source.name, start, end, "fetching a range");
            let fetch = fetch_range(
                source,
                ix,
                (start, end),
                ends[ix].clone(),
                part.clone(),
                tx.clone(),
            );
            tasks[ix] = Some(Task(tokio::spawn(fetch)));
        }
        // A steal shortens the run of the source it took from.
        for (ix, end) in ends.iter().enumerate() {
            if let Some(run) = plan.run_of(ix) {
                end.store(plan.bytes(run).1, Ordering::Relaxed);
            }
        }
        let running = idle.iter().filter(|s| s.is_none()).count();
        if running == 0 {
            if let Some(reason) = plan.all_refused() {
                failure = Some(reason);
                break;
            }
        }
        let wake = plan.next_retry(now).unwrap_or(now + Duration::from_secs(1));
        let report = tokio::select! {
            report = rx.recv() => report,
            () = tokio::time::sleep_until(wake.into()) => None,
        };
        match report {
            Some(Report::Piece(ix, piece)) => {
                plan.piece_done(ix, piece);
                if last_report.elapsed() >= PROGRESS_EVERY {
                    progress(plan.done_bytes());
                    last_report = Instant::now();
                }
            }
            Some(Report::Ended(ix, source, result)) => {
                let ended = match result {
                    Ok(()) => Ended::Finished,
                    Err(FetchError::Retry(reason)) => {
                        debug!(transfer = %job.transfer, source = %source.name, "source paused: {reason}");
                        Ended::Retry
                    }
                    Err(FetchError::Fatal(reason)) => {
                        debug!(transfer = %job.transfer, source = %source.name, "source refused: {reason}");
                        Ended::Fatal(reason)
                    }
                };
                plan.stream_ended(ix, Instant::now(), ended);
                idle[ix] = Some(source);
                tasks[ix] = None;
            }
            None => {}
        }
    }
    // Streams still open (a source finishing a piece another one wrote too) stop here, and
    // nothing writes to the file once it is closed.
    drop(tasks);
    let closing = part.clone();
    blocking(move || {
        closing.close();
        Ok(())
    })
    .await
    .map_err(|e| io_err("cannot close", e))?;
    if let Some(reason) = failure {
        return Err(reason);
    }
    progress(plan.done_bytes());
    let got = blocking(move || {
        part.file.sync_all()?;
        hash_file(&part.file)
    })
    .await
    .map_err(|e| io_err("cannot check", e))?;
    let map_path = piece_map_path(job);
    if got != job.sha256 {
        let _ = tokio::fs::remove_file(&part_path).await;
        let _ = tokio::fs::remove_file(&map_path).await;
        return Err(format!(
            "sha256 mismatch: offered {}, received {} (a source sent other bytes; nothing was kept)",
            hex::encode(job.sha256),
            hex::encode(got)
        ));
    }
    let target = unique_path(&job.downloads, &job.name);
    tokio::fs::rename(&part_path, &target)
        .await
        .map_err(|e| format!("cannot move the file to {}: {e}", target.display()))?;
    let _ = tokio::fs::remove_file(&map_path).await;
    Ok(target)
}

/// Opens (or creates) the partial file of `job` for writing at offsets, and the map of the
/// pieces it holds: the saved map, else the pieces within a partial file written in order
/// by a download from one sender, else none.
async fn open_part(job: &Job) -> io::Result<(Part, Vec<bool>)> {
    let (part_path, map_path, size) = (job.part_path(), piece_map_path(job), job.size);
    blocking(move || {
        if let Some(dir) = part_path.parent() {
            crate::store::data_dir::create_private_dir(dir)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.create(true).read(true).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&part_path)?;
        let len = file.metadata()?.len();
        let saved = std::fs::read(&map_path)
            .ok()
            .and_then(|bytes| piece_plan::decode_map(&bytes, size, PIECE_LEN));
        let done = match saved {
            Some(done) if len <= size => done,
            _ if len <= size => piece_plan::prefix_map(size, PIECE_LEN, len),
            _ => {
                file.set_len(0)?;
                piece_plan::prefix_map(size, PIECE_LEN, 0)
            }
        };
        let part = Part {
            file,
            map_path,
            map: Mutex::new(done.clone()),
            size,
            gate: RwLock::new(()),
            closed: AtomicBool::new(false),
        };
        Ok((part, done))
    })
    .await
}

/// The SHA-256 of the whole of `file`, read in order.
fn hash_file(file: &File) -> io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUFFER_LEN];
    let mut offset = 0u64;
    loop {
        let n = file.read_at(&mut buf, offset)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
    Ok(hasher.finalize().into())
}

/// One source's task: fetches the bytes `start..end` (a run of pieces; `end` may move down
/// while it runs, see `stop`), writes them, reports each piece, and hands the source back.
async fn fetch_range<S: AsyncRead + Unpin + Send + 'static>(
    mut source: Source<S>,
    ix: usize,
    (start, end): (u64, u64),
    stop: Arc<AtomicU64>,
    part: Arc<Part>,
    tx: mpsc::UnboundedSender<Report<S>>,
) {
    let work = async {
        match (source.open)(start, end).await {
            Ok(Opened::Stream(mut stream)) => {
                receive(&mut stream, ix, start, &stop, &part, &tx).await
            }
            Ok(Opened::Unsupported) => chunks(&source.fetch, ix, start, &stop, &part, &tx).await,
            Err(e) => Err(e),
        }
    };
    // A task that panicked still hands its source back, as one that refuses: the download
    // never waits for a report that cannot come.
    let result = std::panic::AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            Err(FetchError::Fatal(
                "the download from this source broke".into(),
            ))
        });
    let _ = tx.send(Report::Ended(ix, source, result));
}

/// Writes `buf` at `offset` of the partial file, off the async threads; gives it back.
async fn write_at(part: &Arc<Part>, buf: Vec<u8>, offset: u64) -> Result<Vec<u8>, FetchError> {
    let part = part.clone();
    blocking(move || {
        part.guarded(|| part.file.write_all_at(&buf, offset))
            .map(|()| buf)
    })
    .await
    .map_err(|e| FetchError::Fatal(format!("cannot write the partial file: {e}")))
}

/// Marks `piece` written in the saved map, then reports it.
async fn piece_written<S>(
    part: &Arc<Part>,
    ix: usize,
    piece: u64,
    tx: &mpsc::UnboundedSender<Report<S>>,
) -> Result<(), FetchError> {
    let shared = part.clone();
    blocking(move || shared.mark(piece))
        .await
        .map_err(|e| FetchError::Fatal(format!("cannot save the piece map: {e}")))?;
    let _ = tx.send(Report::Piece(ix, piece));
    Ok(())
}

/// The end of the piece that starts at `offset`.
fn piece_end(offset: u64, size: u64) -> u64 {
    ((offset / PIECE_LEN + 1) * PIECE_LEN).min(size)
}

/// Reads pieces from `stream`, from `start` until the current `stop`; a stream that ends
/// early or stalls for [`STREAM_IDLE`] is a retry (its unfinished piece goes back).
async fn receive<S: AsyncRead + Unpin>(
    stream: &mut S,
    ix: usize,
    start: u64,
    stop: &AtomicU64,
    part: &Arc<Part>,
    tx: &mpsc::UnboundedSender<Report<impl Send>>,
) -> Result<(), FetchError> {
    let mut offset = start;
    let mut buf = vec![0u8; BUFFER_LEN];
    while offset < stop.load(Ordering::Relaxed) {
        let piece_end = piece_end(offset, part.size);
        while offset < piece_end {
            let want = (piece_end - offset).min(BUFFER_LEN as u64) as usize;
            buf.resize(want, 0);
            match tokio::time::timeout(STREAM_IDLE, stream.read_exact(&mut buf)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(FetchError::Retry(format!("the stream broke: {e}"))),
                Err(_) => return Err(FetchError::Retry("the sender stalled".into())),
            }
            buf = write_at(part, buf, offset).await?;
            offset += want as u64;
        }
        piece_written(part, ix, (piece_end - 1) / PIECE_LEN, tx).await?;
    }
    Ok(())
}

/// Fetches pieces as chunk requests from a source of the previous release, the chunks of
/// one piece in flight at once, from `start` until the current `stop`.
async fn chunks(
    fetch: &FetchChunk,
    ix: usize,
    start: u64,
    stop: &AtomicU64,
    part: &Arc<Part>,
    tx: &mpsc::UnboundedSender<Report<impl Send>>,
) -> Result<(), FetchError> {
    let mut offset = start;
    while offset < stop.load(Ordering::Relaxed) {
        let piece_end = piece_end(offset, part.size);
        let mut in_flight = FuturesUnordered::new();
        let mut at = offset;
        while at < piece_end {
            let len =
                u32::try_from((piece_end - at).min(u64::from(CHUNK_LEN))).unwrap_or(CHUNK_LEN);
            let request = fetch(at, len);
            in_flight.push(async move { (at, len, request.await) });
            at += u64::from(len);
        }
        while let Some((at, len, result)) = in_flight.next().await {
            let data = result?;
            if data.len() != len as usize {
                return Err(FetchError::Fatal(format!(
                    "the sender sent {} bytes at offset {at} instead of {len}",
                    data.len()
                )));
            }
            write_at(part, data, at).await?;
        }
        piece_written(part, ix, (piece_end - 1) / PIECE_LEN, tx).await?;
        offset = piece_end;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ipm_protocol::TransferId;
    use std::{path::Path, sync::atomic::AtomicUsize};

    type Wire = futures::io::Cursor<Vec<u8>>;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 253) as u8).collect()
    }

    fn job(dir: &Path, content: &[u8]) -> Job {
        Job {
            transfer: TransferId::random(),
            size: content.len() as u64,
            sha256: Sha256::digest(content).into(),
            name: "film.mkv".into(),
            downloads: dir.to_owned(),
        }
    }

    fn no_chunks() -> FetchChunk {
        Arc::new(|_: u64, _: u32| boxed(async { Err(FetchError::Fatal("no chunks here".into())) }))
    }

    /// A source that streams the asked range of `content`; after `cut` bytes in all it
    /// breaks its stream and then is unreachable. Counts the bytes it sent in `sent`.
    fn streaming(content: Arc<Vec<u8>>, cut: usize, sent: Arc<AtomicUsize>) -> Source<Wire> {
        Source {
            name: "streaming".into(),
            open: Box::new(move |start: u64, end: u64| {
                let (content, sent) = (content.clone(), sent.clone());
                boxed(async move {
                    let already = sent.load(Ordering::SeqCst);
                    if already >= cut {
                        return Err(FetchError::Retry("gone".into()));
                    }
                    let (start, end) = (start as usize, end as usize);
                    let end = end.min(start.saturating_add(cut - already));
                    sent.fetch_add(end - start, Ordering::SeqCst);
                    Ok(Opened::Stream(Wire::new(content[start..end].to_vec())))
                })
            }),
            fetch: no_chunks(),
        }
    }

    #[tokio::test]
    async fn two_sources_fill_the_file_and_one_leaving_half_way_hands_its_pieces_over() {
        let tmp = tempfile::tempdir().unwrap();
        let content = Arc::new(data(10 * PIECE_LEN as usize + 12345));
        let job = job(tmp.path(), &content);
        let (a_sent, b_sent) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        // Source a leaves after two and a half pieces of its half.
        let cut = 5 * PIECE_LEN as usize / 2;
        let sources = vec![
            streaming(content.clone(), cut, a_sent.clone()),
            streaming(content.clone(), usize::MAX, b_sent.clone()),
        ];
        let mut reports = Vec::new();
        let path = run(&job, sources, |b| reports.push(b)).await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), *content);
        assert_eq!(a_sent.load(Ordering::SeqCst), cut);
        assert!(b_sent.load(Ordering::SeqCst) >= content.len() - 2 * PIECE_LEN as usize);
        assert_eq!(reports.last(), Some(&(content.len() as u64)));
        assert!(!job.part_path().exists() && !piece_map_path(&job).exists());
    }

    #[tokio::test]
    async fn a_restart_resumes_with_the_saved_pieces_and_an_old_sender_sends_chunks() {
        let tmp = tempfile::tempdir().unwrap();
        let size = 3 * PIECE_LEN as usize + 99;
        let content = Arc::new(data(size));
        let job = job(tmp.path(), &content);
        // Pieces 0 and 2 are on disk already.
        std::fs::create_dir_all(job.part_path().parent().unwrap()).unwrap();
        let mut part = vec![0u8; size];
        for piece in [0usize, 2] {
            let range = piece * PIECE_LEN as usize..(piece + 1) * PIECE_LEN as usize;
            part[range.clone()].copy_from_slice(&content[range]);
        }
        std::fs::write(job.part_path(), &part).unwrap();
        let map = piece_plan::encode_map(size as u64, PIECE_LEN, &[true, false, true, false]);
        std::fs::write(piece_map_path(&job), map).unwrap();
        assert_eq!(bytes_kept(&job), 2 * PIECE_LEN);
        // A sender of the previous release: no streams, chunks only.
        let asked = Arc::new(Mutex::new(Vec::new()));
        let (source, log) = (content.clone(), asked.clone());
        let old = Source {
            name: "old".into(),
            open: Box::new(|_: u64, _: u64| boxed(async { Ok(Opened::<Wire>::Unsupported) })),
            fetch: Arc::new(move |offset: u64, len: u32| {
                log.lock().unwrap().push(offset);
                let start = offset as usize;
                let chunk = source[start..start + len as usize].to_vec();
                boxed(async move { Ok(chunk) })
            }),
        };
        let path = run(&job, vec![old], |_| {}).await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), *content);
        let asked = asked.lock().unwrap();
        assert!(asked
            .iter()
            .all(|o| (PIECE_LEN..2 * PIECE_LEN).contains(o) || *o >= 3 * PIECE_LEN));
        assert_eq!(asked.len(), 16 + 1);
    }

    #[tokio::test]
    async fn other_bytes_are_caught_by_the_final_check_and_refusals_end_the_download() {
        let tmp = tempfile::tempdir().unwrap();
        let content = Arc::new(data(PIECE_LEN as usize + 5));
        let job = job(tmp.path(), &content);
        let mut other = (*content).clone();
        other[17] ^= 1;
        let sources = vec![streaming(Arc::new(other), usize::MAX, Arc::default())];
        let err = run(&job, sources, |_| {}).await.unwrap_err();
        assert!(err.contains("sha256 mismatch"), "{err}");
        assert!(!job.part_path().exists() && !piece_map_path(&job).exists());

        let refusing = || Source::<Wire> {
            name: "refusing".into(),
            open: Box::new(|_: u64, _: u64| {
                boxed(async {
                    Err(FetchError::Fatal(
                        "the sender refused: no such transfer".into(),
                    ))
                })
            }),
            fetch: no_chunks(),
        };
        let err = run(&job, vec![refusing(), refusing()], |_| {})
            .await
            .unwrap_err();
        assert_eq!(err, "the sender refused: no such transfer");
    }
}
