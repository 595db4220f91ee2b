//! Every type of the model, fully populated, survives XML and JSON: write, read back, compare.

use proptest::prelude::*;
use vireo_model::sample::{Gen, Sample};
use vireo_model::*;

fn roundtrip<T: Model>(seed: u64, depth: u32) -> Result<(), TestCaseError> {
    let value = T::sample(&mut Gen::new(seed), depth);
    let xml = to_xml(&value);
    let back: T = from_xml(&xml, Limits::default())
        .map_err(|e| TestCaseError::fail(format!("{}: {e}", T::NAME)))?;
    prop_assert_eq!(&back, &value, "XML round trip of {}", T::NAME);
    let json = to_json(&value);
    let back: T = from_json(&json, Limits::default())
        .map_err(|e| TestCaseError::fail(format!("{}: {e}", T::NAME)))?;
    prop_assert_eq!(&back, &value, "JSON round trip of {}", T::NAME);
    let many = vec![value.clone(), T::sample(&mut Gen::new(seed ^ 1), depth)];
    let back: Vec<T> = read_xml_list(&to_xml_list(&many), Limits::default())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(back, many);
    Ok(())
}

macro_rules! every_type {
    ($T:ident, $name:ident) => {
        proptest! {
            #![proptest_config(ProptestConfig { cases: 8, failure_persistence: None, ..ProptestConfig::default() })]
            #[test]
            fn $name(seed in any::<u64>(), depth in 0u32..3) {
                roundtrip::<$T>(seed, depth)?;
            }
        }
    };
}

mod every {
    use super::*;
    include!(concat!(env!("OUT_DIR"), "/every_type.rs"));
}

#[test]
fn a_fully_populated_value_sets_every_attribute() {
    // depth 1: every attribute of the top-level value is present
    let vm = Vm::sample(&mut Gen::new(7), 1);
    let xml = String::from_utf8(to_xml(&vm)).unwrap();
    for a in Vm::meta().attributes {
        let x = a.xml;
        assert!(
            [format!("<{x}>"), format!("<{x} "), format!("<{x}/>")]
                .iter()
                .any(|t| xml.contains(t.as_str())),
            "{x} missing"
        );
    }
}
