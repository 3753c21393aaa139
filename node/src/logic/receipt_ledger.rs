//! How far each own private message got, as the user was told: a receipt is shown only
//! when it moves a message forward (sent, delivered, read), so `delivered` never follows
//! `read` and a repeated receipt shows nothing; messages the user did not type (the away
//! auto-reply) show no receipt at all.

use std::collections::{HashMap, VecDeque};

use ipm_protocol::MessageId;

use super::timeline::Receipt;

/// Own messages remembered at once; the oldest is forgotten first.
pub const CAPACITY: usize = 4096;

/// What the user was told of each recent own message.
#[derive(Debug, Default)]
pub struct ReceiptLedger {
    shown: HashMap<MessageId, Option<Receipt>>,
    order: VecDeque<MessageId>,
}

impl ReceiptLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// `id` was sent by the node on its own (an away auto-reply): no receipt of it is shown.
    pub fn quiet(&mut self, id: MessageId) {
        self.remember(id, None);
    }

    /// A receipt `got` for `id` arrived: whether to show it (it moves the message forward).
    pub fn advance(&mut self, id: MessageId, got: Receipt) -> bool {
        match self.shown.get(&id) {
            Some(None) => false,
            Some(Some(was)) if *was >= got => false,
            _ => {
                self.remember(id, Some(got));
                true
            }
        }
    }

    fn remember(&mut self, id: MessageId, state: Option<Receipt>) {
        if self.shown.insert(id, state).is_none() {
            self.order.push_back(id);
            if self.order.len() > CAPACITY {
                if let Some(old) = self.order.pop_front() {
                    self.shown.remove(&old);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_show_only_when_they_move_a_message_forward() {
        let mut ledger = ReceiptLedger::new();
        let id = MessageId::random();
        assert!(ledger.advance(id, Receipt::Read));
        assert!(
            !ledger.advance(id, Receipt::Delivered),
            "delivered after read"
        );
        assert!(!ledger.advance(id, Receipt::Read), "read twice");
        let other = MessageId::random();
        assert!(ledger.advance(other, Receipt::Delivered));
        assert!(ledger.advance(other, Receipt::Read));
    }

    #[test]
    fn an_auto_reply_shows_no_receipt() {
        let mut ledger = ReceiptLedger::new();
        let id = MessageId::random();
        ledger.quiet(id);
        assert!(!ledger.advance(id, Receipt::Delivered));
        assert!(!ledger.advance(id, Receipt::Read));
    }

    #[test]
    fn the_ledger_is_bounded() {
        let mut ledger = ReceiptLedger::new();
        let first = MessageId::random();
        ledger.quiet(first);
        for _ in 0..CAPACITY {
            ledger.advance(MessageId::random(), Receipt::Delivered);
        }
        assert_eq!(ledger.shown.len(), CAPACITY);
        // Forgotten: a receipt of it would show again, which is the bounded cost.
        assert!(ledger.advance(first, Receipt::Delivered));
    }
}
