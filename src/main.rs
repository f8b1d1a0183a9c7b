//! `tollgate`: parses the command line, loads the configuration, and hands the work
//! to the library crates.

// The budget evaluator task awaits a DataFusion-deep future, too deep for the
// default limit when proven `Send`.
#![recursion_limit = "256"]

mod cli;
mod commands;
mod config;
mod progress_bar;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(cli.verbose);
    let config = match config::Config::load(&cli.global) {
        Ok(config) => config,
        Err(e) => {
            eprintln!(
                "error: {}",
                tollgate_store::output::terminal_text(&format!("{e:#}"))
            );
            return ExitCode::from(2);
        }
    };
    match commands::run(cli.command, &config).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "error: {}",
                tollgate_store::output::terminal_text(&format!("{e:#}"))
            );
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter =
        EnvFilter::try_from_env("TOLLGATE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
