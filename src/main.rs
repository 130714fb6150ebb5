//! `mailconnect`: parse configuration, set up logging, run (see `app` for the wiring).

use std::process::ExitCode;

use mailconnect::{
    app,
    config::{Cli, Command, Config},
};

fn main() -> ExitCode {
    let cli = Cli::load(std::env::args_os()).unwrap_or_else(|e| e.exit());
    let print_openapi = matches!(cli.command, Some(Command::Openapi));
    let config = match Config::resolve(cli) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("mailconnect: {e}");
            return ExitCode::from(2);
        }
    };
    if print_openapi {
        let document = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| {
                rt.block_on(app::openapi_document(&config))
                    .map_err(|e| e.to_string())
            });
        return match document {
            Ok(doc) => {
                print!("{doc}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mailconnect: {e}");
                ExitCode::FAILURE
            }
        };
    }
    mailconnect::telemetry::init(config.server.log_format);
    // One thread by default: the lowest latency for I/O-bound tool calls (BENCHMARKS.md).
    let runtime = if config.server.worker_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.server.worker_threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mailconnect: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(app::serve(&config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("mailconnect: {e}");
            ExitCode::FAILURE
        }
    }
}
