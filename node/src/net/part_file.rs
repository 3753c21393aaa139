//! The writer of a `.part` file: buffers received from a peer are appended and hashed on a
//! blocking thread of their own, so neither the network task nor the event loop waits on the
//! disk or on SHA-256. At most [`QUEUED`] buffers wait for it.

use std::{
    fs::File,
    io,
    io::Write,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use sha2::{Digest, Sha256};
use tokio::{sync::mpsc, task::JoinHandle};

/// Buffers that may wait for the writer thread.
const QUEUED: usize = 4;

/// Appends buffers to a partial file and hashes them, off the async threads.
#[derive(Debug)]
pub struct PartWriter {
    tx: Option<mpsc::Sender<Vec<u8>>>,
    done: Option<mpsc::Receiver<Vec<u8>>>,
    task: JoinHandle<io::Result<Sha256>>,
    written: Arc<AtomicU64>,
}

impl PartWriter {
    /// Starts the writer of `file` (opened for appending), whose `len` bytes so far hash to
    /// `hasher`.
    pub fn start(file: File, len: u64, hasher: Sha256) -> Self {
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUED);
        let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>(QUEUED + 2);
        let written = Arc::new(AtomicU64::new(len));
        let counter = written.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut file = file;
            let mut hasher = hasher;
            while let Some(buf) = rx.blocking_recv() {
                file.write_all(&buf)?;
                counter.fetch_add(buf.len() as u64, Ordering::Relaxed);
                hasher.update(&buf);
                // A buffer handed back saves the network side an allocation.
                let _ = free_tx.try_send(buf);
            }
            file.flush()?;
            file.sync_all()?;
            Ok(hasher)
        });
        Self {
            tx: Some(tx),
            done: Some(free_rx),
            task,
            written,
        }
    }

    /// The length of the file so far: what was written to it, not what waits in the queue.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// A buffer of `len` bytes to fill, reused from one already written when there is one.
    pub fn buffer(&mut self, len: usize) -> Vec<u8> {
        let reused = self.done.as_mut().and_then(|rx| rx.try_recv().ok());
        match reused {
            Some(mut buf) => {
                buf.resize(len, 0);
                buf
            }
            None => vec![0u8; len],
        }
    }

    /// Queues `buf` to be appended; waits while [`QUEUED`] buffers are waiting already. An
    /// error means the writer stopped: [`PartWriter::finish`] says why.
    pub async fn write(&mut self, buf: Vec<u8>) -> Result<(), Stopped> {
        match &self.tx {
            Some(tx) => tx.send(buf).await.map_err(|_| Stopped),
            None => Err(Stopped),
        }
    }

    /// Waits until everything queued is written and synced; the hash of the whole file.
    pub async fn finish(mut self) -> io::Result<Sha256> {
        self.tx = None;
        self.done = None;
        (&mut self.task).await.map_err(io::Error::other)?
    }
}

/// The writer thread ended early (a disk error): see [`PartWriter::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn buffers_are_appended_and_hashed_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.part");
        std::fs::write(&path, b"head").unwrap();
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let mut hasher = Sha256::new();
        hasher.update(b"head");
        let mut writer = PartWriter::start(file, 4, hasher);
        for i in 0..20u8 {
            let mut buf = writer.buffer(1000);
            buf.fill(i);
            writer.write(buf).await.unwrap();
        }
        let hash: [u8; 32] = writer.finish().await.unwrap().finalize().into();
        let content = std::fs::read(&path).unwrap();
        assert_eq!(content.len(), 4 + 20 * 1000);
        assert_eq!(&content[..4], b"head");
        assert!(content[4 + 19 * 1000..].iter().all(|b| *b == 19));
        assert_eq!(hash, <[u8; 32]>::from(Sha256::digest(&content)));
    }
}
