//! Pulls one offered file from its sender, written in order to a `.part` file (so a restart
//! resumes from its length), checked against the offered SHA-256, then moved into the
//! downloads folder under a name that overwrites nothing. The bytes come over one stream
//! (`/ipm/file/2`) when the sender speaks it, else as chunk requests, several in flight
//! (`/ipm/file/1`); a cut stream is opened again from the length written so far.

use std::{
    collections::BTreeMap,
    future::Future,
    io,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use futures::{stream::FuturesUnordered, AsyncRead, AsyncReadExt, StreamExt};
use sha2::{Digest, Sha256};

use ipm_protocol::TransferId;

use crate::net::part_file::PartWriter;
use crate::store::transfers::unique_path;

/// Bytes asked for by one chunk request.
pub const CHUNK_LEN: u32 = 256 * 1024;
/// Chunk requests kept in flight at once.
pub const IN_FLIGHT: usize = 16;
/// Bytes read from a stream into one buffer before it goes to the writer.
const STREAM_BUFFER: usize = 1024 * 1024;
/// Longest wait for one stream buffer to fill.
const STREAM_IDLE: Duration = Duration::from_secs(30);
/// Longest pause between retries while the sender is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Least time between two progress reports.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Why one chunk or stream could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The sender is unreachable for now: try again later.
    Retry(String),
    /// The sender refuses: give up.
    Fatal(String),
}

/// What asking the sender for a stream gave.
#[derive(Debug)]
pub enum Opened<S> {
    /// The bytes from the asked offset to the end of the file follow on `S`.
    Stream(S),
    /// The sender does not speak `/ipm/file/2`: use chunk requests.
    Unsupported,
}

/// What to download and where.
#[derive(Clone, Debug)]
pub struct Job {
    /// The transfer.
    pub transfer: TransferId,
    /// Offered size in bytes.
    pub size: u64,
    /// Offered SHA-256.
    pub sha256: [u8; 32],
    /// The sanitised file name.
    pub name: String,
    /// The downloads folder (the `.part` file lives in its `.partial/` folder).
    pub downloads: PathBuf,
}

impl Job {
    /// The partial file of this transfer.
    pub fn part_path(&self) -> PathBuf {
        self.downloads
            .join(".partial")
            .join(format!("{}.part", self.transfer))
    }
}

/// Where a download stands: bytes written, the writer, when progress was last reported.
struct Progress<P> {
    done: u64,
    writer: PartWriter,
    report: P,
    last_report: Instant,
}

impl<P: FnMut(u64)> Progress<P> {
    /// Hands `data` to the writer; a writer that stopped is a fatal error.
    async fn write(&mut self, data: Vec<u8>) -> Result<(), FetchError> {
        let len = data.len() as u64;
        self.writer
            .write(data)
            .await
            .map_err(|_| FetchError::Fatal("cannot write the partial file".into()))?;
        self.done += len;
        if self.last_report.elapsed() >= PROGRESS_EVERY {
            // What is in the file, not what waits for the writer.
            (self.report)(self.writer.written());
            self.last_report = Instant::now();
        }
        Ok(())
    }
}

/// Downloads `job`: first over streams from `open(offset, len)` (the `len` bytes from
/// `offset` to the end), else with `fetch(offset, len)` for each chunk; `progress(bytes)` is
/// called as the file grows. Returns where the verified file now lives.
pub async fn run<F, Fut, O, OFut, S>(
    job: &Job,
    fetch: F,
    mut open: O,
    progress: impl FnMut(u64),
) -> Result<PathBuf, String>
where
    F: Fn(u64, u32) -> Fut,
    Fut: Future<Output = Result<Vec<u8>, FetchError>>,
    O: FnMut(u64, u64) -> OFut,
    OFut: Future<Output = Result<Opened<S>, FetchError>>,
    S: AsyncRead + Unpin,
{
    let part = job.part_path();
    let io_err = |what: &str, e: io::Error| format!("{what} {}: {e}", part.display());
    if let Some(dir) = part.parent() {
        let dir = dir.to_owned();
        tokio::task::spawn_blocking(move || crate::store::data_dir::create_private_dir(&dir))
            .await
            .map_err(io::Error::other)
            .and_then(|r| r)
            .map_err(|e| io_err("cannot create the folder of", e))?;
    }
    let (file, done, hasher) = open_part(&part, job.size)
        .await
        .map_err(|e| io_err("cannot open", e))?;
    let mut state = Progress {
        done,
        writer: PartWriter::start(file, done, hasher),
        report: progress,
        last_report: Instant::now(),
    };
    (state.report)(done);

    let mut streaming = true;
    let mut attempt = 0u32;
    let mut outcome = Ok(());
    while state.done < job.size {
        let before = state.done;
        let result = if streaming {
            match open(state.done, job.size - state.done).await {
                Ok(Opened::Stream(mut stream)) => receive(&mut stream, job.size, &mut state).await,
                Ok(Opened::Unsupported) => {
                    streaming = false;
                    continue;
                }
                Err(e) => Err(e),
            }
        } else {
            chunks(job, &fetch, &mut state).await
        };
        match result {
            Ok(()) => {}
            Err(FetchError::Retry(reason)) => {
                attempt = if state.done > before { 1 } else { attempt + 1 };
                let pause =
                    crate::logic::backoff::pause(Duration::from_millis(250), attempt, MAX_BACKOFF);
                tracing::debug!(transfer = %job.transfer, "download paused: {reason}");
                tokio::time::sleep(pause).await;
            }
            Err(FetchError::Fatal(reason)) => {
                outcome = Err(reason);
                break;
            }
        }
    }
    let Progress {
        done,
        writer,
        mut report,
        ..
    } = state;
    // A disk error is the reason whatever else went wrong after it.
    let hasher = match (outcome, writer.finish().await) {
        (_, Err(e)) => return Err(io_err("cannot write", e)),
        (Err(reason), Ok(_)) => return Err(reason),
        (Ok(()), Ok(hasher)) => hasher,
    };
    report(done);

    let got: [u8; 32] = hasher.finalize().into();
    if got != job.sha256 {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(format!(
            "sha256 mismatch: offered {}, received {} (the file was corrupted or changed; nothing was kept)",
            hex::encode(job.sha256),
            hex::encode(got)
        ));
    }
    let target = unique_path(&job.downloads, &job.name);
    tokio::fs::rename(&part, &target)
        .await
        .map_err(|e| format!("cannot move the file to {}: {e}", target.display()))?;
    Ok(target)
}

/// Opens the partial file for appending, locked, and reads how much of the file is on disk
/// already and the hash of that prefix. Locked before its length is read: a writer of an
/// earlier run of this download (stopped, its last buffers still being written) finishes
/// first.
async fn open_part(part: &Path, size: u64) -> io::Result<(std::fs::File, u64, Sha256)> {
    let part = part.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).read(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(part)?;
        // Held until the writer closes the file; waits for one still closing it.
        file.lock()?;
        // Longer than the offered file: not a prefix of it, start again.
        if file.metadata()?.len() > size {
            file.set_len(0)?;
        }
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut read = 0u64;
        loop {
            let n = io::Read::read(&mut file, &mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            read += n as u64;
        }
        Ok((file, read, hasher))
    })
    .await
    .map_err(io::Error::other)?
}

/// Reads the rest of the file from `stream` in large buffers, never past `size`. A stream
/// that ends early or stalls for [`STREAM_IDLE`] is a retry from where it stopped.
async fn receive<P: FnMut(u64)>(
    stream: &mut (impl AsyncRead + Unpin),
    size: u64,
    state: &mut Progress<P>,
) -> Result<(), FetchError> {
    while state.done < size {
        let want = (size - state.done).min(STREAM_BUFFER as u64) as usize;
        let mut buf = state.writer.buffer(want);
        let filled = tokio::time::timeout(STREAM_IDLE, fill(stream, &mut buf)).await;
        let (filled, error) = match filled {
            Ok(Ok(n)) => (n, None),
            Ok(Err((n, e))) => (n, Some(e.to_string())),
            Err(_) => (0, Some("the sender stalled".into())),
        };
        if filled < want && error.is_none() {
            // The stream ended early: keep what came, ask again for the rest.
            buf.truncate(filled);
            state.write(buf).await?;
            return Err(FetchError::Retry("the stream ended early".into()));
        }
        buf.truncate(filled);
        if filled > 0 {
            state.write(buf).await?;
        }
        if let Some(error) = error {
            return Err(FetchError::Retry(error));
        }
    }
    Ok(())
}

/// Reads into `buf` until it is full or the stream ends: how much was read, and the error
/// that stopped it early with what was read before.
async fn fill(
    stream: &mut (impl AsyncRead + Unpin),
    buf: &mut [u8],
) -> Result<usize, (usize, io::Error)> {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]).await {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((filled, e)),
        }
    }
    Ok(filled)
}

/// The rest of the file as chunk requests, several in flight, written in order.
async fn chunks<F, Fut, P>(job: &Job, fetch: &F, state: &mut Progress<P>) -> Result<(), FetchError>
where
    F: Fn(u64, u32) -> Fut,
    Fut: Future<Output = Result<Vec<u8>, FetchError>>,
    P: FnMut(u64),
{
    let mut next = state.done;
    let mut waiting: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut in_flight = FuturesUnordered::new();
    let request = |offset: u64, attempt: u32| {
        let len = chunk_len(job.size, offset);
        let fut = fetch(offset, len);
        async move {
            if attempt > 0 {
                let pause =
                    crate::logic::backoff::pause(Duration::from_millis(250), attempt, MAX_BACKOFF);
                tokio::time::sleep(pause).await;
            }
            (offset, len, attempt, fut.await)
        }
    };
    while state.done < job.size {
        while in_flight.len() < IN_FLIGHT && next < job.size {
            in_flight.push(request(next, 0));
            next += u64::from(chunk_len(job.size, next));
        }
        let Some((offset, len, attempt, result)) = in_flight.next().await else {
            break;
        };
        match result {
            Ok(data) if data.len() == len as usize => {
                waiting.insert(offset, data);
            }
            Ok(data) => {
                return Err(FetchError::Fatal(format!(
                    "the sender sent {} bytes at offset {offset} instead of {len}",
                    data.len()
                )))
            }
            Err(FetchError::Retry(_)) => {
                in_flight.push(request(offset, attempt + 1));
                continue;
            }
            Err(fatal) => return Err(fatal),
        }
        while let Some(data) = waiting.remove(&state.done) {
            state.write(data).await?;
        }
    }
    Ok(())
}

fn chunk_len(size: u64, offset: u64) -> u32 {
    u32::try_from((size - offset).min(u64::from(CHUNK_LEN))).unwrap_or(CHUNK_LEN)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn job(dir: &Path, content: &[u8]) -> Job {
        Job {
            transfer: TransferId::random(),
            size: content.len() as u64,
            sha256: Sha256::digest(content).into(),
            name: "file.bin".into(),
            downloads: dir.to_owned(),
        }
    }

    type Wire = futures::io::Cursor<Vec<u8>>;

    /// A sender of the previous release: no streams.
    fn chunks_only(_: u64, _: u64) -> std::future::Ready<Result<Opened<Wire>, FetchError>> {
        std::future::ready(Ok(Opened::Unsupported))
    }

    /// No chunk requests expected.
    fn no_chunks(_: u64, _: u32) -> std::future::Ready<Result<Vec<u8>, FetchError>> {
        std::future::ready(Err(FetchError::Fatal(
            "chunk asked of a streaming sender".into(),
        )))
    }

    fn serve(
        content: Arc<Vec<u8>>,
    ) -> impl Fn(u64, u32) -> std::future::Ready<Result<Vec<u8>, FetchError>> {
        move |offset, len| {
            let start = offset as usize;
            std::future::ready(Ok(content[start..start + len as usize].to_vec()))
        }
    }

    #[tokio::test]
    async fn a_file_arrives_whole_and_verified() {
        let tmp = tempfile::tempdir().unwrap();
        let content = Arc::new(data(CHUNK_LEN as usize * 5 + 123));
        let job = job(tmp.path(), &content);
        let mut reports = Vec::new();
        let path = run(&job, serve(content.clone()), chunks_only, |b| {
            reports.push(b)
        })
        .await
        .unwrap();
        assert_eq!(path, tmp.path().join("file.bin"));
        assert_eq!(std::fs::read(&path).unwrap(), *content);
        assert_eq!(reports.last(), Some(&(content.len() as u64)));
        assert!(!job.part_path().exists());
        // A second download of the same name does not overwrite the first.
        let again = Job {
            transfer: TransferId::random(),
            ..job
        };
        let second = run(&again, serve(content.clone()), chunks_only, |_| {})
            .await
            .unwrap();
        assert_eq!(second, tmp.path().join("file (1).bin"));
    }

    #[tokio::test]
    async fn a_download_resumes_from_the_partial_file() {
        let tmp = tempfile::tempdir().unwrap();
        let content = Arc::new(data(CHUNK_LEN as usize * 3));
        let job = job(tmp.path(), &content);
        std::fs::create_dir_all(job.part_path().parent().unwrap()).unwrap();
        let have = CHUNK_LEN as usize + 1000;
        std::fs::write(job.part_path(), &content[..have]).unwrap();
        let asked = Arc::new(AtomicUsize::new(0));
        let counter = asked.clone();
        let source = content.clone();
        let fetch = move |offset: u64, len: u32| {
            counter.fetch_add(len as usize, Ordering::SeqCst);
            let start = offset as usize;
            std::future::ready(Ok(source[start..start + len as usize].to_vec()))
        };
        let path = run(&job, fetch, chunks_only, |_| {}).await.unwrap();
        assert_eq!(std::fs::read(path).unwrap(), *content);
        assert_eq!(asked.load(Ordering::SeqCst), content.len() - have);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_resumed_download_waits_for_the_writer_of_the_run_before() {
        let tmp = tempfile::tempdir().unwrap();
        let content = Arc::new(data(CHUNK_LEN as usize * 3));
        let job = job(tmp.path(), &content);
        std::fs::create_dir_all(job.part_path().parent().unwrap()).unwrap();
        let (first, last) = (1000, CHUNK_LEN as usize + 1000);
        std::fs::write(job.part_path(), &content[..first]).unwrap();
        // The writer of the stopped run still holds the file, its last buffers queued.
        let mut old = std::fs::OpenOptions::new()
            .append(true)
            .open(job.part_path())
            .unwrap();
        old.lock().unwrap();
        let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = asked.clone();
        let source = content.clone();
        let (fetched_tx, fetched) = std::sync::mpsc::channel();
        let fetch = move |offset: u64, len: u32| {
            log.lock().unwrap().push(offset);
            let _ = fetched_tx.send(());
            let start = offset as usize;
            std::future::ready(Ok(source[start..start + len as usize].to_vec()))
        };
        let resumed = {
            let job = job.clone();
            tokio::spawn(async move { run(&job, fetch, chunks_only, |_| {}).await })
        };
        // What it wrote last lands, then it closes the file. The new run must not have
        // asked for anything meanwhile (it would have resumed from too early a point).
        let early = tokio::task::spawn_blocking(move || {
            let early = fetched.recv_timeout(Duration::from_millis(500)).is_ok();
            io::Write::write_all(&mut old, &content[first..last]).unwrap();
            drop(old);
            early
        })
        .await
        .unwrap();
        assert!(!early, "the resumed run did not wait for the old writer");
        let path = resumed.await.unwrap().unwrap();
        assert_eq!(std::fs::read(path).unwrap().len(), CHUNK_LEN as usize * 3);
        assert_eq!(asked.lock().unwrap().first(), Some(&(last as u64)));
    }

    #[tokio::test]
    async fn a_corrupted_chunk_is_detected_and_nothing_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let content = data(CHUNK_LEN as usize * 2 + 5);
        let job = job(tmp.path(), &content);
        let mut corrupted = content.clone();
        corrupted[CHUNK_LEN as usize + 17] ^= 0xff;
        let err = run(&job, serve(Arc::new(corrupted)), chunks_only, |_| {})
            .await
            .unwrap_err();
        assert!(err.contains("sha256 mismatch"), "{err}");
        assert!(!job.part_path().exists());
        assert!(!tmp.path().join("file.bin").exists());
    }

    #[tokio::test]
    async fn unreachable_senders_are_retried_and_refusals_end_the_download() {
        let tmp = tempfile::tempdir().unwrap();
        let content = Arc::new(data(1000));
        let job = job(tmp.path(), &content);
        let failures = Arc::new(AtomicUsize::new(2));
        let source = content.clone();
        let flaky = move |offset: u64, len: u32| {
            let fail = failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            let start = offset as usize;
            std::future::ready(if fail {
                Err(FetchError::Retry("offline".into()))
            } else {
                Ok(source[start..start + len as usize].to_vec())
            })
        };
        let path = run(&job, flaky, chunks_only, |_| {}).await.unwrap();
        assert_eq!(std::fs::read(path).unwrap(), *content);

        let job2 = Job {
            transfer: TransferId::random(),
            ..job
        };
        let refuse = |_, _| std::future::ready(Err(FetchError::Fatal("unknown transfer".into())));
        assert_eq!(
            run(&job2, refuse, chunks_only, |_| {}).await.unwrap_err(),
            "unknown transfer"
        );
    }

    #[tokio::test]
    async fn a_streamed_file_arrives_whole_and_a_cut_stream_resumes_where_it_stopped() {
        let tmp = tempfile::tempdir().unwrap();
        let content = Arc::new(data(STREAM_BUFFER * 3 + 999));
        let job = job(tmp.path(), &content);
        let opened = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (source, asks) = (content.clone(), opened.clone());
        // The first stream breaks after 1.5 buffers, the second after 1 more byte.
        let open = move |offset: u64, len: u64| {
            let mut asks = asks.lock().unwrap();
            asks.push((offset, len));
            let cut = match asks.len() {
                1 => STREAM_BUFFER * 3 / 2,
                2 => 1,
                _ => usize::MAX,
            };
            let start = offset as usize;
            let end = start.saturating_add(cut).min(source.len());
            std::future::ready(Ok(Opened::Stream(Wire::new(source[start..end].to_vec()))))
        };
        let mut reports = Vec::new();
        let path = run(&job, no_chunks, open, |b| reports.push(b))
            .await
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), *content);
        let first = STREAM_BUFFER as u64 * 3 / 2;
        let total = content.len() as u64;
        assert_eq!(
            *opened.lock().unwrap(),
            vec![
                (0, total),
                (first, total - first),
                (first + 1, total - first - 1)
            ]
        );
        assert_eq!(reports.last(), Some(&total));
    }

    #[tokio::test]
    async fn a_streamed_download_resumes_from_the_partial_file_and_checks_the_hash() {
        let tmp = tempfile::tempdir().unwrap();
        let content = Arc::new(data(STREAM_BUFFER + 4321));
        let job = job(tmp.path(), &content);
        std::fs::create_dir_all(job.part_path().parent().unwrap()).unwrap();
        std::fs::write(job.part_path(), &content[..1000]).unwrap();
        let source = content.clone();
        let open = move |offset: u64, _| {
            assert_eq!(offset, 1000);
            std::future::ready(Ok(Opened::Stream(Wire::new(
                source[offset as usize..].to_vec(),
            ))))
        };
        let path = run(&job, no_chunks, open, |_| {}).await.unwrap();
        assert_eq!(std::fs::read(path).unwrap(), *content);

        // A sender that streams other bytes: nothing is kept.
        let bad = Job {
            transfer: TransferId::random(),
            ..job
        };
        let open =
            |_, len: u64| std::future::ready(Ok(Opened::Stream(Wire::new(vec![7; len as usize]))));
        let err = run(&bad, no_chunks, open, |_| {}).await.unwrap_err();
        assert!(err.contains("sha256 mismatch"), "{err}");
        assert!(!bad.part_path().exists());
    }
}
