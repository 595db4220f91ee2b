//! The machine's own host names, read without libc.

use crate::names::Name;

/// Where the names come from, in order: the kernel's current host name, then
/// the configured one. They usually agree; when they differ (a short kernel
/// name and an FQDN in /etc/hostname, or a rename not yet applied) clients may
/// use either, so the server certificate covers both.
const SOURCES: [&str; 2] = ["/proc/sys/kernel/hostname", "/etc/hostname"];

/// The distinct, valid host names of this machine (possibly none, e.g. in a
/// bare container). "localhost" is left out: it is always added anyway.
pub(crate) fn machine_host_names() -> Vec<Name> {
    let mut names = Vec::new();
    for source in SOURCES {
        let Ok(content) = std::fs::read_to_string(source) else {
            continue;
        };
        // /etc/hostname may carry comments; the first real line is the name.
        let first = content
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'));
        if let Some(Ok(name @ Name::Dns(_))) = first.map(Name::parse) {
            if name != Name::Dns("localhost".into()) && !name.to_string().starts_with('*') {
                crate::names::merge(&mut names, [name]);
            }
        }
    }
    names
}
