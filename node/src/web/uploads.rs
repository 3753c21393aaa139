//! The files the page hands to the node to send or share (`web-uploads/<random>/<name>`):
//! kept while a transfer may still need them, removed once none does, and on start when no
//! offer names them.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, Instant},
};

use ipm_protocol::TransferId;
use tokio::sync::broadcast;
use tracing::debug;

use crate::{
    client::{Client, TransferView},
    event::Event,
    store::transfers::{Direction, State},
};

/// How long an upload not yet named by an offer is kept: the page offers it right after
/// storing it.
pub const FRESH: Duration = Duration::from_secs(10 * 60);
/// How often the folders are looked at, besides when a transfer ends.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The upload folders and what this run knows of them.
#[derive(Debug)]
pub struct Uploads {
    root: PathBuf,
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    /// Folders stored this run, and when.
    fresh: HashMap<PathBuf, Instant>,
    /// Transfers to one person that were sent whole this run.
    sent_whole: HashSet<TransferId>,
}

/// Which of `folders` no transfer needs at `now`. A folder no offer names yet is kept while
/// it is `fresh` (stored less than [`FRESH`] ago: its offer comes right after). Once named,
/// it is kept while an outgoing transfer serving a file in it is still offered: a share in
/// a room stays offered to anyone who asks; an offer to one person until it is sent to them
/// whole (`sent_whole`), rejected or failed.
pub fn unneeded(
    folders: &[PathBuf],
    fresh: &HashMap<PathBuf, Instant>,
    sent_whole: &HashSet<TransferId>,
    transfers: &[TransferView],
    now: Instant,
) -> Vec<PathBuf> {
    let serves = |t: &TransferView, folder: &Path| {
        t.direction == Direction::Outgoing
            && t.source.as_deref().is_some_and(|s| s.starts_with(folder))
    };
    let needs = |t: &TransferView| match t.state {
        State::Offered | State::Sending => !(t.peer.is_some() && sent_whole.contains(&t.id)),
        State::Sent => t.peer.is_none(),
        _ => false,
    };
    folders
        .iter()
        .filter(|folder| {
            let mut named = transfers.iter().filter(|t| serves(t, folder)).peekable();
            if named.peek().is_none() {
                let young = fresh
                    .get(*folder)
                    .is_some_and(|at| now.saturating_duration_since(*at) < FRESH);
                return !young;
            }
            !named.any(needs)
        })
        .cloned()
        .collect()
}

impl Uploads {
    /// The uploads kept under `root` (`DATA_DIR/web-uploads`).
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            seen: Mutex::default(),
        }
    }

    /// Creates a new folder `name` for one upload (private to the user), noted as fresh
    /// before it exists so no sweep takes it before its offer is made.
    pub fn new_folder(&self, name: &str) -> std::io::Result<PathBuf> {
        crate::store::data_dir::create_private_dir(&self.root)?;
        let folder = std::fs::canonicalize(&self.root)?.join(name);
        self.lock().fresh.insert(folder.clone(), Instant::now());
        crate::store::data_dir::create_private_dir(&folder)?;
        Ok(folder)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Removes the folders no transfer needs; returns how many went.
    pub async fn sweep(&self, client: &Client) -> usize {
        let Ok(transfers) = client.transfers().await else {
            return 0;
        };
        let root = self.root.clone();
        let folders = tokio::task::spawn_blocking(move || list_folders(&root))
            .await
            .unwrap_or_default();
        let gone = {
            let seen = self.lock();
            unneeded(
                &folders,
                &seen.fresh,
                &seen.sent_whole,
                &transfers,
                Instant::now(),
            )
        };
        let count = gone.len();
        {
            let mut seen = self.lock();
            for folder in &gone {
                seen.fresh.remove(folder);
            }
        }
        tokio::task::spawn_blocking(move || {
            for folder in gone {
                debug!(folder = %folder.display(), "removing an upload no transfer needs");
                let _ = std::fs::remove_dir_all(folder);
            }
        })
        .await
        .ok();
        count
    }

    /// Sweeps at once, then whenever a transfer ends and every [`SWEEP_EVERY`], until the
    /// node stops.
    pub async fn keep_clean(&self, client: Client) {
        let mut events = client.events();
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                event = events.recv() => match event {
                    Ok(Event::FileSending { transfer, bytes, size, .. }) if bytes >= size => {
                        self.lock().sent_whole.insert(transfer);
                    }
                    Ok(Event::FileFailed { .. }) => {}
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
            self.sweep(&client).await;
        }
    }
}

/// The folders directly under `root`, canonical (none when it does not exist yet).
fn list_folders(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| std::fs::canonicalize(e.path()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::PeerId;

    fn offer(folder: &str, peer: Option<PeerId>, state: State) -> TransferView {
        TransferView {
            id: TransferId::random(),
            direction: Direction::Outgoing,
            with: "bob".into(),
            name: "f.png".into(),
            size: 10,
            bytes: 0,
            source: Some(PathBuf::from(folder).join("f.png")),
            peer,
            state,
        }
    }

    #[test]
    fn an_upload_stays_while_an_offer_may_still_need_it() {
        let now = Instant::now();
        let bob = Some(PeerId::random());
        let folders: Vec<PathBuf> = ["/u/a", "/u/b", "/u/c", "/u/d", "/u/e", "/u/f"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let waiting = offer("/u/a", bob, State::Offered);
        let shared = offer("/u/b", None, State::Offered);
        let sent = offer("/u/c", bob, State::Offered);
        let rejected = offer("/u/d", bob, State::Rejected);
        let failed = offer(
            "/u/e",
            bob,
            State::Failed {
                reason: "gone".into(),
            },
        );
        let sent_whole: HashSet<_> = [sent.id].into();
        let transfers = [waiting, shared, sent, rejected, failed];
        // Not offered, nor fresh: "/u/f" was left by an earlier run.
        let gone = unneeded(&folders, &HashMap::new(), &sent_whole, &transfers, now);
        let want: Vec<PathBuf> = ["/u/c", "/u/d", "/u/e", "/u/f"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(gone, want);

        // Just stored, its offer not made yet: kept, until it is no longer fresh. Being fresh
        // does not keep a folder whose offer no longer needs it.
        let fresh: HashMap<_, _> =
            [(PathBuf::from("/u/f"), now), (PathBuf::from("/u/c"), now)].into();
        let gone = unneeded(&folders, &fresh, &sent_whole, &transfers, now);
        assert!(!gone.contains(&PathBuf::from("/u/f")));
        assert!(gone.contains(&PathBuf::from("/u/c")));
        let later = now + FRESH;
        let gone = unneeded(&folders, &fresh, &sent_whole, &transfers, later);
        assert!(gone.contains(&PathBuf::from("/u/f")));
    }

    #[test]
    fn a_share_sent_whole_to_one_member_stays_for_the_others() {
        let shared = offer("/u/a", None, State::Offered);
        let sent_whole: HashSet<_> = [shared.id].into();
        let gone = unneeded(
            &[PathBuf::from("/u/a")],
            &HashMap::new(),
            &sent_whole,
            &[shared],
            Instant::now(),
        );
        assert!(gone.is_empty());
    }
}
