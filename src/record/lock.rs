//! One run per ledger: an OS lock on `<state>.lock`. The OS releases it
//! when the process dies, however it dies, so a crash never leaves a stale
//! lock; the file names the holder for the message a second run prints.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{private_file, LedgerError};

/// `<state>.lock`.
pub fn path(state: &Path) -> PathBuf {
    let mut p = state.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// Lock `<state>.lock` for this process, or say who holds it.
pub fn take(state: &Path) -> Result<File, LedgerError> {
    let lock_path = path(state);
    let io = |source| LedgerError::io(&lock_path, source);
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    let mut file = private_file(&mut options)
        .open(&lock_path)
        .map_err(|source| {
            // The lock is the first file of a ledger to be created: where
            // its directory is missing, say so of the ledger the user named.
            let dir = super::directory_of(state);
            if source.kind() == std::io::ErrorKind::NotFound && !dir.is_dir() {
                LedgerError::NoDirectory {
                    path: state.display().to_string(),
                    dir: dir.display().to_string(),
                }
            } else {
                io(source)
            }
        })?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(LedgerError::Locked {
                path: state.display().to_string(),
                holder: if holder.is_empty() {
                    "a run that is starting".to_string()
                } else {
                    holder.to_string()
                },
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    write!(
        file,
        "pid {}{}{}, started {}",
        std::process::id(),
        if host.is_empty() { "" } else { " on " },
        host,
        super::now()
    )
    .map_err(io)?;
    file.flush().map_err(io)?;
    Ok(file)
}
