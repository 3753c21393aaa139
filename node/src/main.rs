//! `ipm`: the node with its prompt, headless daemon and `ipm ctl` client.

mod cli;

use std::{io::IsTerminal, path::Path, process::ExitCode, time::Duration};

use anyhow::{anyhow, bail, Context};
use libp2p::Multiaddr;
use tokio::{
    io::AsyncBufReadExt,
    sync::{broadcast, mpsc},
};

use ipm_node::{
    client::login::Login,
    config::Config,
    program::{self, OutputError},
    store::data_dir::DataDir,
    store::identity,
    store::settings::Settings,
    ui::commands,
    ui::ctl::{self, CtlServer},
    ui::progress::Steps,
    ui::render,
    ui::session::{Outcome, Session, SessionError},
    web::server::WebServer,
    web::setup::{self, Phase},
    Client, Event,
};

use cli::{Cli, CompletionShell, CtlArgs, NodeArgs, Sub};

/// How long the node waits for a bootstrap at start.
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two attempts to reach a bootstrap at start-up.
const BOOTSTRAP_RETRY: Duration = Duration::from_secs(1);
/// How long the node waits at start for the bootstraps' registries to accept its name.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(10);
/// The web UI's port when `--web` names none (or the next free one).
const DEFAULT_WEB_PORT: u16 = 7780;

fn main() -> ExitCode {
    let cli = match program::parse_args::<Cli>("ipm") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match cli.command {
        Some(Sub::Completions(args)) => print_completions(args.shell),
        Some(Sub::Ctl(args)) => program::run("ipm", run_ctl(args)),
        None => program::run("ipm", run_node(cli.node)),
    }
}

/// Writes the completion script of `shell` to stdout.
fn print_completions(shell: CompletionShell) -> ExitCode {
    let mut command = <Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    clap_complete::generate(shell.generator(), &mut command, "ipm", &mut out);
    match program::print_bytes(&out) {
        Ok(()) | Err(OutputError::Closed) => ExitCode::SUCCESS,
        Err(e) => {
            program::report(&format!("ipm: cannot write the completion script: {e}"));
            ExitCode::FAILURE
        }
    }
}

fn open_data_dir(dir: Option<&Path>) -> anyhow::Result<DataDir> {
    match dir {
        Some(dir) => {
            DataDir::open(dir).with_context(|| format!("cannot use data dir {}", dir.display()))
        }
        None => DataDir::open_default("ipm").context("cannot create the default data dir"),
    }
}

async fn run_ctl(args: CtlArgs) -> anyhow::Result<ExitCode> {
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => open_data_dir(None)?.root().to_path_buf(),
    };
    let dir = DataDir::open(&data_dir)
        .ok()
        .filter(|_| data_dir.is_dir())
        .ok_or_else(|| anyhow!("no data dir at {}", data_dir.display()))?;
    let line = absolute_paths(&args.words.join(" "))?;
    let reply = ctl::send(&dir.control_socket(), &data_dir, &line).await?;
    if reply.ok {
        if !reply.output.is_empty() {
            program::print_line(&reply.output)?;
        }
        Ok(ExitCode::SUCCESS)
    } else {
        program::report(&format!("ipm: {}", reply.output));
        Ok(ExitCode::FAILURE)
    }
}

/// Makes the file of `/save`, `/send-file` and `/share` absolute, so it is the one where
/// `ipm ctl` was run, not where the daemon runs.
fn absolute_paths(line: &str) -> anyhow::Result<String> {
    let absolute = |path: &Path| -> anyhow::Result<String> {
        Ok(std::env::current_dir()?.join(path).display().to_string())
    };
    Ok(match commands::parse(line) {
        Ok(commands::Command::Save { target, path }) if path.is_relative() => {
            format!("/save {target} {}", absolute(&path)?)
        }
        Ok(commands::Command::SendFile { user, path }) if path.is_relative() => {
            format!("/send-file {user} {}", absolute(&path)?)
        }
        Ok(commands::Command::Share(path)) if path.is_relative() => {
            format!("/share {}", absolute(&path)?)
        }
        _ => line.to_owned(),
    })
}

fn default_name() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_default();
    let clean: String = user
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .take(ipm_protocol::limits::MAX_NAME_LEN)
        .collect();
    if ipm_protocol::validate_name(&clean).is_ok() {
        clean
    } else {
        "anon".into()
    }
}

async fn run_node(mut args: NodeArgs) -> anyhow::Result<ExitCode> {
    // An empty IPM_BOOTSTRAP or IPM_LISTEN means none.
    args.bootstrap.retain(|a| !a.is_empty());
    args.listen.retain(|a| !a.is_empty());
    // The prompt needs a terminal on both sides; with stdout in a file or a pipe, commands
    // are read line by line and events written as plain lines.
    let interactive = !args.headless
        && !args.json
        && std::io::stdin().is_terminal()
        && std::io::stdout().is_terminal();
    ipm_node::logging::init(if interactive {
        ipm_node::logging::QUIET
    } else {
        "info"
    });

    let data_dir = open_data_dir(args.data_dir.as_deref())?;
    let mut settings = Settings::load(&data_dir.settings())?;
    let web = match &args.web {
        Some(spec) => Some(web_address(spec)?),
        None => None,
    };
    // A first run with the web UI registers in the page; a sealed identity logs in there.
    let register_in_page = web.is_some() && args.name.is_none() && settings.name.is_none();
    let login_in_page = web.is_some()
        && !register_in_page
        && identity::is_protected(&data_dir.identity_key())
        && std::env::var("IPM_PASSPHRASE").map_or(true, |p| p.is_empty());
    let phase = if register_in_page {
        Phase::Register {
            bootstrap: !args.bootstrap.is_empty(),
        }
    } else if login_in_page {
        Phase::Login {
            name: settings.name.clone(),
        }
    } else {
        Phase::Starting
    };
    let (mut gate, door) = setup::gate(phase);
    let ctl_server = CtlServer::bind(&data_dir.control_socket()).await?;
    let metrics_listener = match args.metrics {
        Some(addr) => Some(
            ipm_node::net::metrics::bind(addr)
                .await
                .with_context(|| format!("cannot serve metrics on {addr}"))?,
        ),
        None => None,
    };
    if let Some((addr, next_free)) = web {
        let server = WebServer::bind(addr, next_free, data_dir.root(), door).await?;
        announce_web(&server, args.json)?;
        tokio::spawn(server.serve());
    }

    let running = if register_in_page {
        register(&args, interactive, &data_dir, &mut settings, &mut gate).await?
    } else {
        let name = args
            .name
            .clone()
            .or_else(|| settings.name.clone())
            .unwrap_or_else(default_name);
        ipm_protocol::validate_name(&name).map_err(|e| anyhow!("bad name '{name}': {e}"))?;
        let before = settings.clone();
        // With bootstraps, the node saves its name once a registry or the DHT holds it.
        if args.bootstrap.is_empty() {
            settings.name = Some(name.clone());
        }
        settings.position = args.geo.or(settings.position);
        if args.no_receipts || args.receipts {
            settings.no_receipts = args.no_receipts;
        }
        // Interests given with --interest add to those remembered (/join-interest adds too).
        for tag in &args.interest {
            if !settings.interests.contains(tag) {
                settings.interests.push(tag.clone());
            }
        }
        if settings != before {
            settings
                .save(&data_dir.settings())
                .context("cannot save settings")?;
        }
        let key = if login_in_page {
            log_in_page(&data_dir, &mut gate).await?
        } else {
            load_identity(&data_dir, args.protect, interactive_terminal())?
        };
        let running =
            start_network(&args, interactive, &name, key, &settings, &data_dir, false).await;
        if login_in_page {
            answer_login(&mut gate, &running);
        }
        running?
    };
    gate.phase
        .send_replace(Phase::Running(running.client.clone()));
    let Running {
        client,
        node,
        mut printer,
        events,
    } = running;

    let session = Session::new(client.clone());
    let (quit_tx, mut quit_rx) = mpsc::channel(1);
    let ctl_task = tokio::spawn(ctl_server.serve(session.clone(), quit_tx));
    if let Some(listener) = metrics_listener {
        tokio::spawn(ipm_node::net::metrics::serve(listener, client.metrics()));
    }

    // A frontend that fails, or a stdout whose reader went away, stops the node as a quit
    // does: peers are told goodbye either way.
    let stopped = tokio::select! {
        result = frontend(&args, interactive, session, &data_dir, events) => result,
        result = printer_stopped(&mut printer) => result.map_err(anyhow::Error::from),
        _ = quit_rx.recv() => Ok(()),
        _ = ipm_node::shutdown_signal() => Ok(()),
    };

    client.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), node).await;
    ctl_task.abort();
    if let Some(printer) = printer {
        printer.abort();
    }
    stopped.map(|()| ExitCode::SUCCESS)
}

/// Resolves when the printer of events stops: its stdout failed, or the node's events
/// ended. Never resolves when there is no printer (at the prompt).
async fn printer_stopped(printer: &mut Option<Printer>) -> Result<(), OutputError> {
    match printer {
        Some(task) => task.await.unwrap_or(Ok(())),
        None => std::future::pending().await,
    }
}

/// The task printing events on stdout when there is no prompt.
type Printer = tokio::task::JoinHandle<Result<(), OutputError>>;

/// A started node: its handle, its loop, the printer of its events, and the events of its
/// first moments for the frontend.
struct Running {
    client: Client,
    node: tokio::task::JoinHandle<()>,
    printer: Option<Printer>,
    events: broadcast::Receiver<Event>,
}

/// Starts the node and joins the network through its bootstraps, logging the name in at
/// their registries; on failure the node is stopped again.
async fn start_network(
    args: &NodeArgs,
    interactive: bool,
    name: &str,
    key: libp2p::identity::Keypair,
    settings: &Settings,
    data_dir: &DataDir,
    refuse_taken: bool,
) -> anyhow::Result<Running> {
    let mut config = Config::node(name.to_owned());
    config.data_dir = Some(data_dir.clone());
    config.auto_accept = args.auto_accept;
    config.file_streams = !args.file_v1_only;
    if !args.listen.is_empty() {
        config.listen = args.listen.clone();
    }
    config.bootstrap = args.bootstrap.clone();
    config.mdns = !args.no_mdns;
    config.receipts = !settings.no_receipts;
    config.position = settings.position;
    config.interests = settings.interests.clone();

    let (client, event_loop) = ipm_node::start(key, config)?;
    let events = client.events();
    let node = tokio::spawn(event_loop.run());
    // The printer takes the receiver made before the loop started, so the events of the
    // first moments (connecting to a bootstrap) are printed too.
    let (printer, events) = if interactive {
        (None, events)
    } else {
        let rest = events.resubscribe();
        (Some(tokio::spawn(print_events(events, args.json))), rest)
    };
    if !args.bootstrap.is_empty() {
        let joined = match connect_bootstraps(&client, &args.bootstrap).await {
            Ok(connected) => log_in(&client, name, &connected, refuse_taken).await,
            Err(e) => Err(e),
        };
        if let Err(e) = joined {
            client.shutdown().await;
            let _ = node.await;
            if let Some(printer) = printer {
                printer.abort();
            }
            return Err(e);
        }
    }
    Ok(Running {
        client,
        node,
        printer,
        events,
    })
}

/// Reads `--web`: empty for the default (the next free port from 7780), a port, or an
/// address. Says plainly what serving it beyond loopback means.
fn web_address(spec: &str) -> anyhow::Result<(std::net::SocketAddr, bool)> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Ok((
            (std::net::Ipv4Addr::LOCALHOST, DEFAULT_WEB_PORT).into(),
            true,
        ));
    }
    let addr = match spec.parse::<u16>() {
        Ok(port) => (std::net::Ipv4Addr::LOCALHOST, port).into(),
        Err(_) => spec.parse::<std::net::SocketAddr>().map_err(|_| {
            anyhow!("bad --web address '{spec}': give a port (7780) or an address (127.0.0.1:7780)")
        })?,
    };
    if !addr.ip().is_loopback() {
        program::report(&format!(
            "ipm: the web UI listens on {addr}, beyond this machine: anyone who reaches it with \
             the token can read and send your messages as you"
        ));
    }
    Ok((addr, false))
}

/// Prints the URL of the web UI, with its token.
fn announce_web(server: &WebServer, json: bool) -> Result<(), OutputError> {
    let url = server.url();
    if json {
        let value = serde_json::json!({"event": "web", "ts": ipm_protocol::now_ms(), "url": url});
        program::print_line(&value.to_string())
    } else {
        program::print_line(&format!("web UI: {url}"))
    }
}

/// Waits for the page's passphrase until it opens the sealed identity.
async fn log_in_page(
    data_dir: &DataDir,
    gate: &mut setup::Gate,
) -> anyhow::Result<libp2p::identity::Keypair> {
    let path = data_dir.identity_key();
    loop {
        let submission = next_form(gate).await?;
        let setup::Form::Login { passphrase } = &submission.form else {
            let _ = submission.reply.send(Err(setup::FormRefused::Registered));
            continue;
        };
        match identity::load_or_create(&path, Some(passphrase)) {
            Ok(key) => {
                gate.phase.send_replace(Phase::Starting);
                gate.pending = Some(submission.reply);
                return Ok(key);
            }
            Err(e) => {
                let _ = submission.reply.send(Err(e.into()));
            }
        }
    }
}

/// Tells the page whether the node started after its login.
fn answer_login(gate: &mut setup::Gate, running: &anyhow::Result<Running>) {
    if let Some(reply) = gate.pending.take() {
        let _ = reply.send(match running {
            Ok(_) => Ok(()),
            Err(e) => Err(setup::FormRefused::Start(anyhow::anyhow!("{e:#}"))),
        });
    }
}

async fn next_form(gate: &mut setup::Gate) -> anyhow::Result<setup::Submission> {
    tokio::select! {
        submission = gate.forms.recv() => {
            submission.ok_or_else(|| anyhow!("the web UI stopped before the node started"))
        }
        _ = ipm_node::shutdown_signal() => bail!("stopped before the node started"),
    }
}

/// Registers in the page: waits for a name (with position, interests and an optional
/// passphrase) that the bootstraps' registries accept, starting the node with it.
async fn register(
    args: &NodeArgs,
    interactive: bool,
    data_dir: &DataDir,
    settings: &mut Settings,
    gate: &mut setup::Gate,
) -> anyhow::Result<Running> {
    let path = data_dir.identity_key();
    let fresh = libp2p::identity::Keypair::generate_ed25519();
    loop {
        let submission = next_form(gate).await?;
        let setup::Form::Register {
            name,
            geo,
            interests,
            passphrase,
        } = &submission.form
        else {
            let _ = submission.reply.send(Err(setup::FormRefused::FirstRun));
            continue;
        };
        let form = match setup::Registration::check(name, geo, interests, passphrase) {
            Ok(form) => form,
            Err(e) => {
                let _ = submission.reply.send(Err(e.into()));
                continue;
            }
        };
        // An identity made before (by `ipm --protect`, say) is kept; else a new one.
        let key = if path.exists() {
            match identity::load_or_create(&path, form.passphrase.as_deref()) {
                Ok(key) => key,
                Err(e) => {
                    let _ = submission.reply.send(Err(e.into()));
                    continue;
                }
            }
        } else {
            fresh.clone()
        };
        let mut wanted = settings.clone();
        wanted.name = Some(form.name.clone());
        wanted.position = form.position.or(args.geo).or(settings.position);
        if !form.interests.is_empty() {
            wanted.interests = form.interests.clone();
        }
        gate.phase.send_replace(Phase::Starting);
        match start_network(
            args,
            interactive,
            &form.name,
            key.clone(),
            &wanted,
            data_dir,
            true,
        )
        .await
        {
            Ok(running) => {
                if !path.exists() {
                    identity::save(&path, &key, form.passphrase.as_deref())
                        .context("cannot save the identity")?;
                }
                wanted
                    .save(&data_dir.settings())
                    .context("cannot save settings")?;
                *settings = wanted;
                let _ = submission.reply.send(Ok(()));
                return Ok(running);
            }
            Err(e) => {
                gate.phase.send_replace(Phase::Register {
                    bootstrap: !args.bootstrap.is_empty(),
                });
                let _ = submission.reply.send(Err(setup::FormRefused::Start(e)));
            }
        }
    }
}

fn interactive_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// Loads (or creates) the identity, asking for its passphrase when it is sealed: from
/// `IPM_PASSPHRASE`, else at the terminal. `--protect` seals it with a new passphrase.
fn load_identity(
    data_dir: &DataDir,
    protect: bool,
    terminal: bool,
) -> anyhow::Result<libp2p::identity::Keypair> {
    let path = data_dir.identity_key();
    if protect {
        if !terminal {
            bail!("--protect asks for the new passphrase at the terminal");
        }
        let key = if identity::is_protected(&path) {
            let current = rpassword::prompt_password("current passphrase: ")?;
            identity::load_or_create(&path, Some(&current))?
        } else {
            identity::load_or_create(&path, None)?
        };
        let first = rpassword::prompt_password("new passphrase: ")?;
        let second = rpassword::prompt_password("repeat it: ")?;
        if first != second {
            bail!("the two passphrases differ; nothing was changed");
        }
        if first.is_empty() {
            bail!("an empty passphrase protects nothing; nothing was changed");
        }
        identity::save(&path, &key, Some(&first))?;
        program::report(&format!(
            "identity {} is now protected by the new passphrase",
            key.public().to_peer_id()
        ));
        return Ok(key);
    }
    let passphrase = match std::env::var("IPM_PASSPHRASE")
        .ok()
        .filter(|p| !p.is_empty())
    {
        Some(p) => Some(p),
        None if identity::is_protected(&path) && terminal => Some(rpassword::prompt_password(
            format!("passphrase for {}: ", path.display()),
        )?),
        None => None,
    };
    Ok(identity::load_or_create(&path, passphrase.as_deref())?)
}

/// Dials every bootstrap; fails only when none answers. A failed dial is tried again every
/// second within [`BOOTSTRAP_TIMEOUT`], so a bootstrap that is just starting (or a name that
/// does not resolve yet) does not stop the node. Returns the bootstraps reached.
async fn connect_bootstraps(
    client: &Client,
    addrs: &[Multiaddr],
) -> anyhow::Result<Vec<(Multiaddr, libp2p::PeerId)>> {
    let deadline = tokio::time::Instant::now() + BOOTSTRAP_TIMEOUT;
    let attempts = addrs.iter().map(|addr| async move {
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let result = client.dial_within(addr.clone(), left).await;
            let again = tokio::time::Instant::now() + BOOTSTRAP_RETRY;
            if result.is_ok() || again >= deadline {
                return result;
            }
            tokio::time::sleep_until(again).await;
        }
    });
    let results = futures::future::join_all(attempts).await;
    let mut connected = Vec::new();
    let mut errors = Vec::new();
    for (addr, result) in addrs.iter().zip(results) {
        match result {
            Ok(peer) => connected.push((addr.clone(), peer)),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if connected.is_empty() {
        bail!("cannot reach any bootstrap: {}", errors.join("; "));
    }
    for e in errors {
        tracing::warn!("{e}");
    }
    Ok(connected)
}

/// Registers (or logs in with) the name at every bootstrap reached, before the node reports
/// ready. A registry holding the name for another key fails the start when `refuse_taken`
/// (a name picked in the page), else the node goes by `name#xxxx` and tells the user; a
/// registry that does not answer in time is logged and skipped (names then rest on DHT
/// records alone).
async fn log_in(
    client: &Client,
    name: &str,
    bootstraps: &[(Multiaddr, libp2p::PeerId)],
    refuse_taken: bool,
) -> anyhow::Result<()> {
    let attempts = bootstraps.iter().map(|(addr, peer)| async move {
        let login = tokio::time::timeout(REGISTRY_TIMEOUT, client.login_at(*peer)).await;
        (addr, login)
    });
    let mut answered = false;
    for (addr, login) in futures::future::join_all(attempts).await {
        match login {
            Ok(Ok(Login::Registered { .. })) => answered = true,
            Ok(Ok(Login::Taken { .. })) if !refuse_taken => answered = true,
            Ok(Ok(Login::Taken { .. })) => bail!(
                "the name \"{name}\" is registered to another user at bootstrap {addr}; pick another with --name"
            ),
            Ok(Ok(Login::Refused(reason))) => {
                answered = true;
                tracing::warn!("bootstrap {addr} refused the name \"{name}\": {reason}");
            }
            Ok(Ok(Login::Unavailable(reason))) => {
                tracing::warn!("bootstrap {addr} keeps no name registry: {reason}");
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => tracing::warn!(
                "bootstrap {addr} did not answer the name registration within {}s",
                REGISTRY_TIMEOUT.as_secs()
            ),
        }
    }
    if !answered {
        tracing::warn!("no bootstrap registry confirmed the name; it rests on DHT records alone");
    }
    Ok(())
}

async fn frontend(
    args: &NodeArgs,
    interactive: bool,
    session: Session,
    data_dir: &DataDir,
    events: broadcast::Receiver<Event>,
) -> anyhow::Result<()> {
    if args.headless {
        std::future::pending::<()>().await;
        Ok(())
    } else if interactive {
        program::print_line(&format!(
            "ipm {} — /help lists the commands, Ctrl-D quits",
            env!("CARGO_PKG_VERSION")
        ))?;
        ipm_node::ui::prompt::run(session, data_dir.prompt_history(), events).await
    } else {
        read_stdin(session, args.json).await
    }
}

/// Runs commands from a non-terminal stdin, one per line, until end of input (or until
/// stdout is closed).
async fn read_stdin(session: Session, json: bool) -> anyhow::Result<()> {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let result = session.run_line(&line).await;
        let quit = matches!(result, Ok(Outcome::Quit));
        print_reply(&result, json)?;
        if quit {
            break;
        }
    }
    Ok(())
}

fn print_reply(result: &Result<Outcome, SessionError>, json: bool) -> Result<(), OutputError> {
    if json {
        let value = match result {
            Ok(outcome) => serde_json::json!({
                "event": "reply", "ts": ipm_protocol::now_ms(), "ok": true,
                "output": outcome.describe(),
            }),
            Err(error) => serde_json::json!({
                "event": "error", "ts": ipm_protocol::now_ms(),
                "message": error.to_string(),
            }),
        };
        program::print_line(&value.to_string())
    } else {
        match result {
            Ok(outcome) => program::print_line(&outcome.describe()),
            Err(error) => program::print_line(&format!("error: {}", error.describe())),
        }
    }
}

/// Prints the node's events, one line each, until they end or stdout fails.
async fn print_events(
    mut events: broadcast::Receiver<Event>,
    json: bool,
) -> Result<(), OutputError> {
    // Plain lines cannot be redrawn: a download shows a line per tenth, not per report.
    let mut steps = Steps::default();
    loop {
        let line = match events.recv().await {
            Ok(event) if json => event.to_json_line(),
            Ok(event) if !steps.keep(&event, std::time::Instant::now()) => continue,
            Ok(event) => render::event_line(&event),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                let event = Event::Error {
                    message: format!("{n} events were dropped: output fell behind"),
                };
                if json {
                    event.to_json_line()
                } else {
                    render::event_line(&event)
                }
            }
            Err(broadcast::error::RecvError::Closed) => return Ok(()),
        };
        program::print_line(&line)?;
    }
}
