//! `runnel-broker`: parse config, start logging, run the broker until
//! SIGTERM or Ctrl-C.

use std::process::ExitCode;

use clap::Parser;
use runnel_broker::{Broker, BrokerArgs, BrokerConfig};
use tokio::net::TcpListener;

// jemalloc instead of glibc's malloc, which maps and unmaps every buffer of
// 128 KiB or more: with megabyte produce requests that was page faults and
// page zeroing on every request (docs/benchmarks.md, "allocator").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = BrokerArgs::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: BrokerArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = BrokerConfig::load(&args)?;
    let grpc = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {} (--listen): {e}", config.listen))?;
    let http = TcpListener::bind(config.http_listen).await.map_err(|e| {
        format!(
            "cannot listen on {} (--http-listen): {e}",
            config.http_listen
        )
    })?;
    let kafka = match config.kafka_listen_address()? {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr} (--kafka-listen): {e}"))?,
        ),
        None => None,
    };
    let (grpc_addr, http_addr) = (grpc.local_addr()?, http.local_addr()?);
    let kafka_addr = kafka.as_ref().map(|k| k.local_addr()).transpose()?;
    if let Some(addr) = kafka_addr {
        config.kafka_listen = addr.to_string();
    }
    // With port 0 the OS picked the ports: advertise the real ones.
    config.listen = grpc_addr;
    config.http_listen = http_addr;
    let data_dir = config.data_dir.clone();
    let shutdown = shutdown_signal()?;
    let broker = Broker::open(config).await?;
    // One machine-readable line on stdout: scripts and tests started with
    // port 0 learn the real ports from it.
    let kafka_field = kafka_addr
        .map(|a| format!(" kafka={a}"))
        .unwrap_or_default();
    println!(
        "runnel-broker ready grpc={grpc_addr} http={http_addr}{kafka_field} data-dir={}",
        data_dir.display()
    );
    broker.serve(grpc, kafka, http, shutdown).await?;
    Ok(())
}

/// Resolves on SIGTERM (Kubernetes, systemd) or SIGINT (Ctrl-C). The
/// handlers are installed when this is called, not when the future is first
/// polled, so a signal that arrives right after the ready line is not lost
/// to the default action (which would skip the clean shutdown).
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}
