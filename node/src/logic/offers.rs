//! File offers and the state of transfers, without I/O: which offers wait for a peer that
//! could not be dialled and when it is looked up again, which offers go out when it turns
//! up, which incoming offers are kept, which transfer a typed id names, and what accepting,
//! rejecting, a decline or the end of a download does to a transfer.
//!
//! The machine reads the transfer table ([`Transfers`]) and the [`Directory`] but never
//! writes them: it returns [`Action`]s, and the driver (`event_loop/files.rs`) saves, sends,
//! downloads and tells the user. The time is always an argument.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    time::{Duration, Instant},
};

use libp2p::PeerId;

use ipm_protocol::{
    file::sanitize_file_name,
    limits::{
        MAX_PENDING_OFFERS, MAX_PENDING_OFFERS_PER_PEER, MAX_PENDING_SHARED, PENDING_OFFER_TTL_MS,
    },
    FileOffer, Room, TransferId,
};

use crate::{
    event::Event,
    logic::{address_key::AddressKey, backoff, directory::Directory},
    store::transfers::{Direction, State, Transfer, Transfers},
};

/// Who a file is offered to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OfferTarget {
    /// One peer (`/send-file`).
    Peer(PeerId),
    /// Everyone in a room (`/share`).
    Room(Room),
}

/// How long an offer keeps looking for a peer it cannot dial before it fails: a peer
/// behind a relay needs a moment after start to reserve its circuit and publish it.
pub const OFFER_REACH: Duration = Duration::from_secs(60);

/// The first pause between two DHT lookups of a peer an offer waits for; it doubles up to
/// [`Policy::max_pause`].
pub const FIRST_LOOKUP_PAUSE: Duration = Duration::from_millis(500);

/// Fewest characters of a transfer id that `/accept` and `/reject` take.
pub const MIN_TYPED_ID: usize = 4;

/// Disk space a download must leave free, so that a file (or several) cannot fill the disk
/// the user's history, outbox and settings live on.
pub const DISK_MARGIN: u64 = 256 * 1024 * 1024;
/// Most offers from strangers on one address that hold places at once: keys are free,
/// addresses are not.
pub const MAX_PENDING_PER_ADDRESS: usize = 32;
/// How long a stranger's unanswered offer holds its places (10 minutes); it stays listed,
/// and can be accepted, after that.
pub const STRANGER_HOLD_MS: u64 = 10 * 60 * 1000;

/// What the machine reads but does not own.
#[derive(Clone, Copy, Debug)]
pub struct Known<'a> {
    /// Every transfer, as saved.
    pub transfers: &'a Transfers,
    /// Who peers are: names to show, blocked senders.
    pub directory: &'a Directory,
    /// Bytes free for downloads: the free space of the downloads folder minus what the
    /// running downloads still need (`None` when unknown: then nothing is refused for it).
    pub free_space: Option<u64>,
    /// Whether a received file is still where it was put.
    pub exists: fn(&std::path::Path) -> bool,
}

impl Known<'_> {
    /// Whether a file of `size` bytes fits, [`DISK_MARGIN`] left over.
    fn fits(&self, size: u64) -> bool {
        self.free_space
            .is_none_or(|free| size.saturating_add(DISK_MARGIN) <= free)
    }
}

/// The settings the machine decides by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// How long after its first dial failure an offer waits for its peer before it fails.
    pub reach: Duration,
    /// The first pause between lookups of a peer offers wait for.
    pub first_pause: Duration,
    /// The longest pause between lookups.
    pub max_pause: Duration,
    /// Whether a file offered directly (not shared in a room) is downloaded at once.
    pub auto_accept: bool,
    /// Whether this node has a directory to download into.
    pub can_download: bool,
}

impl Policy {
    /// The node's policy: [`OFFER_REACH`], [`FIRST_LOOKUP_PAUSE`] doubling up to `max_pause`.
    pub fn new(max_pause: Duration, auto_accept: bool, can_download: bool) -> Self {
        Self {
            reach: OFFER_REACH,
            first_pause: FIRST_LOOKUP_PAUSE,
            max_pause,
            auto_accept,
            can_download,
        }
    }
}

/// What happened.
#[derive(Debug)]
pub enum Input {
    /// An offer request to `peer` failed; `dial_failure` when no connection could be made,
    /// `error` says what went wrong.
    OfferFailed {
        /// The recipient.
        peer: PeerId,
        /// The offer.
        transfer: TransferId,
        /// Whether the request failed for want of a connection.
        dial_failure: bool,
        /// The failure, as libp2p tells it.
        error: String,
    },
    /// The recipient answered an offer: `refusal` when it would not keep it.
    OfferAnswered {
        /// The offer.
        transfer: TransferId,
        /// The recipient's reason for refusing, if it refused.
        refusal: Option<String>,
    },
    /// `peer` connected, or the DHT found an address for it.
    PeerReachable(PeerId),
    /// Time passed: lookups may be due and offers may have waited too long.
    Tick,
    /// `peer` declined a file this node offered it.
    Declined {
        /// Who declined.
        peer: PeerId,
        /// The offer.
        transfer: TransferId,
    },
    /// A download ended: the file's final path, or why it failed.
    DownloadEnded {
        /// The transfer.
        transfer: TransferId,
        /// Where the verified file is, or why the download failed.
        result: Result<PathBuf, String>,
    },
}

/// What the driver must do.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Send `offer` to `peer` (again).
    SendOffer {
        /// The recipient.
        peer: PeerId,
        /// The offer as recorded.
        offer: FileOffer,
    },
    /// Look `peer` up in the DHT.
    LookUp(PeerId),
    /// Add an incoming offer to the transfer table; when saving fails, stop here.
    Record(Transfer),
    /// Move a transfer to `state` in the table.
    Save {
        /// The transfer.
        transfer: TransferId,
        /// Its new state.
        state: State,
    },
    /// Record that a transfer failed and tell the user why.
    Fail {
        /// The transfer.
        transfer: TransferId,
        /// Why, as the user reads it.
        reason: String,
    },
    /// Start (or resume) downloading an incoming file from `peer`.
    StartDownload {
        /// The transfer.
        transfer: TransferId,
        /// Its sender.
        peer: PeerId,
    },
    /// Stop the download of a transfer if one runs, and remove its partial file.
    StopDownload(TransferId),
    /// Tell `peer` that this node declines its offer.
    SendDecline {
        /// The sender of the offer.
        peer: PeerId,
        /// The offer.
        transfer: TransferId,
    },
    /// Tell the user.
    Tell(Event),
}

/// Why a typed transfer cannot be accepted or rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// Fewer than [`MIN_TYPED_ID`] characters were typed.
    #[error("give at least 4 characters of the transfer id (see /transfers)")]
    TooShort,
    /// No transfer id starts with what was typed (lowercased).
    #[error("no transfer {0}: see /transfers")]
    Unknown(String),
    /// Several transfer ids start with what was typed (lowercased).
    #[error("several transfers start with {0}: give more characters")]
    Ambiguous(String),
    /// The transfer is not in the table.
    #[error("no transfer {0}")]
    Missing(TransferId),
    /// The transfer left the table while being answered.
    #[error("the transfer vanished")]
    Vanished,
    /// The transfer is a file this node offered.
    #[error("transfer {0} is one you offered")]
    Outgoing(TransferId),
    /// The file was received already.
    #[error("already received: {}", .0.display())]
    AlreadyReceived(PathBuf),
    /// The offer was rejected.
    #[error("transfer {0} was rejected")]
    Rejected(TransferId),
    /// The node has no data dir, hence nowhere to download.
    #[error("this node has no data dir to download into")]
    NoDownloadDir,
    /// Only an incoming offer, a running download or a failed one can be rejected.
    #[error("transfer {0} is not an offer, a download in progress or a failed download")]
    NotRejectable(TransferId),
    /// The file does not fit on the disk.
    #[error(
        "not enough disk space: the file needs {} MiB and {} MiB must stay free, {} MiB are free",
        mib(*.size), mib(DISK_MARGIN), mib(*.free)
    )]
    NoSpace {
        /// The file's size in bytes.
        size: u64,
        /// Free bytes for downloads.
        free: u64,
    },
}

/// Bytes in MiB, rounded up.
fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(1024 * 1024)
}

/// Why an incoming offer is not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The sender is blocked.
    #[error("refused")]
    Blocked,
    /// Nothing usable is left of the file name once sanitised.
    #[error("the file name is unusable")]
    UnusableName,
    /// The sender, or everyone together, has too many offers waiting for an answer.
    #[error("too many offers are waiting for an answer")]
    TooMany,
    /// The file does not fit on the recipient's disk.
    #[error("not enough disk space for this file")]
    NoSpace,
}

/// A file the user offers (`/send-file`, `/share`), with what the driver drew for it.
#[derive(Debug, Clone)]
pub struct NewOffer {
    /// The local file.
    pub source: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256.
    pub sha256: [u8; 32],
    /// Who it goes to.
    pub target: OfferTarget,
    /// Whether the node is in the target room (ignored for a peer).
    pub in_room: bool,
    /// This node's peer id.
    pub local_peer: PeerId,
    /// This node's user name, sent with the offer.
    pub from_name: String,
    /// A fresh random transfer id.
    pub transfer: TransferId,
    /// The wall clock, ms since the epoch.
    pub now_ms: u64,
}

/// Why a file cannot be offered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    /// Nothing usable is left of the local file's name once sanitised.
    #[error("{} has no usable file name", .0.display())]
    UnusableName(PathBuf),
    /// The target is this node.
    #[error("that is you: files go to other users")]
    ToSelf,
    /// The node is not in the target room.
    #[error("not in room {0}")]
    NotInRoom(Room),
}

/// Offers waiting for one peer that could not be dialled, and when to look it up again.
#[derive(Debug)]
struct Unreached {
    offers: Vec<TransferId>,
    /// After this the offers fail.
    give_up: Instant,
    next_lookup: Instant,
    lookups: u32,
}

/// The file-offer machine.
#[derive(Debug)]
pub struct Offers {
    policy: Policy,
    /// Offers to peers this node could not dial, sent again once the DHT finds them or they
    /// connect.
    unreached: HashMap<PeerId, Unreached>,
    /// Transfers whose download runs.
    downloading: HashSet<TransferId>,
    /// The sender's address of each stranger's offer that holds a place.
    addresses: HashMap<TransferId, AddressKey>,
}

/// How many incoming offers hold places (see [`Offers::on_offer`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Pending {
    /// From the peer asked about.
    from_peer: usize,
    /// From the address asked about.
    from_address: usize,
    /// From everyone.
    all: usize,
    /// Of those, shared in rooms.
    shared: usize,
}

/// Whether offers from `address` count against a budget of that address: not when it is
/// unknown (a sharer reached through others) or exempt (a local process).
fn counts_per_address(address: &AddressKey) -> bool {
    matches!(address, AddressKey::V4(_) | AddressKey::V6(_))
}

impl Offers {
    /// A machine deciding by `policy`, with nothing waiting and nothing downloading.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            unreached: HashMap::new(),
            downloading: HashSet::new(),
            addresses: HashMap::new(),
        }
    }

    /// One step: `now` is the current time.
    pub fn handle(&mut self, now: Instant, known: Known<'_>, input: Input) -> Vec<Action> {
        match input {
            Input::OfferFailed {
                peer,
                transfer,
                dial_failure: true,
                ..
            } => self.unreached(now, known, peer, transfer),
            Input::OfferFailed {
                peer,
                transfer,
                error,
                ..
            } => {
                let name = known.directory.display_name(&peer);
                vec![Action::Fail {
                    transfer,
                    reason: format!("could not reach {name}: {error}"),
                }]
            }
            Input::OfferAnswered {
                transfer,
                refusal: Some(reason),
            } => vec![Action::Fail {
                transfer,
                reason: format!("refused: {reason}"),
            }],
            Input::OfferAnswered { refusal: None, .. } => Vec::new(),
            Input::PeerReachable(peer) => self.reachable(known, peer),
            Input::Tick => self.tick(now, known),
            Input::Declined { peer, transfer } => match known.transfers.get(&transfer) {
                Some(t) if t.peer == Some(peer) && t.direction == Direction::Outgoing => {
                    let name = known.directory.display_name(&peer);
                    vec![
                        Action::Save {
                            transfer,
                            state: State::Rejected,
                        },
                        Action::Tell(Event::FileFailed {
                            transfer,
                            reason: format!("declined by {name}"),
                        }),
                    ]
                }
                _ => Vec::new(),
            },
            Input::DownloadEnded { transfer, result } => {
                self.downloading.remove(&transfer);
                let Some(t) = known.transfers.get(&transfer) else {
                    return Vec::new();
                };
                if t.state != State::Downloading {
                    return Vec::new();
                }
                match result {
                    // The partial file goes: it would hold disk space for nothing; a new
                    // /accept starts over.
                    Err(reason) => vec![
                        Action::StopDownload(transfer),
                        Action::Fail { transfer, reason },
                    ],
                    Ok(path) => vec![
                        Action::Save {
                            transfer,
                            state: State::Done { path: path.clone() },
                        },
                        Action::Tell(Event::FileReceived {
                            transfer,
                            path,
                            size: t.offer.size,
                            sha256: hex::encode(t.offer.sha256),
                        }),
                    ],
                }
            }
        }
    }

    /// An offer to `peer` could not be dialled: it waits for a lookup (or the peer) until
    /// [`Policy::reach`] after the first failure towards that peer, then fails.
    fn unreached(
        &mut self,
        now: Instant,
        known: Known<'_>,
        peer: PeerId,
        transfer: TransferId,
    ) -> Vec<Action> {
        let unreached = self.unreached.entry(peer).or_insert(Unreached {
            offers: Vec::new(),
            give_up: now + self.policy.reach,
            next_lookup: now,
            lookups: 0,
        });
        if unreached.give_up <= now {
            return vec![unreachable(known, peer, transfer)];
        }
        unreached.offers.push(transfer);
        self.tick(now, known)
    }

    /// Hands back the offers waiting for `peer` that are still unanswered, to send again.
    /// Another dial failure puts them back to wait, still under their first deadline.
    fn reachable(&mut self, known: Known<'_>, peer: PeerId) -> Vec<Action> {
        let Some(unreached) = self.unreached.get_mut(&peer) else {
            return Vec::new();
        };
        std::mem::take(&mut unreached.offers)
            .into_iter()
            .filter_map(|id| match known.transfers.get(&id) {
                Some(t) if t.state == State::Offered => Some(Action::SendOffer {
                    peer,
                    offer: t.offer.clone(),
                }),
                _ => None,
            })
            .collect()
    }

    /// Looks up again, with a growing pause, the peers offers wait for; fails the offers
    /// whose peer stayed out of reach too long.
    fn tick(&mut self, now: Instant, known: Known<'_>) -> Vec<Action> {
        let mut lookups = Vec::new();
        let mut failed = Vec::new();
        let Policy {
            first_pause,
            max_pause,
            ..
        } = self.policy;
        self.unreached.retain(|peer, u| {
            if u.give_up <= now {
                failed.extend(u.offers.drain(..).map(|id| unreachable(known, *peer, id)));
                return false;
            }
            if !u.offers.is_empty() && u.next_lookup <= now {
                u.next_lookup = now + backoff::pause(first_pause, u.lookups, max_pause);
                u.lookups += 1;
                lookups.push(Action::LookUp(*peer));
            }
            true
        });
        lookups.extend(failed);
        lookups
    }

    /// The outgoing transfer to record for `new`, under the sanitised name of its file; the
    /// driver then sends it to the peer or publishes it in the room.
    pub fn offer(&self, new: NewOffer) -> Result<Transfer, OfferError> {
        let name = new
            .source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .and_then(|n| sanitize_file_name(&n))
            .ok_or_else(|| OfferError::UnusableName(new.source.clone()))?;
        let (peer, room) = match new.target {
            OfferTarget::Peer(peer) if peer == new.local_peer => return Err(OfferError::ToSelf),
            OfferTarget::Peer(peer) => (Some(peer), None),
            OfferTarget::Room(room) if !new.in_room => return Err(OfferError::NotInRoom(room)),
            OfferTarget::Room(room) => (None, Some(room.to_string())),
        };
        Ok(Transfer {
            offer: FileOffer {
                transfer: new.transfer,
                from_name: new.from_name,
                name,
                size: new.size,
                sha256: new.sha256,
                folder: None,
            },
            direction: Direction::Outgoing,
            peer,
            room,
            source: Some(new.source),
            state: State::Offered,
            created_ms: new.now_ms,
        })
    }

    /// An offer arrived from `peer` at `address` (the budget its address counts against),
    /// directly (`room` is `None`) or shared in `room`; `now_ms` is the wall clock in ms
    /// since the epoch. A kept offer carries the sanitised file name; one already known is
    /// not recorded again.
    ///
    /// A shared offer without a usable name is refused before anything else (the room
    /// should not pass it on); a direct one is first refused when its sender is blocked.
    pub fn on_offer(
        &mut self,
        known: Known<'_>,
        peer: PeerId,
        address: AddressKey,
        room: Option<String>,
        mut offer: FileOffer,
        now_ms: u64,
    ) -> Result<Vec<Action>, Refusal> {
        let name = sanitize_file_name(&offer.name);
        if room.is_some() && name.is_none() {
            return Err(Refusal::UnusableName);
        }
        if known.directory.is_blocked(&peer) {
            return Err(Refusal::Blocked);
        }
        offer.name = name.ok_or(Refusal::UnusableName)?;
        if known.transfers.contains(&offer.transfer) {
            return Ok(Vec::new());
        }
        let direct = room.is_none();
        // Downloads started by --auto-accept hold the same slots as unanswered offers.
        let auto = direct && self.policy.auto_accept && self.policy.can_download;
        let pending = self.pending(known, &peer, &address, now_ms, auto);
        // A contact's offer is always taken (up to its own limit); strangers' keys are free,
        // so their offers are also bounded per address and in all, and hold their places
        // only for a short while.
        let contact = known.directory.contacts.petname(&peer).is_some();
        if pending.from_peer >= MAX_PENDING_OFFERS_PER_PEER
            || (!contact
                && (pending.all >= MAX_PENDING_OFFERS
                    || pending.from_address >= MAX_PENDING_PER_ADDRESS
                    || (!direct && pending.shared >= MAX_PENDING_SHARED)))
        {
            return Err(Refusal::TooMany);
        }
        if !known.fits(offer.size) {
            return Err(Refusal::NoSpace);
        }
        let id = offer.transfer;
        if counts_per_address(&address) {
            self.addresses.insert(id, address);
        }
        let mut actions = vec![
            Action::Record(Transfer {
                offer: offer.clone(),
                direction: Direction::Incoming,
                peer: Some(peer),
                room: room.clone(),
                source: None,
                state: State::Offered,
                created_ms: now_ms,
            }),
            Action::Tell(Event::FileOffer {
                transfer: id,
                from: known.directory.display_name(&peer),
                peer,
                name: offer.name,
                size: offer.size,
                room,
            }),
        ];
        if auto {
            actions.extend(self.download(id, peer));
        }
        Ok(actions)
    }

    /// The incoming offers that hold places at `now_ms`: unanswered ones (a contact's for
    /// [`PENDING_OFFER_TTL_MS`], a stranger's for [`STRANGER_HOLD_MS`]) and, with
    /// `downloading`, the downloads running; counted for `peer`, for `address`, in all, and
    /// those shared in rooms. Addresses of offers that no longer hold a place are forgotten.
    fn pending(
        &mut self,
        known: Known<'_>,
        peer: &PeerId,
        address: &AddressKey,
        now_ms: u64,
        downloading: bool,
    ) -> Pending {
        let mut pending = Pending::default();
        let mut holding = HashSet::new();
        for (id, t) in known.transfers.iter() {
            let holds = t.direction == Direction::Incoming
                && match t.state {
                    State::Offered => {
                        let contact = t
                            .peer
                            .is_some_and(|p| known.directory.contacts.petname(&p).is_some());
                        let hold = match contact {
                            true => PENDING_OFFER_TTL_MS,
                            false => STRANGER_HOLD_MS,
                        };
                        now_ms.saturating_sub(t.created_ms) < hold
                    }
                    State::Downloading => downloading,
                    _ => false,
                };
            if !holds {
                continue;
            }
            holding.insert(id);
            pending.all += 1;
            pending.from_peer += usize::from(t.peer.as_ref() == Some(peer));
            pending.shared += usize::from(t.room.is_some());
            pending.from_address += usize::from(self.addresses.get(&id) == Some(address));
        }
        self.addresses.retain(|id, _| holding.contains(id));
        pending
    }

    /// `/accept` and `/get`: the transfer whose id starts with `typed`, and what starting
    /// its download takes.
    pub fn accept(
        &mut self,
        known: Known<'_>,
        typed: &str,
    ) -> Result<(TransferId, Vec<Action>), TransferError> {
        let id = find_transfer(known.transfers, typed)?;
        Ok((id, self.start(known, id)?))
    }

    /// Starts (or resumes) downloading incoming transfer `id`; nothing to do when its
    /// download runs already.
    pub fn start(
        &mut self,
        known: Known<'_>,
        id: TransferId,
    ) -> Result<Vec<Action>, TransferError> {
        let transfer = known.transfers.get(&id).ok_or(TransferError::Missing(id))?;
        if transfer.direction != Direction::Incoming {
            return Err(TransferError::Outgoing(id));
        }
        match &transfer.state {
            State::Downloading => {}
            State::Offered | State::Failed { .. } => {
                if let Some(path) = received_copy(known, transfer) {
                    return Err(TransferError::AlreadyReceived(path));
                }
            }
            State::Done { path } => return Err(TransferError::AlreadyReceived(path.clone())),
            State::Rejected => return Err(TransferError::Rejected(id)),
            State::Sending | State::Sent => return Err(TransferError::Outgoing(id)),
        }
        if self.downloading.contains(&id) {
            return Ok(Vec::new());
        }
        // A download resumed after a restart was accepted when the file fitted.
        if transfer.state != State::Downloading && !known.fits(transfer.offer.size) {
            return Err(TransferError::NoSpace {
                size: transfer.offer.size,
                free: known.free_space.unwrap_or(0),
            });
        }
        let (true, Some(peer)) = (self.policy.can_download, transfer.peer) else {
            return Err(TransferError::NoDownloadDir);
        };
        Ok(self.download(id, peer))
    }

    fn download(&mut self, transfer: TransferId, peer: PeerId) -> Vec<Action> {
        self.downloading.insert(transfer);
        vec![
            Action::Save {
                transfer,
                state: State::Downloading,
            },
            Action::StartDownload { transfer, peer },
        ]
    }

    /// `/reject`: declines an incoming offer, stops its download or clears a failed one
    /// (its partial file goes); the sender of a direct offer is told.
    pub fn reject(
        &mut self,
        known: Known<'_>,
        typed: &str,
    ) -> Result<(TransferId, Vec<Action>), TransferError> {
        let id = find_transfer(known.transfers, typed)?;
        let transfer = known.transfers.get(&id).ok_or(TransferError::Vanished)?;
        if transfer.direction != Direction::Incoming
            || !matches!(
                transfer.state,
                State::Offered | State::Downloading | State::Failed { .. }
            )
        {
            return Err(TransferError::NotRejectable(id));
        }
        self.downloading.remove(&id);
        let mut actions = vec![
            Action::StopDownload(id),
            Action::Save {
                transfer: id,
                state: State::Rejected,
            },
        ];
        if let (Some(peer), None) = (transfer.peer, &transfer.room) {
            actions.push(Action::SendDecline { peer, transfer: id });
        }
        Ok((id, actions))
    }

    /// Whether offers wait for `peer` to become reachable.
    pub fn is_waiting_for(&self, peer: &PeerId) -> bool {
        self.unreached
            .get(peer)
            .is_some_and(|u| !u.offers.is_empty())
    }

    /// Whether the download of `transfer` runs.
    pub fn is_downloading(&self, transfer: &TransferId) -> bool {
        self.downloading.contains(transfer)
    }
}

/// Where a file (or folder) with the contents `transfer` offers was received before, under
/// another offer (shared again, offered by another member), when that copy is still there:
/// the same SHA-256 and size, a folder for a folder.
fn received_copy(known: Known<'_>, transfer: &Transfer) -> Option<PathBuf> {
    let offer = &transfer.offer;
    known
        .transfers
        .list()
        .into_iter()
        .find_map(|(id, t)| match &t.state {
            State::Done { path }
                if id != offer.transfer
                    && t.direction == Direction::Incoming
                    && t.offer.sha256 == offer.sha256
                    && t.offer.size == offer.size
                    && t.offer.folder.is_some() == offer.folder.is_some()
                    && (known.exists)(path) =>
            {
                Some(path.clone())
            }
            _ => None,
        })
}

/// The failure of an offer whose peer could not be reached.
fn unreachable(known: Known<'_>, peer: PeerId, transfer: TransferId) -> Action {
    let name = known.directory.display_name(&peer);
    Action::Fail {
        transfer,
        reason: format!("could not reach {name}: no address for it"),
    }
}

/// The transfer whose id is `typed` or starts with it (at least [`MIN_TYPED_ID`]
/// characters, case and surrounding spaces ignored).
pub fn find_transfer(transfers: &Transfers, typed: &str) -> Result<TransferId, TransferError> {
    let query = typed.trim().to_ascii_lowercase();
    if query.len() < MIN_TYPED_ID {
        return Err(TransferError::TooShort);
    }
    let matches: Vec<TransferId> = transfers
        .list()
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| id.to_string().starts_with(&query))
        .collect();
    match matches.as_slice() {
        [one] => Ok(*one),
        [] => Err(TransferError::Unknown(query)),
        _ => Err(TransferError::Ambiguous(query)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{logic::names::NameBook, store::contacts::ContactBook};
    use ipm_protocol::MessageId;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// What the driver owns: the transfer table (in memory) and the directory.
    struct World {
        transfers: Transfers,
        directory: Directory,
        free_space: Option<u64>,
    }

    impl World {
        fn new() -> Self {
            Self {
                free_space: None,
                transfers: Transfers::default(),
                directory: Directory::new(
                    NameBook::new(Duration::from_secs(10)),
                    ContactBook::default(),
                ),
            }
        }

        fn known(&self) -> Known<'_> {
            Known {
                transfers: &self.transfers,
                directory: &self.directory,
                free_space: self.free_space,
                exists: |_| true,
            }
        }

        /// Writes the table as the driver would.
        fn apply(&mut self, actions: &[Action]) {
            for action in actions {
                match action {
                    Action::Record(t) => {
                        self.transfers.insert(t.clone()).unwrap();
                    }
                    Action::Save { transfer, state } => {
                        self.transfers.set_state(transfer, state.clone()).unwrap()
                    }
                    Action::Fail { transfer, reason } => self
                        .transfers
                        .set_state(
                            transfer,
                            State::Failed {
                                reason: reason.clone(),
                            },
                        )
                        .unwrap(),
                    _ => {}
                }
            }
        }

        fn add(&mut self, transfer: Transfer) -> TransferId {
            let id = transfer.offer.transfer;
            self.transfers.insert(transfer).unwrap();
            id
        }

        fn unreachable(&self, peer: &PeerId, transfer: TransferId) -> Action {
            Action::Fail {
                transfer,
                reason: format!(
                    "could not reach {}: no address for it",
                    self.directory.display_name(peer)
                ),
            }
        }
    }

    fn policy() -> Policy {
        Policy::new(Duration::from_secs(60), false, true)
    }

    fn offer(id: TransferId, name: &str) -> FileOffer {
        FileOffer {
            transfer: id,
            from_name: "alice".into(),
            name: name.into(),
            size: 3,
            sha256: [7; 32],
            folder: None,
        }
    }

    fn transfer(direction: Direction, peer: PeerId, room: Option<&str>) -> Transfer {
        Transfer {
            offer: offer(TransferId::random(), "a.txt"),
            direction,
            peer: Some(peer),
            room: room.map(str::to_owned),
            source: None,
            state: State::Offered,
            created_ms: 1_000,
        }
    }

    fn dial_failed(peer: PeerId, transfer: TransferId) -> Input {
        Input::OfferFailed {
            peer,
            transfer,
            dial_failure: true,
            error: "no addresses".into(),
        }
    }

    #[test]
    fn an_offer_to_an_unreachable_peer_is_looked_up_with_growing_pauses_and_fails_after_60_s() {
        let mut w = World::new();
        let bob = PeerId::random();
        let id = w.add(transfer(Direction::Outgoing, bob, None));
        let mut m = Offers::new(policy());
        let t0 = Instant::now();
        assert_eq!(
            m.handle(t0, w.known(), dial_failed(bob, id)),
            vec![Action::LookUp(bob)]
        );
        assert!(m.is_waiting_for(&bob));
        // Pauses of 0.5 s, 1 s, 2 s, 4 s, 8 s, 16 s: looked up at these times, not between.
        let mut looked_up = Vec::new();
        for tenth in 1..600 {
            let at = secs(f64::from(tenth) / 10.0);
            let out = m.handle(t0 + at, w.known(), Input::Tick);
            if !out.is_empty() {
                assert_eq!(out, vec![Action::LookUp(bob)]);
                looked_up.push(tenth);
            }
        }
        assert_eq!(looked_up, vec![5, 15, 35, 75, 155, 315]);
        assert_eq!(
            m.handle(t0 + secs(60.0), w.known(), Input::Tick),
            vec![w.unreachable(&bob, id)]
        );
        assert!(!m.is_waiting_for(&bob));
        assert!(m.handle(t0 + secs(61.0), w.known(), Input::Tick).is_empty());
    }

    #[test]
    fn lookups_pause_at_most_the_ceiling() {
        let mut w = World::new();
        let bob = PeerId::random();
        let id = w.add(transfer(Direction::Outgoing, bob, None));
        let mut m = Offers::new(Policy::new(secs(2.0), false, true));
        let t0 = Instant::now();
        m.handle(t0, w.known(), dial_failed(bob, id));
        let lookups = (1..=100)
            .filter(|tenth| {
                let at = t0 + secs(f64::from(*tenth) / 10.0);
                !m.handle(at, w.known(), Input::Tick).is_empty()
            })
            .collect::<Vec<_>>();
        // 0.5 s, 1 s, then every 2 s.
        assert_eq!(lookups, vec![5, 15, 35, 55, 75, 95]);
    }

    #[test]
    fn a_later_offer_to_a_waiting_peer_keeps_the_first_deadline() {
        let mut w = World::new();
        let bob = PeerId::random();
        let first = w.add(transfer(Direction::Outgoing, bob, None));
        let second = w.add(transfer(Direction::Outgoing, bob, None));
        let mut m = Offers::new(policy());
        let t0 = Instant::now();
        m.handle(t0, w.known(), dial_failed(bob, first));
        // A lookup is not due yet: the second offer waits with the first.
        assert!(m
            .handle(t0 + secs(0.2), w.known(), dial_failed(bob, second))
            .is_empty());
        let mut out = m.handle(t0 + secs(60.0), w.known(), Input::Tick);
        out.sort_by_key(|a| format!("{a:?}"));
        let mut want = vec![w.unreachable(&bob, first), w.unreachable(&bob, second)];
        want.sort_by_key(|a| format!("{a:?}"));
        assert_eq!(out, want);
    }

    #[test]
    fn an_offer_failing_past_the_deadline_fails_at_once() {
        let mut w = World::new();
        let bob = PeerId::random();
        let first = w.add(transfer(Direction::Outgoing, bob, None));
        let late = w.add(transfer(Direction::Outgoing, bob, None));
        let mut m = Offers::new(policy());
        let t0 = Instant::now();
        m.handle(t0, w.known(), dial_failed(bob, first));
        m.handle(t0 + secs(1.0), w.known(), Input::PeerReachable(bob));
        // The peer vanished again before any tick dropped its deadline.
        assert_eq!(
            m.handle(t0 + secs(60.0), w.known(), dial_failed(bob, late)),
            vec![w.unreachable(&bob, late)]
        );
        // Once the deadline is dropped a new failure starts a new wait.
        assert!(m.handle(t0 + secs(60.0), w.known(), Input::Tick).is_empty());
        assert_eq!(
            m.handle(t0 + secs(61.0), w.known(), dial_failed(bob, late)),
            vec![Action::LookUp(bob)]
        );
    }

    #[test]
    fn offers_are_resent_once_when_the_peer_connects() {
        let mut w = World::new();
        let bob = PeerId::random();
        let a = w.add(transfer(Direction::Outgoing, bob, None));
        let b = w.add(transfer(Direction::Outgoing, bob, None));
        let mut m = Offers::new(policy());
        let t0 = Instant::now();
        m.handle(t0, w.known(), dial_failed(bob, a));
        m.handle(t0, w.known(), dial_failed(bob, b));
        let sent = m.handle(t0 + secs(3.0), w.known(), Input::PeerReachable(bob));
        let offer_of = |id| w.transfers.get(&id).unwrap().offer.clone();
        assert_eq!(
            sent,
            vec![
                Action::SendOffer {
                    peer: bob,
                    offer: offer_of(a)
                },
                Action::SendOffer {
                    peer: bob,
                    offer: offer_of(b)
                },
            ]
        );
        assert!(!m.is_waiting_for(&bob));
        assert!(m
            .handle(t0 + secs(4.0), w.known(), Input::PeerReachable(bob))
            .is_empty());
        // Nothing waits, so nothing is looked up, and nothing fails at the deadline.
        assert!(m.handle(t0 + secs(10.0), w.known(), Input::Tick).is_empty());
        assert!(m.handle(t0 + secs(60.0), w.known(), Input::Tick).is_empty());
        // Another peer's arrival sends nothing.
        assert!(m
            .handle(t0, w.known(), Input::PeerReachable(PeerId::random()))
            .is_empty());
    }

    #[test]
    fn a_resent_offer_that_fails_to_dial_again_waits_under_its_first_deadline() {
        let mut w = World::new();
        let bob = PeerId::random();
        let id = w.add(transfer(Direction::Outgoing, bob, None));
        let mut m = Offers::new(policy());
        let t0 = Instant::now();
        m.handle(t0, w.known(), dial_failed(bob, id));
        assert_eq!(
            m.handle(t0 + secs(20.0), w.known(), Input::PeerReachable(bob))
                .len(),
            1
        );
        m.handle(t0 + secs(30.0), w.known(), dial_failed(bob, id));
        assert!(m.is_waiting_for(&bob));
        assert_eq!(
            m.handle(t0 + secs(60.0), w.known(), Input::Tick),
            vec![w.unreachable(&bob, id)]
        );
    }

    #[test]
    fn only_unanswered_offers_are_resent() {
        let mut w = World::new();
        let bob = PeerId::random();
        let failed = w.add(transfer(Direction::Outgoing, bob, None));
        let gone = TransferId::random();
        let mut m = Offers::new(policy());
        let t0 = Instant::now();
        m.handle(t0, w.known(), dial_failed(bob, failed));
        m.handle(t0, w.known(), dial_failed(bob, gone));
        w.transfers
            .set_state(
                &failed,
                State::Failed {
                    reason: "refused: no".into(),
                },
            )
            .unwrap();
        assert!(m
            .handle(t0 + secs(1.0), w.known(), Input::PeerReachable(bob))
            .is_empty());
    }

    #[test]
    fn other_request_failures_and_refusals_fail_the_offer_at_once() {
        let mut w = World::new();
        let bob = PeerId::random();
        w.directory.observe_name(bob, "bob");
        let id = w.add(transfer(Direction::Outgoing, bob, None));
        let mut m = Offers::new(policy());
        let t0 = Instant::now();
        let name = w.directory.display_name(&bob);
        let out = m.handle(
            t0,
            w.known(),
            Input::OfferFailed {
                peer: bob,
                transfer: id,
                dial_failure: false,
                error: "Timeout".into(),
            },
        );
        assert_eq!(
            out,
            vec![Action::Fail {
                transfer: id,
                reason: format!("could not reach {name}: Timeout"),
            }]
        );
        assert!(!m.is_waiting_for(&bob));
        let out = m.handle(
            t0,
            w.known(),
            Input::OfferAnswered {
                transfer: id,
                refusal: Some("refused".into()),
            },
        );
        assert_eq!(
            out,
            vec![Action::Fail {
                transfer: id,
                reason: "refused: refused".into(),
            }]
        );
        let noted = Input::OfferAnswered {
            transfer: id,
            refusal: None,
        };
        assert!(m.handle(t0, w.known(), noted).is_empty());
    }

    #[test]
    fn a_transfer_is_found_by_a_unique_prefix() {
        let mut w = World::new();
        let peer = PeerId::random();
        let mut a = transfer(Direction::Incoming, peer, None);
        a.offer.transfer = MessageId::from_bytes([0xab; 16]);
        let mut b = transfer(Direction::Incoming, peer, None);
        let mut bytes = [0xab; 16];
        bytes[3] = 0x01;
        b.offer.transfer = MessageId::from_bytes(bytes);
        let (a, b) = (w.add(a), w.add(b));
        assert_eq!(
            find_transfer(&w.transfers, "abab"),
            Err(TransferError::Ambiguous("abab".into()))
        );
        assert_eq!(find_transfer(&w.transfers, " ABABABAB "), Ok(a));
        assert_eq!(find_transfer(&w.transfers, "ababab01"), Ok(b));
        assert_eq!(find_transfer(&w.transfers, &b.to_string()), Ok(b));
        assert_eq!(
            find_transfer(&w.transfers, "abcd"),
            Err(TransferError::Unknown("abcd".into()))
        );
        assert_eq!(
            find_transfer(&w.transfers, "aba"),
            Err(TransferError::TooShort)
        );
        assert_eq!(
            TransferError::Ambiguous("abab".into()).to_string(),
            "several transfers start with abab: give more characters"
        );
    }

    fn new_offer(source: &str, target: OfferTarget, local_peer: PeerId) -> NewOffer {
        NewOffer {
            source: PathBuf::from(source),
            size: 3,
            sha256: [7; 32],
            target,
            in_room: true,
            local_peer,
            from_name: "alice".into(),
            transfer: MessageId::from_bytes([1; 16]),
            now_ms: 42,
        }
    }

    #[test]
    fn an_outgoing_offer_is_recorded_under_the_files_name() {
        let m = Offers::new(policy());
        let (me, bob) = (PeerId::random(), PeerId::random());
        let t = m
            .offer(new_offer("/tmp/report.pdf", OfferTarget::Peer(bob), me))
            .unwrap();
        assert_eq!(
            t,
            Transfer {
                offer: FileOffer {
                    transfer: MessageId::from_bytes([1; 16]),
                    from_name: "alice".into(),
                    name: "report.pdf".into(),
                    size: 3,
                    sha256: [7; 32],
                    folder: None,
                },
                direction: Direction::Outgoing,
                peer: Some(bob),
                room: None,
                source: Some(PathBuf::from("/tmp/report.pdf")),
                state: State::Offered,
                created_ms: 42,
            }
        );
        let shared = m
            .offer(new_offer("/tmp/a.txt", OfferTarget::Room(Room::Lobby), me))
            .unwrap();
        assert_eq!(
            (shared.peer, shared.room),
            (None, Some(Room::Lobby.to_string()))
        );
    }

    #[test]
    fn what_cannot_be_offered() {
        let m = Offers::new(policy());
        let me = PeerId::random();
        assert_eq!(
            m.offer(new_offer("/tmp/a", OfferTarget::Peer(me), me)),
            Err(OfferError::ToSelf)
        );
        assert_eq!(
            m.offer(new_offer("/", OfferTarget::Peer(PeerId::random()), me)),
            Err(OfferError::UnusableName(PathBuf::from("/")))
        );
        let outside = NewOffer {
            in_room: false,
            ..new_offer("/tmp/a", OfferTarget::Room(Room::Lobby), me)
        };
        assert_eq!(m.offer(outside), Err(OfferError::NotInRoom(Room::Lobby)));
    }

    #[test]
    fn an_offer_is_kept_under_its_sanitised_name_and_shown_once() {
        let mut w = World::new();
        let alice = PeerId::random();
        w.directory.observe_name(alice, "alice");
        let mut m = Offers::new(policy());
        let id = TransferId::random();
        let out = m
            .on_offer(
                w.known(),
                alice,
                AddressKey::Unknown,
                None,
                offer(id, "../../.bashrc"),
                5_000,
            )
            .unwrap();
        let kept = offer(id, "bashrc");
        assert_eq!(
            out,
            vec![
                Action::Record(Transfer {
                    offer: kept.clone(),
                    direction: Direction::Incoming,
                    peer: Some(alice),
                    room: None,
                    source: None,
                    state: State::Offered,
                    created_ms: 5_000,
                }),
                Action::Tell(Event::FileOffer {
                    transfer: id,
                    from: w.directory.display_name(&alice),
                    peer: alice,
                    name: "bashrc".into(),
                    size: 3,
                    room: None,
                }),
            ]
        );
        w.apply(&out);
        // The same offer again (a retry of the sender) changes nothing.
        let again = m.on_offer(
            w.known(),
            alice,
            AddressKey::Unknown,
            None,
            offer(id, "../../.bashrc"),
            6_000,
        );
        assert_eq!(again, Ok(Vec::new()));
    }

    #[test]
    fn an_offer_from_a_blocked_sender_is_not_kept() {
        let mut w = World::new();
        let mallory = PeerId::random();
        w.directory.contacts.block(mallory);
        let mut m = Offers::new(policy());
        let id = TransferId::random();
        assert_eq!(
            m.on_offer(
                w.known(),
                mallory,
                AddressKey::Unknown,
                None,
                offer(id, "a.txt"),
                1
            ),
            Err(Refusal::Blocked)
        );
        assert_eq!(
            m.on_offer(
                w.known(),
                mallory,
                AddressKey::Unknown,
                Some("lobby".into()),
                offer(id, "a"),
                1
            ),
            Err(Refusal::Blocked)
        );
        // A direct offer is refused as blocked before its name is looked at; a shared one
        // with an unusable name is unusable whoever sent it.
        assert_eq!(
            m.on_offer(
                w.known(),
                mallory,
                AddressKey::Unknown,
                None,
                offer(id, "/../"),
                1
            ),
            Err(Refusal::Blocked)
        );
        assert_eq!(
            m.on_offer(
                w.known(),
                mallory,
                AddressKey::Unknown,
                Some("lobby".into()),
                offer(id, ".."),
                1
            ),
            Err(Refusal::UnusableName)
        );
        assert_eq!(Refusal::Blocked.to_string(), "refused");
    }

    #[test]
    fn an_offer_without_a_usable_name_is_refused() {
        let w = World::new();
        let mut m = Offers::new(policy());
        let out = m.on_offer(
            w.known(),
            PeerId::random(),
            AddressKey::Unknown,
            None,
            offer(TransferId::random(), " .. "),
            1,
        );
        assert_eq!(out, Err(Refusal::UnusableName));
    }

    #[test]
    fn too_many_waiting_offers_from_one_sender_are_refused() {
        let mut w = World::new();
        let spammer = PeerId::random();
        let mut m = Offers::new(policy());
        let now_ms = 10_000;
        for _ in 0..MAX_PENDING_OFFERS_PER_PEER {
            let out = m
                .on_offer(
                    w.known(),
                    spammer,
                    AddressKey::Unknown,
                    None,
                    offer(TransferId::random(), "a"),
                    now_ms,
                )
                .unwrap();
            w.apply(&out);
        }
        let extra = offer(TransferId::random(), "a");
        assert_eq!(
            m.on_offer(
                w.known(),
                spammer,
                AddressKey::Unknown,
                None,
                extra.clone(),
                now_ms
            ),
            Err(Refusal::TooMany)
        );
        // Others may still offer; once one offer is answered the sender may offer again.
        let other = m.on_offer(
            w.known(),
            PeerId::random(),
            AddressKey::Unknown,
            None,
            offer(TransferId::random(), "a"),
            now_ms,
        );
        assert!(other.is_ok());
        let (answered, _) = w.transfers.list()[1];
        w.transfers.set_state(&answered, State::Rejected).unwrap();
        assert!(m
            .on_offer(w.known(), spammer, AddressKey::Unknown, None, extra, now_ms)
            .is_ok());
    }

    #[test]
    fn auto_accept_downloads_direct_offers_only() {
        let w = World::new();
        let alice = PeerId::random();
        let mut m = Offers::new(Policy::new(secs(60.0), true, true));
        let id = TransferId::random();
        let out = m
            .on_offer(
                w.known(),
                alice,
                AddressKey::Unknown,
                None,
                offer(id, "a"),
                1,
            )
            .unwrap();
        assert_eq!(
            out[2..],
            [
                Action::Save {
                    transfer: id,
                    state: State::Downloading
                },
                Action::StartDownload {
                    transfer: id,
                    peer: alice
                },
            ]
        );
        assert!(m.is_downloading(&id));
        let shared = m
            .on_offer(
                w.known(),
                alice,
                AddressKey::Unknown,
                Some("lobby".into()),
                offer(TransferId::random(), "a"),
                1,
            )
            .unwrap();
        assert_eq!(shared.len(), 2);
        // Without a data dir there is nowhere to download to.
        let mut m = Offers::new(Policy::new(secs(60.0), true, false));
        let out = m
            .on_offer(
                w.known(),
                alice,
                AddressKey::Unknown,
                None,
                offer(TransferId::random(), "a"),
                1,
            )
            .unwrap();
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn an_offer_larger_than_the_free_disk_is_refused() {
        let mut w = World::new();
        let alice = PeerId::random();
        let mut m = Offers::new(Policy::new(secs(60.0), true, true));
        w.free_space = Some(DISK_MARGIN + 1000);
        let mut big = offer(TransferId::random(), "big.iso");
        big.size = 1001;
        assert_eq!(
            m.on_offer(w.known(), alice, AddressKey::Unknown, None, big.clone(), 1),
            Err(Refusal::NoSpace)
        );
        assert_eq!(
            Refusal::NoSpace.to_string(),
            "not enough disk space for this file"
        );
        big.size = 1000;
        let out = m
            .on_offer(w.known(), alice, AddressKey::Unknown, None, big, 1)
            .unwrap();
        assert!(out
            .iter()
            .any(|a| matches!(a, Action::StartDownload { .. })));
        // An offer kept while there was room is refused at /accept once the room is gone.
        let mut m = Offers::new(policy());
        let id = w.add(transfer(Direction::Incoming, alice, None));
        w.free_space = Some(DISK_MARGIN);
        let err = m.start(w.known(), id).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not enough disk space: the file needs 1 MiB and 256 MiB must stay free, 256 MiB are free"
        );
    }

    #[test]
    fn auto_accepted_downloads_hold_the_senders_offer_slots() {
        let mut w = World::new();
        let spammer = PeerId::random();
        let mut m = Offers::new(Policy::new(secs(60.0), true, true));
        for _ in 0..MAX_PENDING_OFFERS_PER_PEER {
            let out = m
                .on_offer(
                    w.known(),
                    spammer,
                    AddressKey::Unknown,
                    None,
                    offer(TransferId::random(), "a"),
                    1,
                )
                .unwrap();
            w.apply(&out);
        }
        assert_eq!(
            m.on_offer(
                w.known(),
                spammer,
                AddressKey::Unknown,
                None,
                offer(TransferId::random(), "a"),
                1
            ),
            Err(Refusal::TooMany)
        );
    }

    #[test]
    fn fresh_keys_on_one_address_hold_few_places_and_a_contacts_offer_is_always_taken() {
        let mut w = World::new();
        let mut m = Offers::new(policy());
        let address = AddressKey::V4([192, 0, 2, 1]);
        let now_ms = 10_000;
        let mut offer_from = |w: &mut World, peer: PeerId, address: AddressKey, at: u64| {
            let out = m.on_offer(
                w.known(),
                peer,
                address,
                None,
                offer(TransferId::random(), "a"),
                at,
            )?;
            w.apply(&out);
            Ok::<(), Refusal>(())
        };
        // Keys are free: one offer each from many keys, all on one address.
        let kept = (0..MAX_PENDING_PER_ADDRESS * 2)
            .filter(|_| offer_from(&mut w, PeerId::random(), address, now_ms).is_ok())
            .count();
        assert_eq!(kept, MAX_PENDING_PER_ADDRESS);
        let elsewhere = AddressKey::V4([198, 51, 100, 7]);
        assert_eq!(
            offer_from(&mut w, PeerId::random(), elsewhere, now_ms),
            Ok(())
        );
        // Strangers everywhere fill every place; a contact's offer still goes in.
        let mut next = 0u8;
        while offer_from(&mut w, PeerId::random(), elsewhere, now_ms).is_ok()
            || offer_from(
                &mut w,
                PeerId::random(),
                AddressKey::V4([10, 0, 0, next]),
                now_ms,
            )
            .is_ok()
        {
            next = next.wrapping_add(1);
        }
        let friend = PeerId::random();
        w.directory.contacts.add("friend", friend, None).unwrap();
        assert_eq!(offer_from(&mut w, friend, address, now_ms), Ok(()));
        assert_eq!(
            offer_from(
                &mut w,
                PeerId::random(),
                AddressKey::V4([203, 0, 113, 9]),
                now_ms
            ),
            Err(Refusal::TooMany),
            "every place is held"
        );
        // Strangers' offers hold their places only for a short while; they stay listed.
        let later = now_ms + STRANGER_HOLD_MS;
        assert_eq!(offer_from(&mut w, PeerId::random(), address, later), Ok(()));
        assert!(w.transfers.list().len() > MAX_PENDING_OFFERS);
    }

    #[test]
    fn shared_files_leave_slots_for_direct_offers() {
        let mut w = World::new();
        let mut m = Offers::new(policy());
        let room = Some("lobby".to_owned());
        let mut kept = 0;
        for _ in 0..MAX_PENDING_OFFERS {
            let sharer = PeerId::random();
            if let Ok(out) = m.on_offer(
                w.known(),
                sharer,
                AddressKey::Unknown,
                room.clone(),
                offer(TransferId::random(), "a"),
                1,
            ) {
                w.apply(&out);
                kept += 1;
            }
        }
        assert_eq!(kept, MAX_PENDING_SHARED);
        let direct = m.on_offer(
            w.known(),
            PeerId::random(),
            AddressKey::Unknown,
            None,
            offer(TransferId::random(), "a"),
            1,
        );
        assert!(direct.is_ok());
    }

    #[test]
    fn a_failed_download_can_be_rejected_and_its_partial_file_goes() {
        let mut w = World::new();
        let alice = PeerId::random();
        let id = w.add(transfer(Direction::Incoming, alice, None));
        w.transfers
            .set_state(
                &id,
                State::Failed {
                    reason: "disk full".into(),
                },
            )
            .unwrap();
        let mut m = Offers::new(policy());
        let (_, out) = m.reject(w.known(), &id.to_string()).unwrap();
        assert_eq!(
            out[..2],
            [
                Action::StopDownload(id),
                Action::Save {
                    transfer: id,
                    state: State::Rejected
                },
            ]
        );
    }

    #[test]
    fn accepting_starts_one_download() {
        let mut w = World::new();
        let alice = PeerId::random();
        let id = w.add(transfer(Direction::Incoming, alice, None));
        let typed = id.to_string()[..8].to_owned();
        let mut m = Offers::new(policy());
        let (found, out) = m.accept(w.known(), &typed).unwrap();
        assert_eq!(found, id);
        assert_eq!(
            out,
            vec![
                Action::Save {
                    transfer: id,
                    state: State::Downloading
                },
                Action::StartDownload {
                    transfer: id,
                    peer: alice
                },
            ]
        );
        w.apply(&out);
        assert_eq!(m.accept(w.known(), &typed), Ok((id, Vec::new())));
        // A failed download may be accepted again.
        let ended = Input::DownloadEnded {
            transfer: id,
            result: Err("hash mismatch".into()),
        };
        let out = m.handle(Instant::now(), w.known(), ended);
        assert_eq!(
            out,
            vec![
                Action::StopDownload(id),
                Action::Fail {
                    transfer: id,
                    reason: "hash mismatch".into()
                }
            ]
        );
        w.apply(&out);
        assert_eq!(m.accept(w.known(), &typed).unwrap().1.len(), 2);
    }

    #[test]
    fn what_cannot_be_accepted() {
        let mut w = World::new();
        let alice = PeerId::random();
        let mut m = Offers::new(policy());
        let mine = w.add(transfer(Direction::Outgoing, alice, None));
        assert_eq!(m.start(w.known(), mine), Err(TransferError::Outgoing(mine)));
        let rejected = w.add(transfer(Direction::Incoming, alice, None));
        w.transfers.set_state(&rejected, State::Rejected).unwrap();
        assert_eq!(
            m.start(w.known(), rejected),
            Err(TransferError::Rejected(rejected))
        );
        let done = w.add(transfer(Direction::Incoming, alice, None));
        let path = PathBuf::from("/downloads/a.txt");
        w.transfers
            .set_state(&done, State::Done { path: path.clone() })
            .unwrap();
        assert_eq!(
            m.start(w.known(), done),
            Err(TransferError::AlreadyReceived(path))
        );
        let unknown = TransferId::random();
        assert_eq!(
            m.start(w.known(), unknown),
            Err(TransferError::Missing(unknown))
        );
        let mut other = transfer(Direction::Incoming, alice, None);
        other.offer.sha256 = [8; 32];
        let offered = w.add(other);
        let mut no_dir = Offers::new(Policy::new(secs(60.0), false, false));
        assert_eq!(
            no_dir.start(w.known(), offered),
            Err(TransferError::NoDownloadDir)
        );
    }

    #[test]
    fn a_file_received_under_another_offer_is_not_fetched_again_while_its_copy_is_there() {
        let mut w = World::new();
        let (alice, bob) = (PeerId::random(), PeerId::random());
        let mut m = Offers::new(policy());
        let first = w.add(transfer(Direction::Incoming, alice, Some("lobby")));
        let path = PathBuf::from("/downloads/a.txt");
        w.transfers
            .set_state(&first, State::Done { path: path.clone() })
            .unwrap();
        // The same bytes shared again, by alice or by bob: said in one line, no copy.
        let again = w.add(transfer(Direction::Incoming, alice, Some("lobby")));
        let other = w.add(transfer(Direction::Incoming, bob, None));
        for id in [again, other] {
            assert_eq!(
                m.accept(w.known(), &id.to_string()),
                Err(TransferError::AlreadyReceived(path.clone()))
            );
            assert_eq!(
                TransferError::AlreadyReceived(path.clone()).to_string(),
                "already received: /downloads/a.txt"
            );
        }
        // Another file of the same name is fetched.
        let mut changed = transfer(Direction::Incoming, alice, Some("lobby"));
        changed.offer.sha256 = [9; 32];
        let changed = w.add(changed);
        assert_eq!(m.start(w.known(), changed).unwrap().len(), 2);
        // The copy was deleted: fetched again.
        let known = Known {
            exists: |_| false,
            ..w.known()
        };
        assert_eq!(m.start(known, again).unwrap().len(), 2);
    }

    #[test]
    fn rejecting_stops_the_download_and_tells_a_direct_sender() {
        let mut w = World::new();
        let alice = PeerId::random();
        let direct = w.add(transfer(Direction::Incoming, alice, None));
        let shared = w.add(transfer(Direction::Incoming, alice, Some("lobby")));
        let mut m = Offers::new(policy());
        let started = m.start(w.known(), direct).unwrap();
        w.apply(&started);
        let (id, out) = m.reject(w.known(), &direct.to_string()).unwrap();
        assert_eq!(id, direct);
        assert_eq!(
            out,
            vec![
                Action::StopDownload(direct),
                Action::Save {
                    transfer: direct,
                    state: State::Rejected
                },
                Action::SendDecline {
                    peer: alice,
                    transfer: direct
                },
            ]
        );
        assert!(!m.is_downloading(&direct));
        w.apply(&out);
        // A rejected transfer cannot be rejected again, nor does its late end count.
        assert_eq!(
            m.reject(w.known(), &direct.to_string()),
            Err(TransferError::NotRejectable(direct))
        );
        let late = Input::DownloadEnded {
            transfer: direct,
            result: Ok(PathBuf::from("/downloads/a.txt")),
        };
        assert!(m.handle(Instant::now(), w.known(), late).is_empty());
        // A file shared in a room is dropped without a word to its sender.
        let (_, out) = m.reject(w.known(), &shared.to_string()).unwrap();
        assert_eq!(
            out,
            vec![
                Action::StopDownload(shared),
                Action::Save {
                    transfer: shared,
                    state: State::Rejected
                },
            ]
        );
        let mine = w.add(transfer(Direction::Outgoing, alice, None));
        assert_eq!(
            m.reject(w.known(), &mine.to_string()),
            Err(TransferError::NotRejectable(mine))
        );
    }

    #[test]
    fn a_finished_download_is_saved_and_shown() {
        let mut w = World::new();
        let alice = PeerId::random();
        let id = w.add(transfer(Direction::Incoming, alice, None));
        let mut m = Offers::new(policy());
        let started = m.start(w.known(), id).unwrap();
        w.apply(&started);
        let path = PathBuf::from("/downloads/a.txt");
        let out = m.handle(
            Instant::now(),
            w.known(),
            Input::DownloadEnded {
                transfer: id,
                result: Ok(path.clone()),
            },
        );
        assert_eq!(
            out,
            vec![
                Action::Save {
                    transfer: id,
                    state: State::Done { path: path.clone() }
                },
                Action::Tell(Event::FileReceived {
                    transfer: id,
                    path,
                    size: 3,
                    sha256: hex::encode([7u8; 32]),
                }),
            ]
        );
        assert!(!m.is_downloading(&id));
    }

    #[test]
    fn only_the_recipient_can_decline_an_offer() {
        let mut w = World::new();
        let bob = PeerId::random();
        let id = w.add(transfer(Direction::Outgoing, bob, None));
        let mut m = Offers::new(policy());
        let t0 = Instant::now();
        let stranger = Input::Declined {
            peer: PeerId::random(),
            transfer: id,
        };
        assert!(m.handle(t0, w.known(), stranger).is_empty());
        let out = m.handle(
            t0,
            w.known(),
            Input::Declined {
                peer: bob,
                transfer: id,
            },
        );
        assert_eq!(
            out,
            vec![
                Action::Save {
                    transfer: id,
                    state: State::Rejected
                },
                Action::Tell(Event::FileFailed {
                    transfer: id,
                    reason: format!("declined by {}", w.directory.display_name(&bob)),
                }),
            ]
        );
        // An incoming transfer cannot be "declined" by its own sender.
        let incoming = w.add(transfer(Direction::Incoming, bob, None));
        let odd = Input::Declined {
            peer: bob,
            transfer: incoming,
        };
        assert!(m.handle(t0, w.known(), odd).is_empty());
    }
}
