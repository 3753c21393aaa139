//! Folder transfers without I/O: which outgoing folder (and which part of it) a peer's
//! request names and whether that peer may have it, whether a fetched manifest is the one
//! the offer promised, which files of a folder are still to fetch, and how a folder's offer
//! and arrival are told to the user. The offer itself goes through `logic::offers` like any
//! file's; the driver is `event_loop/folders.rs`.

use libp2p::PeerId;

use ipm_protocol::{
    folder::{part_of, FolderSummary, Manifest, Part},
    FileOffer, TransferId,
};

use crate::{
    event::Event,
    store::transfers::{Direction, State, Transfers},
};

/// What a sender answers a peer that asks for a folder as if it were one file: a node of the
/// previous release, which shows a folder offer as a file offer.
pub const NEEDS_NEWER: &str = "this is a folder: receiving folders needs a newer ipm";

/// The answer to a request naming no transfer this peer may have.
pub const NO_SUCH_TRANSFER: &str = "no such transfer";

/// What a request for transfer `id` from `peer` names among this node's outgoing folders:
/// `None` when it names none (a plain file, or nothing), else the folder and the part of it
/// to serve, or the refusal to send. `candidate` is the offered folder whose id starts like
/// `id` (every part's id shares the folder's first 12 bytes), if there is one.
pub fn served_part(
    transfers: &Transfers,
    peer: &PeerId,
    id: &TransferId,
    candidate: Option<TransferId>,
) -> Option<Result<(TransferId, Part), String>> {
    if let Some(t) = transfers.get(id) {
        return (t.direction == Direction::Outgoing && t.offer.folder.is_some())
            .then(|| Err(NEEDS_NEWER.to_owned()));
    }
    let folder = candidate?;
    let t = transfers.get(&folder)?;
    let summary = t
        .offer
        .folder
        .filter(|_| t.direction == Direction::Outgoing)?;
    let part = part_of(&folder, id)?;
    let allowed = t.serves(peer)
        && t.state != State::Rejected
        && match part {
            Part::Manifest => true,
            Part::Entry(i) => i < summary.files,
        };
    Some(if allowed {
        Ok((folder, part))
    } else {
        Err(NO_SUCH_TRANSFER.to_owned())
    })
}

/// Whether a fetched (and decoded, hence path-checked) manifest is what the offer promised:
/// as many files, adding up to the offered size.
pub fn check_manifest(
    manifest: &Manifest,
    summary: &FolderSummary,
    size: u64,
) -> Result<(), String> {
    if manifest.entries.len() != summary.files as usize {
        return Err(format!(
            "the manifest lists {} files, the offer said {}",
            manifest.entries.len(),
            summary.files
        ));
    }
    let total = manifest.total_size();
    if total != size {
        return Err(format!(
            "the manifest's files add up to {total} bytes, the offer said {size}"
        ));
    }
    Ok(())
}

/// Where a folder download starts again: the bytes of the files already complete (`done`
/// says which are) and the indexes of the files still to fetch, in the manifest's order.
pub fn remaining(manifest: &Manifest, mut done: impl FnMut(usize) -> bool) -> (u64, Vec<u32>) {
    let mut have = 0u64;
    let mut left = Vec::new();
    for (i, entry) in manifest.entries.iter().enumerate() {
        if done(i) {
            have = have.saturating_add(entry.size);
        } else if let Ok(i) = u32::try_from(i) {
            left.push(i);
        }
    }
    (have, left)
}

/// The name `/transfers` shows for an offer: a folder's ends with `/`.
pub fn label(offer: &FileOffer) -> String {
    match offer.folder {
        Some(_) => format!("{}/", offer.name),
        None => offer.name.clone(),
    }
}

/// The event to tell the user for `event`, which the offer machine wrote for a file: a
/// folder's offer and arrival are told as such (its progress and failure read as a file's).
pub fn told(event: Event, transfers: &Transfers) -> Event {
    let folder = |id: &TransferId| transfers.get(id).and_then(|t| t.offer.folder);
    match event {
        Event::FileOffer {
            transfer,
            from,
            peer,
            name,
            size,
            room,
        } if folder(&transfer).is_some() => Event::FolderOffer {
            transfer,
            from,
            peer,
            name,
            size,
            files: folder(&transfer).map_or(0, |f| f.files),
            room,
        },
        Event::FileReceived {
            transfer,
            path,
            size,
            ..
        } if folder(&transfer).is_some() => Event::FolderReceived {
            transfer,
            path,
            size,
            files: folder(&transfer).map_or(0, |f| f.files),
        },
        other => other,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::transfers::Transfer;
    use ipm_protocol::folder::{entry_id, manifest_id, ManifestEntry, FILE_KIND};

    fn offer(folder: Option<FolderSummary>) -> FileOffer {
        FileOffer {
            transfer: TransferId::random(),
            from_name: "alice".into(),
            name: "photos".into(),
            size: 10,
            sha256: [3; 32],
            folder,
        }
    }

    fn summary(files: u32) -> FolderSummary {
        FolderSummary {
            files,
            manifest_len: 100,
        }
    }

    fn add(
        transfers: &mut Transfers,
        offer: FileOffer,
        peer: Option<PeerId>,
        room: Option<&str>,
    ) -> TransferId {
        let id = offer.transfer;
        transfers
            .insert(Transfer {
                offer,
                direction: Direction::Outgoing,
                peer,
                room: room.map(str::to_owned),
                source: Some("/home/alice/photos".into()),
                state: State::Offered,
                created_ms: 1,
            })
            .unwrap();
        id
    }

    fn manifest(sizes: &[u64]) -> Manifest {
        Manifest {
            entries: sizes
                .iter()
                .enumerate()
                .map(|(i, size)| ManifestEntry {
                    path: format!("f{i}"),
                    size: *size,
                    sha256: [0; 32],
                    kind: FILE_KIND.into(),
                })
                .collect(),
        }
    }

    #[test]
    fn only_the_recipient_gets_the_parts_of_a_folder_and_nobody_the_folder_itself() {
        let mut transfers = Transfers::default();
        let (bob, eve) = (PeerId::random(), PeerId::random());
        let folder = add(&mut transfers, offer(Some(summary(2))), Some(bob), None);
        let file = add(&mut transfers, offer(None), Some(bob), None);
        assert_eq!(
            served_part(&transfers, &bob, &manifest_id(&folder), Some(folder)),
            Some(Ok((folder, Part::Manifest)))
        );
        assert_eq!(
            served_part(&transfers, &bob, &entry_id(&folder, 1), Some(folder)),
            Some(Ok((folder, Part::Entry(1))))
        );
        let refused = Some(Err(NO_SUCH_TRANSFER.to_owned()));
        assert_eq!(
            served_part(&transfers, &bob, &entry_id(&folder, 2), Some(folder)),
            refused
        );
        assert_eq!(
            served_part(&transfers, &eve, &entry_id(&folder, 0), Some(folder)),
            refused
        );
        // An old node asking for the folder as one file is told why it cannot have it.
        assert_eq!(
            served_part(&transfers, &bob, &folder, Some(folder)),
            Some(Err(NEEDS_NEWER.to_owned()))
        );
        // Plain files and unknown ids are not the folders' business.
        assert_eq!(served_part(&transfers, &bob, &file, Some(folder)), None);
        assert_eq!(
            served_part(&transfers, &bob, &TransferId::random(), Some(folder)),
            None
        );
        // A declined folder is served no more.
        transfers.set_state(&folder, State::Rejected).unwrap();
        assert_eq!(
            served_part(&transfers, &bob, &entry_id(&folder, 0), Some(folder)),
            refused
        );
        // Without the folder known, nothing is served.
        assert_eq!(
            served_part(&transfers, &bob, &entry_id(&folder, 0), None),
            None
        );
    }

    #[test]
    fn a_folder_shared_in_a_room_is_served_to_anyone() {
        let mut transfers = Transfers::default();
        let folder = add(&mut transfers, offer(Some(summary(1))), None, Some("lobby"));
        assert_eq!(
            served_part(
                &transfers,
                &PeerId::random(),
                &entry_id(&folder, 0),
                Some(folder)
            ),
            Some(Ok((folder, Part::Entry(0))))
        );
    }

    #[test]
    fn a_manifest_must_keep_the_offers_promise() {
        let m = manifest(&[4, 6]);
        assert!(check_manifest(&m, &summary(2), 10).is_ok());
        assert_eq!(
            check_manifest(&m, &summary(3), 10).unwrap_err(),
            "the manifest lists 2 files, the offer said 3"
        );
        assert_eq!(
            check_manifest(&m, &summary(2), 11).unwrap_err(),
            "the manifest's files add up to 10 bytes, the offer said 11"
        );
    }

    #[test]
    fn complete_files_are_not_fetched_again() {
        let m = manifest(&[5, 7, 11, 13]);
        assert_eq!(remaining(&m, |i| i == 0 || i == 2), (16, vec![1, 3]));
        assert_eq!(remaining(&m, |_| false), (0, vec![0, 1, 2, 3]));
        assert_eq!(remaining(&m, |_| true), (36, vec![]));
    }

    #[test]
    fn folders_are_told_as_folders() {
        let mut transfers = Transfers::default();
        let o = offer(Some(summary(2)));
        assert_eq!(label(&o), "photos/");
        assert_eq!(label(&offer(None)), "photos");
        let folder = add(&mut transfers, o, None, Some("lobby"));
        let peer = PeerId::random();
        let offered = Event::FileOffer {
            transfer: folder,
            from: "alice".into(),
            peer,
            name: "photos".into(),
            size: 10,
            room: None,
        };
        assert!(matches!(
            told(offered, &transfers),
            Event::FolderOffer {
                files: 2,
                size: 10,
                ..
            }
        ));
        let received = Event::FileReceived {
            transfer: folder,
            path: "/d/photos".into(),
            size: 10,
            sha256: String::new(),
        };
        assert!(matches!(
            told(received, &transfers),
            Event::FolderReceived { files: 2, .. }
        ));
        let plain = Event::FileFailed {
            transfer: folder,
            reason: "x".into(),
        };
        assert!(matches!(told(plain, &transfers), Event::FileFailed { .. }));
        let other = Event::FileReceived {
            transfer: TransferId::random(),
            path: "/d/a".into(),
            size: 1,
            sha256: String::new(),
        };
        assert!(matches!(
            told(other, &transfers),
            Event::FileReceived { .. }
        ));
    }
}
