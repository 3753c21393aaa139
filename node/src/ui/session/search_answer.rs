//! How `/search` shows its hits: one line each, newest first, naming the conversation.

use crate::{
    store::history::direct_peer,
    store::search::Hit,
    ui::render,
    ui::session::{format_entry, format_time},
};

/// The answer to `/search` for `words`, in `shown` (every conversation when `None`).
pub(super) fn format_hits(hits: &[Hit], words: &[String], shown: Option<&str>) -> String {
    if hits.is_empty() {
        let place = shown.map_or(String::new(), |s| format!(" in {s}"));
        return format!("no line{place} holds {}", words.join(" "));
    }
    hits.iter()
        .map(|hit| match shown {
            Some(_) => format_entry(&hit.entry),
            None => format!(
                "[{}] {} {}: {}",
                conversation_label(hit),
                format_time(hit.entry.ts),
                render::clean(&hit.entry.from),
                render::clean(&hit.entry.text)
            ),
        })
        .zip(hits)
        .map(|(row, hit)| match hit.edited {
            true => format!("{row} (edited)"),
            false => row,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A room as the user writes it (`geo:u09tv`), a private conversation as `@name` of the
/// other side (its short peer id when it never wrote).
fn conversation_label(hit: &Hit) -> String {
    if let Some(peer) = direct_peer(&hit.conversation) {
        return match &hit.with {
            Some(name) => format!("@{}", render::clean(name)),
            None => format!("@{}", render::short(&peer.to_string())),
        };
    }
    let log = hit.conversation.as_str();
    match log.split_once('-') {
        Some((kind @ ("geo" | "interest"), rest)) => format!("{kind}:{}", render::clean(rest)),
        _ => render::clean(log),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::history::{direct_log, Entry};

    fn hit(conversation: &str, with: Option<&str>, from: &str, text: &str) -> Hit {
        Hit {
            conversation: conversation.into(),
            with: with.map(Into::into),
            edited: false,
            entry: Entry {
                ts: 0,
                id: "i".into(),
                from: from.into(),
                peer: "p".into(),
                text: text.into(),
                outgoing: false,
                signed: None,
                re: None,
            },
        }
    }

    #[test]
    fn each_hit_names_its_conversation_as_the_user_writes_it() {
        let peer = libp2p::PeerId::random();
        let hits = [
            hit("interest-rust", None, "carol", "lunch?"),
            hit(&direct_log(&peer), Some("bob"), "alice", "lunch at one"),
            hit("lobby", None, "dave", "lunch\u{1b}[2J"),
        ];
        let text = format_hits(&hits, &["lunch".into()], None);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("[interest:rust] "), "{text}");
        assert!(lines[1].starts_with("[@bob] "), "{text}");
        assert!(lines[1].ends_with("alice: lunch at one"), "{text}");
        assert!(lines[2].starts_with("[lobby] "), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
    }

    #[test]
    fn no_hit_says_what_was_looked_for_and_where() {
        assert_eq!(
            format_hits(&[], &["lunch".into(), "friday".into()], Some("bob")),
            "no line in bob holds lunch friday"
        );
        assert_eq!(format_hits(&[], &["x".into()], None), "no line holds x");
    }
}
