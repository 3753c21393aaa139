//! Which member sends which part of a file several members of a room share (same SHA-256):
//! the file is cut into pieces of [`PIECE_LEN`], each source streams a run of consecutive
//! pieces, an idle source takes a share of the longest run nobody streams or else the back
//! half of the longest run another source still has ahead of it, and the pieces of a source
//! that failed or left go back to the others. Also which announcements are the sources of
//! a `/get`, and the piece map saved beside the `.part` file. No I/O: the time is an
//! argument.

use std::time::{Duration, Instant};

use libp2p::PeerId;

use ipm_protocol::TransferId;

use crate::{
    logic::backoff,
    store::transfers::{Direction, State, Transfers},
};

/// Bytes in one piece: the unit a source is given, written and remembered as done.
pub const PIECE_LEN: u64 = 4 * 1024 * 1024;
/// Most members one download pulls from at once.
pub const MAX_SOURCES: usize = 4;
/// Fewest pieces a source must still have ahead of it for another to take half: each keeps
/// at least two.
const MIN_SPLIT: u64 = 4;
/// First pause before a failed source is asked again; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(250);
/// Longest pause before a failed source is asked again.
const MAX_PAUSE: Duration = Duration::from_secs(10);
/// The first bytes of a saved piece map.
const MAP_MAGIC: &[u8] = b"ipm-pieces 1\n";

/// A run of consecutive pieces, `first..end` (piece numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// The first piece.
    pub first: u64,
    /// One past the last piece.
    pub end: u64,
}

/// How a source's stream (or its chunk requests) ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Every piece it was asked for, or it was told to stop.
    Finished,
    /// Cut, refused for now, or unreachable: ask it again later.
    Retry,
    /// The source refuses for good (the file changed, the share was withdrawn).
    Fatal(String),
}

#[derive(Clone, Debug, Default)]
struct Source {
    /// The pieces it still has to send, `next..end`; `None` when idle.
    run: Option<Run>,
    /// Failures since its last written piece.
    failures: u32,
    /// Not asked again before this.
    retry_at: Option<Instant>,
    /// Why it refuses for good.
    dead: Option<String>,
}

impl Source {
    fn ready(&self, now: Instant) -> bool {
        self.dead.is_none() && self.run.is_none() && self.retry_at.is_none_or(|at| at <= now)
    }
}

/// The plan of one download from several sources.
#[derive(Clone, Debug)]
pub struct PiecePlan {
    size: u64,
    piece_len: u64,
    done: Vec<bool>,
    sources: Vec<Source>,
}

impl PiecePlan {
    /// The plan of a file of `size` bytes in pieces of `piece_len` from `sources` sources;
    /// `done` says which pieces are on disk already (a map of another length is ignored).
    pub fn new(size: u64, piece_len: u64, done: Vec<bool>, sources: usize) -> Self {
        let piece_len = piece_len.max(1);
        let pieces = usize::try_from(size.div_ceil(piece_len)).unwrap_or(0);
        let done = if done.len() == pieces {
            done
        } else {
            vec![false; pieces]
        };
        Self {
            size,
            piece_len,
            done,
            sources: vec![Source::default(); sources],
        }
    }

    /// How many pieces the file has.
    pub fn pieces(&self) -> u64 {
        self.done.len() as u64
    }

    /// The bytes `start..end` of `run`.
    pub fn bytes(&self, run: Run) -> (u64, u64) {
        (
            (run.first * self.piece_len).min(self.size),
            (run.end * self.piece_len).min(self.size),
        )
    }

    /// Which pieces are written, in order.
    pub fn done_map(&self) -> &[bool] {
        &self.done
    }

    /// Bytes of the pieces written.
    pub fn done_bytes(&self) -> u64 {
        (0..self.pieces())
            .filter(|p| self.is_done(*p))
            .map(|p| {
                let (start, end) = self.bytes(Run {
                    first: p,
                    end: p + 1,
                });
                end - start
            })
            .sum()
    }

    /// Whether every piece is written.
    pub fn is_complete(&self) -> bool {
        self.done.iter().all(|d| *d)
    }

    fn is_done(&self, piece: u64) -> bool {
        usize::try_from(piece)
            .ok()
            .and_then(|p| self.done.get(p))
            .copied()
            .unwrap_or(true)
    }

    /// The pieces `source` still has to send, if it streams.
    pub fn run_of(&self, source: usize) -> Option<Run> {
        self.sources.get(source).and_then(|s| s.run)
    }

    /// Whether some source streams `piece` now.
    fn taken(&self, piece: u64) -> bool {
        self.sources
            .iter()
            .filter_map(|s| s.run)
            .any(|r| r.first <= piece && piece < r.end)
    }

    /// The longest run of pieces neither written nor streamed by anyone.
    fn longest_free(&self) -> Option<Run> {
        let mut best: Option<Run> = None;
        let mut start = None;
        for piece in 0..=self.pieces() {
            let free = piece < self.pieces() && !self.is_done(piece) && !self.taken(piece);
            match (free, start) {
                (true, None) => start = Some(piece),
                (false, Some(first)) => {
                    if best.is_none_or(|b| piece - first > b.end - b.first) {
                        best = Some(Run { first, end: piece });
                    }
                    start = None;
                }
                _ => {}
            }
        }
        best
    }

    /// The run `source` should stream next at `now`: its share of the longest run nobody
    /// streams (split evenly among the sources ready for work), else the back half of the
    /// longest run another source has ahead of it (whose run ends where this one begins).
    /// `None` when it streams already, waits after a failure, refuses for good, or there is
    /// nothing worth taking.
    pub fn assign(&mut self, source: usize, now: Instant) -> Option<Run> {
        if !self.sources.get(source)?.ready(now) {
            return None;
        }
        let run = if let Some(free) = self.longest_free() {
            let ready = self.sources.iter().filter(|s| s.ready(now)).count() as u64;
            let share = (free.end - free.first).div_ceil(ready.max(1));
            Run {
                first: free.first,
                end: free.first + share,
            }
        } else {
            let (victim, ahead) = self
                .sources
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.run.map(|r| (i, r.end - r.first)))
                .max_by_key(|(_, ahead)| *ahead)?;
            if ahead < MIN_SPLIT {
                return None;
            }
            let victim_run = self.sources[victim].run.as_mut()?;
            let mid = victim_run.first + ahead / 2;
            let stolen = Run {
                first: mid,
                end: victim_run.end,
            };
            victim_run.end = mid;
            stolen
        };
        self.sources[source].run = Some(run);
        Some(run)
    }

    /// `piece` was written (by `source`); whether `source` goes on with its run (`false`:
    /// it reached the end of its run, which may have been shortened by a steal).
    pub fn piece_done(&mut self, source: usize, piece: u64) -> bool {
        if let Some(d) = usize::try_from(piece)
            .ok()
            .and_then(|p| self.done.get_mut(p))
        {
            *d = true;
        }
        let done = self.done.clone();
        let Some(s) = self.sources.get_mut(source) else {
            return false;
        };
        s.failures = 0;
        let Some(run) = s.run.as_mut() else {
            return false;
        };
        if piece >= run.first {
            run.first = piece + 1;
        }
        while run.first < run.end
            && usize::try_from(run.first)
                .ok()
                .and_then(|p| done.get(p))
                .copied()
                .unwrap_or(true)
        {
            run.first += 1;
        }
        if run.first >= run.end {
            s.run = None;
            return false;
        }
        true
    }

    /// `source`'s stream ended at `now`: what it had not sent goes back to the others; after
    /// a failure it is asked again after a growing pause, after a refusal never.
    pub fn stream_ended(&mut self, source: usize, now: Instant, ended: Ended) {
        let Some(s) = self.sources.get_mut(source) else {
            return;
        };
        s.run = None;
        match ended {
            Ended::Finished => {}
            Ended::Retry => {
                s.retry_at = Some(now + backoff::pause(FIRST_PAUSE, s.failures, MAX_PAUSE));
                s.failures = s.failures.saturating_add(1);
            }
            Ended::Fatal(reason) => s.dead = Some(reason),
        }
    }

    /// When every source refuses for good: the reason of the last source in the list.
    pub fn all_refused(&self) -> Option<String> {
        let mut reason = None;
        for s in &self.sources {
            reason = Some(s.dead.clone()?);
        }
        reason
    }

    /// The earliest time after `now` an idle source that failed may be asked again.
    pub fn next_retry(&self, now: Instant) -> Option<Instant> {
        self.sources
            .iter()
            .filter(|s| s.dead.is_none() && s.run.is_none())
            .filter_map(|s| s.retry_at)
            .filter(|at| *at > now)
            .min()
    }
}

/// The saved form of a piece map: a header (size, piece length) and one bit per piece.
pub fn encode_map(size: u64, piece_len: u64, done: &[bool]) -> Vec<u8> {
    let mut out = MAP_MAGIC.to_vec();
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&piece_len.to_be_bytes());
    out.extend(done.chunks(8).map(|bits| {
        bits.iter()
            .enumerate()
            .fold(0u8, |byte, (i, d)| byte | (u8::from(*d) << i))
    }));
    out
}

/// The piece map saved for a file of `size` bytes in pieces of `piece_len`, or `None` when
/// `bytes` is not one (damaged, or saved for another file or piece length).
pub fn decode_map(bytes: &[u8], size: u64, piece_len: u64) -> Option<Vec<bool>> {
    let rest = bytes.strip_prefix(MAP_MAGIC)?;
    let (header, bits) = rest.split_at_checked(16)?;
    let saved_size = u64::from_be_bytes(header[..8].try_into().ok()?);
    let saved_len = u64::from_be_bytes(header[8..].try_into().ok()?);
    if saved_size != size || saved_len != piece_len || piece_len == 0 {
        return None;
    }
    let pieces = usize::try_from(size.div_ceil(piece_len)).ok()?;
    if bits.len() != pieces.div_ceil(8) {
        return None;
    }
    Some(
        (0..pieces)
            .map(|p| bits[p / 8] & (1 << (p % 8)) != 0)
            .collect(),
    )
}

/// The pieces wholly within the first `len` bytes: what a download written in order (from
/// one sender) leaves.
pub fn prefix_map(size: u64, piece_len: u64, len: u64) -> Vec<bool> {
    let piece_len = piece_len.max(1);
    let pieces = size.div_ceil(piece_len);
    (0..pieces)
        .map(|p| ((p + 1) * piece_len).min(size) <= len)
        .collect()
}

/// The sources of a `/get` of `id`: its own sender first, then the other members who
/// announced the same file (same size and SHA-256) in the same room, newest announcement
/// first, one per member, none `blocked`, refused or failed, at most [`MAX_SOURCES`]. Each
/// comes with the transfer id it announced (what it serves). Empty when `id` is no
/// incoming shared file.
pub fn share_sources(
    transfers: &Transfers,
    id: TransferId,
    blocked: impl Fn(&PeerId) -> bool,
) -> Vec<(PeerId, TransferId)> {
    let Some(wanted) = transfers.get(&id) else {
        return Vec::new();
    };
    let (Some(owner), Some(room), Direction::Incoming) =
        (wanted.peer, &wanted.room, wanted.direction)
    else {
        return Vec::new();
    };
    let mut sources = vec![(owner, id)];
    for (other, t) in transfers.list() {
        if sources.len() >= MAX_SOURCES {
            break;
        }
        let Some(peer) = t.peer else { continue };
        let same = t.direction == Direction::Incoming
            && t.room.as_ref() == Some(room)
            && t.offer.sha256 == wanted.offer.sha256
            && t.offer.size == wanted.offer.size
            && matches!(t.state, State::Offered | State::Downloading);
        if same && !blocked(&peer) && !sources.iter().any(|(p, _)| *p == peer) {
            sources.push((peer, other));
        }
    }
    sources
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::transfers::Transfer;
    use ipm_protocol::FileOffer;

    const MB: u64 = 1 << 20;

    fn plan(pieces: u64, sources: usize) -> PiecePlan {
        PiecePlan::new(pieces * MB - 7, MB, Vec::new(), sources)
    }

    /// Has `source` write its whole run, piece by piece.
    fn finish(p: &mut PiecePlan, source: usize, now: Instant) {
        while let Some(run) = p.run_of(source) {
            p.piece_done(source, run.first);
        }
        p.stream_ended(source, now, Ended::Finished);
    }

    #[test]
    fn two_sources_split_the_file_and_the_first_to_finish_takes_half_of_what_is_left() {
        let now = Instant::now();
        let mut p = plan(20, 2);
        assert_eq!(p.assign(0, now), Some(Run { first: 0, end: 10 }));
        assert_eq!(p.assign(1, now), Some(Run { first: 10, end: 20 }));
        assert_eq!(p.assign(0, now), None, "already streaming");
        assert_eq!(p.bytes(Run { first: 19, end: 20 }), (19 * MB, 20 * MB - 7));
        // Source 1 is fast: it finishes while source 0 wrote two pieces.
        assert!(p.piece_done(0, 0));
        assert!(p.piece_done(0, 1));
        finish(&mut p, 1, now);
        // It takes the back half of the 8 pieces source 0 still has ahead.
        assert_eq!(p.assign(1, now), Some(Run { first: 6, end: 10 }));
        assert_eq!(p.run_of(0), Some(Run { first: 2, end: 6 }));
        // Source 0 stops at its new end.
        for piece in 2..5 {
            assert!(p.piece_done(0, piece));
        }
        assert!(!p.piece_done(0, 5));
        finish(&mut p, 1, now);
        assert!(p.is_complete());
        assert_eq!(p.done_bytes(), 20 * MB - 7);
    }

    #[test]
    fn a_source_that_leaves_gives_its_pieces_to_the_others_and_is_asked_again_later() {
        let t0 = Instant::now();
        let mut p = plan(12, 2);
        p.assign(0, t0);
        p.assign(1, t0);
        assert!(p.piece_done(0, 0));
        assert!(p.piece_done(1, 6));
        // Source 0 vanishes half way through piece 1.
        p.stream_ended(0, t0, Ended::Retry);
        assert_eq!(p.assign(0, t0), None, "it waits");
        assert_eq!(p.next_retry(t0), Some(t0 + FIRST_PAUSE));
        assert_eq!(p.next_retry(t0 + FIRST_PAUSE), None);
        finish(&mut p, 1, t0);
        // Source 1 takes all that source 0 left.
        assert_eq!(p.assign(1, t0), Some(Run { first: 1, end: 6 }));
        // Source 0 fails again when asked: a longer pause.
        let t1 = t0 + FIRST_PAUSE;
        assert_eq!(p.assign(0, t1), Some(Run { first: 3, end: 6 }));
        p.stream_ended(0, t1, Ended::Retry);
        assert_eq!(p.next_retry(t1), Some(t1 + 2 * FIRST_PAUSE));
        assert_eq!(p.run_of(1), Some(Run { first: 1, end: 3 }));
        finish(&mut p, 1, t1);
        assert_eq!(p.assign(1, t1), Some(Run { first: 3, end: 6 }));
        finish(&mut p, 1, t1);
        assert!(p.is_complete());
        assert_eq!(p.all_refused(), None);
    }

    #[test]
    fn idle_sources_share_free_pieces_and_small_runs_are_not_split() {
        let now = Instant::now();
        let mut p = plan(10, 3);
        assert_eq!(p.assign(0, now), Some(Run { first: 0, end: 4 }));
        assert_eq!(p.assign(1, now), Some(Run { first: 4, end: 7 }));
        assert_eq!(p.assign(2, now), Some(Run { first: 7, end: 10 }));
        finish(&mut p, 2, now);
        // 4 ahead for source 0: split 2 and 2; then 3 ahead for source 1 is too few.
        assert_eq!(p.assign(2, now), Some(Run { first: 2, end: 4 }));
        p.stream_ended(2, now, Ended::Finished);
        p.piece_done(2, 2);
        assert_eq!(p.run_of(0), Some(Run { first: 0, end: 2 }));
        // Piece 3 was not written: it is free again.
        assert_eq!(p.assign(2, now), Some(Run { first: 3, end: 4 }));
        finish(&mut p, 2, now);
        assert_eq!(p.assign(2, now), None, "source 1 has only 3 ahead");
    }

    #[test]
    fn pieces_on_disk_are_not_fetched_again_and_refusals_count_only_when_all_refuse() {
        let now = Instant::now();
        let done = vec![true, true, false, true, false, false];
        let mut p = PiecePlan::new(6 * MB, MB, done, 2);
        assert_eq!(p.done_bytes(), 3 * MB);
        assert_eq!(p.assign(0, now), Some(Run { first: 4, end: 5 }));
        assert_eq!(p.assign(1, now), Some(Run { first: 2, end: 3 }));
        p.stream_ended(1, now, Ended::Fatal("the file changed".into()));
        assert_eq!(p.all_refused(), None);
        assert_eq!(p.assign(1, now), None, "refused for good");
        p.stream_ended(0, now, Ended::Fatal("not shared any more".into()));
        assert_eq!(p.all_refused().as_deref(), Some("the file changed"));
        // A map of another length is ignored; an empty file is complete at once.
        assert_eq!(PiecePlan::new(6 * MB, MB, vec![true], 1).done_bytes(), 0);
        assert!(PiecePlan::new(0, MB, Vec::new(), 1).is_complete());
    }

    #[test]
    fn the_piece_map_round_trips_and_a_foreign_one_is_refused() {
        let done: Vec<bool> = (0..19).map(|i| i % 3 == 0).collect();
        let bytes = encode_map(19 * MB - 1, MB, &done);
        assert_eq!(decode_map(&bytes, 19 * MB - 1, MB), Some(done));
        assert_eq!(decode_map(&bytes, 19 * MB, MB), None);
        assert_eq!(decode_map(&bytes, 19 * MB - 1, 2 * MB), None);
        assert_eq!(decode_map(&bytes[..bytes.len() - 1], 19 * MB - 1, MB), None);
        assert_eq!(decode_map(b"junk", 1, 1), None);
        assert_eq!(prefix_map(5 * MB - 1, MB, 3 * MB + 5), {
            vec![true, true, true, false, false]
        });
        assert_eq!(prefix_map(2 * MB - 1, MB, 2 * MB - 1), vec![true, true]);
    }

    fn shared(peer: PeerId, room: &str, sha: u8, created_ms: u64) -> Transfer {
        Transfer {
            offer: FileOffer {
                transfer: TransferId::random(),
                from_name: "x".into(),
                name: "film.mkv".into(),
                size: 100,
                sha256: [sha; 32],
                folder: None,
            },
            direction: Direction::Incoming,
            peer: Some(peer),
            room: Some(room.into()),
            source: None,
            state: State::Offered,
            created_ms,
        }
    }

    fn add_to(table: &mut Transfers, t: Transfer) -> TransferId {
        let id = t.offer.transfer;
        table.insert(t).unwrap();
        id
    }

    #[test]
    fn the_sources_are_the_members_announcing_the_same_file_in_the_room_once_each() {
        let [a, b, c, d, e, f, blocked] = [(); 7].map(|()| PeerId::random());
        let mut table = Transfers::default();
        let wanted = add_to(&mut table, shared(a, "lobby", 1, 1));
        let b_old = add_to(&mut table, shared(b, "lobby", 1, 2));
        let b_new = add_to(&mut table, shared(b, "lobby", 1, 3));
        add_to(&mut table, shared(c, "interest-x", 1, 4));
        add_to(&mut table, shared(d, "lobby", 2, 5));
        add_to(&mut table, shared(blocked, "lobby", 1, 6));
        let mut rejected = shared(e, "lobby", 1, 7);
        rejected.state = State::Rejected;
        add_to(&mut table, rejected);
        let e_ok = add_to(&mut table, shared(e, "lobby", 1, 8));
        let f_ok = add_to(&mut table, shared(f, "lobby", 1, 9));
        let g_too_many = add_to(&mut table, shared(PeerId::random(), "lobby", 1, 0));
        let sources = share_sources(&table, wanted, |p| *p == blocked);
        assert_eq!(sources, vec![(a, wanted), (f, f_ok), (e, e_ok), (b, b_new)]);
        assert!(!sources.iter().any(|(_, t)| *t == b_old || *t == g_too_many));
        // A direct offer has no other sources.
        let mut direct = shared(a, "lobby", 1, 10);
        direct.room = None;
        let direct = add_to(&mut table, direct);
        assert!(share_sources(&table, direct, |_| false).is_empty());
    }
}
