//! Throughput of the generated codecs on a big collection, and against the Python SDK.
//!
//!     cargo bench -p vireo-model --bench codec
//!
//! Builds `VIREO_BENCH_VMS` (default 10,000) fully populated VMs (`Vm::sample(_, 1)`), then
//! times, best of `VIREO_BENCH_RUNS` (default 3): writing them as one XML collection
//! (`to_xml_list`), reading it back (`read_xml_list`), the same for JSON, and prints the
//! document sizes and the peak RSS. When a Python with the SDK is found (tests/sdk/find_python.rs)
//! the SDK's `VmReader.read_many` parses the same XML document, for the ratio.
//! `VIREO_BENCH_SDK=0` skips the SDK; `VIREO_BENCH_ONLY=xml-read` (or `xml-write`, `json-write`,
//! `json-read`, comma-separated) times only those, for profiling.

#[path = "../tests/sdk/find_python.rs"]
mod find_python;

use std::hint::black_box;
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};
use vireo_model::sample::{Gen, Sample};
use vireo_model::{json, read_xml_list, to_json_list, to_xml_list, Limits, Model, Vm};

const TARGET_XML_WRITE: f64 = 200.0;
const TARGET_XML_READ: f64 = 100.0;
const TARGET_SDK_RATIO: f64 = 10.0;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Best time of `runs` runs, and the last result.
fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..runs {
        drop(last.take());
        let t = Instant::now();
        let out = black_box(f());
        best = best.min(t.elapsed());
        last = Some(out);
    }
    (best, last.expect("at least one run"))
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / 1e6
}

fn mb_per_s(bytes: usize, d: Duration) -> f64 {
    mb(bytes) / d.as_secs_f64()
}

fn status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "MISSED"
    }
}

struct Row {
    what: &'static str,
    bytes: usize,
    time: Duration,
    target: Option<f64>,
}

fn read_json_list(doc: &[u8]) -> Vec<Vm> {
    let v = json::parse_document(doc, usize::MAX).expect("own JSON parses");
    json::list_items(&v, Vm::XML)
        .into_iter()
        .map(|it| vireo_model::from_json_value::<Vm>(it).expect("own JSON reads"))
        .collect()
}

/// Parses the document with the SDK, best of `runs`: (seconds, VMs read, peak RSS in KiB).
fn sdk_read(
    python: &std::path::Path,
    doc: &std::path::Path,
    runs: usize,
) -> Result<(f64, usize, u64), String> {
    const SNIPPET: &str = r#"
import gc, io, sys, time
from ovirtsdk4 import readers, xml
data = open(sys.argv[1], "rb").read()
best, n = None, 0
for _ in range(int(sys.argv[2])):
    gc.collect()
    t = time.perf_counter()
    cursor = xml.XmlReader(io.BytesIO(data))
    try:
        vms = readers.VmReader.read_many(cursor)
    finally:
        cursor.close()
    d = time.perf_counter() - t
    n = len(vms)
    del vms
    best = d if best is None else min(best, d)
# VmHWM, not ru_maxrss: that one keeps the parent's peak across fork and exec.
hwm = [l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")]
print(best, n, hwm[0] if hwm else 0)
"#;
    let out = Command::new(python)
        .args(["-c", SNIPPET])
        .arg(doc)
        .arg(runs.to_string())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut f = text.split_whitespace();
    let parse_err = || format!("unexpected output of the SDK snippet: {text}");
    let secs: f64 = f
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(parse_err)?;
    let n: usize = f
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(parse_err)?;
    let rss: u64 = f
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(parse_err)?;
    Ok((secs, n, rss))
}

fn main() {
    let count = env_number("VIREO_BENCH_VMS", 10_000);
    let runs = env_number("VIREO_BENCH_RUNS", 3).max(1);
    let mut out = std::io::stdout().lock();

    let t = Instant::now();
    let vms: Vec<Vm> = (0..count as u64)
        .map(|i| Vm::sample(&mut Gen::new(i), 1))
        .collect();
    let built = t.elapsed();
    let rss_after_build = status_kib("VmRSS:").unwrap_or(0);

    let only = std::env::var("VIREO_BENCH_ONLY").unwrap_or_default();
    let timed = |op: &str| only.is_empty() || only.split(',').any(|o| o.trim() == op);
    let runs_of = |op: &str| if timed(op) { runs } else { 1 };

    let (xml_write, xml) = best(runs_of("xml-write"), || to_xml_list(&vms));
    let limits = Limits {
        max_bytes: usize::MAX,
        ..Limits::default()
    };
    let mut xml_read = Duration::ZERO;
    if timed("xml-read") {
        let (t, back) = best(runs, || {
            read_xml_list::<Vm>(&xml, limits).expect("own XML reads")
        });
        assert!(
            back == vms,
            "the XML read back differs from what was written"
        );
        xml_read = t;
    }
    let peak_xml = status_kib("VmHWM:").unwrap_or(0);
    let (json_write, json) = best(runs_of("json-write"), || to_json_list(&vms));
    let mut json_read = Duration::ZERO;
    if timed("json-read") {
        let (t, back) = best(runs, || read_json_list(&json));
        assert_eq!(back.len(), vms.len());
        json_read = t;
    }
    let peak = status_kib("VmHWM:").unwrap_or(0);

    let rows = [
        Row {
            what: "XML write (to_xml_list)",
            bytes: xml.len(),
            time: xml_write,
            target: Some(TARGET_XML_WRITE),
        },
        Row {
            what: "XML read (read_xml_list)",
            bytes: xml.len(),
            time: xml_read,
            target: Some(TARGET_XML_READ),
        },
        Row {
            what: "JSON write (to_json_list)",
            bytes: json.len(),
            time: json_write,
            target: None,
        },
        Row {
            what: "JSON read (parse + read_json)",
            bytes: json.len(),
            time: json_read,
            target: None,
        },
    ];
    let _ = writeln!(
        out,
        "\nvireo-model codec benchmark: {count} x Vm::sample(Gen::new(i), 1), best of {runs} (built in {:.0} ms)",
        built.as_secs_f64() * 1e3
    );
    let _ = writeln!(
        out,
        "{:<34} {:>11} {:>10} {:>10}   target",
        "operation", "document", "time", "MB/s"
    );
    let _ = writeln!(out, "{}", "-".repeat(84));
    for r in rows.iter().filter(|r| !r.time.is_zero()) {
        let speed = mb_per_s(r.bytes, r.time);
        let target = match r.target {
            Some(t) => format!(">= {t:.0} MB/s  {}", verdict(speed >= t)),
            None => "-".into(),
        };
        let _ = writeln!(
            out,
            "{:<34} {:>8.1} MB {:>7.0} ms {:>10.1}   {}",
            r.what,
            mb(r.bytes),
            r.time.as_secs_f64() * 1e3,
            speed,
            target
        );
    }

    let sdk_wanted = std::env::var("VIREO_BENCH_SDK")
        .map(|v| v != "0")
        .unwrap_or(true);
    match find_python::sdk_python() {
        Ok(python) if sdk_wanted && !xml_read.is_zero() => {
            let path =
                std::env::temp_dir().join(format!("vireo-bench-vms-{}.xml", std::process::id()));
            std::fs::write(&path, &xml).expect("write the XML document for the SDK");
            let sdk_runs = env_number("VIREO_BENCH_SDK_RUNS", 1).max(1);
            let res = sdk_read(&python, &path, sdk_runs);
            let _ = std::fs::remove_file(&path);
            match res {
                Ok((secs, n, sdk_rss)) => {
                    assert_eq!(n, count, "the SDK read {n} VMs of {count}");
                    let ratio = secs / xml_read.as_secs_f64();
                    let _ = writeln!(
                        out,
                        "{:<34} {:>8.1} MB {:>7.0} ms {:>10.1}   (best of {sdk_runs}; peak RSS {:.0} MiB)",
                        "SDK XML read (VmReader.read_many)",
                        mb(xml.len()),
                        secs * 1e3,
                        mb(xml.len()) / secs,
                        sdk_rss as f64 / 1024.0
                    );
                    let _ = writeln!(
                        out,
                        "{:<34} {:>36.1}x   >= {TARGET_SDK_RATIO:.0}x  {}",
                        "XML read, vireo vs SDK (speed-up)",
                        ratio,
                        verdict(ratio >= TARGET_SDK_RATIO)
                    );
                }
                Err(e) => {
                    let _ = writeln!(out, "SDK XML read: failed: {e}");
                }
            }
        }
        Ok(_) => {
            let _ = writeln!(
                out,
                "SDK XML read: skipped (VIREO_BENCH_SDK=0 or VIREO_BENCH_ONLY)"
            );
        }
        Err(tried) => {
            let _ = writeln!(
                out,
                "SDK XML read: skipped, no Python with ovirtsdk4 ({tried})"
            );
        }
    }
    let _ = writeln!(out, "{}", "-".repeat(84));
    let _ = writeln!(
        out,
        "peak RSS (VmHWM) {:.0} MiB: {:.0} MiB once the VMs are built, {:.0} MiB through the XML runs, \
         the rest is the JSON runs (serde_json's value tree); MB = 10^6 bytes",
        peak as f64 / 1024.0,
        rss_after_build as f64 / 1024.0,
        peak_xml as f64 / 1024.0
    );
}
