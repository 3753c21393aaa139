//! Append-only line files that survive `kill -9`: each record goes out in one `write`, a
//! line torn by a crash is skipped on reading and fenced off before the next append.

use std::{
    fs::{File, OpenOptions},
    io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use serde::{de::DeserializeOwned, Serialize};

use crate::store::data_dir::write_atomic;

/// Longest record read back; a longer line is treated as damaged and skipped.
pub const MAX_RECORD: usize = 1024 * 1024;

/// An open append-only file of JSON records, one per line.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Opens (creating) the journal at `path` for appending.
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(Self {
            path: path.to_owned(),
            file: open_for_append(path)?,
        })
    }

    /// Appends one record and flushes it to the operating system.
    pub fn append<T: Serialize>(&mut self, record: &T) -> io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        let written = self.file.write_all(&line).and_then(|()| self.file.flush());
        if written.is_err() {
            // A failed write (a full disk) may leave half a line: fence it off now so that
            // the next record starts on a line of its own.
            if let Ok(file) = open_for_append(&self.path) {
                self.file = file;
            }
        }
        written
    }

    /// Replaces the whole journal with `records`, atomically.
    pub fn rewrite<T: Serialize>(
        &mut self,
        records: impl IntoIterator<Item = T>,
    ) -> io::Result<()> {
        let mut bytes = Vec::new();
        for record in records {
            serde_json::to_writer(&mut bytes, &record).map_err(io::Error::other)?;
            bytes.push(b'\n');
        }
        write_atomic(&self.path, &bytes, true)?;
        self.file = open_for_append(&self.path)?;
        Ok(())
    }
}

/// Every readable record of the journal at `path`, oldest first; a missing file is empty.
pub fn read_all<T: DeserializeOwned>(path: &Path) -> io::Result<Vec<T>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut reader = BufReader::new(file);
    let mut records = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_RECORD as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if line.len() > MAX_RECORD {
            // Skip the rest of an overlong line.
            let mut rest = Vec::new();
            reader.read_until(b'\n', &mut rest)?;
            continue;
        }
        if let Ok(record) = serde_json::from_slice(&line) {
            records.push(record);
        }
    }
    Ok(records)
}

/// Opens a line file for appending (created readable by its owner only); a torn last line
/// left by a crash is closed with a newline so the next record starts on a line of its own.
pub fn open_for_append(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true).read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    let len = file.metadata()?.len();
    if len > 0 {
        file.seek(SeekFrom::Start(len - 1))?;
        let mut last = [0u8; 1];
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            file.write_all(b"\n")?;
        }
    }
    Ok(file)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_torn_line_and_a_rewrite() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("j.jsonl");
        let mut j = Journal::open(&path).unwrap();
        j.append(&1u32).unwrap();
        j.append(&2u32).unwrap();
        drop(j);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"torn").unwrap();
        drop(f);
        assert_eq!(read_all::<u32>(&path).unwrap(), vec![1, 2]);
        let mut j = Journal::open(&path).unwrap();
        j.append(&3u32).unwrap();
        assert_eq!(read_all::<u32>(&path).unwrap(), vec![1, 2, 3]);
        j.rewrite([7u32]).unwrap();
        j.append(&8u32).unwrap();
        assert_eq!(read_all::<u32>(&path).unwrap(), vec![7, 8]);
    }
}
