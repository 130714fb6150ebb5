//! `mailconnect`: parse configuration, set up logging, run (see `app` for the wiring).

use std::process::ExitCode;

use clap::Parser as _;
use mailconnect::{
    app,
    config::{Cli, Command, Config, LogFormat},
    inbound::http::openapi_document,
};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Some(Command::Openapi)) {
        print!("{}", openapi_document());
        return ExitCode::SUCCESS;
    }
    let config = match Config::resolve(cli) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("mailconnect: {e}");
            return ExitCode::from(2);
        }
    };
    let filter =
        EnvFilter::try_from_env("MAILCONNECT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
        LogFormat::Text => tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .init(),
    }
    match app::serve(&config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("mailconnect: {e}");
            ExitCode::FAILURE
        }
    }
}
