//! A bootstrap's budgets for the mailbox and the registry, as settings: what one address,
//! one recipient and the whole mailbox may hold, and how many names an address may take.

/// Most messages waiting for one recipient.
const MAX_PER_RECIPIENT: usize = ipm_protocol::limits::MAX_MAILBOX_PER_RECIPIENT;

/// Most new names one address (an IPv4 address, an IPv6 /64) may register per hour, by
/// default: a household or an office registering its users, not a squatter.
pub const NEW_NAMES_PER_ADDRESS_PER_HOUR: u32 = 16;

/// The mailbox's budgets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MailboxLimits {
    /// Most sealed bytes the mailbox holds in all.
    pub max_bytes: u64,
    /// One address may hold at most 1/`address_share` of the messages and of the bytes.
    pub address_share: u32,
    /// Most messages one address may have waiting for one recipient.
    pub per_address_per_recipient: usize,
    /// Most sealed bytes waiting for one recipient.
    pub per_recipient_bytes: u64,
}

impl Default for MailboxLimits {
    /// 256 MiB in all; per address 16 MiB and 6 250 messages; per recipient 16 MiB and
    /// 1 000 messages, of which one address may fill a tenth (100 messages).
    fn default() -> Self {
        Self {
            max_bytes: 256 << 20,
            address_share: 16,
            per_address_per_recipient: MAX_PER_RECIPIENT / 10,
            per_recipient_bytes: 16 << 20,
        }
    }
}

/// Budgets of the mailbox and the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceLimits {
    /// The mailbox's budgets (in all, per address, per recipient).
    pub mailbox: MailboxLimits,
    /// Most new names one address may register per hour.
    pub new_names_per_address_per_hour: u32,
}

impl Default for ServiceLimits {
    fn default() -> Self {
        Self {
            mailbox: MailboxLimits::default(),
            new_names_per_address_per_hour: NEW_NAMES_PER_ADDRESS_PER_HOUR,
        }
    }
}
