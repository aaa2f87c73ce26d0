//! `ectable completions SHELL` and `ectable man`: shell completions and man pages generated
//! from the command-line definitions, so they never drift from `--help`.

use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

#[derive(Args)]
pub struct ManArgs {
    /// Write ectable.1 and one page per command (ectable-status.1, ...) into this directory;
    /// without it, ectable.1 goes to stdout (`ectable man | man -l -`).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Prints the completion script (`ectable completions bash > /etc/bash_completion.d/ectable`).
/// `cmd` is the whole command line's definition (the caller's `Cli::command()`).
pub fn completions(a: &CompletionsArgs, mut cmd: clap::Command) -> Result<i32> {
    clap_complete::generate(a.shell, &mut cmd, "ectable", &mut std::io::stdout());
    Ok(0)
}

/// Renders the man pages.
pub fn man(a: &ManArgs, cmd: clap::Command) -> Result<i32> {
    let Some(dir) = &a.dir else {
        clap_mangen::Man::new(cmd).render(&mut std::io::stdout().lock())?;
        return Ok(0);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = 0;
    let mut write = |name: String, c: clap::Command| -> Result<()> {
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(c).render(&mut out)?;
        std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
        written += 1;
        Ok(())
    };
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() {
            continue;
        }
        let name = format!("ectable-{}", sub.get_name());
        write(name.clone(), sub.clone().name(name))?;
    }
    write("ectable".into(), cmd)?;
    println!("wrote {written} man pages into {}", dir.display());
    Ok(0)
}
