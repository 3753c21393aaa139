//! Pulls one offered folder from its sender into a staging folder of its own,
//! `downloads/.partial/<id>.folder/`: first the manifest (fetched and checked like a file,
//! then decoded, which checks every path), then each file in the manifest's order with the
//! download of one file (`net::download`), each verified against its SHA-256 and moved into
//! `tree/<path>`. The tree is made only once the manifest's folders, depth, bytes and inodes
//! are known to fit beside the other folders being made (`logic::folder_plan::Claims`). A
//! restart fetches only the files not yet there. Once every file is in, the tree is moved to
//! `downloads/<name>` (`name (1)` when taken) in one rename: a folder never appears half
//! there.

use std::{
    future::Future,
    io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::AsyncRead;

use ipm_protocol::{
    decode,
    folder::{entry_id, manifest_id, FolderSummary, Manifest},
    limits::MAX_MANIFEST_LEN,
    TransferId,
};

use crate::{
    logic::folder_plan::{check_manifest, remaining, Claims},
    net::download::{self, FetchError, Job, Opened},
    store::{
        data_dir::{free_inodes, free_space},
        transfers::unique_path,
    },
};

/// Least time between two progress reports of a folder.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// What to download and where.
#[derive(Clone, Debug)]
pub struct FolderJob {
    /// The folder's transfer.
    pub folder: TransferId,
    /// The sanitised folder name.
    pub name: String,
    /// The total size of its files, as offered.
    pub size: u64,
    /// What the offer says of the manifest.
    pub summary: FolderSummary,
    /// The offered SHA-256 of the encoded manifest.
    pub manifest_sha256: [u8; 32],
    /// The downloads folder.
    pub downloads: PathBuf,
    /// Bytes the other running downloads still need, taken off the free space the folder
    /// must fit in.
    pub owed: u64,
    /// The room claimed by the folders being made, this one's among them once checked.
    pub claims: Arc<Mutex<Claims>>,
}

/// Holds a folder's claim until its download ends, or stops (its task dropped).
struct Claimed {
    claims: Arc<Mutex<Claims>>,
    folder: TransferId,
}

impl Drop for Claimed {
    fn drop(&mut self) {
        let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        claims.release(&self.folder);
    }
}

impl FolderJob {
    /// The staging folder of this download.
    pub fn staging(&self) -> PathBuf {
        staging_dir(&self.downloads, &self.folder)
    }
}

/// The staging folder of the download of folder `id` into `downloads`.
pub fn staging_dir(downloads: &Path, id: &TransferId) -> PathBuf {
    downloads.join(".partial").join(format!("{id}.folder"))
}

/// Reports the folder's progress at most every [`PROGRESS_EVERY`], its first and last always.
struct Reporter<P> {
    report: P,
    last: Option<Instant>,
}

impl<P: FnMut(u64)> Reporter<P> {
    fn report(&mut self, bytes: u64, force: bool) {
        if force || self.last.is_none_or(|at| at.elapsed() >= PROGRESS_EVERY) {
            (self.report)(bytes);
            self.last = Some(Instant::now());
        }
    }
}

/// Downloads the folder of `job`: `fetch_for(id)` and `open_for(id)` give the chunk fetcher
/// and the stream opener of the part `id` (see [`download::run`]); `progress(bytes)` is
/// called as the folder's files grow, all of them counted. Returns where the folder is.
pub async fn run<MF, F, Fut, MO, O, OFut, S>(
    job: &FolderJob,
    fetch_for: MF,
    open_for: MO,
    progress: impl FnMut(u64),
) -> Result<PathBuf, String>
where
    MF: Fn(TransferId) -> F,
    F: Fn(u64, u32) -> Fut,
    Fut: Future<Output = Result<Vec<u8>, FetchError>>,
    MO: Fn(TransferId) -> O,
    O: FnMut(u64, u64) -> OFut,
    OFut: Future<Output = Result<Opened<S>, FetchError>>,
    S: AsyncRead + Unpin,
{
    let staging = job.staging();
    let tree = staging.join("tree");
    let io_err = |what: &str, path: &Path, e: io::Error| format!("{what} {}: {e}", path.display());
    {
        let made = staging.clone();
        blocking(move || crate::store::data_dir::create_private_dir(&made))
            .await
            .map_err(|e| io_err("cannot create", &staging, e))?;
    }
    let manifest = fetch_manifest(job, &staging, &fetch_for, &open_for).await?;
    check_manifest(&manifest, &job.summary, job.size)?;
    // Nothing of the tree is made before it is known to fit. A resumed download counts
    // again what it made already: the check errs on the side of the disk.
    let (space, inodes) = {
        let downloads = job.downloads.clone();
        blocking(move || {
            Ok((
                free_space(&downloads).ok(),
                free_inodes(&downloads).ok().flatten(),
            ))
        })
        .await
        .map_err(|e| io_err("cannot read the free space of", &job.downloads, e))?
    };
    let room = space.map(|free| free.saturating_sub(job.owed));
    job.claims
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .claim(job.folder, &manifest, room, inodes)
        .map_err(|e| e.to_string())?;
    let _claimed = Claimed {
        claims: job.claims.clone(),
        folder: job.folder,
    };
    {
        let made = tree.clone();
        blocking(move || std::fs::create_dir_all(&made))
            .await
            .map_err(|e| io_err("cannot create", &tree, e))?;
    }

    let scan = {
        let (staging, tree, manifest) = (staging.clone(), tree.clone(), manifest.clone());
        blocking(move || {
            let mut failed = None;
            let found = remaining(&manifest, |i| {
                match complete(&staging, &tree, i, &manifest.entries[i].path) {
                    Ok(done) => done,
                    Err(e) => {
                        failed.get_or_insert(e);
                        false
                    }
                }
            });
            failed.map_or(Ok(found), Err)
        })
    };
    let (mut done, left) = scan.await.map_err(|e| io_err("cannot read", &staging, e))?;
    let mut reporter = Reporter {
        report: progress,
        last: None,
    };
    reporter.report(done, true);
    for index in left {
        let entry = &manifest.entries[index as usize];
        let id = entry_id(&job.folder, index);
        let file = Job {
            transfer: id,
            size: entry.size,
            sha256: entry.sha256,
            name: index.to_string(),
            downloads: staging.clone(),
        };
        let base = done;
        let got = download::run(&file, fetch_for(id), open_for(id), |bytes| {
            reporter.report(base + bytes, false)
        })
        .await
        .map_err(|e| format!("{}: {e}", entry.path))?;
        let target = tree.join(&entry.path);
        blocking(move || place(&got, &target))
            .await
            .map_err(|e| format!("cannot place {}: {e}", entry.path))?;
        done += entry.size;
    }
    reporter.report(done, true);

    let downloads = job.downloads.clone();
    let name = job.name.clone();
    blocking(move || {
        let target = unique_path(&downloads, &name);
        std::fs::rename(&tree, &target)?;
        // Only the manifest and empty folders are left.
        let _ = std::fs::remove_dir_all(&staging);
        Ok(target)
    })
    .await
    .map_err(|e| {
        format!(
            "cannot move the folder into {}: {e}",
            job.downloads.display()
        )
    })
}

/// The folder's manifest: fetched into the staging folder unless it is there already (a
/// resumed download), then decoded, which checks its bounds and every path.
async fn fetch_manifest<MF, F, Fut, MO, O, OFut, S>(
    job: &FolderJob,
    staging: &Path,
    fetch_for: &MF,
    open_for: &MO,
) -> Result<Manifest, String>
where
    MF: Fn(TransferId) -> F,
    F: Fn(u64, u32) -> Fut,
    Fut: Future<Output = Result<Vec<u8>, FetchError>>,
    MO: Fn(TransferId) -> O,
    O: FnMut(u64, u64) -> OFut,
    OFut: Future<Output = Result<Opened<S>, FetchError>>,
    S: AsyncRead + Unpin,
{
    let kept = staging.join("manifest");
    if !tokio::fs::try_exists(&kept).await.unwrap_or(false) {
        let id = manifest_id(&job.folder);
        let fetch = Job {
            transfer: id,
            size: u64::from(job.summary.manifest_len),
            sha256: job.manifest_sha256,
            name: "manifest".into(),
            downloads: staging.to_owned(),
        };
        download::run(&fetch, fetch_for(id), open_for(id), |_| {})
            .await
            .map_err(|e| format!("the folder's manifest: {e}"))?;
    }
    let bytes = {
        let kept = kept.clone();
        blocking(move || {
            let len = std::fs::metadata(&kept)?.len();
            if len > MAX_MANIFEST_LEN as u64 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "too large"));
            }
            std::fs::read(&kept)
        })
        .await
        .map_err(|e| format!("cannot read the folder's manifest: {e}"))?
    };
    decode::<Manifest>(&bytes, MAX_MANIFEST_LEN).map_err(|e| format!("refused the folder: {e}"))
}

/// Whether file `index` (at `path` in the folder) is complete: in the tree, or verified and
/// not yet moved there (the node stopped in between; it is moved now).
fn complete(staging: &Path, tree: &Path, index: usize, path: &str) -> io::Result<bool> {
    let target = tree.join(path);
    if std::fs::symlink_metadata(&target).is_ok_and(|m| m.is_file()) {
        return Ok(true);
    }
    let verified = staging.join(index.to_string());
    if std::fs::symlink_metadata(&verified).is_ok_and(|m| m.is_file()) {
        place(&verified, &target)?;
        return Ok(true);
    }
    Ok(false)
}

/// Moves a verified file to its place in the tree, making the folders on its way.
fn place(from: &Path, to: &Path) -> io::Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::rename(from, to)
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(io::Error::other)?
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ipm_protocol::{
        encode,
        folder::{ManifestEntry, FILE_KIND},
    };
    use sha2::{Digest, Sha256};
    use std::{
        collections::HashMap,
        sync::{Arc, Mutex},
    };

    type Wire = futures::io::Cursor<Vec<u8>>;
    type Served = Arc<HashMap<TransferId, Vec<u8>>>;
    type Asked = Arc<Mutex<Vec<TransferId>>>;
    type Fetch = dyn Fn(u64, u32) -> std::future::Ready<Result<Vec<u8>, FetchError>>;

    /// A folder of `files` (path, content) as a sender serves it: the job, and the bytes of
    /// each part by id.
    fn folder(downloads: &Path, files: &[(&str, Vec<u8>)]) -> (FolderJob, Served, Manifest) {
        let manifest = Manifest {
            entries: files
                .iter()
                .map(|(path, data)| ManifestEntry {
                    path: (*path).into(),
                    size: data.len() as u64,
                    sha256: Sha256::digest(data).into(),
                    kind: FILE_KIND.into(),
                })
                .collect(),
        };
        let bytes = encode(&manifest);
        let folder = TransferId::random();
        let mut served = HashMap::new();
        served.insert(manifest_id(&folder), bytes.clone());
        for (i, (_, data)) in files.iter().enumerate() {
            served.insert(entry_id(&folder, i as u32), data.clone());
        }
        let job = FolderJob {
            folder,
            name: "photos".into(),
            size: manifest.total_size(),
            summary: FolderSummary {
                files: files.len() as u32,
                manifest_len: bytes.len() as u32,
            },
            manifest_sha256: Sha256::digest(&bytes).into(),
            downloads: downloads.to_owned(),
            owed: 0,
            claims: Arc::default(),
        };
        (job, Arc::new(served), manifest)
    }

    /// Chunk fetchers of a sender without streams, recording which parts were asked for.
    fn fetchers(served: Served, asked: Asked) -> impl Fn(TransferId) -> Box<Fetch> {
        move |id| {
            let served = served.clone();
            let asked = asked.clone();
            Box::new(move |offset, len| {
                asked.lock().unwrap().push(id);
                let Some(data) = served.get(&id) else {
                    return std::future::ready(Err(FetchError::Fatal("no such transfer".into())));
                };
                let start = (offset as usize).min(data.len());
                let end = (start + len as usize).min(data.len());
                std::future::ready(Ok(data[start..end].to_vec()))
            })
        }
    }

    fn no_streams(
        _: TransferId,
    ) -> impl FnMut(u64, u64) -> std::future::Ready<Result<Opened<Wire>, FetchError>> {
        |_, _| std::future::ready(Ok(Opened::Unsupported))
    }

    fn files() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("a.txt", b"alpha".to_vec()),
            ("sub/b.txt", vec![7; 300_000]),
            ("sub/deeper/c.bin", vec![9; 1000]),
            ("z-empty", Vec::new()),
        ]
    }

    #[tokio::test]
    async fn a_nested_folder_arrives_whole_under_a_name_that_overwrites_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("photos")).unwrap();
        let (job, served, _) = folder(tmp.path(), &files());
        let asked = Asked::default();
        let mut reports = Vec::new();
        let path = run(&job, fetchers(served, asked), no_streams, |b| {
            reports.push(b)
        })
        .await
        .unwrap();
        assert_eq!(path, tmp.path().join("photos (1)"));
        for (name, data) in files() {
            assert_eq!(std::fs::read(path.join(name)).unwrap(), data, "{name}");
        }
        assert_eq!(reports.first(), Some(&0));
        assert_eq!(reports.last(), Some(&job.size));
        assert!(!job.staging().exists(), "the staging folder is gone");
    }

    #[tokio::test]
    async fn a_resumed_folder_fetches_only_the_files_not_yet_complete() {
        let tmp = tempfile::tempdir().unwrap();
        let (job, served, manifest) = folder(tmp.path(), &files());
        // As a stopped download left it: the manifest, one file in the tree, one verified
        // but not yet moved.
        let staging = job.staging();
        std::fs::create_dir_all(staging.join("tree")).unwrap();
        std::fs::write(staging.join("manifest"), encode(&manifest)).unwrap();
        std::fs::write(staging.join("tree/a.txt"), b"alpha").unwrap();
        std::fs::write(staging.join("1"), vec![7; 300_000]).unwrap();
        let asked = Asked::default();
        let mut reports = Vec::new();
        let path = run(&job, fetchers(served, asked.clone()), no_streams, |b| {
            reports.push(b)
        })
        .await
        .unwrap();
        for (name, data) in files() {
            assert_eq!(std::fs::read(path.join(name)).unwrap(), data, "{name}");
        }
        let asked = asked.lock().unwrap().clone();
        assert!(
            asked.iter().all(|id| *id == entry_id(&job.folder, 2)),
            "{asked:?}"
        );
        assert_eq!(reports.first(), Some(&300_005));
    }

    #[tokio::test]
    async fn a_hostile_manifest_or_a_changed_file_leaves_nothing_in_downloads() {
        let tmp = tempfile::tempdir().unwrap();
        let (job, served, _) = folder(tmp.path(), &[("../x", b"pwned".to_vec())]);
        let err = run(&job, fetchers(served, Asked::default()), no_streams, |_| {})
            .await
            .unwrap_err();
        assert!(err.contains("going up"), "{err}");
        assert!(!tmp.path().join("x").exists() && !tmp.path().join("photos").exists());

        let (job2, served, _) = folder(tmp.path(), &files());
        let mut bad = (*served).clone();
        bad.insert(entry_id(&job2.folder, 1), vec![8; 300_000]);
        let err = run(
            &job2,
            fetchers(Arc::new(bad), Asked::default()),
            no_streams,
            |_| {},
        )
        .await
        .unwrap_err();
        assert!(err.starts_with("sub/b.txt: sha256 mismatch"), "{err}");
        assert!(!tmp.path().join("photos").exists());

        // A manifest that does not keep the offer's promise.
        let (mut job, served, _) = folder(tmp.path(), &[("ok", b"fine".to_vec())]);
        job.summary.files = 2;
        let err = run(&job, fetchers(served, Asked::default()), no_streams, |_| {})
            .await
            .unwrap_err();
        assert_eq!(err, "the manifest lists 1 files, the offer said 2");

        // A folder that does not fit beside what the other downloads need: refused once its
        // manifest is read, before any folder of its tree is made.
        let (mut job, served, _) = folder(tmp.path(), &files());
        job.owed = u64::MAX;
        let err = run(&job, fetchers(served, Asked::default()), no_streams, |_| {})
            .await
            .unwrap_err();
        assert!(
            err.starts_with("not enough disk space for this folder: its 4 files in 2 folders"),
            "{err}"
        );
        assert!(job.staging().join("manifest").exists());
        assert!(!job.staging().join("tree").exists());
        assert!(!tmp.path().join("photos").exists());
    }
}
