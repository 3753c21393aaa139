//! `ipm completions <shell>`: the real binary prints a completion script for bash, zsh and
//! fish, says in its help how to install one, and names the shells it knows for any other.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::{Command, Output};

fn ipm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ipm"))
        .args(args)
        .output()
        .expect("ipm runs")
}

#[test]
fn each_shell_gets_a_script_that_completes_the_subcommands_and_flags() {
    for (shell, marker) in [
        ("bash", "complete -F _ipm"),
        ("zsh", "#compdef ipm"),
        ("fish", "complete -c ipm"),
    ] {
        let out = ipm(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = String::from_utf8(out.stdout).unwrap();
        for word in [marker, "ctl", "completions", "bootstrap", "data-dir"] {
            assert!(
                script.contains(word),
                "{shell} script lacks {word}:\n{script}"
            );
        }
    }
}

#[test]
fn the_help_says_how_to_install_a_script() {
    let out = ipm(&["completions", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for line in [
        "ipm completions bash > ~/.local/share/bash-completion/completions/ipm",
        "ipm completions zsh > ~/.zfunc/_ipm",
        "ipm completions fish > ~/.config/fish/completions/ipm.fish",
    ] {
        assert!(help.contains(line), "{help}");
    }
}

#[test]
fn an_unknown_shell_gets_one_line_naming_the_known_ones() {
    let out = ipm(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let error = String::from_utf8(out.stderr).unwrap();
    assert_eq!(error.lines().count(), 1, "{error}");
    assert!(
        error.contains("'tcsh'") && error.contains("bash, zsh or fish"),
        "{error}"
    );
}
