//! Why a name, contact, block, interest, away text or position is refused: the one answer
//! the machines and drivers give when a change the user asked for cannot be made.

use libp2p::PeerId;

use ipm_protocol::{DecodeError, GeoError, NameError, NameRecordError, RegistryError, RoomError};

use crate::store::contacts::ContactError;

/// Why a name, contact, block, interest, away text or position was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// The new own name breaks the naming rules.
    #[error("bad name '{name}': {source}")]
    BadName {
        /// The name.
        name: String,
        /// Which rule it breaks.
        #[source]
        source: NameError,
    },
    /// A bootstrap does not take a name.
    #[error("a bootstrap has no name")]
    BootstrapName,
    /// The record of the new name could not be signed.
    #[error(transparent)]
    Sign(#[from] NameRecordError),
    /// A bootstrap's registry refused the new name.
    #[error("{source} at bootstrap {bootstrap}")]
    Registry {
        /// The bootstrap.
        bootstrap: PeerId,
        /// What its registry said (boxed: it carries the holder's key).
        #[source]
        source: Box<RegistryError>,
    },
    /// The position and radius make no location group.
    #[error(transparent)]
    Geo(#[from] GeoError),
    /// The interest is not a usable tag.
    #[error(transparent)]
    Tag(#[from] RoomError),
    /// The away text breaks the wire rules.
    #[error(transparent)]
    Away(#[from] DecodeError),
    /// No contact has that petname.
    #[error("no contact '{0}': /contacts lists them")]
    NoContact(String),
    /// The petname breaks the naming rules.
    #[error("bad contact name '{name}': {source}")]
    BadContactName {
        /// The petname.
        name: String,
        /// Which rule it breaks.
        #[source]
        source: NameError,
    },
    /// The contact book refused the change.
    #[error(transparent)]
    Contact(#[from] ContactError),
    /// The peer is this node itself.
    #[error("that is you")]
    OwnPeer,
}
