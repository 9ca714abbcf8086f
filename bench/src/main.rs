//! `ward-bench`: reproducible benchmarks of ward on this machine. See BENCHMARKS.md for the
//! commands and the figures.

// A benchmark stops on what it did not expect rather than report a figure it cannot trust.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cpu;
mod env;
mod http;
mod postgraphile;
mod scale;
mod soak;
mod storage;
mod subscriptions;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ward-bench")]
struct Cli {
    /// The ward binary to benchmark (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/ward", global = true)]
    ward: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Live updates: N websocket subscribers while tickets change at a fixed rate.
    Subscriptions {
        /// Subscriber counts to run, one after another.
        #[arg(long, value_delimiter = ',', default_value = "1000,5000,10000")]
        subscribers: Vec<usize>,
        /// Ticket changes per second.
        #[arg(long, default_value_t = 50)]
        rate: u32,
        /// Seconds of changes per run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Other ward builds to run before this one at every size, for a comparison (comma
        /// separated, or the option repeated).
        #[arg(long, value_delimiter = ',')]
        baseline: Vec<String>,
        /// Subscribers select a per-person field (`ticket { reporter { id } }`), so each
        /// update is executed per subscriber instead of once per event for all.
        #[arg(long)]
        personal: bool,
    },
    /// HTTP: `me`, a nested page of 50 tickets, and createTicket under wrk, against pgbench
    /// running the same SQL as the PostgreSQL ceiling.
    Http(http::Options),
    /// Soak: minutes of mixed load (reads, writes, photo uploads, clients hanging up) with a
    /// thousand subscribers; ward's memory, descriptors, threads and connections must stay flat.
    Soak(soak::Options),
    /// Storage: a resumable (TUS) upload against one PUT, and image rendering (first and
    /// cached) against reading the original.
    Storage(storage::Options),
    /// Reads at 10k, 100k and 1M tickets in one municipality: pages, totalCount, text search.
    Scale(scale::Options),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Subscriptions { subscribers, rate, seconds, baseline, personal } => {
            subscriptions::run(&cli.ward, &baseline, &subscribers, rate, seconds, personal).await
        }
        Command::Http(options) => http::run(&cli.ward, &options).await,
        Command::Soak(options) => soak::run(&cli.ward, &options).await,
        Command::Storage(options) => storage::run(&cli.ward, &options).await,
        Command::Scale(options) => scale::run(&cli.ward, &options).await,
    }
}
