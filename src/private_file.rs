//! Writing files that hold secrets or their hashes: atomically, durably,
//! and readable by their owner only.
//! The key file, the tokens file and the development certificates all go
//! through here.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Owner read and write only, for keys and the tokens file.
pub(crate) const PRIVATE: u32 = 0o600;
/// Readable by all, for certificates.
pub(crate) const PUBLIC: u32 = 0o644;

/// Replaces `path` with `bytes`: a temporary file in the same folder,
/// synced, then renamed over the target, so that a reader sees the old
/// file or the new one and never half of either. Missing folders are
/// created (0700). `mode` applies on Unix only.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_private_dir(&dir)?;

    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).map_err(|_| std::io::Error::other("no random numbers"))?;
    let suffix: String = suffix.iter().map(|byte| format!("{byte:02x}")).collect();
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = dir.join(format!(".{name}.{suffix}.tmp"));

    let written = (|| {
        let mut file = open_new(&temporary, mode)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    if let Err(error) = std::fs::rename(&temporary, path) {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    // Make the rename itself durable. Not every platform can open a
    // folder for syncing; the file is written either way.
    if let Ok(folder) = std::fs::File::open(&dir) {
        let _ = folder.sync_all();
    }
    Ok(())
}

#[cfg(unix)]
fn open_new(path: &Path, mode: u32) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
}

#[cfg(not(unix))]
fn open_new(path: &Path, _mode: u32) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}
