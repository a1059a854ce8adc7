//! Compare training runs: one line per run folder, best test accuracy first.
//!
//! ```text
//! cargo run --release --example runs -- runs/*
//! ```

use std::error::Error;
use std::path::PathBuf;

use clap::Parser;
use cnn::train::RunSummary;

/// Print a table of training runs (name, key hyperparameters, best test accuracy, epochs, time),
/// sorted by accuracy.
#[derive(Parser, Debug)]
#[command(long_about = None)]
struct Args {
    /// Run folders (each with a config.json), or folders of run folders [default: runs]
    dirs: Vec<PathBuf>,
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let dirs = if args.dirs.is_empty() {
        vec![PathBuf::from("runs")]
    } else {
        args.dirs
    };
    let mut runs = Vec::new();
    for dir in dirs {
        if dir.join("config.json").is_file() {
            runs.push(RunSummary::load(&dir)?);
        } else if dir.is_dir() {
            // A folder of runs: every subfolder that is one.
            let mut children: Vec<PathBuf> = std::fs::read_dir(&dir)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("config.json").is_file())
                .collect();
            children.sort();
            for child in children {
                runs.push(RunSummary::load(&child)?);
            }
        } else {
            // `runs/*` may match stray files: say so, and go on.
            eprintln!("skipping {}: not a run folder (no config.json)", dir.display());
        }
    }
    if runs.is_empty() {
        println!("no runs found");
        return Ok(());
    }
    print!("{}", RunSummary::table(&mut runs));
    Ok(())
}
