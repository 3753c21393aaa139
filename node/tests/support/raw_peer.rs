//! A hostile peer for tests: a bare libp2p swarm (TCP, Noise, Yamux) that passes identify
//! as an ipm peer and then speaks the wire directly: any bytes on the request-response
//! protocols (whole, oversized, or never finished), any payload on any gossipsub topic.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{io, time::Duration};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use ipm_protocol::{limits, FileRequest, FileResponse, TransferId};
use libp2p::{
    gossipsub::{self, IdentTopic},
    identify,
    identity::Keypair,
    noise, ping,
    request_response::{self, OutboundRequestId, ProtocolSupport},
    swarm::{NetworkBehaviour, SwarmEvent},
    tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm,
};
use tokio::sync::{mpsc, oneshot};

/// What the raw peer writes on a request stream.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// The bytes written.
    pub bytes: Vec<u8>,
    /// Keep the stream open after writing, never finish the request and never read.
    pub stall: bool,
}

/// Writes requests byte for byte; reads whatever comes back (up to 4 MiB).
#[derive(Debug, Clone, Default)]
pub struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = RawRequest;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<RawRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut bytes = Vec::new();
        io.take(4 << 20).read_to_end(&mut bytes).await?;
        Ok(RawRequest {
            bytes,
            stall: false,
        })
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut bytes = Vec::new();
        io.take(4 << 20).read_to_end(&mut bytes).await?;
        Ok(bytes)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: RawRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&req.bytes).await?;
        if req.stall {
            io.flush().await?;
            futures::future::pending::<()>().await;
        }
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&res).await?;
        io.close().await
    }
}

#[derive(NetworkBehaviour)]
struct RawBehaviour {
    identify: identify::Behaviour,
    /// ipm nodes close connections to peers that do not answer pings.
    ping: ping::Behaviour,
    gossipsub: gossipsub::Behaviour,
    direct: request_response::Behaviour<RawCodec>,
    file: request_response::Behaviour<RawCodec>,
    mailbox: request_response::Behaviour<RawCodec>,
    registry: request_response::Behaviour<RawCodec>,
    history: request_response::Behaviour<RawCodec>,
    /// Raw streams; none accepted, so to an ipm node this peer speaks only `/ipm/file/1`.
    stream: libp2p_stream::Behaviour,
}

/// The request-response protocols of ipm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Direct,
    File,
    Mailbox,
    /// Served by bootstraps only (not in [`Proto::ALL`]).
    Registry,
    /// Room catch-up.
    History,
}

impl Proto {
    pub const ALL: [Proto; 3] = [Proto::Direct, Proto::File, Proto::Mailbox];
}

/// What the raw peer saw.
#[derive(Debug)]
pub enum RawEvent {
    Connected(PeerId),
    Disconnected(PeerId),
    /// A gossip message on `topic` authored by `source`.
    Gossip {
        topic: String,
        source: Option<PeerId>,
        data: Vec<u8>,
    },
}

type Reply<T> = oneshot::Sender<T>;

enum Command {
    Dial(Multiaddr, Reply<()>),
    Subscribe(String, Reply<()>),
    Publish(String, Vec<u8>, Reply<Result<(), String>>),
    Request {
        peer: PeerId,
        proto: Proto,
        request: RawRequest,
        reply: Option<Reply<Result<Vec<u8>, String>>>,
    },
    /// Stop polling the swarm (read nothing, answer nothing) until `thaw` fires.
    Freeze(oneshot::Receiver<()>),
    /// Answer chunk requests for `transfer` from `data`.
    Serve(TransferId, Vec<u8>),
    /// Answer every catch-up request with these bytes.
    ServeHistory(Vec<u8>),
}

/// Handle to a running raw peer.
pub struct RawPeer {
    pub peer_id: PeerId,
    /// Its identity, to sign what it claims (name records).
    pub key: Keypair,
    /// Where it listens, with its peer id.
    pub addr: Multiaddr,
    commands: mpsc::UnboundedSender<Command>,
    pub events: mpsc::UnboundedReceiver<RawEvent>,
    /// Opens raw streams (`/ipm/file/2`) to peers.
    pub streams: libp2p_stream::Control,
}

const LONG: Duration = Duration::from_secs(600);

fn request_response_behaviour(protocol: &'static str) -> request_response::Behaviour<RawCodec> {
    request_response::Behaviour::with_codec(
        RawCodec,
        [(StreamProtocol::new(protocol), ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(LONG)
            .with_max_concurrent_streams(100_000),
    )
}

impl RawPeer {
    /// Starts a raw peer listening on loopback.
    pub async fn start() -> RawPeer {
        Self::start_on("127.0.0.1").await
    }

    /// Starts a raw peer listening on the loopback address `ip` (any of 127.0.0.0/8). A
    /// victim that dials its [`RawPeer::addr`] sees it at `ip` (its own dials leave from
    /// 127.0.0.1, whatever it listens on).
    pub async fn start_on(ip: &str) -> RawPeer {
        let key = Keypair::generate_ed25519();
        let peer_id = key.public().to_peer_id();
        let mut swarm: Swarm<RawBehaviour> =
            libp2p::SwarmBuilder::with_existing_identity(key.clone())
                .with_tokio()
                .with_tcp(
                    tcp::Config::default().nodelay(true),
                    noise::Config::new,
                    yamux::Config::default,
                )
                .unwrap()
                .with_behaviour(|key| {
                    let gossipsub_config = gossipsub::ConfigBuilder::default()
                        .heartbeat_interval(Duration::from_millis(100))
                        .validation_mode(gossipsub::ValidationMode::Permissive)
                        .max_transmit_size(4 << 20)
                        .build()
                        .unwrap();
                    RawBehaviour {
                        identify: identify::Behaviour::new(
                            identify::Config::new("/ipm/1".into(), key.public())
                                .with_agent_version("ipm/hostile".into()),
                        ),
                        ping: ping::Behaviour::new(ping::Config::new()),
                        gossipsub: gossipsub::Behaviour::new(
                            gossipsub::MessageAuthenticity::Signed(key.clone()),
                            gossipsub_config,
                        )
                        .unwrap(),
                        direct: request_response_behaviour("/ipm/direct/1"),
                        file: request_response_behaviour("/ipm/file/1"),
                        mailbox: request_response_behaviour("/ipm/mailbox/1"),
                        registry: request_response_behaviour("/ipm/registry/1"),
                        history: request_response_behaviour("/ipm/history/1"),
                        stream: libp2p_stream::Behaviour::new(),
                    }
                })
                .unwrap()
                .with_swarm_config(|c| c.with_idle_connection_timeout(LONG))
                .build();
        swarm
            .listen_on(format!("/ip4/{ip}/tcp/0").parse().unwrap())
            .unwrap();
        let addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address.with(libp2p::multiaddr::Protocol::P2p(peer_id));
            }
        };
        let (commands, rx) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let streams = swarm.behaviour().stream.new_control();
        tokio::spawn(run(swarm, rx, events_tx));
        RawPeer {
            peer_id,
            key,
            addr,
            commands,
            events,
            streams,
        }
    }

    /// Starts a raw peer (a fresh key) at loopback address `ip` and has `victim` dial it, so
    /// that the victim sees it at `ip`.
    pub async fn dialled_by(ip: &str, victim: &ipm_node::Client) -> RawPeer {
        let mut raw = RawPeer::start_on(ip).await;
        victim.dial(raw.addr.clone()).await.unwrap();
        let peer = victim.peer_id();
        raw.next_event(|e| matches!(e, RawEvent::Connected(p) if *p == peer).then_some(()))
            .await;
        raw
    }

    /// Starts a raw peer (a fresh key) and connects it to `peer` at `addr`.
    pub async fn connected_to(addr: Multiaddr, peer: PeerId) -> RawPeer {
        let mut raw = RawPeer::start().await;
        raw.dial(addr).await;
        raw.next_event(|e| matches!(e, RawEvent::Connected(p) if *p == peer).then_some(()))
            .await;
        raw
    }

    pub async fn dial(&self, addr: Multiaddr) {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Dial(addr, tx)).unwrap();
        rx.await.unwrap();
    }

    pub async fn subscribe(&self, topic: &str) {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Subscribe(topic.into(), tx))
            .unwrap();
        rx.await.unwrap();
    }

    /// Publishes `data` as it is on `topic`.
    pub async fn publish(&self, topic: &str, data: Vec<u8>) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Publish(topic.into(), data, tx))
            .unwrap();
        rx.await.unwrap()
    }

    /// Writes `bytes` as a whole request on `proto` and returns the bytes answered (or why
    /// there was no answer).
    pub async fn request(
        &self,
        peer: PeerId,
        proto: Proto,
        bytes: Vec<u8>,
    ) -> Result<Vec<u8>, String> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Request {
                peer,
                proto,
                request: RawRequest {
                    bytes,
                    stall: false,
                },
                reply: Some(tx),
            })
            .unwrap();
        rx.await.unwrap()
    }

    /// Opens a stream on `proto`, writes `bytes` and then neither finishes nor reads.
    pub fn stall(&self, peer: PeerId, proto: Proto, bytes: Vec<u8>) {
        self.commands
            .send(Command::Request {
                peer,
                proto,
                request: RawRequest { bytes, stall: true },
                reply: None,
            })
            .unwrap();
    }

    /// Fires `bytes` as a request on `proto` without waiting for anything.
    pub fn fire(&self, peer: PeerId, proto: Proto, bytes: Vec<u8>) {
        self.commands
            .send(Command::Request {
                peer,
                proto,
                request: RawRequest {
                    bytes,
                    stall: false,
                },
                reply: None,
            })
            .unwrap();
    }

    /// Serves the bytes of `transfer` to whoever asks for its chunks.
    pub fn serve(&self, transfer: TransferId, data: Vec<u8>) {
        self.commands.send(Command::Serve(transfer, data)).unwrap();
    }

    /// Answers every catch-up request (`/ipm/history/1`) with `bytes`, as they are.
    pub fn serve_history(&self, bytes: Vec<u8>) {
        self.commands.send(Command::ServeHistory(bytes)).unwrap();
    }

    /// Stops reading from the network until the returned sender is used or dropped.
    pub fn freeze(&self) -> oneshot::Sender<()> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Freeze(rx)).unwrap();
        tx
    }

    /// Waits (bounded) for an event `pick` accepts.
    pub async fn next_event<T>(&mut self, mut pick: impl FnMut(&RawEvent) -> Option<T>) -> T {
        tokio::time::timeout(super::support::WAIT, async {
            loop {
                let event = self.events.recv().await.expect("raw peer stopped");
                if let Some(found) = pick(&event) {
                    return found;
                }
            }
        })
        .await
        .expect("the raw peer did not see the awaited event in time")
    }
}

async fn run(
    mut swarm: Swarm<RawBehaviour>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<RawEvent>,
) {
    let mut pending: std::collections::HashMap<OutboundRequestId, Reply<Result<Vec<u8>, String>>> =
        Default::default();
    let mut served: std::collections::HashMap<TransferId, Vec<u8>> = Default::default();
    let mut history: Option<Vec<u8>> = None;
    loop {
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else { return };
                match command {
                    Command::Dial(addr, reply) => {
                        swarm.dial(addr).unwrap();
                        let _ = reply.send(());
                    }
                    Command::Subscribe(topic, reply) => {
                        swarm.behaviour_mut().gossipsub.subscribe(&IdentTopic::new(topic)).unwrap();
                        let _ = reply.send(());
                    }
                    Command::Publish(topic, data, reply) => {
                        let result = swarm
                            .behaviour_mut()
                            .gossipsub
                            .publish(IdentTopic::new(topic), data)
                            .map(|_| ())
                            .map_err(|e| format!("{e:?}"));
                        let _ = reply.send(result);
                    }
                    Command::Request { peer, proto, request, reply } => {
                        let behaviour = swarm.behaviour_mut();
                        let id = match proto {
                            Proto::Direct => behaviour.direct.send_request(&peer, request),
                            Proto::File => behaviour.file.send_request(&peer, request),
                            Proto::Mailbox => behaviour.mailbox.send_request(&peer, request),
                            Proto::Registry => behaviour.registry.send_request(&peer, request),
                            Proto::History => behaviour.history.send_request(&peer, request),
                        };
                        if let Some(reply) = reply {
                            pending.insert(id, reply);
                        }
                    }
                    Command::Freeze(thaw) => {
                        let _ = thaw.await;
                    }
                    Command::Serve(transfer, data) => {
                        served.insert(transfer, data);
                    }
                    Command::ServeHistory(bytes) => history = Some(bytes),
                }
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { peer_id, num_established, .. } if num_established.get() == 1 => {
                    let _ = events.send(RawEvent::Connected(peer_id));
                }
                SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                    let _ = events.send(RawEvent::Disconnected(peer_id));
                }
                SwarmEvent::Behaviour(RawBehaviourEvent::Gossipsub(gossipsub::Event::Message { message, .. })) => {
                    let _ = events.send(RawEvent::Gossip {
                        topic: message.topic.into_string(),
                        source: message.source,
                        data: message.data,
                    });
                }
                SwarmEvent::Behaviour(RawBehaviourEvent::File(request_response::Event::Message {
                    message: request_response::Message::Request { request, channel, .. },
                    ..
                })) => {
                    let chunk = match ipm_protocol::decode(&request.bytes, limits::MAX_FILE_REQUEST_LEN) {
                        Ok(FileRequest::Chunk { transfer, offset, len }) => served.get(&transfer).map(|data| {
                            let start = (offset as usize).min(data.len());
                            let end = (start + len as usize).min(data.len());
                            data[start..end].to_vec()
                        }),
                        _ => None,
                    };
                    let response = match chunk {
                        Some(data) => FileResponse::Chunk(data),
                        None => FileResponse::Error("nothing here".into()),
                    };
                    let _ = swarm.behaviour_mut().file.send_response(channel, ipm_protocol::encode(&response));
                }
                SwarmEvent::Behaviour(RawBehaviourEvent::History(request_response::Event::Message {
                    message: request_response::Message::Request { channel, .. },
                    ..
                })) if history.is_some() => {
                    let bytes = history.clone().unwrap_or_default();
                    let _ = swarm.behaviour_mut().history.send_response(channel, bytes);
                }
                SwarmEvent::Behaviour(
                    RawBehaviourEvent::Direct(e)
                    | RawBehaviourEvent::History(e)
                    | RawBehaviourEvent::File(e)
                    | RawBehaviourEvent::Mailbox(e)
                    | RawBehaviourEvent::Registry(e),
                ) => match e {
                    request_response::Event::Message {
                        message: request_response::Message::Response { request_id, response },
                        ..
                    } => {
                        if let Some(reply) = pending.remove(&request_id) {
                            let _ = reply.send(Ok(response));
                        }
                    }
                    request_response::Event::OutboundFailure { request_id, error, .. } => {
                        if let Some(reply) = pending.remove(&request_id) {
                            let _ = reply.send(Err(error.to_string()));
                        }
                    }
                    // Requests from the victim are answered with nothing useful.
                    request_response::Event::Message {
                        message: request_response::Message::Request { .. },
                        ..
                    } => {}
                    _ => {}
                },
                _ => {}
            }
        }
    }
}
