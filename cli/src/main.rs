//! `runnel`: the command-line tool for Runnel.
//!
//! `main` only parses arguments and maps the outcome to an exit code; each
//! command group lives in its own module: `topic` (create/list/describe/
//! alter/delete), `cluster` (dynamic cluster-wide config defaults), `produce` (stdin → records), `consume` (records →
//! stdout), `perf` (load generators), and `output` (tables and JSON).
//! `docs/cli.md` has an example of every command.
//!
//! Exit codes: 0 success, 1 any failure (one `error: ...` line on stderr),
//! 2 usage errors (from clap).

mod acl;
mod cluster;
mod consume;
mod group;
mod output;
mod perf;
mod produce;
mod topic;

// jemalloc instead of glibc's malloc, which maps and unmaps every buffer of
// 128 KiB or more: with megabyte produce requests that was page faults and
// page zeroing on every request (docs/benchmarks.md, "allocator").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use runnel_client::{BearerToken, ClientConfig, TlsConfig};

use output::OutputFormat;

#[derive(Debug, Parser)]
#[command(
    name = "runnel",
    version,
    about = "Manage topics and produce, consume and benchmark records on Runnel"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Brokers to connect to first, as a comma-separated list
    /// (`a:9092,b:9092`). They are tried in order; once connected, the
    /// client fails over to the other brokers of the cluster (and back to
    /// this list) when one stops answering.
    #[arg(
        long,
        global = true,
        env = "RUNNEL_BOOTSTRAP",
        default_value = "127.0.0.1:9092",
        required = false,
        value_name = "HOST:PORT[,HOST:PORT]",
        value_parser = parse_bootstrap
    )]
    pub bootstrap: Brokers,
    /// Output format for results.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// How long to wait for each answer from a broker (e.g. 30s, 500ms).
    #[arg(long, global = true, default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// TLS: PEM CA bundle the brokers' certificates must chain to. Set, the CLI connects with TLS.
    #[arg(
        long,
        global = true,
        env = "RUNNEL_SSL_CA_LOCATION",
        value_name = "FILE"
    )]
    pub ssl_ca_location: Option<PathBuf>,
    /// TLS: PEM client certificate, for brokers that require one (mTLS).
    #[arg(long, global = true, env = "RUNNEL_SSL_CERTIFICATE_LOCATION", value_name = "FILE", requires_all = ["ssl_ca_location", "ssl_key_location"])]
    pub ssl_certificate_location: Option<PathBuf>,
    /// TLS: PEM private key of --ssl-certificate-location.
    #[arg(
        long,
        global = true,
        env = "RUNNEL_SSL_KEY_LOCATION",
        value_name = "FILE",
        requires = "ssl_certificate_location"
    )]
    pub ssl_key_location: Option<PathBuf>,
    /// Bearer token sent with every request (brokers with auth.tokens.file); prefer the variable over the flag.
    #[arg(
        long,
        global = true,
        env = "RUNNEL_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// TLS: name to verify in the brokers' certificates instead of the host connected to.
    #[arg(
        long,
        global = true,
        env = "RUNNEL_SSL_SERVER_NAME",
        value_name = "NAME",
        requires = "ssl_ca_location"
    )]
    pub ssl_server_name: Option<String>,
}

impl Global {
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            bootstrap: self.bootstrap.0.clone(),
            request_timeout: self.request_timeout,
            client_id: "runnel-cli".into(),
            tls: self.ssl_ca_location.as_ref().map(|ca| TlsConfig {
                ca_location: ca.clone(),
                certificate_location: self.ssl_certificate_location.clone(),
                key_location: self.ssl_key_location.clone(),
                server_name: self.ssl_server_name.clone(),
                pem: None,
            }),
            token: self.token.clone().map(BearerToken::new),
            ..ClientConfig::default()
        }
    }
}

/// `--bootstrap a:1,b:2`: one argument holding the whole list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brokers(pub Vec<String>);

fn parse_bootstrap(s: &str) -> Result<Brokers, String> {
    runnel_client::parse_bootstrap(s)
        .map(Brokers)
        .map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, describe, alter and delete topics.
    Topic(topic::TopicArgs),
    /// Write stdin to a topic, one record per line.
    Produce(produce::ProduceArgs),
    /// Print a topic's records to stdout.
    Consume(consume::ConsumeArgs),
    /// List, describe, reset and delete consumer groups.
    Group(group::GroupArgs),
    /// Cluster-wide settings: `runnel cluster config describe|alter`.
    Cluster(cluster::ClusterArgs),
    /// Access control lists: `runnel acl list|add|remove`.
    Acl(acl::AclArgs),
    /// Measure produce or consume throughput and latency.
    Perf(perf::PerfArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli));
    // Do not wait for background tasks (a consumer's fetch ahead) to finish.
    runtime.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // `runnel consume ... | head`: the reader has all it wanted.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Topic(args) => topic::run(&cli.global, args).await,
        Command::Produce(args) => produce::run(&cli.global, args).await,
        Command::Consume(args) => consume::run(&cli.global, args).await,
        Command::Group(args) => group::run(&cli.global, args).await,
        Command::Cluster(args) => cluster::run(&cli.global, args).await,
        Command::Acl(args) => acl::run(&cli.global, args).await,
        Command::Perf(args) => perf::run(&cli.global, args).await,
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_parse_anywhere() {
        let cli = Cli::try_parse_from([
            "runnel",
            "topic",
            "list",
            "--bootstrap",
            "a:1, b:2",
            "--output",
            "json",
            "--request-timeout",
            "500ms",
        ])
        .unwrap();
        assert_eq!(cli.global.bootstrap.0, ["a:1", "b:2"]);
        assert_eq!(cli.global.output, OutputFormat::Json);
        assert_eq!(cli.global.request_timeout, Duration::from_millis(500));
    }

    #[test]
    fn idempotence_flag_parses() {
        let cli = Cli::try_parse_from([
            "runnel",
            "--bootstrap",
            "a:1,b:2",
            "produce",
            "t",
            "--idempotence",
            "false",
        ])
        .unwrap();
        assert_eq!(cli.global.bootstrap.0, ["a:1", "b:2"]);
        assert!(format!("{:?}", cli.command).contains("idempotence: Some(false)"));
        assert!(Cli::try_parse_from(["runnel", "produce", "t", "--idempotence", "maybe"]).is_err());
    }

    #[test]
    fn bad_bootstrap_is_a_usage_error() {
        let err =
            Cli::try_parse_from(["runnel", "--bootstrap", "nohost", "topic", "list"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("expected host:port"), "{err}");
    }
}
