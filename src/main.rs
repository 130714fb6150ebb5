//! `mailconnect`: parse configuration, set up logging, run (see `app` for the wiring).

use std::process::ExitCode;

use mailconnect::{
    app,
    config::{Cli, Command, Config, StorageBackend, StorageCommand},
};

fn main() -> ExitCode {
    let cli = Cli::load(std::env::args_os()).unwrap_or_else(|e| e.exit());
    let print_openapi = matches!(cli.command, Some(Command::Openapi));
    let storage_command = match &cli.command {
        Some(Command::Storage(command)) => Some(match command {
            StorageCommand::Migrate => StorageTask::Migrate,
            StorageCommand::Copy { from, to } => StorageTask::Copy {
                from: from.clone(),
                to: to.clone(),
            },
        }),
        _ => None,
    };
    let config = match Config::resolve(cli) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("mailconnect: {e}");
            return ExitCode::from(2);
        }
    };
    if print_openapi {
        return one_shot(app::openapi_document(&config));
    }
    match storage_command {
        Some(StorageTask::Migrate) => {
            return one_shot(async {
                app::migrate_storage(&config)
                    .await
                    .map(|done| format!("{done}\n"))
            });
        }
        Some(StorageTask::Copy { from, to }) => {
            return one_shot(async move {
                let pool_size = match &config.storage.backend {
                    StorageBackend::Postgres { pool_size, .. } => *pool_size,
                    StorageBackend::Redb => 4,
                };
                mailconnect::outbound::storage_copy::copy(&from, &to, pool_size)
                    .await
                    .map(|report| format!("{report}\n"))
            });
        }
        None => {}
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

/// A storage command to run instead of serving.
enum StorageTask {
    Migrate,
    Copy {
        from: std::path::PathBuf,
        to: mailconnect::domain::secret::SecretString,
    },
}

/// Runs a command that prints its result once, on a current-thread runtime.
fn one_shot<E: std::fmt::Display>(
    task: impl std::future::Future<Output = Result<String, E>>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mailconnect: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(task);
    match outcome {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mailconnect: {e}");
            ExitCode::FAILURE
        }
    }
}
