//! Names at bootstraps as frontends see them: logging in (or registering) at a bootstrap's
//! registry, renaming, and refreshing the list of users the bootstraps know to be online.

use libp2p::PeerId;
use tokio::sync::oneshot;

pub use crate::logic::registry_client::Login;

use crate::client::{Client, NodeError, Request};

/// Requests about registries, answered by the event loop.
#[derive(Debug)]
pub(crate) enum RegistryAsk {
    /// The outcome of logging in at `bootstrap` with the current name (waits for it).
    Login {
        bootstrap: PeerId,
        reply: oneshot::Sender<Login>,
    },
    /// Asks every connected bootstrap who is online; answers once all replied.
    RefreshOnline { reply: oneshot::Sender<()> },
    /// Takes another name, when no connected bootstrap's registry gives it to someone else.
    Rename {
        name: String,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
}

impl Client {
    async fn registry_ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> RegistryAsk,
    ) -> Result<T, NodeError> {
        self.ask(|reply| Request::Registry(make(reply))).await
    }

    /// Logs in with the node's name at the registry of `bootstrap` (registering it on the
    /// first run), or waits for the login already under way, and returns the outcome.
    pub async fn login_at(&self, bootstrap: PeerId) -> Result<Login, NodeError> {
        self.registry_ask(|reply| RegistryAsk::Login { bootstrap, reply })
            .await
    }

    /// Asks the connected bootstraps who is online; `people()` then lists those users too.
    pub async fn refresh_online(&self) -> Result<(), NodeError> {
        self.registry_ask(|reply| RegistryAsk::RefreshOnline { reply })
            .await
    }

    /// Takes the name `name` (remembered in the settings): refused when a connected
    /// bootstrap's registry holds it for another user.
    pub async fn rename(&self, name: String) -> Result<(), NodeError> {
        self.registry_ask(|reply| RegistryAsk::Rename { name, reply })
            .await?
    }
}
