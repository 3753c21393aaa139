//! Pulls one offered file from its sender: several chunk requests in flight, written in
//! order to a `.part` file (so a restart resumes from its length), checked against the
//! offered SHA-256, then moved into the downloads folder under a name that overwrites nothing.

use std::{
    collections::BTreeMap,
    future::Future,
    io,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use futures::{stream::FuturesUnordered, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use ipm_protocol::TransferId;

use crate::store::transfers::unique_path;

/// Bytes asked for by one chunk request.
pub const CHUNK_LEN: u32 = 256 * 1024;
/// Chunk requests kept in flight at once.
pub const IN_FLIGHT: usize = 16;
/// Longest pause between retries while the sender is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Least time between two progress reports.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Why one chunk could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The sender is unreachable for now: try again later.
    Retry(String),
    /// The sender refuses: give up.
    Fatal(String),
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

/// Downloads `job` using `fetch(offset, len)` for each chunk; `progress(bytes)` is called
/// as the file grows. Returns where the verified file now lives.
pub async fn run<F, Fut>(
    job: &Job,
    fetch: F,
    mut progress: impl FnMut(u64),
) -> Result<PathBuf, String>
where
    F: Fn(u64, u32) -> Fut,
    Fut: Future<Output = Result<Vec<u8>, FetchError>>,
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
    let (mut done, mut hasher) = resume_point(&part, job.size)
        .await
        .map_err(|e| io_err("cannot read", e))?;
    let mut options = tokio::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(&part)
        .await
        .map_err(|e| io_err("cannot open", e))?;
    progress(done);

    let mut next = done;
    let mut waiting: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut in_flight = FuturesUnordered::new();
    let mut last_report = Instant::now();
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
    while done < job.size {
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
                return Err(format!(
                    "the sender sent {} bytes at offset {offset} instead of {len}",
                    data.len()
                ))
            }
            Err(FetchError::Retry(_)) => {
                in_flight.push(request(offset, attempt + 1));
                continue;
            }
            Err(FetchError::Fatal(reason)) => return Err(reason),
        }
        while let Some(data) = waiting.remove(&done) {
            file.write_all(&data)
                .await
                .map_err(|e| io_err("cannot write", e))?;
            hasher.update(&data);
            done += data.len() as u64;
        }
        if last_report.elapsed() >= PROGRESS_EVERY {
            progress(done);
            last_report = Instant::now();
        }
    }
    file.flush().await.map_err(|e| io_err("cannot write", e))?;
    file.sync_all()
        .await
        .map_err(|e| io_err("cannot sync", e))?;
    drop(file);
    progress(done);

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

fn chunk_len(size: u64, offset: u64) -> u32 {
    u32::try_from((size - offset).min(u64::from(CHUNK_LEN))).unwrap_or(CHUNK_LEN)
}

/// How much of the file is already on disk, and the hash of that prefix.
async fn resume_point(part: &Path, size: u64) -> io::Result<(u64, Sha256)> {
    let part = part.to_owned();
    tokio::task::spawn_blocking(move || {
        let len = match std::fs::metadata(&part) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, Sha256::new())),
            Err(e) => return Err(e),
        };
        if len > size {
            std::fs::remove_file(&part)?;
            return Ok((0, Sha256::new()));
        }
        let mut hasher = Sha256::new();
        let mut file = std::fs::File::open(&part)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut read = 0u64;
        while read < len {
            let n = io::Read::read(&mut file, &mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            read += n as u64;
        }
        Ok((read, hasher))
    })
    .await
    .map_err(io::Error::other)?
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
        let path = run(&job, serve(content.clone()), |b| reports.push(b))
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
        let second = run(&again, serve(content.clone()), |_| {}).await.unwrap();
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
        let path = run(&job, fetch, |_| {}).await.unwrap();
        assert_eq!(std::fs::read(path).unwrap(), *content);
        assert_eq!(asked.load(Ordering::SeqCst), content.len() - have);
    }

    #[tokio::test]
    async fn a_corrupted_chunk_is_detected_and_nothing_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let content = data(CHUNK_LEN as usize * 2 + 5);
        let job = job(tmp.path(), &content);
        let mut corrupted = content.clone();
        corrupted[CHUNK_LEN as usize + 17] ^= 0xff;
        let err = run(&job, serve(Arc::new(corrupted)), |_| {})
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
        let path = run(&job, flaky, |_| {}).await.unwrap();
        assert_eq!(std::fs::read(path).unwrap(), *content);

        let job2 = Job {
            transfer: TransferId::random(),
            ..job
        };
        let refuse = |_, _| std::future::ready(Err(FetchError::Fatal("unknown transfer".into())));
        assert_eq!(
            run(&job2, refuse, |_| {}).await.unwrap_err(),
            "unknown transfer"
        );
    }
}
