//! Request-smuggling guard for downstream HTTP/1: refuses requests with both `Content-Length`
//! and `Transfer-Encoding`, or with more than one `Content-Length`.
//!
//! hyper accepts both cases (Transfer-Encoding wins; identical lengths are merged) and does
//! not tell the service, so the check has to see the bytes. [`H1Guard`] wraps the socket and
//! follows HTTP/1 request framing as bytes are read (heads byte by byte, bodies skipped by
//! length). On a violation it overwrites the offending header line's colon (or, if that came in
//! an earlier read, its line end), still unparsed in the read just returned, so the name is no
//! longer a token; hyper's parser then rejects the head and answers 400 itself, in order with
//! any pipelined responses, and closes.
//! HTTP/2 connections and upgraded streams are not scanned after their preface/head.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub struct H1Guard<S> {
    inner: S,
    scan: Scanner,
}

impl<S> H1Guard<S> {
    pub fn new(inner: S) -> Self {
        H1Guard {
            inner,
            scan: Scanner::default(),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for H1Guard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        this.scan.feed(&mut buf.filled_mut()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for H1Guard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    RequestLine,
    Header,
    FixedBody(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailer,
    /// HTTP/2, an upgrade, or after a violation: stop looking.
    Opaque,
}

/// Which framing header the current line is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Name {
    #[default]
    Other,
    ContentLength,
    TransferEncoding,
    Upgrade,
}

const NAME_MAX: usize = 17; // "transfer-encoding"

#[derive(Debug, Default)]
struct Scanner {
    state: State,
    line_len: usize,
    name: [u8; NAME_MAX],
    in_value: bool,
    kind: Name,
    value: u64,
    /// Request line start, to spot the HTTP/2 preface and CONNECT.
    start: [u8; 8],
    content_lengths: u8,
    chunked: bool,
    upgrade: bool,
    opaque_after_head: bool,
    chunk_size: u64,
    /// Where the current line's `:` is in the buffer being fed, if it is in that buffer.
    colon: Option<usize>,
}

impl Scanner {
    fn feed(&mut self, buf: &mut [u8]) {
        self.colon = None;
        let mut i = 0;
        while i < buf.len() {
            match self.state {
                State::Opaque => return,
                State::FixedBody(n) | State::ChunkData(n) => {
                    let take = n.min((buf.len() - i) as u64);
                    i += take as usize;
                    let left = n - take;
                    self.state = match (self.state, left) {
                        (State::FixedBody(_), 0) => State::RequestLine,
                        (State::FixedBody(_), l) => State::FixedBody(l),
                        (_, 0) => State::ChunkEnd,
                        (_, l) => State::ChunkData(l),
                    };
                }
                _ => {
                    self.byte(buf, i);
                    i += 1;
                }
            }
        }
    }

    fn byte(&mut self, buf: &mut [u8], i: usize) {
        let b = buf[i];
        match self.state {
            State::RequestLine => {
                if b == b'\n' {
                    if self.line_len > 0 {
                        self.opaque_after_head = self.start.starts_with(b"PRI * HT")
                            || self.start.starts_with(b"CONNECT ");
                        if self.start.starts_with(b"PRI * HT") {
                            self.state = State::Opaque;
                            return;
                        }
                        self.state = State::Header;
                    }
                    self.line_len = 0;
                } else if b != b'\r' {
                    if self.line_len < self.start.len() {
                        self.start[self.line_len] = b;
                    }
                    self.line_len += 1;
                }
            }
            State::Header => self.header_byte(buf, i),
            State::ChunkSize => match b {
                b'\n' => {
                    self.state = if self.chunk_size == 0 {
                        State::Trailer
                    } else {
                        State::ChunkData(self.chunk_size)
                    };
                    self.chunk_size = 0;
                    self.in_value = false;
                }
                b';' | b'\r' | b' ' | b'\t' => self.in_value = true,
                _ if self.in_value => {}
                _ => match (b as char).to_digit(16) {
                    Some(d) => {
                        self.chunk_size =
                            self.chunk_size.saturating_mul(16).saturating_add(d.into())
                    }
                    // hyper rejects it; nothing more to follow.
                    None => self.state = State::Opaque,
                },
            },
            State::ChunkEnd => {
                if b == b'\n' {
                    self.state = State::ChunkSize;
                }
            }
            State::Trailer => match b {
                b'\n' if self.line_len == 0 => self.reset_head(),
                b'\n' => self.line_len = 0,
                b'\r' => {}
                _ => self.line_len += 1,
            },
            State::FixedBody(_) | State::ChunkData(_) | State::Opaque => {}
        }
    }

    fn header_byte(&mut self, buf: &mut [u8], i: usize) {
        let b = buf[i];
        match b {
            b'\r' => {}
            b'\n' if self.line_len == 0 => self.end_of_head(),
            b'\n' => {
                let violation = match self.kind {
                    Name::ContentLength => {
                        self.content_lengths += 1;
                        self.content_lengths > 1 || self.chunked
                    }
                    Name::TransferEncoding => {
                        self.chunked = true;
                        self.content_lengths > 0
                    }
                    Name::Upgrade => {
                        self.upgrade = true;
                        false
                    }
                    Name::Other => false,
                };
                if violation {
                    tracing::debug!("refusing request with ambiguous framing");
                    match self.colon {
                        Some(c) => buf[c] = b' ',
                        None => buf[i] = 0,
                    }
                    self.state = State::Opaque;
                    return;
                }
                self.line_len = 0;
                self.in_value = false;
                self.kind = Name::Other;
                self.colon = None;
            }
            _ => {
                if !self.in_value {
                    if b == b':' {
                        self.in_value = true;
                        self.colon = Some(i);
                        let name = &self.name[..self.line_len.min(NAME_MAX)];
                        self.kind = if self.line_len > NAME_MAX {
                            Name::Other
                        } else if name == b"content-length" {
                            self.value = 0;
                            Name::ContentLength
                        } else if name == b"transfer-encoding" {
                            Name::TransferEncoding
                        } else if name == b"upgrade" {
                            Name::Upgrade
                        } else {
                            Name::Other
                        };
                    } else if self.line_len < NAME_MAX {
                        self.name[self.line_len] = b.to_ascii_lowercase();
                    }
                } else if self.kind == Name::ContentLength && b.is_ascii_digit() {
                    self.value = self
                        .value
                        .saturating_mul(10)
                        .saturating_add(u64::from(b - b'0'));
                }
                self.line_len += 1;
            }
        }
    }

    fn end_of_head(&mut self) {
        let length = self.value;
        self.state = if self.upgrade || self.opaque_after_head {
            State::Opaque
        } else if self.chunked {
            State::ChunkSize
        } else if self.content_lengths == 1 && length > 0 {
            State::FixedBody(length)
        } else {
            State::RequestLine
        };
        let state = self.state;
        self.reset_head();
        self.state = state;
    }

    fn reset_head(&mut self) {
        *self = Scanner::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(chunks: &[&str]) -> (Scanner, Vec<u8>) {
        let mut s = Scanner::default();
        let mut out = Vec::new();
        for c in chunks {
            let mut b = c.as_bytes().to_vec();
            s.feed(&mut b);
            out.extend(b);
        }
        (s, out)
    }

    #[test]
    fn follows_keep_alive_framing() {
        let (s, out) = scan(&[
            "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhel",
            "loGET /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            "GET /c HTTP/1.1\r\ncontent-length: 0\r\n\r\n",
        ]);
        assert_eq!(s.state, State::RequestLine);
        assert!(!out.contains(&0));
    }

    #[test]
    fn body_bytes_that_look_like_headers_are_skipped() {
        let body = "Content-Length: 1\r\n";
        let req = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}GET / HTTP/1.1\r\n\r\n",
            body.len()
        );
        let (s, out) = scan(&[&req]);
        assert_eq!(s.state, State::RequestLine);
        assert!(!out.contains(&0));
    }

    #[test]
    fn poisons_cl_with_te_and_duplicate_cl() {
        for req in [
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
        ] {
            let (s, out) = scan(&[req]);
            assert_eq!(s.state, State::Opaque, "{req}");
            let colons = out.iter().filter(|b| **b == b':').count();
            assert_eq!(
                colons, 1,
                "the second framing header loses its colon: {req}"
            );
        }
        // Split so the offending line's colon was in an earlier read: its line end is poisoned.
        let (_, out) = scan(&[
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length:",
            " 3\r\n\r\n",
        ]);
        assert!(out.contains(&0));
    }

    /// Untrusted bytes: random request-ish input in random splits never panics and never
    /// touches bytes other than a colon or a line end.
    #[test]
    fn survives_random_input() {
        let alphabet =
            b"GET POST / HTTP/1.1\r\n:content-length: 12 transfer-encoding: chunked 0 a ff;";
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..5_000 {
            let len = rng.usize(0..300);
            let input: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect();
            let mut scanner = Scanner::default();
            let mut out = input.clone();
            let mut at = 0;
            while at < out.len() {
                let end = (at + rng.usize(1..40)).min(out.len());
                scanner.feed(&mut out[at..end]);
                at = end;
            }
            for (a, b) in input.iter().zip(&out) {
                assert!(a == b || (*a == b':' && *b == b' ') || (*a == b'\n' && *b == 0));
            }
        }
    }

    #[test]
    fn h2_preface_and_upgrades_stop_scanning() {
        let (s, _) = scan(&["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]);
        assert_eq!(s.state, State::Opaque);
        let (s, _) = scan(&["GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"]);
        assert_eq!(s.state, State::Opaque);
    }
}
