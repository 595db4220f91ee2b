//! The model is complete and consistent: the counts the SDK has, and a service tree whose
//! every reference resolves.

use vireo_model::meta::{self, MethodKind, TypeRef};

#[test]
fn counts_match_the_sdk() {
    let c = vireo_model::COUNTS;
    assert_eq!(
        (c.types, c.enums, c.services, c.methods),
        (220, 115, 290, 706)
    );
    assert_eq!(meta::TYPES.len(), 220);
    assert_eq!(meta::ENUMS.len(), 115);
    assert_eq!(meta::SERVICES.len(), 290);
    assert_eq!(
        meta::SERVICES
            .iter()
            .map(|s| s.methods.len())
            .sum::<usize>(),
        706
    );
}

#[test]
fn every_reference_resolves() {
    let check = |t: &TypeRef| match t {
        TypeRef::Struct(n) => assert!(meta::type_def(n).is_some(), "type {n}"),
        TypeRef::Enum(n) => assert!(meta::enum_def(n).is_some(), "enum {n}"),
        TypeRef::Scalar(_) => {}
    };
    for t in meta::TYPES.iter() {
        t.attributes.iter().for_each(|a| check(&a.ty));
        if let Some(b) = t.base {
            assert!(meta::type_def(b).is_some() || b == "Identified", "base {b}");
        }
    }
    for s in meta::SERVICES.iter() {
        for m in s.methods {
            m.params.iter().for_each(|p| check(&p.ty));
            m.outputs.iter().for_each(|o| check(&o.ty));
            if m.kind == MethodKind::Action {
                assert!(m.path.is_some(), "{}.{} has no path", s.name, m.sdk_name);
            }
        }
    }
}

#[test]
fn the_tree_reaches_every_service_from_the_root() {
    let mut seen = vec![false; meta::SERVICES.len()];
    let mut stack = vec![meta::ROOT_SERVICE];
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        let s = meta::service(i);
        stack.extend(s.locators.iter().map(|l| l.service));
        stack.extend(s.item);
    }
    let unreached: Vec<&str> = meta::SERVICES
        .iter()
        .zip(&seen)
        .filter(|(_, s)| !**s)
        .map(|(s, _)| s.name)
        .collect();
    // Besides the bases other services inherit from, the SDK carries mixins of the API model
    // (Area, Copyable, Follow, Moveable) and the v3 disk services no locator leads to.
    let unreached: Vec<&str> = unreached
        .into_iter()
        .filter(|n| !meta::SERVICES.iter().any(|s| s.base == Some(n)))
        .collect();
    assert_eq!(
        unreached,
        [
            "AreaService",
            "CopyableService",
            "FollowService",
            "MoveableService",
            "TemplateDiskService",
            "TemplateDisksService",
            "VmDiskService",
            "VmDisksService"
        ]
    );
    let vms = meta::service(meta::ROOT_SERVICE)
        .locator("vms")
        .map(meta::service)
        .unwrap();
    assert_eq!(vms.name, "VmsService");
    let vm = meta::service(vms.item.unwrap());
    assert_eq!(vm.name, "VmService");
    assert!(vm.action("start").next().is_some());
    assert_eq!(
        meta::service(vm.locator("nics").unwrap()).name,
        "VmNicsService"
    );
}
