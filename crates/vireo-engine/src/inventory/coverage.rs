//! Which of the model's 706 methods vireo implements, found by walking the service tree the
//! way requests do: a method counts when some path to its service reaches an implementation.

use super::KINDS;
use vireo_model::meta::{self, MethodKind};

pub struct Coverage {
    /// (service, SDK method name, implemented)
    pub methods: Vec<(&'static str, &'static str, bool)>,
}

impl Coverage {
    pub fn implemented(&self) -> usize {
        self.methods.iter().filter(|m| m.2).count()
    }
}

pub fn coverage() -> Coverage {
    let mut done = vec![vec![false; 0]; meta::SERVICES.len()];
    for (i, s) in meta::SERVICES.iter().enumerate() {
        done[i] = vec![false; s.methods.len()];
    }
    // the entry point
    mark(&mut done, meta::ROOT_SERVICE, |k, _| k == MethodKind::Get);
    walk(&mut done, meta::ROOT_SERVICE, String::new(), 0);
    let mut methods = Vec::new();
    for (i, s) in meta::SERVICES.iter().enumerate() {
        for (j, m) in s.methods.iter().enumerate() {
            methods.push((s.name, m.sdk_name, done[i][j]));
        }
    }
    Coverage { methods }
}

/// Overloads such as `add_from_configuration` share the route of `add` but mean more (an OVF
/// import); they count only when named here as done.
const OVERLOADS_DONE: &[(&str, &str)] = &[];

fn mark(done: &mut [Vec<bool>], service: usize, pred: impl Fn(MethodKind, &str) -> bool) {
    let svc = meta::service(service);
    for (j, m) in svc.methods.iter().enumerate() {
        let plain = matches!(m.sdk_name, "add" | "list" | "get" | "update" | "remove")
            || m.kind == MethodKind::Action
            || OVERLOADS_DONE.contains(&(svc.name, m.sdk_name));
        if plain && pred(m.kind, m.sdk_name) {
            done[service][j] = true;
        }
    }
}

fn walk(done: &mut [Vec<bool>], service: usize, kind: String, depth: usize) {
    if depth > 8 {
        return;
    }
    for l in meta::service(service).locators {
        let sub = if kind.is_empty() { l.segment.to_string() } else { format!("{kind}/{}", l.segment) };
        if let Some(k) = KINDS.iter().find(|k| k.kind == sub) {
            let ops = k.ops;
            mark(done, l.service, |m, _| (m == MethodKind::List && ops.contains('l')) || (m == MethodKind::Add && ops.contains('a')));
            if let Some(item) = meta::service(l.service).item {
                mark(done, item, |m, _| {
                    (m == MethodKind::Get && ops.contains('g'))
                        || (m == MethodKind::Update && ops.contains('u'))
                        || (m == MethodKind::Remove && ops.contains('r'))
                });
            }
        }
        if let Some(item) = meta::service(l.service).item {
            walk(done, item, sub, depth + 1);
        }
    }
}
