//! A hostile gossip forwarder for tests: a bare libp2p swarm (TCP, Noise, Yamux) that passes
//! identify as an ipm peer and writes gossipsub frames itself on one long-lived stream, so
//! that one connection can carry messages signed by any number of fresh keys, exactly as
//! an honest gossipsub peer would forward them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    collections::VecDeque,
    convert::Infallible,
    task::{Context, Poll},
    time::Duration,
};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{
    core::{transport::PortUse, upgrade::ReadyUpgrade, Endpoint},
    identify,
    identity::Keypair,
    noise, ping,
    swarm::{
        handler::{ConnectionEvent, FullyNegotiatedInbound, FullyNegotiatedOutbound},
        ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
        NetworkBehaviour, NotifyHandler, SubstreamProtocol, SwarmEvent, THandler, THandlerInEvent,
        THandlerOutEvent, ToSwarm,
    },
    tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm,
};
use tokio::sync::{mpsc, oneshot};

const MESHSUB: StreamProtocol = StreamProtocol::new("/meshsub/1.1.0");

/// Appends a protobuf length-delimited field.
fn field(out: &mut Vec<u8>, number: u8, bytes: &[u8]) {
    out.push((number << 3) | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A gossipsub message on `topic` carrying `data`, signed by `author` as gossipsub signs it.
pub fn signed_message(author: &Keypair, topic: &str, data: &[u8]) -> Vec<u8> {
    let from = author.public().to_peer_id().to_bytes();
    let seqno: u64 = rand::random();
    let mut message = Vec::new();
    field(&mut message, 1, &from);
    field(&mut message, 2, data);
    field(&mut message, 3, &seqno.to_be_bytes());
    field(&mut message, 4, topic.as_bytes());
    let mut signed = b"libp2p-pubsub:".to_vec();
    signed.extend_from_slice(&message);
    let signature = author.sign(&signed).unwrap();
    field(&mut message, 5, &signature);
    message
}

/// One gossipsub frame (length-prefixed RPC) publishing `messages`.
pub fn frame(messages: &[Vec<u8>]) -> Vec<u8> {
    let mut rpc = Vec::new();
    for message in messages {
        field(&mut rpc, 2, message);
    }
    let mut out = Vec::new();
    varint(&mut out, rpc.len() as u64);
    out.extend_from_slice(&rpc);
    out
}

/// Writes frames on one outbound gossipsub stream; drains what the node sends.
struct Handler {
    queue: VecDeque<Vec<u8>>,
    writer: Option<mpsc::UnboundedSender<Vec<u8>>>,
    requested: bool,
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Vec<u8>;
    type ToBehaviour = Infallible;
    type InboundProtocol = ReadyUpgrade<StreamProtocol>;
    type OutboundProtocol = ReadyUpgrade<StreamProtocol>;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(ReadyUpgrade::new(MESHSUB), ())
    }

    fn connection_keep_alive(&self) -> bool {
        true
    }

    fn on_behaviour_event(&mut self, frame: Vec<u8>) {
        match &self.writer {
            Some(writer) => {
                let _ = writer.send(frame);
            }
            None => self.queue.push_back(frame),
        }
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, (), Self::ToBehaviour>> {
        if !self.requested {
            self.requested = true;
            return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                protocol: SubstreamProtocol::new(ReadyUpgrade::new(MESHSUB), ()),
            });
        }
        Poll::Pending
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<Self::InboundProtocol, Self::OutboundProtocol>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: mut stream,
                ..
            }) => {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
                });
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: mut stream,
                ..
            }) => {
                let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
                for frame in self.queue.drain(..) {
                    let _ = tx.send(frame);
                }
                self.writer = Some(tx);
                tokio::spawn(async move {
                    while let Some(frame) = rx.recv().await {
                        if stream.write_all(&frame).await.is_err() || stream.flush().await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
            _ => {}
        }
    }
}

/// Hands frames to the handler of the connection to `peer`.
#[derive(Default)]
struct Frames {
    out: VecDeque<(PeerId, Vec<u8>)>,
}

impl NetworkBehaviour for Frames {
    type ConnectionHandler = Handler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(new_handler())
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(new_handler())
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        match self.out.pop_front() {
            Some((peer_id, event)) => Poll::Ready(ToSwarm::NotifyHandler {
                peer_id,
                handler: NotifyHandler::Any,
                event,
            }),
            None => Poll::Pending,
        }
    }
}

fn new_handler() -> Handler {
    Handler {
        queue: VecDeque::new(),
        writer: None,
        requested: false,
    }
}

#[derive(NetworkBehaviour)]
struct ForgerBehaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    frames: Frames,
}

enum Command {
    Dial(Multiaddr),
    Send(PeerId, Vec<u8>),
    Disconnect(PeerId),
}

/// What the forger saw.
#[derive(Debug)]
pub enum ForgerEvent {
    Connected(PeerId),
    Disconnected(PeerId),
}

/// Handle to a running forger.
pub struct Forger {
    pub peer_id: PeerId,
    commands: mpsc::UnboundedSender<Command>,
    pub events: mpsc::UnboundedReceiver<ForgerEvent>,
}

impl Forger {
    /// Starts a forger listening on `ip` (a loopback address); its dials leave from there.
    pub async fn start(ip: &str) -> Forger {
        let key = Keypair::generate_ed25519();
        let peer_id = key.public().to_peer_id();
        let mut swarm: Swarm<ForgerBehaviour> = libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .unwrap()
            .with_behaviour(|key| ForgerBehaviour {
                identify: identify::Behaviour::new(
                    identify::Config::new("/ipm/1".into(), key.public())
                        .with_agent_version("ipm/forger".into()),
                ),
                ping: ping::Behaviour::new(ping::Config::new()),
                frames: Frames::default(),
            })
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600)))
            .build();
        swarm
            .listen_on(format!("/ip4/{ip}/tcp/0").parse().unwrap())
            .unwrap();
        let (commands, mut rx) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                tokio::select! {
                    command = rx.recv() => match command {
                        None => return,
                        Some(Command::Dial(addr)) => swarm.dial(addr).unwrap(),
                        Some(Command::Send(peer, frame)) => {
                            swarm.behaviour_mut().frames.out.push_back((peer, frame));
                        }
                        Some(Command::Disconnect(peer)) => {
                            let _ = swarm.disconnect_peer_id(peer);
                        }
                    },
                    event = swarm.select_next_some() => match event {
                        SwarmEvent::NewListenAddr { .. } => {
                            if let Some(ready) = ready.take() {
                                let _ = ready.send(());
                            }
                        }
                        SwarmEvent::ConnectionEstablished { peer_id, num_established, .. }
                            if num_established.get() == 1 =>
                        {
                            let _ = events_tx.send(ForgerEvent::Connected(peer_id));
                        }
                        SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                            let _ = events_tx.send(ForgerEvent::Disconnected(peer_id));
                        }
                        _ => {}
                    },
                }
            }
        });
        ready_rx.await.unwrap();
        Forger {
            peer_id,
            commands,
            events,
        }
    }

    pub fn dial(&self, addr: Multiaddr) {
        self.commands.send(Command::Dial(addr)).unwrap();
    }

    /// Sends `messages` to `peer` in frames of at most `per_frame` messages.
    pub fn send(&self, peer: PeerId, messages: &[Vec<u8>], per_frame: usize) {
        for chunk in messages.chunks(per_frame.max(1)) {
            self.commands
                .send(Command::Send(peer, frame(chunk)))
                .unwrap();
        }
    }

    pub fn disconnect(&self, peer: PeerId) {
        self.commands.send(Command::Disconnect(peer)).unwrap();
    }

    /// Waits (bounded) for an event `pick` accepts.
    pub async fn next_event<T>(&mut self, mut pick: impl FnMut(&ForgerEvent) -> Option<T>) -> T {
        tokio::time::timeout(super::support::WAIT, async {
            loop {
                let event = self.events.recv().await.expect("forger stopped");
                if let Some(found) = pick(&event) {
                    return found;
                }
            }
        })
        .await
        .expect("the forger did not see the awaited event in time")
    }
}
