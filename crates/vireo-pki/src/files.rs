//! Crash-safe file handling for keys and certificates.
//!
//! Every file is written to a temporary sibling, fsynced, renamed over the
//! target and the directory fsynced, so after a crash a path holds either the
//! old complete content or the new complete content, never half a key.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::PkiError;

/// Private keys: owner read/write only.
pub(crate) const KEY_MODE: u32 = 0o600;
/// Certificates are public; world-readable lets e.g. a web server or the CLI read ca.pem.
pub(crate) const CERT_MODE: u32 = 0o644;
/// The PKI directory itself.
pub(crate) const DIR_MODE: u32 = 0o700;

/// Creates `dir` with mode 0700 if it does not exist. Parents get the default
/// mode: they are the engine's general data directories, not ours to lock down.
/// An existing directory is left as the administrator set it.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), PkiError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(PkiError::io(parent))?;
    }
    match DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => {}
        // Another process won the race; fine as long as it is a directory.
        Err(e) if e.kind() == ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(PkiError::io(dir)(e)),
    }
    // The umask may have stripped bits we asked for; set the mode explicitly.
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)).map_err(PkiError::io(dir))
}

/// Reads a file as UTF-8; `None` if it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>, PkiError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PkiError::io(path)(e)),
    }
}

/// Atomically replaces `path` with `contents`, created with `mode`.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| PkiError::Cert(format!("{} has no file name", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));

    let result = (|| {
        // A leftover from a crashed run could carry a looser mode, and `mode()`
        // only applies on creation: remove it and insist on a fresh file.
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(PkiError::io(&tmp)(e)),
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(PkiError::io(&tmp))?;
        // The umask can only remove bits, but be exact about what we promise.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(PkiError::io(&tmp))?;
        file.write_all(contents).map_err(PkiError::io(&tmp))?;
        file.sync_all().map_err(PkiError::io(&tmp))?;
        fs::rename(&tmp, path).map_err(PkiError::io(path))?;
        // Make the rename itself durable.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(PkiError::io(dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Tightens a key file that someone made group- or world-accessible (a restore
/// from backup, a careless copy) back to 0600, rather than refusing to start.
pub(crate) fn tighten_key_mode(path: &Path) -> Result<(), PkiError> {
    let meta = fs::metadata(path).map_err(PkiError::io(path))?;
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(KEY_MODE))
            .map_err(PkiError::io(path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        write_atomic(&path, b"one", KEY_MODE).unwrap();
        write_atomic(&path, b"two", KEY_MODE).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            KEY_MODE
        );
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn stale_tmp_with_loose_mode_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let tmp = dir
            .path()
            .join(format!(".k.key.tmp-{}", std::process::id()));
        fs::write(&tmp, b"junk").unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o666)).unwrap();
        write_atomic(&path, b"secret", KEY_MODE).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            KEY_MODE
        );
        assert!(!tmp.exists());
    }

    #[test]
    fn loose_key_mode_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        fs::write(&path, b"x").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        tighten_key_mode(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            KEY_MODE
        );
    }
}
