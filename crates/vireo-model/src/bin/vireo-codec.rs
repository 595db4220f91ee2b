//! Drives the generated codecs from the command line, for the SDK cross-check
//! (tests/sdk/crosscheck.py) and for poking at documents by hand.
//!
//!   vireo-codec types
//!   vireo-codec sample TYPE SEED DEPTH xml|json     a fully populated value
//!   vireo-codec convert TYPE FROM TO [--via json]  stdin document to stdout
//!   vireo-codec check TYPE SEED DEPTH              stdin: the sample as another reader saw it

use std::io::{Read, Write};
use std::process::ExitCode;
use vireo_model::sample::{Gen, Sample};
use vireo_model::{from_json, from_xml, meta, to_json, to_xml, with_type, Limits, Model};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vireo-codec: {e}");
            ExitCode::FAILURE
        }
    }
}

fn stdin() -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    std::io::stdin()
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())?;
    Ok(buf)
}

fn parse<T: Model>(format: &str, input: &[u8]) -> Result<T, String> {
    match format {
        "xml" => from_xml::<T>(input, Limits::default()).map_err(|e| e.to_string()),
        "json" => from_json::<T>(input, Limits::default()).map_err(|e| e.to_string()),
        f => Err(format!("unknown format {f}")),
    }
}

fn render<T: Model>(format: &str, v: &T) -> Result<Vec<u8>, String> {
    match format {
        "xml" => Ok(to_xml(v)),
        "json" => Ok(to_json(v)),
        f => Err(format!("unknown format {f}")),
    }
}

fn number(s: Option<&String>, what: &str) -> Result<u64, String> {
    s.ok_or(format!("missing {what}"))?
        .parse()
        .map_err(|_| format!("{what} must be a number"))
}

/// JSON of a value with links and actions removed: the SDK does not keep those.
fn comparable<T: Model>(v: &T) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(o) => {
                o.remove("link");
                o.remove("actions");
                o.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut j: serde_json::Value = serde_json::from_slice(&to_json(v)).expect("own JSON parses");
    strip(&mut j);
    j
}

fn differences(a: &serde_json::Value, b: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    use serde_json::Value::*;
    match (a, b) {
        (Object(x), Object(y)) => {
            for (k, va) in x {
                match y.get(k) {
                    Some(vb) => differences(va, vb, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k}: missing on the other side")),
                }
            }
            for k in y.keys().filter(|k| !x.contains_key(*k)) {
                out.push(format!("{path}.{k}: unexpected"));
            }
        }
        (Array(x), Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                differences(va, vb, &format!("{path}[{i}]"), out);
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{path}: expected {a}, got {b}")),
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let cmd = args.first().map(String::as_str).unwrap_or("help");
    let type_name = args.get(1).map(String::as_str).unwrap_or("");
    let mut out = std::io::stdout().lock();
    match cmd {
        "types" => {
            for t in meta::TYPES.iter() {
                writeln!(out, "{}", t.name).map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        "sample" => {
            let seed = number(args.get(2), "seed")?;
            let depth = number(args.get(3), "depth")? as u32;
            let format = args.get(4).map(String::as_str).unwrap_or("xml");
            let doc = with_type!(type_name, T => render(format, &T::sample(&mut Gen::new(seed), depth)), Err(format!("no type {type_name}")))?;
            out.write_all(&doc).map_err(|e| e.to_string())
        }
        "convert" => {
            let from = args.get(2).map(String::as_str).unwrap_or("xml");
            let to = args.get(3).map(String::as_str).unwrap_or("xml");
            let via_json = args.iter().any(|a| a == "--via");
            let input = stdin()?;
            let doc = with_type!(type_name, T => {
                let mut v: T = parse(from, &input)?;
                if via_json {
                    v = parse("json", &to_json(&v))?;
                }
                render(to, &v)
            }, Err(format!("no type {type_name}")))?;
            out.write_all(&doc).map_err(|e| e.to_string())
        }
        "check" => {
            let seed = number(args.get(2), "seed")?;
            let depth = number(args.get(3), "depth")? as u32;
            let input = stdin()?;
            with_type!(type_name, T => {
                let expected = comparable(&T::sample(&mut Gen::new(seed), depth));
                let seen: T = parse("json", &input)?;
                let mut diffs = Vec::new();
                differences(&expected, &comparable(&seen), type_name, &mut diffs);
                if diffs.is_empty() { Ok(()) } else { Err(diffs.join("\n")) }
            }, Err(format!("no type {type_name}")))
        }
        _ => Err("usage: vireo-codec types | sample TYPE SEED DEPTH FORMAT | convert TYPE FROM TO [--via json] | check TYPE SEED DEPTH".into()),
    }
}
