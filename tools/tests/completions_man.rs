//! Shell completions and man pages come from the command-line definitions: every command is
//! in them, and they render.

mod cli_common;
use cli_common::*;

const COMMANDS: [&str; 6] = ["status", "examine", "backup", "restore", "scrub", "replace"];

#[test]
fn completions_name_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let out = ectable(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        for c in COMMANDS {
            assert!(text.contains(c), "{shell} completion lacks {c}");
        }
        // Options too, including the environment's stand-in for --devices.
        assert!(text.contains("--devices"), "{shell}");
    }
    assert_eq!(ectable(&["completions", "tcsh"]).status.code(), Some(64));
}

#[test]
fn man_pages_render_for_every_command() {
    let out = ectable(&["man"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH ectable 1"), "{page}");
    let dir = tempfile::tempdir().unwrap();
    let out = ectable(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    for c in COMMANDS {
        let p = dir.path().join(format!("ectable-{c}.1"));
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(text.contains(&format!(".TH ectable-{c} 1")), "{text}");
        assert!(text.contains(".SH OPTIONS"), "{text}");
    }
    assert!(dir.path().join("ectable.1").exists());
}
