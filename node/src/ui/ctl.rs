//! `ipm ctl`: one command sent to a running node over the local socket in its data dir.
//!
//! The exchange is one JSON line each way: `{"line": "/status"}` and
//! `{"ok": true, "output": "...", "quit": false}`.
//!
//! Only the user who runs the node may drive it: the socket is created 0600 in a 0700
//! folder, and each connection's peer uid (`SO_PEERCRED`) must be the socket's owner.

use std::{
    io,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::mpsc,
};
use tracing::{debug, warn};

use crate::ui::session::{Outcome, Session};

/// Longest request line accepted.
const MAX_REQUEST: usize = 64 * 1024;
/// Longest reply accepted by the client.
const MAX_REPLY: usize = 64 * 1024 * 1024;

#[derive(Serialize, Deserialize)]
struct CtlRequest {
    line: String,
}

/// The node's answer to one ctl command.
#[derive(Debug, Serialize, Deserialize)]
pub struct CtlReply {
    /// Whether the command succeeded.
    pub ok: bool,
    /// What it printed, or the error.
    pub output: String,
    /// Whether the node is stopping because of it.
    pub quit: bool,
}

/// Why the control socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Another node owns the data dir.
    #[error("another ipm node is already running with this data dir ({0})")]
    InUse(String),
    /// No node listens on the socket.
    #[error(
        "no ipm node is running with data dir {0} (start one with: ipm --headless --data-dir {0})"
    )]
    NotRunning(String),
    /// Socket I/O failed.
    #[error("control socket {path}: {source}")]
    Io {
        /// The socket path.
        path: String,
        /// What failed.
        source: io::Error,
    },
    /// The node's answer made no sense.
    #[error("bad answer from the node: {0}")]
    BadReply(String),
}

/// A bound control socket; removed from disk when dropped.
pub struct CtlServer {
    listener: UnixListener,
    path: PathBuf,
    /// The user the node runs as (the socket's owner); only this user is served.
    owner: u32,
}

/// The answer to a connection from a user other than the node's.
pub const REFUSED_USER: &str = "refused: this ipm node belongs to another user";

/// Whether a ctl connection from `peer` (its uid, when the system tells it) may drive a
/// node run by user `owner`: only the same user may.
pub fn admits(owner: u32, peer: Option<u32>) -> bool {
    peer == Some(owner)
}

impl CtlServer {
    /// Binds the socket at `path`, replacing a stale one but refusing to steal a live one.
    pub async fn bind(path: &Path) -> Result<Self, CtlError> {
        if path.exists() {
            if UnixStream::connect(path).await.is_ok() {
                return Err(CtlError::InUse(path.display().to_string()));
            }
            let _ = std::fs::remove_file(path);
        }
        let io_err = |source| CtlError::Io {
            path: path.display().to_string(),
            source,
        };
        let listener = UnixListener::bind(path).map_err(io_err)?;
        let owner = {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(io_err)?;
            std::fs::metadata(path).map_err(io_err)?.uid()
        };
        Ok(Self {
            listener,
            path: path.to_owned(),
            owner,
        })
    }

    /// Serves commands until the task is dropped; a `/quit` is reported on `quit`.
    pub async fn serve(self, session: Session, quit: mpsc::Sender<()>) {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    let peer = stream.peer_cred().ok().map(|c| c.uid());
                    if !admits(self.owner, peer) {
                        warn!(?peer, "ctl connection from another user refused");
                        tokio::spawn(refuse(stream));
                        continue;
                    }
                    let session = session.clone();
                    let quit = quit.clone();
                    tokio::spawn(async move {
                        if let Err(e) = handle(stream, &session, &quit).await {
                            debug!("ctl connection: {e}");
                        }
                    });
                }
                Err(e) => {
                    warn!("ctl accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

impl Drop for CtlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Tells a connection of another user that it is refused. Its request is read (bounded,
/// never run) only so that the refusal is not lost to a broken pipe on its side.
async fn refuse(stream: UnixStream) {
    let reply = CtlReply {
        ok: false,
        output: REFUSED_USER.into(),
        quit: false,
    };
    let Ok(mut bytes) = serde_json::to_vec(&reply) else {
        return;
    };
    bytes.push(b'\n');
    let (read, mut write) = stream.into_split();
    let exchange = async {
        let mut ignored = String::new();
        let mut reader = BufReader::new(read).take(MAX_REQUEST as u64);
        let _ = reader.read_line(&mut ignored).await;
        write.write_all(&bytes).await?;
        write.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), exchange).await;
}

async fn handle(stream: UnixStream, session: &Session, quit: &mpsc::Sender<()>) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read).take(MAX_REQUEST as u64);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let reply = match serde_json::from_str::<CtlRequest>(&line) {
        Ok(request) => match session.run_line(&request.line).await {
            Ok(Outcome::Quit) => CtlReply {
                ok: true,
                output: Outcome::Quit.describe(),
                quit: true,
            },
            Ok(outcome) => CtlReply {
                ok: true,
                output: outcome.describe(),
                quit: false,
            },
            Err(message) => CtlReply {
                ok: false,
                output: message.describe(),
                quit: false,
            },
        },
        Err(e) => CtlReply {
            ok: false,
            output: format!("malformed request: {e}"),
            quit: false,
        },
    };
    let mut bytes = serde_json::to_vec(&reply).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await?;
    write.shutdown().await?;
    if reply.quit {
        let _ = quit.send(()).await;
    }
    Ok(())
}

/// Sends `line` to the node listening at `path` and returns its answer.
pub async fn send(path: &Path, data_dir: &Path, line: &str) -> Result<CtlReply, CtlError> {
    let io_err = |source| CtlError::Io {
        path: path.display().to_string(),
        source,
    };
    let stream = match UnixStream::connect(path).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(CtlError::NotRunning(data_dir.display().to_string()))
        }
        Err(e) => return Err(io_err(e)),
    };
    let (read, mut write) = stream.into_split();
    let mut request = serde_json::to_vec(&CtlRequest {
        line: line.to_owned(),
    })
    .map_err(|e| io_err(io::Error::other(e)))?;
    request.push(b'\n');
    write.write_all(&request).await.map_err(io_err)?;
    let mut reader = BufReader::new(read).take(MAX_REPLY as u64);
    let mut answer = String::new();
    reader.read_line(&mut answer).await.map_err(io_err)?;
    let mut reply: CtlReply =
        serde_json::from_str(&answer).map_err(|e| CtlError::BadReply(e.to_string()))?;
    // Whatever answers on the socket, its text cannot drive the terminal `ipm ctl` runs in.
    reply.output = crate::ui::render::clean_lines(&reply.output);
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_nodes_own_user_is_admitted() {
        assert!(admits(1000, Some(1000)));
        assert!(!admits(1000, Some(1001)));
        assert!(
            !admits(1000, Some(0)),
            "not even root drives another user's node"
        );
        assert!(!admits(0, None), "a peer whose uid is unknown is refused");
    }
}
