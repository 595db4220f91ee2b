//! A tiny real guest for tests, benchmarks and smoke checks, made from Debian's packages:
//! the kernel of `linux-image-amd64` and an initramfs around `busybox-static` whose `/init`
//! prints [`MARKER`] on the serial console and powers off (or stays up, or panics: [`Mode`]).
//!
//! The initramfs is an uncompressed `newc` cpio archive written here: the kernel unpacks it
//! as is, so no compressor is needed.

use std::path::{Path, PathBuf};

pub const MARKER: &str = "VIREO-GUEST-OK";

/// The init script: mounts what busybox needs, prints the marker, then powers off — or
/// stays up printing a numbered tick every second (so that a migrated guest shows it still
/// runs), or panics (to see a crash reported).
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
echo VIREO-GUEST-OK
if /bin/busybox grep -q vireo.panic /proc/cmdline; then
  for m in /lib/pvpanic.ko /lib/pvpanic-mmio.ko; do /bin/busybox insmod $m; done
  echo c > /proc/sysrq-trigger
fi
if /bin/busybox grep -q vireo.stay /proc/cmdline; then
  i=0
  while true; do i=$((i+1)); echo VIREO-TICK $i; /bin/busybox sleep 1; done
fi
/bin/busybox poweroff -f
"#;

/// What the guest does after printing the marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    PowerOff,
    /// Stays up, printing `VIREO-TICK n` every second.
    Stay,
    /// Loads pvpanic and crashes the kernel.
    Panic,
}

/// Kernel command line for the guest: serial console, as little output and waiting as can be.
pub fn cmdline(mode: Mode) -> String {
    let mut s = "console=ttyS0 quiet loglevel=1 panic=-1 rdinit=/init".to_string();
    match mode {
        Mode::PowerOff => {}
        Mode::Stay => s.push_str(" vireo.stay"),
        Mode::Panic => s.push_str(" vireo.panic"),
    }
    s
}

/// The newest `/boot/vmlinuz-*`.
pub fn find_kernel() -> Option<PathBuf> {
    let mut k: Vec<PathBuf> = std::fs::read_dir("/boot")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .collect();
    k.sort();
    k.pop()
}

pub fn find_busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// One entry of a newc archive.
fn newc_entry(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, data: &[u8]) {
    let namesize = name.len() + 1;
    let header = format!(
        "070701{ino:08x}{mode:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{namesize:08x}{:08x}",
        0, // uid
        0, // gid
        1, // nlink
        0, // mtime
        data.len(),
        0, // devmajor
        0, // devminor
        0, // rdevmajor
        0, // rdevminor
        0, // check
    );
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out.extend_from_slice(data);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// The initramfs as bytes: `/bin/busybox`, `/init`, the folders init mounts on, and
/// extra files (kernel modules) under `/lib`.
pub fn initramfs(busybox: &[u8], lib: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(busybox.len() + 4096);
    let (dir, exe) = (0o040755, 0o100755);
    let mut entries: Vec<(String, u32, &[u8])> = vec![
        ("bin".into(), dir, b""),
        ("dev".into(), dir, b""),
        ("proc".into(), dir, b""),
        ("sys".into(), dir, b""),
        ("lib".into(), dir, b""),
        ("bin/busybox".into(), exe, busybox),
        ("bin/sh".into(), 0o120777, b"busybox"), // a symlink: its data is the target
        ("init".into(), exe, INIT.as_bytes()),
    ];
    for (name, data) in lib {
        entries.push((format!("lib/{name}"), 0o100644, data));
    }
    for (ino, (name, mode, data)) in entries.iter().enumerate() {
        newc_entry(&mut out, ino as u32 + 1, name, *mode, data);
    }
    newc_entry(&mut out, 0, "TRAILER!!!", 0, b"");
    out
}

/// Kernel and initramfs for the test guest; the initramfs is written into `dir`.
pub struct TestGuest {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

pub fn prepare(dir: &Path) -> std::io::Result<TestGuest> {
    let missing = |what: &str| std::io::Error::new(std::io::ErrorKind::NotFound, what.to_string());
    let kernel = find_kernel()
        .ok_or_else(|| missing("no /boot/vmlinuz-* (apt-get install linux-image-amd64)"))?;
    let busybox =
        find_busybox().ok_or_else(|| missing("no busybox (apt-get install busybox-static)"))?;
    std::fs::create_dir_all(dir)?;
    // pvpanic's modules of this very kernel, so that Mode::Panic is reported as a crash.
    let version = kernel
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("vmlinuz-")
        .to_string();
    let moddir = Path::new("/lib/modules")
        .join(version)
        .join("kernel/drivers/misc/pvpanic");
    let lib: Vec<(String, Vec<u8>)> = ["pvpanic.ko", "pvpanic-mmio.ko"]
        .iter()
        .filter_map(|m| Some((m.to_string(), std::fs::read(moddir.join(m)).ok()?)))
        .collect();
    let initrd = dir.join("vireo-test-initrd.cpio");
    std::fs::write(&initrd, initramfs(&std::fs::read(busybox)?, &lib))?;
    Ok(TestGuest { kernel, initrd })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_archive_is_well_formed() {
        let a = initramfs(b"BUSYBOX", &[("m.ko".into(), b"MOD".to_vec())]);
        assert!(a.starts_with(b"070701"));
        assert_eq!(a.len() % 4, 0);
        let text = String::from_utf8_lossy(&a);
        assert!(text.contains("TRAILER!!!") && text.contains(MARKER) && text.contains("BUSYBOX"));
    }
}
