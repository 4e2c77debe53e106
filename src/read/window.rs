//! Reading records back by offset through a window of the file: one
//! `pread` fills it, and the records after it in the file come from memory.
//!
//! A worker reads its conversation's texts back one message at a time, one
//! `pread` each: 2.2–2.6 % of a zero-latency run's CPU samples, nearly all
//! the system call. In an export ordered by time a conversation's rows sit
//! a few hundred bytes to a few kilobytes apart (half of them within 440
//! bytes in the bench's file, 1.4 KB in a real corpus), so one window
//! holds several of the next ones. A record far from the one before gets
//! a short read instead (see [`FAR_READ`]).

use std::fs::File;
use std::io::{self, BufRead, Read, Seek, SeekFrom};

/// Bytes a window reads at once where the reads before it were near one
/// another. A reader is one worker's for one input, so this is memory per
/// worker and input read from.
const WINDOW: usize = 16 * 1024;

/// Bytes read for a record far from the window before: in a file whose
/// rows are in no useful order (shuffled, or sorted by something else) a
/// window would be read whole for one record each time, and copying 16 KB
/// a message cost more than the system call it saves.
const FAR_READ: usize = 1024;

/// How far past the window's start a record may be and still count as
/// near: a conversation in an export ordered by time spans about 20 KB.
const NEAR: u64 = 4 * WINDOW as u64;

/// A file read by position through a window of it. Seeking costs no
/// system call, and a seek within the window keeps it.
pub(crate) struct Window {
    file: File,
    /// Where the next read starts.
    at: u64,
    /// The file's bytes from `start`, `len` of them; allocated on first use.
    buf: Vec<u8>,
    start: u64,
    len: usize,
}

impl Window {
    pub(crate) fn new(file: File) -> Window {
        Window {
            file,
            at: 0,
            buf: Vec::new(),
            start: 0,
            len: 0,
        }
    }

    /// The file's bytes at `at`, read into the window unless it holds them.
    fn fill(&mut self) -> io::Result<&[u8]> {
        let end = self.start + self.len as u64;
        if self.at < self.start || self.at >= end {
            if self.buf.is_empty() {
                self.buf = vec![0; WINDOW];
            }
            let near = self.len > 0 && self.at > self.start && self.at - self.start < NEAR;
            let want = if near { WINDOW } else { FAR_READ };
            // Empty before the read: one that fails leaves no stale bytes
            // under the new start.
            self.len = 0;
            self.start = self.at;
            self.len = loop {
                match std::os::unix::fs::FileExt::read_at(
                    &self.file,
                    &mut self.buf[..want],
                    self.at,
                ) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    read => break read?,
                }
            };
        }
        // `at` is in the window, or at its start after a read that found
        // the end of the file.
        let from = (self.at - self.start) as usize;
        Ok(&self.buf[from..self.len])
    }
}

impl Read for Window {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let have = self.fill()?;
        let n = have.len().min(out.len());
        out[..n].copy_from_slice(&have[..n]);
        self.at += n as u64;
        Ok(n)
    }
}

impl BufRead for Window {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.fill()
    }

    fn consume(&mut self, n: usize) {
        self.at += n as u64;
    }
}

impl Seek for Window {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let at = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => self.at.checked_add_signed(d),
            SeekFrom::End(d) => self.file.metadata()?.len().checked_add_signed(d),
        };
        self.at = at.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before 0"))?;
        Ok(self.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_by_position_across_windows_as_the_file_holds_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let bytes: Vec<u8> = (0..3 * WINDOW + 123).map(|i| (i % 251) as u8).collect();
        File::create(&path).unwrap().write_all(&bytes).unwrap();
        let mut w = Window::new(File::open(&path).unwrap());
        // Forward, backward, across a window's end, past the end of file.
        for at in [
            5,
            1,
            WINDOW - 3,
            2 * WINDOW + 7,
            17,
            bytes.len() - 2,
            bytes.len() + 9,
        ] {
            w.seek(SeekFrom::Start(at as u64)).unwrap();
            let mut got = [0u8; 10];
            let mut n = 0;
            while n < got.len() {
                let r = w.read(&mut got[n..]).unwrap();
                if r == 0 {
                    break;
                }
                n += r;
            }
            let want = &bytes[at.min(bytes.len())..(at + 10).min(bytes.len())];
            assert_eq!(&got[..n], want, "at {at}");
        }
        // Lines, as the JSONL reader reads them.
        w.seek(SeekFrom::Start(0)).unwrap();
        let mut all = Vec::new();
        w.read_to_end(&mut all).unwrap();
        assert_eq!(all, bytes);
    }
}
