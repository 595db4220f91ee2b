//! Finds a Python with the oVirt SDK (`ovirtsdk4`), for the SDK cross-check
//! (tests/sdk_crosscheck.rs) and the codec benchmark (benches/codec.rs).
//!
//! Tried in order: `$VIREO_SDK_PYTHON`; `$VIREO_CONFORMANCE_VENV/bin/python` (the venv that
//! ../shared/conformance/run.sh makes); `<workspace>/target/conformance-venv/bin/python`
//! (its default); `/tmp/sdkvenv/bin/python`. The first that imports `ovirtsdk4` wins.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The Python to use, or a description of every candidate and why it was not taken.
pub fn sdk_python() -> Result<PathBuf, String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut candidates: Vec<(String, PathBuf)> = Vec::new();
    if let Some(p) = std::env::var_os("VIREO_SDK_PYTHON").filter(|p| !p.is_empty()) {
        candidates.push(("$VIREO_SDK_PYTHON".into(), PathBuf::from(p)));
    }
    if let Some(v) = std::env::var_os("VIREO_CONFORMANCE_VENV").filter(|p| !p.is_empty()) {
        candidates.push((
            "$VIREO_CONFORMANCE_VENV".into(),
            PathBuf::from(v).join("bin/python"),
        ));
    }
    candidates.push((
        "workspace venv".into(),
        workspace.join("target/conformance-venv/bin/python"),
    ));
    candidates.push((
        "/tmp/sdkvenv".into(),
        PathBuf::from("/tmp/sdkvenv/bin/python"),
    ));

    let mut tried = Vec::new();
    for (what, path) in candidates {
        if !path.exists() {
            tried.push(format!("{what}: {} does not exist", path.display()));
            continue;
        }
        let imports = Command::new(&path)
            .args(["-c", "import ovirtsdk4, ovirtsdk4.xml"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if imports {
            return Ok(path);
        }
        tried.push(format!(
            "{what}: {} cannot import ovirtsdk4",
            path.display()
        ));
    }
    Err(tried.join("; "))
}
