//! How an output (the report, the HTML page, the summary JSON, the rejects
//! file) is written to the name it was given.
//!
//! A file is written atomically: a temporary file beside it, renamed over
//! it when complete, so that nobody ever reads half of it. A rename
//! replaces whatever has the name, which is wrong for two kinds of names
//! that scripts pass:
//! - A symbolic link (`latest.json -> runs/2026-12-04.json`) became a file
//!   of its own, and what it pointed to was left as it was. It is followed:
//!   its target is replaced and the link kept, as the ledger's is.
//! - A name that is not a file: `/dev/null`, `/dev/stdout`, a FIFO that a
//!   monitor reads. Run as root, `--summary-json /dev/null` renamed a
//!   regular file over the machine's `/dev/null`. Such a name is written
//!   in place; a standard stream or `/dev/fd/N` through the descriptor this
//!   process was given, so that `>> runs.jsonl` appends as the shell said.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::record::{directory_of, resolve};

/// An output being written; [`Output::finish`] puts it in place.
pub struct Output {
    to: To,
}

enum To {
    /// A temporary file, renamed to `path` (the name's target) when complete.
    Replace { tmp: NamedTempFile, path: PathBuf },
    /// Not a file to replace: written as it is opened.
    InPlace(File),
}

impl Output {
    /// Start writing the output named `path`. Its file is its owner's
    /// only, as the report's rows are.
    pub fn create(path: &Path) -> io::Result<Output> {
        let to = match kind(path) {
            Kind::Descriptor(fd) => To::InPlace(duplicate(fd)?),
            Kind::Other => To::InPlace(std::fs::OpenOptions::new().write(true).open(path)?),
            Kind::File => {
                let path = resolve(path);
                let tmp = NamedTempFile::new_in(directory_of(&path))?;
                To::Replace { tmp, path }
            }
        };
        Ok(Output { to })
    }

    pub fn file(&self) -> &File {
        match &self.to {
            To::Replace { tmp, .. } => tmp.as_file(),
            To::InPlace(file) => file,
        }
    }

    /// The output is complete: put it in place.
    pub fn finish(self) -> io::Result<()> {
        match self.to {
            To::Replace { tmp, path } => tmp.persist(path).map(drop).map_err(|e| e.error),
            To::InPlace(_) => Ok(()),
        }
    }
}

/// Whether a regular file is at `path` (through a link): after an output
/// could not be written there, what it holds is an earlier run's.
pub(crate) fn is_there(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

/// What an output error adds when an earlier file is still at its path:
/// a monitor or an analyst reading that file would take it for this run's.
pub(crate) fn left_as_it_was(kept: bool) -> &'static str {
    if kept {
        " (the file there is left as it was, from before this run)"
    } else {
        ""
    }
}

/// Whether an output could be written to `path`, asked before a run sends
/// anything: a temporary file made (and removed) where it would be, or the
/// descriptor it names open. A FIFO or a device is taken as it is:
/// opening a FIFO to write waits for its reader.
pub fn writable(path: &Path) -> io::Result<()> {
    match kind(path) {
        Kind::Descriptor(fd) => {
            return duplicate(fd)
                .map(drop)
                .map_err(|e| io::Error::new(e.kind(), format!("descriptor {fd}: {e}")))
        }
        Kind::Other => return Ok(()),
        Kind::File => {}
    }
    let path = resolve(path);
    let dir = directory_of(&path);
    // Not tempfile's: its errors name the file it tried, not the directory.
    let probe = dir.join(format!(".transcript-import-{}.probe", std::process::id()));
    let made = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe);
    match made {
        Ok(_) => std::fs::remove_file(&probe),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot write in {}: {e}", dir.display()),
        )),
    }
}

/// Where scratch files as large as the output named `path` may go: beside
/// the file that will be replaced, or the temporary directory where the
/// name is not a file.
pub fn scratch_dir(path: &Path) -> PathBuf {
    match kind(path) {
        Kind::File => directory_of(&resolve(path)).to_path_buf(),
        Kind::Descriptor(_) | Kind::Other => std::env::temp_dir(),
    }
}

/// What an output's name names.
enum Kind {
    /// A file to replace, or none yet (a directory too: the rename fails,
    /// saying so).
    File,
    /// A descriptor of this process: see [`descriptor`].
    Descriptor(i32),
    /// Something else that is there: a device, a FIFO, a socket.
    Other,
}

fn kind(path: &Path) -> Kind {
    if let Some(fd) = descriptor(path) {
        return Kind::Descriptor(fd);
    }
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() && !m.is_dir() => Kind::Other,
        _ => Kind::File,
    }
}

/// The descriptor a name stands for: `/dev/stdout`, `/dev/stderr`,
/// `/dev/fd/N`, `/proc/self/fd/N`. Opened by name, these would be opened
/// again from the start of the file (`>> log` overwritten from its first
/// byte), not written where the shell's descriptor is.
fn descriptor(path: &Path) -> Option<i32> {
    let name = path.to_str()?;
    match name {
        "/dev/stdout" => Some(1),
        "/dev/stderr" => Some(2),
        _ => name
            .strip_prefix("/dev/fd/")
            .or_else(|| name.strip_prefix("/proc/self/fd/"))?
            .parse()
            .ok(),
    }
}

#[cfg(unix)]
fn duplicate(fd: i32) -> io::Result<File> {
    use std::os::fd::FromRawFd;
    // SAFETY: fcntl only reads `fd`; what it returns is a new descriptor
    // that nothing else owns.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` is open and owned by nothing else.
    Ok(unsafe { File::from_raw_fd(new) })
}

#[cfg(not(unix))]
fn duplicate(_: i32) -> io::Result<File> {
    Err(io::Error::other(
        "not a file this system can write by descriptor",
    ))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn write(path: &Path, bytes: &[u8]) {
        let out = Output::create(path).unwrap();
        out.file().write_all(bytes).unwrap();
        out.finish().unwrap();
    }

    #[test]
    fn a_link_is_followed_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("runs").join("today.json");
        std::fs::create_dir(target.parent().unwrap()).unwrap();
        let link = dir.path().join("latest.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        // Dangling first: the file is created where the link points.
        write(&link, b"one");
        write(&link, b"two");
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        assert_eq!(scratch_dir(&link), target.parent().unwrap());
    }

    #[test]
    fn a_fifo_is_written_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("monitor");
        crate::testing::mkfifo(&fifo);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                File::open(fifo).unwrap().read_to_end(&mut got).unwrap();
                got
            })
        };
        write(&fifo, b"{\"ok\":true}\n");
        assert_eq!(reader.join().unwrap(), b"{\"ok\":true}\n");
        assert!(std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo());
        assert_eq!(scratch_dir(&fifo), std::env::temp_dir());
    }

    #[test]
    fn a_descriptor_is_written_where_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runs.jsonl");
        std::fs::write(&log, b"earlier\n").unwrap();
        let appending = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        use std::os::fd::AsRawFd;
        let name = PathBuf::from(format!("/dev/fd/{}", appending.as_raw_fd()));
        write(&name, b"later\n");
        assert_eq!(std::fs::read(&log).unwrap(), b"earlier\nlater\n");
        // A descriptor that is not open is an error, not a file named so.
        let closed = PathBuf::from("/dev/fd/999999");
        assert!(Output::create(&closed).is_err());
    }

    use std::os::unix::fs::FileTypeExt;
}
