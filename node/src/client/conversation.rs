//! Conversations as frontends drive them beyond sending lines: replying, reacting, editing
//! and deleting, the folded lines of a log, telling the node a line was shown (read
//! receipts, unread counts), typing, and the unread counts.

use libp2p::PeerId;
use tokio::sync::oneshot;

use ipm_protocol::{MessageId, Op};

use crate::{
    client::{Client, Conversation, NodeError, Request},
    logic::{edits::Ref, timeline::Line},
};

/// What a change request produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changed {
    /// Where the line is (a reference may be found in a private conversation).
    pub conversation: Conversation,
    /// The new message's id.
    pub id: MessageId,
    /// The line it is about.
    pub target: MessageId,
    /// Peers it went to right away (rooms), or whether it was delivered (private: 1 or 0).
    pub reached: usize,
    /// How the other side of a private conversation is shown.
    pub with: Option<String>,
}

/// The unread lines of one conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unread {
    /// The conversation.
    pub conversation: Conversation,
    /// Lines from others since it was last shown.
    pub count: usize,
    /// How the other side of a private conversation is shown.
    pub name: String,
}

/// A request about a conversation.
#[derive(Debug)]
pub enum ConversationRequest {
    /// Reply to, react to, edit or delete the line `target` names.
    Change {
        /// Where.
        conversation: Conversation,
        /// Which line.
        target: Ref,
        /// Whether a reference found in no line of `conversation` is looked for in the
        /// private conversations too.
        or_private: bool,
        /// What to do.
        op: Op,
        /// A reply's text (empty for the other operations).
        text: String,
        /// The answer.
        reply: oneshot::Sender<Result<Changed, NodeError>>,
    },
    /// The last `count` lines of a log, folded.
    Lines {
        /// Which log.
        conversation: Conversation,
        /// How many lines.
        count: usize,
        /// The answer.
        reply: oneshot::Sender<Result<Vec<Line>, NodeError>>,
    },
    /// A frontend showed this line (or the whole conversation, `id` absent) to its user.
    Shown {
        /// Where.
        conversation: Conversation,
        /// The line shown.
        id: Option<MessageId>,
    },
    /// The user is typing to `to`.
    Typing {
        /// The peer written to.
        to: PeerId,
    },
    /// Unread counts of every conversation that has some.
    Unread {
        /// The answer.
        reply: oneshot::Sender<Vec<Unread>>,
    },
    /// Every conversation this node keeps a log of, with its unread count.
    List {
        /// The answer.
        reply: oneshot::Sender<Vec<Unread>>,
    },
}

impl Client {
    /// Replies to, reacts to, edits or deletes a line of `conversation`. An edit or a
    /// deletion needs one of the user's own lines; `last` names the last own line for them,
    /// the last line of the conversation for a reply or a reaction.
    /// With `or_private`, a reference found in no line of `conversation` is looked for in
    /// the private conversations with lines in memory.
    pub async fn change(
        &self,
        (conversation, or_private): (Conversation, bool),
        target: Ref,
        op: Op,
        text: String,
    ) -> Result<Changed, NodeError> {
        self.ask(|reply| {
            Request::Conversation(ConversationRequest::Change {
                conversation,
                target,
                or_private,
                op,
                text,
                reply,
            })
        })
        .await?
    }

    /// The last `count` lines of `conversation` as they stand now: edited, deleted, with
    /// what they answer, their reactions and receipts.
    pub async fn lines(
        &self,
        conversation: Conversation,
        count: usize,
    ) -> Result<Vec<Line>, NodeError> {
        self.ask(|reply| {
            Request::Conversation(ConversationRequest::Lines {
                conversation,
                count,
                reply,
            })
        })
        .await?
    }

    /// Tells the node that its user has seen line `id` of `conversation` (or all of it):
    /// the unread count goes to zero and the sender of a private message gets a read receipt.
    pub async fn shown(&self, conversation: Conversation, id: Option<MessageId>) {
        let request = Request::Conversation(ConversationRequest::Shown { conversation, id });
        let _ = self.requests.send(request).await;
    }

    /// Tells `to` that the user is typing (sent at most every few seconds, and only to a
    /// peer that understands it).
    pub async fn typing(&self, to: PeerId) {
        let request = Request::Conversation(ConversationRequest::Typing { to });
        let _ = self.requests.send(request).await;
    }

    /// Every conversation kept (rooms and private conversations, after a restart too),
    /// each with its unread count.
    pub async fn conversations(&self) -> Result<Vec<Unread>, NodeError> {
        self.ask(|reply| Request::Conversation(ConversationRequest::List { reply }))
            .await
    }

    /// Every conversation with unread lines, and how many.
    pub async fn unread(&self) -> Result<Vec<Unread>, NodeError> {
        self.ask(|reply| Request::Conversation(ConversationRequest::Unread { reply }))
            .await
    }
}
