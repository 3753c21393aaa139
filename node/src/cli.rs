//! Command-line flags of `ipm`; every flag can also come from an `IPM_*` variable.

use std::path::PathBuf;

use clap::{
    builder::{PossibleValue, TypedValueParser},
    error::ErrorKind,
    ArgAction, Args, Parser, Subcommand, ValueEnum,
};
use ipm_protocol::{room::normalize_tag, Position};
use libp2p::Multiaddr;

/// Widest the help is laid out, whatever the terminal: its examples are written for it.
pub const HELP_WIDTH: usize = 80;

const EXAMPLES: &str = "\
Examples:
  ipm
      start a node with the prompt (data in the platform's data folder)
  ipm --name alice --bootstrap /ip4/203.0.113.7/tcp/7433/p2p/12D3KooW...
      join through a bootstrap (ipm-bootstrap prints its address)
  ipm --geo 48.8566,2.3522 --interest rust,chess
      your location and interests, for /join-geo and /join-interest
  ipm --headless --data-dir ~/.ipm-bob
      run as a daemon; drive it with ipm ctl
  ipm ctl --data-dir ~/.ipm-bob /status
  ipm ctl --data-dir ~/.ipm-bob hello everyone
      one command against that daemon, its answer on stdout
  ipm --web
      the web UI on http://127.0.0.1:7780 (prints the URL to open)

Type /help at the prompt for the commands, /emoji for the :shortcodes:.
RUST_LOG=debug shows the network's logs on stderr.";

const CTL_EXAMPLES: &str = "\
Examples:
  ipm ctl --data-dir ~/.ipm-bob /status
  ipm ctl --data-dir ~/.ipm-bob /users
  ipm ctl --data-dir ~/.ipm-bob hello everyone
  ipm ctl --data-dir ~/.ipm-bob /history lobby 20

The answer goes to stdout; an error to stderr, with exit code 1.";

/// ipm: peer-to-peer chat rooms, private messages and files, with no server.
#[derive(Debug, Parser)]
#[command(
    name = "ipm",
    version,
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true,
    max_term_width = HELP_WIDTH
)]
pub struct Cli {
    /// One-off command against a running node.
    #[command(subcommand)]
    pub command: Option<Sub>,
    /// Flags of the node itself.
    #[command(flatten)]
    pub node: NodeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Sub {
    /// Send one prompt command to the node running on a data dir and print its answer.
    #[command(after_help = CTL_EXAMPLES)]
    Ctl(CtlArgs),
    /// Print the tab-completion script of ipm for a shell.
    #[command(after_help = INSTALL_COMPLETIONS)]
    Completions(CompletionsArgs),
}

const INSTALL_COMPLETIONS: &str = "\
Install it where the shell looks for completions, then open a new shell:
  bash: ipm completions bash > ~/.local/share/bash-completion/completions/ipm
  zsh:  ipm completions zsh > ~/.zfunc/_ipm
        (with fpath=(~/.zfunc $fpath) before compinit in ~/.zshrc)
  fish: ipm completions fish > ~/.config/fish/completions/ipm.fish";

/// `ipm completions` arguments.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_parser = ShellParser)]
    pub shell: CompletionShell,
}

/// Reads the shell of `ipm completions`, naming the shells it knows when it is not one.
#[derive(Clone, Debug)]
struct ShellParser;

impl TypedValueParser for ShellParser {
    type Value = CompletionShell;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<CompletionShell, clap::Error> {
        let text = value.to_string_lossy();
        CompletionShell::from_str(&text, true).map_err(|_| {
            cmd.clone().error(
                ErrorKind::InvalidValue,
                format!("no completions for the shell '{text}': pick bash, zsh or fish"),
            )
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            CompletionShell::value_variants()
                .iter()
                .filter_map(ValueEnum::to_possible_value),
        ))
    }
}

/// The shells `ipm completions` writes scripts for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    /// GNU bash.
    Bash,
    /// The Z shell.
    Zsh,
    /// The friendly interactive shell.
    Fish,
}

impl CompletionShell {
    /// The clap_complete generator of this shell.
    pub fn generator(self) -> clap_complete::Shell {
        match self {
            CompletionShell::Bash => clap_complete::Shell::Bash,
            CompletionShell::Zsh => clap_complete::Shell::Zsh,
            CompletionShell::Fish => clap_complete::Shell::Fish,
        }
    }
}

/// `ipm ctl` flags.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// Data dir of the running node.
    #[arg(long, env = "IPM_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The command, exactly as typed at the prompt (e.g. /status, /history lobby 5, hello).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub words: Vec<String>,
}

/// Flags of a node.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Name shown to others (letters, digits, '_', '-', '.'); remembered in the data dir.
    #[arg(long, env = "IPM_NAME")]
    pub name: Option<String>,
    /// Where identity, settings and history live [default: the platform's data folder].
    #[arg(long, env = "IPM_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on; repeat for several [default: TCP and QUIC on all interfaces, any port].
    #[arg(long, env = "IPM_LISTEN", value_name = "MADDR", value_delimiter = ',')]
    pub listen: Vec<Multiaddr>,
    /// Bootstrap node to join through (its printed /p2p/ address); repeat or comma-separate.
    #[arg(
        long,
        env = "IPM_BOOTSTRAP",
        value_name = "MADDR",
        value_delimiter = ','
    )]
    pub bootstrap: Vec<Multiaddr>,
    /// Your location, for location groups and distances: LAT,LON in degrees or a geohash.
    /// Remembered in the data dir; only a cell of about 1 km travels to others.
    #[arg(long, env = "IPM_GEO", value_name = "LAT,LON|GEOHASH", value_parser = parse_position)]
    pub geo: Option<Position>,
    /// An interest (e.g. rust); repeat or comma-separate. Remembered; /join-interest joins them.
    #[arg(
        long,
        env = "IPM_INTEREST",
        value_name = "TAG",
        value_delimiter = ',',
        value_parser = parse_interest
    )]
    pub interest: Vec<String>,
    /// Do not look for peers on the local network.
    #[arg(long, env = "IPM_NO_MDNS", action = ArgAction::SetTrue)]
    pub no_mdns: bool,
    /// Run without a prompt, as a daemon; drive it with `ipm ctl`.
    #[arg(long, env = "IPM_HEADLESS", action = ArgAction::SetTrue)]
    pub headless: bool,
    /// Accept every file offered to you without asking (downloads go to DIR/downloads).
    #[arg(long, env = "IPM_AUTO_ACCEPT", action = ArgAction::SetTrue)]
    pub auto_accept: bool,
    /// Move files only as chunk requests of `/ipm/file/1`, as the previous release did.
    #[arg(long, env = "IPM_FILE_V1_ONLY", action = ArgAction::SetTrue, hide = true)]
    pub file_v1_only: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9100).
    #[arg(long, env = "IPM_METRICS", value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Protect the identity file with a new passphrase (asked at the terminal); later runs
    /// ask for it, or read IPM_PASSPHRASE.
    #[arg(long, action = ArgAction::SetTrue)]
    pub protect: bool,
    /// Serve the web UI at ADDR (an address or a port) [default: 127.0.0.1:7780, or the next
    /// free port]; prints its URL with the login token. A first run registers in the page, a
    /// sealed identity logs in there. Another address than loopback lets anyone who reaches
    /// it with the token act as you.
    #[arg(
        long,
        env = "IPM_WEB",
        value_name = "ADDR",
        num_args = 0..=1,
        default_missing_value = ""
    )]
    pub web: Option<String>,
    /// Neither ask for nor send read receipts and typing notices in private messages
    /// (remembered in the data dir; --receipts turns them back on).
    #[arg(long, env = "IPM_NO_RECEIPTS", action = ArgAction::SetTrue, conflicts_with = "receipts")]
    pub no_receipts: bool,
    /// Ask for and send read receipts and typing notices again after --no-receipts.
    #[arg(long, action = ArgAction::SetTrue)]
    pub receipts: bool,
    /// Print events as JSON lines on stdout (logs stay on stderr).
    #[arg(long, env = "IPM_JSON", action = ArgAction::SetTrue)]
    pub json: bool,
}

/// Reads `--geo`.
fn parse_position(s: &str) -> Result<Position, ipm_protocol::GeoError> {
    Position::parse(s)
}

/// Reads one `--interest` tag, normalised.
fn parse_interest(s: &str) -> Result<String, ipm_protocol::RoomError> {
    normalize_tag(s)
}
