//! Outside tools the tests drive (curl, nghttp, nginx, Python clients):
//! one rule for a missing one, shared by every test crate.
//!
//! A test whose tool is missing fails, so a green run means every test
//! ran. `KITE_SKIP_MISSING_TOOLS=1` turns that into a skip that says why,
//! for a machine without the tools. The README's test command,
//! `scripts/test.sh`, installs them all.
#![allow(dead_code)]

/// Whether `tool` answers `--version`; see [`missing`] for when it does not.
pub fn require_tool(tool: &str) -> bool {
    let found = std::process::Command::new(tool).arg("--version").output().is_ok();
    found || missing(&format!("{tool} is required by this test but is not installed; {INSTALLS}"))
}

/// What to tell a user whose tool is missing.
pub const INSTALLS: &str = "run scripts/test.sh (the README's test command), which installs it";

/// The Python interpreter the tests drive their Python clients with:
/// `KITE_PYTHON`, else the virtual environment the README's test command
/// makes (`target/test-venv`), else `python3`.
pub fn python() -> String {
    if let Ok(python) = std::env::var("KITE_PYTHON") {
        return python;
    }
    let mut dir = Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
    while let Some(at) = dir {
        let venv = at.join("target/test-venv/bin/python");
        if at.join("Cargo.lock").is_file() && venv.is_file() {
            return venv.display().to_string();
        }
        dir = at.parent();
    }
    "python3".to_string()
}

/// A missing test tool: a failure, or with `KITE_SKIP_MISSING_TOOLS=1` a
/// skip that says why. Returns `false`, for the caller's early return.
pub fn missing(message: &str) -> bool {
    if std::env::var_os("KITE_SKIP_MISSING_TOOLS").is_some_and(|v| v == "1") {
        eprintln!("skipped: {message}");
        return false;
    }
    panic!("{message} (set KITE_SKIP_MISSING_TOOLS=1 to skip the tests that need it)");
}
