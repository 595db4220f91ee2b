//! Hostile and broken input: clear errors that name the element, never a panic.

use proptest::prelude::*;
use vireo_model::sample::{Gen, Sample};
use vireo_model::*;

fn vm_xml(body: &str) -> Result<Vm, CodecError> {
    from_xml::<Vm>(body.as_bytes(), Limits::default())
}

#[test]
fn a_wrong_value_names_its_element() {
    let e = vm_xml("<vm><name>x</name><memory>abc</memory></vm>").unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidValue);
    assert_eq!(e.path, "vm.memory");
    assert!(e.to_string().contains("abc"), "{e}");

    let e = vm_xml("<vm><cpu><topology><sockets>two</sockets></topology></cpu></vm>").unwrap_err();
    assert_eq!(e.path, "vm.cpu.topology.sockets");

    let e = vm_xml("<vm><status>sleepy</status></vm>").unwrap_err();
    assert_eq!(e.path, "vm.status");
    assert!(e.to_string().contains("VmStatus"), "{e}");

    let e =
        vm_xml("<vm><os><boot><devices><device>floppy-disk</device></devices></boot></os></vm>")
            .unwrap_err();
    assert_eq!(e.path, "vm.os.boot.devices");
}

#[test]
fn unknown_elements_are_ignored_and_case_is_forgiven() {
    let vm = vm_xml(
        "<vm id=\"1\"><future><deep><x>1</x></deep></future><name>a</name><status>UP</status></vm>",
    )
    .unwrap();
    assert_eq!(vm.name.as_deref(), Some("a"));
    assert_eq!(vm.status, Some(VmStatus::Up));
    assert_eq!(vm.id.as_deref(), Some("1"));
}

#[test]
fn text_is_kept_exactly() {
    let vm =
        vm_xml("<vm><name>  two  spaces &amp; &lt;tag&gt; <![CDATA[<raw>]]></name></vm>").unwrap();
    assert_eq!(vm.name.as_deref(), Some("  two  spaces & <tag> <raw>"));
    let mut v = Vm {
        description: Some(" lead\ttab\nline\r\nend ".into()),
        ..Default::default()
    };
    v.name = Some("é漢字\"'".into());
    assert_eq!(from_xml::<Vm>(&to_xml(&v), Limits::default()).unwrap(), v);
    assert_eq!(from_json::<Vm>(&to_json(&v), Limits::default()).unwrap(), v);
}

#[test]
fn malformed_documents() {
    for doc in [
        "<vm><name>x</name",
        "<vm><name>x</vm>",
        "",
        "   ",
        "<vm></vm><vm/>",
        "text",
        "<vm><name>x</name></vm>junk",
    ] {
        let e = vm_xml(doc).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Malformed, "{doc:?}: {e}");
    }
    let e = vm_xml("<data_center/>").unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnexpectedRoot);
}

#[test]
fn dtds_and_entities_are_refused() {
    let xxe = r#"<?xml version="1.0"?><!DOCTYPE vm [<!ENTITY x SYSTEM "file:///etc/passwd">]><vm><name>&x;</name></vm>"#;
    assert_eq!(vm_xml(xxe).unwrap_err().kind, ErrorKind::Forbidden);
    let lol = r#"<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><vm><name>&lol2;</name></vm>"#;
    assert_eq!(vm_xml(lol).unwrap_err().kind, ErrorKind::Forbidden);
    // an undeclared entity is simply malformed
    assert_eq!(
        vm_xml("<vm><name>&x;</name></vm>").unwrap_err().kind,
        ErrorKind::Malformed
    );
}

#[test]
fn depth_and_size_limits() {
    let deep = format!("<vm>{}{}</vm>", "<x>".repeat(200), "</x>".repeat(200));
    assert_eq!(vm_xml(&deep).unwrap_err().kind, ErrorKind::TooDeep);
    let limits = Limits {
        max_bytes: 100,
        max_depth: 64,
    };
    let big = format!("<vm><name>{}</name></vm>", "a".repeat(200));
    assert_eq!(
        from_xml::<Vm>(big.as_bytes(), limits).unwrap_err().kind,
        ErrorKind::TooLarge
    );
    assert_eq!(
        from_json::<Vm>(big.as_bytes(), limits).unwrap_err().kind,
        ErrorKind::TooLarge
    );
    let deep_json = format!("{}{}", "[".repeat(500), "]".repeat(500));
    assert_eq!(
        from_json::<Vm>(deep_json.as_bytes(), Limits::default())
            .unwrap_err()
            .kind,
        ErrorKind::TooDeep
    );
}

#[test]
fn json_input_takes_strings_and_native_values() {
    let a: Vm = from_json(
        br#"{"name":"a","memory":"1024","stateless":"true","cpu":{"topology":{"sockets":2}}}"#,
        Limits::default(),
    )
    .unwrap();
    let b: Vm = from_json(
        br#"{"name":"a","memory":1024,"stateless":true,"cpu":{"topology":{"sockets":"2"}}}"#,
        Limits::default(),
    )
    .unwrap();
    assert_eq!(a, b);
    assert_eq!(a.memory, Some(1024));
    let boot: Boot = from_json(
        br#"{"devices":{"device":["hd","cdrom"]}}"#,
        Limits::default(),
    )
    .unwrap();
    let bare: Boot = from_json(br#"{"devices":["hd","cdrom"]}"#, Limits::default()).unwrap();
    assert_eq!(boot, bare);
    let e = from_json::<Vm>(br#"{"memory":"lots"}"#, Limits::default()).unwrap_err();
    assert_eq!(e.path, "memory");
    let e = from_json::<Vm>(br#"{"status":"sleepy"}"#, Limits::default()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidValue);
}

#[test]
fn json_shapes_the_engine_sends() {
    let mut vm = Vm {
        name: Some("a".into()),
        memory: Some(5),
        ..Default::default()
    };
    vm.os = Some(Box::new(OperatingSystem {
        boot: Some(Box::new(Boot {
            devices: Some(vec![BootDevice::Hd]),
            ..Default::default()
        })),
        ..Default::default()
    }));
    vm.links.push(Link {
        rel: "nics".into(),
        href: "/ovirt-engine/api/vms/1/nics".into(),
    });
    let j: serde_json::Value = serde_json::from_slice(&to_json(&vm)).unwrap();
    assert_eq!(j["memory"], "5");
    assert_eq!(j["os"]["boot"]["devices"]["device"][0], "hd");
    assert_eq!(j["link"][0]["rel"], "nics");
    let list: serde_json::Value = serde_json::from_slice(&to_json_list(&[vm])).unwrap();
    assert_eq!(list["vm"][0]["name"], "a");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Arbitrary bytes: an error or a value, never a panic.
    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = from_xml::<Vm>(&bytes, Limits::default());
        let _ = from_json::<Vm>(&bytes, Limits::default());
        let _ = read_xml_list::<Host>(&bytes, Limits::default());
    }

    /// Real documents with random bytes changed, cut or repeated: the same promise.
    #[test]
    fn mutated_documents_never_panic(seed in any::<u64>(), edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
        let vm = Vm::sample(&mut Gen::new(seed), 1);
        for mut doc in [to_xml(&vm), to_json(&vm)] {
            for (at, b) in &edits {
                let i = at.index(doc.len());
                doc[i] = *b;
            }
            let n = cut.index(doc.len() + 1);
            let _ = from_xml::<Vm>(&doc[..n], Limits::default());
            let _ = from_json::<Vm>(&doc[..n], Limits::default());
            let _ = from_xml::<Vm>(&doc, Limits::default());
            let _ = from_json::<Vm>(&doc, Limits::default());
        }
    }
}
