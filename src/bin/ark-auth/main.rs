//! `ark-auth`: manage API keys in PostgreSQL or in a keys file (feature `cli`).
//!
//! ```sh
//! cargo install ark-auth --features cli
//! ark-auth --database-url postgres://… keys create --env live --permissions emails:send --name billing
//! ark-auth --keys-file keys.json keys rotate key_3f9a… --grace 24h
//! ark-auth keys --help
//! ```
//!
//! Errors go to stderr, prefixed `error:`, with exit status 1 (2 for a command line that
//! does not parse); nothing printed ever repeats a key given as an argument.

mod args;
mod backend;
mod commands;
mod file;
mod output;
mod pg;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap's messages quote the arguments: redacted like ours.
            let text = args::redact(&e.render().to_string());
            if e.use_stderr() {
                eprint!("{text}");
            } else {
                print!("{text}");
            }
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", args::redact(&e));
            ExitCode::FAILURE
        }
    }
}
