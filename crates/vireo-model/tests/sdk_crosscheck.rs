//! vireo's XML and JSON codecs against the official Python SDK (ovirtsdk4 4.6.3), for every
//! type of the model, in both directions: the SDK reads what vireo writes, and what the SDK
//! writes survives vireo's reader and writer (through XML, and through JSON). The work is done
//! by tests/sdk/crosscheck.py, which drives the `vireo-codec` binary.
//!
//! The Python is found as tests/sdk/find_python.rs says. Without one that has the SDK the test
//! is skipped, except under CI (`$CI` set), where it fails.

#[path = "sdk/find_python.rs"]
mod find_python;

use std::io::Write;
use std::path::Path;
use std::process::Command;

/// Straight to the process's stderr, past the test harness's capture: these lines are the
/// point of the test, they should show in a plain `cargo test`.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[test]
fn the_sdk_and_vireo_read_each_others_documents_for_every_type() {
    let python = match find_python::sdk_python() {
        Ok(p) => p,
        Err(tried) => {
            let msg = format!(
                "no Python with the oVirt SDK (ovirtsdk4) was found ({tried}); make one with \
                 ../shared/conformance/run.sh or point VIREO_SDK_PYTHON at one"
            );
            if std::env::var_os("CI").is_some() {
                panic!("sdk_crosscheck: {msg}");
            }
            say(&format!("sdk_crosscheck: SKIPPED: {msg}"));
            return;
        }
    };
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = manifest.join("tests/sdk/crosscheck.py");
    let model = manifest.join("../../model/ovirt-api.json");
    let out = Command::new(&python)
        .arg(&script)
        .arg("--codec")
        .arg(env!("CARGO_BIN_EXE_vireo-codec"))
        .arg("--model")
        .arg(&model)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONIOENCODING", "utf-8")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Everything the script found, then its summary; SUMMARY is for this test only.
    for line in stdout.lines().filter(|l| !l.starts_with("SUMMARY ")) {
        say(line);
    }
    if !stderr.trim().is_empty() {
        say(&stderr);
    }
    let summary: serde_json::Value = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("SUMMARY "))
        .map(|j| serde_json::from_str(j).expect("SUMMARY is JSON"))
        .unwrap_or_else(|| {
            panic!(
                "crosscheck.py ended without a summary (exit {:?})",
                out.status.code()
            )
        });
    let n = |k: &str| {
        summary[k]
            .as_u64()
            .unwrap_or_else(|| panic!("summary has no {k}"))
    };

    assert!(
        out.status.success(),
        "the SDK cross-check failed: {} failures (see above)",
        n("failures")
    );
    assert_eq!(n("failures"), 0);
    let types = vireo_model::COUNTS.types as u64;
    assert_eq!(types, 220, "the model has 220 types");
    assert_eq!(n("types"), types, "crosscheck.py read another model");
    for k in [
        "vireo_to_sdk_types",
        "vireo_to_sdk_passed",
        "sdk_to_vireo_types",
        "sdk_to_vireo_passed",
    ] {
        assert_eq!(n(k), types, "{k}: every type must be checked, and pass");
    }
    assert_eq!(
        n("enum_members_used"),
        n("enum_members"),
        "every member of every enum in a document"
    );
}
