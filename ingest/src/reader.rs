//! Reads an input file as numbered lines: plain or gzip (by content, not by name),
//! with a UTF-8 BOM, CRLF endings and a missing final newline all taken in stride.
//! The content is bounded after decompression ([`Limits::max_content_bytes`]), so
//! a small gzip bomb stops at the bound, and a line longer than
//! [`Limits::max_record_bytes`] is skipped, not buffered: one runaway line must not
//! take the process's memory. Whole-document parsers read through
//! [`RecordBound`], which bounds each record they take and the whole document.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::bufread::MultiGzDecoder;

use crate::limits::Limits;
use crate::progress::Progress;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Content past a bound: the read stops with this as its error's payload.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what} is larger than {limit} bytes ({hint})")]
pub struct TooLarge {
    pub what: &'static str,
    pub limit: u64,
    pub hint: &'static str,
}

impl TooLarge {
    fn error(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }

    /// The bound an I/O error reports, if it is one.
    pub fn of(e: &io::Error) -> Option<&TooLarge> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<TooLarge>())
    }
}

/// The decompressed content, refused once it passes its bound.
struct ContentBound<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Read for ContentBound<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.left.checked_sub(n as u64) {
            Some(left) => {
                self.left = left;
                Ok(n)
            }
            None => Err(TooLarge {
                what: "the content after decompression",
                limit: self.limit,
                hint: "split it; [ingest.limits] max_content_mib",
            }
            .error()),
        }
    }
}
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
    max_line: usize,
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
    pub fn open(path: &Path, progress: Arc<dyn Progress>, limits: &Limits) -> io::Result<Self> {
        let file = File::open(path)?;
        Self::new(file, progress, limits)
    }

    pub fn new(
        source: impl Read + Send + 'static,
        progress: Arc<dyn Progress>,
        limits: &Limits,
    ) -> io::Result<Self> {
        let mut raw = BufReader::with_capacity(
            256 * 1024,
            Counting {
                inner: source,
                progress,
            },
        );
        let compressed = raw.fill_buf()?.starts_with(GZIP_MAGIC);
        let bound = |inner| ContentBound {
            inner,
            left: limits.max_content_bytes,
            limit: limits.max_content_bytes,
        };
        let inner: Box<dyn BufRead + Send> = if compressed {
            // Concatenated gzip members (rotated logs, `cat a.gz b.gz`) are one stream.
            let decoded: Box<dyn Read + Send> = Box::new(MultiGzDecoder::new(raw));
            Box::new(BufReader::with_capacity(256 * 1024, bound(decoded)))
        } else {
            let plain: Box<dyn Read + Send> = Box::new(raw);
            Box::new(BufReader::with_capacity(256 * 1024, bound(plain)))
        };
        Ok(LineReader {
            inner,
            buf: Vec::with_capacity(64 * 1024),
            number: 0,
            offset: 0,
            max_line: limits.max_record_bytes,
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
                .take(self.max_line as u64 + 1)
                .read_until(b'\n', &mut self.buf)?;
            if n == 0 {
                return Ok(None);
            }
            self.offset += n as u64;
            self.number += 1;
            let mut too_long = false;
            if n > self.max_line && self.buf.last() != Some(&b'\n') {
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

    pub fn max_line(&self) -> usize {
        self.max_line
    }
}

/// A whole-document stream (JSON array, CSV, JSON document) whose parser takes
/// records one at a time: the bytes read since the last [`RecordMarks::mark`]
/// are bounded, and so is the whole when it is read as one value. Parsers read
/// it through their own buffer (at most [`PARSER_READ_AHEAD`] ahead).
#[derive(Debug)]
pub struct RecordBound<R> {
    inner: R,
    marks: RecordMarks,
    max_record: u64,
    max_total: u64,
    what: &'static str,
}

/// Where the parser is: bytes handed to it, where its last record ended, and
/// the bound that stopped it (parsers wrap I/O errors in their own).
#[derive(Debug, Clone, Default)]
pub struct RecordMarks {
    read: Arc<AtomicU64>,
    mark: Arc<AtomicU64>,
    tripped: Arc<std::sync::OnceLock<TooLarge>>,
}

impl RecordMarks {
    /// A record ended here.
    pub fn mark(&self) {
        self.mark
            .store(self.read.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// The bound that stopped the read, if one did.
    pub fn tripped(&self) -> Option<&TooLarge> {
        self.tripped.get()
    }

    fn trip(&self, bound: TooLarge) -> io::Error {
        let _ = self.tripped.set(bound.clone());
        bound.error()
    }
}

/// Parsers read ahead of the record they return by at most their buffer.
const PARSER_READ_AHEAD: u64 = 64 * 1024;

impl<R> RecordBound<R> {
    /// Records of at most `max_record` bytes each, `max_total` in all; `what`
    /// names a record in the refusal.
    pub fn new(inner: R, max_record: u64, max_total: u64, what: &'static str) -> Self {
        RecordBound {
            inner,
            marks: RecordMarks::default(),
            max_record,
            max_total,
            what,
        }
    }

    pub fn marks(&self) -> RecordMarks {
        self.marks.clone()
    }
}

impl<R: Read> Read for RecordBound<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let read = self.marks.read.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        let since = read - self.marks.mark.load(Ordering::Relaxed).min(read);
        if read > self.max_total {
            return Err(self.marks.trip(TooLarge {
                what: "a JSON document read whole",
                limit: self.max_total,
                hint: "send it as JSON lines, a JSON array or CSV, which stream",
            }));
        }
        if since > self.max_record.saturating_add(PARSER_READ_AHEAD) {
            return Err(self.marks.trip(TooLarge {
                what: self.what,
                limit: self.max_record,
                hint: "[ingest.limits] max_record_mib",
            }));
        }
        Ok(n)
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
        let mut reader = LineReader::new(
            io::Cursor::new(input.to_vec()),
            Arc::new(NoProgress),
            &Limits::default(),
        )
        .unwrap();
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
        let mut reader = LineReader::new(
            io::Cursor::new(cut.to_vec()),
            Arc::new(NoProgress),
            &Limits::default(),
        )
        .unwrap();
        let err = loop {
            match reader.next_line() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("truncated gzip read to the end"),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    fn gzip(content: &[u8]) -> Vec<u8> {
        use flate2::{Compression, write::GzEncoder};
        use std::io::Write;
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        enc.write_all(content).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_content_bound() {
        // 16 MiB of one line in about 16 KB of gzip.
        let bomb = gzip(&vec![b'a'; 16 << 20]);
        assert!(bomb.len() < 100_000, "{}", bomb.len());
        let limits = Limits {
            max_content_bytes: 8 << 20,
            ..Limits::default()
        };
        let mut reader =
            LineReader::new(io::Cursor::new(bomb), Arc::new(NoProgress), &limits).unwrap();
        let err = reader.next_line().unwrap_err();
        let bound = TooLarge::of(&err).expect("the bound's own error");
        assert_eq!(bound.limit, 8 << 20);
        assert!(err.to_string().contains("after decompression"), "{err}");
    }

    #[test]
    fn a_line_past_the_record_bound_is_skipped_and_the_next_read() {
        let limits = Limits {
            max_record_bytes: 1000,
            ..Limits::default()
        };
        let mut input = vec![b'x'; 5000];
        input.extend_from_slice(b"\nnext\n");
        let mut reader =
            LineReader::new(io::Cursor::new(input), Arc::new(NoProgress), &limits).unwrap();
        let first = reader.next_line().unwrap().unwrap();
        assert!(first.too_long);
        assert!(first.bytes.len() <= 4096);
        let second = reader.next_line().unwrap().unwrap();
        assert_eq!((second.number, second.bytes), (2, &b"next"[..]));
    }

    #[test]
    fn records_and_documents_are_bounded_as_they_are_read() {
        let read_all = |bound: RecordBound<io::Cursor<Vec<u8>>>, mark_every: usize| {
            let marks = bound.marks();
            let mut reader = BufReader::with_capacity(1024, bound);
            let mut total = 0;
            let mut chunk = [0u8; 512];
            loop {
                match reader.read(&mut chunk) {
                    Ok(0) => return Ok(total),
                    Ok(n) => {
                        total += n;
                        if total % mark_every < n {
                            marks.mark();
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        let data = vec![b'x'; 400_000];
        // Marked every 10 KB: no record is near the 100 KB bound.
        let fine = RecordBound::new(io::Cursor::new(data.clone()), 100_000, u64::MAX, "a row");
        assert_eq!(read_all(fine, 10_000).unwrap(), 400_000);
        // Never marked: one record of 400 KB.
        let long = RecordBound::new(io::Cursor::new(data.clone()), 100_000, u64::MAX, "a row");
        let marks = long.marks();
        let err = read_all(long, usize::MAX).unwrap_err();
        assert_eq!(TooLarge::of(&err).unwrap().what, "a row");
        assert_eq!(marks.tripped().unwrap().what, "a row");
        let whole = RecordBound::new(io::Cursor::new(data), u64::MAX, 300_000, "a row");
        let err = read_all(whole, 10_000).unwrap_err();
        assert_eq!(
            TooLarge::of(&err).unwrap().what,
            "a JSON document read whole"
        );
    }
}
