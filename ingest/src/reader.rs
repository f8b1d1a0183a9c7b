//! Reads an input file as numbered lines: plain or gzip (by content, not by name),
//! with a UTF-8 BOM, CRLF endings and a missing final newline all taken in stride.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use flate2::bufread::MultiGzDecoder;

use crate::progress::Progress;

/// A line longer than this is quarantined, not buffered: one runaway line must not
/// take the process's memory.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
const GZIP_MAGIC: &[u8] = b"\x1f\x8b";

/// One non-blank line of input.
#[derive(Debug)]
pub struct Line<'a> {
    /// 1-based, counting every line including blank ones, as an editor would.
    pub number: u64,
    /// Byte offset of the line's start in the (decompressed) content.
    pub offset: u64,
    /// The line without its line ending; cut short when `too_long`.
    pub bytes: &'a [u8],
    pub too_long: bool,
}

pub struct LineReader {
    inner: Box<dyn BufRead + Send>,
    buf: Vec<u8>,
    number: u64,
    offset: u64,
    pub compressed: bool,
}

impl std::fmt::Debug for LineReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineReader")
            .field("number", &self.number)
            .field("offset", &self.offset)
            .field("compressed", &self.compressed)
            .finish()
    }
}

/// Reports raw bytes read from the file to the progress bar.
struct Counting<R> {
    inner: R,
    progress: Arc<dyn Progress>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

impl LineReader {
    pub fn open(path: &Path, progress: Arc<dyn Progress>) -> io::Result<Self> {
        let file = File::open(path)?;
        Self::new(file, progress)
    }

    pub fn new(
        source: impl Read + Send + 'static,
        progress: Arc<dyn Progress>,
    ) -> io::Result<Self> {
        let mut raw = BufReader::with_capacity(
            256 * 1024,
            Counting {
                inner: source,
                progress,
            },
        );
        let compressed = raw.fill_buf()?.starts_with(GZIP_MAGIC);
        let inner: Box<dyn BufRead + Send> = if compressed {
            // Concatenated gzip members (rotated logs, `cat a.gz b.gz`) are one stream.
            Box::new(BufReader::with_capacity(
                256 * 1024,
                MultiGzDecoder::new(raw),
            ))
        } else {
            Box::new(raw)
        };
        Ok(LineReader {
            inner,
            buf: Vec::with_capacity(64 * 1024),
            number: 0,
            offset: 0,
            compressed,
        })
    }

    /// Up to `max` bytes of the start of the (decompressed) content, for format
    /// detection; consumes nothing.
    pub fn head(&mut self, max: usize) -> io::Result<Vec<u8>> {
        let buf = self.inner.fill_buf()?;
        Ok(buf[..buf.len().min(max)].to_vec())
    }

    /// The (decompressed) content as a stream, past any BOM, for whole-document
    /// parsers.
    pub fn into_stream(mut self) -> io::Result<Box<dyn BufRead + Send>> {
        if self.inner.fill_buf()?.starts_with(UTF8_BOM) {
            self.inner.consume(UTF8_BOM.len());
        }
        Ok(self.inner)
    }

    /// The next non-blank line, or `None` at the end of the content.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        loop {
            self.buf.clear();
            let start = self.offset;
            let n = (&mut self.inner)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut self.buf)?;
            if n == 0 {
                return Ok(None);
            }
            self.offset += n as u64;
            self.number += 1;
            let mut too_long = false;
            if n > MAX_LINE_BYTES && self.buf.last() != Some(&b'\n') {
                too_long = true;
                self.offset += self.inner.skip_until(b'\n')? as u64;
                self.buf.truncate(4096);
            }
            let mut line = &self.buf[..];
            if let Some(rest) = line.strip_suffix(b"\n") {
                line = rest;
            }
            if let Some(rest) = line.strip_suffix(b"\r") {
                line = rest;
            }
            if self.number == 1
                && let Some(rest) = line.strip_prefix(UTF8_BOM)
            {
                line = rest;
            }
            if !too_long && line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let (from, len) = subslice(&self.buf, line);
            return Ok(Some(Line {
                number: self.number,
                offset: start,
                bytes: &self.buf[from..from + len],
                too_long,
            }));
        }
    }
}

/// Position of `part` inside `whole` (it is always a sub-slice of it).
fn subslice(whole: &[u8], part: &[u8]) -> (usize, usize) {
    let from = part.as_ptr() as usize - whole.as_ptr() as usize;
    (from, part.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;

    fn lines(input: &[u8]) -> Vec<(u64, u64, String)> {
        let mut reader =
            LineReader::new(io::Cursor::new(input.to_vec()), Arc::new(NoProgress)).unwrap();
        let mut out = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            out.push((
                line.number,
                line.offset,
                String::from_utf8_lossy(line.bytes).into_owned(),
            ));
        }
        out
    }

    #[test]
    fn bom_crlf_blank_lines_and_missing_final_newline() {
        // Offsets are of the raw content: the 3-byte BOM counts.
        let got = lines(b"\xEF\xBB\xBFa\r\n\r\n  \nb\nc");
        assert_eq!(
            got,
            vec![(1, 0, "a".into()), (4, 11, "b".into()), (5, 13, "c".into())]
        );
    }

    #[test]
    fn empty_input_has_no_lines() {
        assert!(lines(b"").is_empty());
        assert!(lines(b"\n\n").is_empty());
    }

    #[test]
    fn gzip_is_recognised_by_content() {
        use flate2::{Compression, write::GzEncoder};
        use std::io::Write;
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(b"x\ny\n").unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(lines(&gz), vec![(1, 0, "x".into()), (2, 2, "y".into())]);
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        use flate2::{Compression, write::GzEncoder};
        use std::io::Write;
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(&b"{\"a\":1}\n".repeat(1000)).unwrap();
        let gz = enc.finish().unwrap();
        let cut = &gz[..gz.len() / 2];
        let mut reader =
            LineReader::new(io::Cursor::new(cut.to_vec()), Arc::new(NoProgress)).unwrap();
        let err = loop {
            match reader.next_line() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("truncated gzip read to the end"),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
