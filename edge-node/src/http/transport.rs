//! The TCP transport under pingora's sessions: write coalescing, and
//! zero-copy file bodies for plain HTTP/1.1.
//!
//! **Coalescing.** Writes are buffered until pingora flushes (it does at the
//! end of every response and of every body chunk that must go out), so a
//! small response leaves in one `sendto` instead of header, then body.
//!
//! **Zero-copy bodies.** A blob served from its file over plain HTTP goes
//! from the page cache to the socket with `sendfile`, never through user
//! space (on loopback that also spares the kernel a copy). Pingora's h1
//! session owns the framing: it counts body bytes against `Content-Length`,
//! applies the write timeout and decides keep-alive. To keep all of that,
//! the handler arms [`ZeroCopy`] with the file range and then writes the
//! body through the session as usual, but as *placeholder* slices of the
//! static [`PLACEHOLDER`] buffer. This transport recognises those slices by
//! address and sends the armed file's bytes in their place.
//!
//! Architecture invariant: a placeholder byte never reaches the wire. A
//! placeholder write on a connection without an armed range, or beyond its
//! length, fails the write (and so the connection) instead; ordinary bytes
//! are never mistaken for placeholders, as no other buffer has that address.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use pingora_core::{Error, ErrorType};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter, Interest, ReadBuf};
use tokio::net::TcpStream;

/// Large enough for a header plus a small file; bigger writes bypass it.
const WRITE_BUFFER: usize = 16 * 1024;

/// Body bytes that stand for the armed file's bytes. Never read, never
/// written to a socket: it only lends its address (and sits in `.bss`, so
/// it costs no memory).
pub static PLACEHOLDER: [u8; 1 << 20] = [0; 1 << 20];

fn is_placeholder(buf: &[u8]) -> bool {
    let start = PLACEHOLDER.as_ptr() as usize;
    let at = buf.as_ptr() as usize;
    !buf.is_empty() && at >= start && at + buf.len() <= start + PLACEHOLDER.len()
}

/// The file range a plain HTTP/1.1 connection is sending a body from.
#[derive(Debug, Default)]
pub struct ZeroCopy(Mutex<Option<FileRange>>);

#[derive(Debug)]
struct FileRange {
    file: Arc<File>,
    offset: u64,
    remaining: u64,
}

impl ZeroCopy {
    /// Sends `len` bytes of `file` from `offset` as the body of the response
    /// whose head `session` has written, and ends it. `file` must be a
    /// verified blob at least `offset + len` long.
    pub async fn send_body(
        &self,
        session: &mut ServerSession,
        file: Arc<File>,
        offset: u64,
        len: u64,
    ) -> pingora_core::Result<()> {
        *self.0.lock().unwrap() = Some(FileRange {
            file,
            offset,
            remaining: len,
        });
        // Disarmed however this ends (an error, a timeout dropping the
        // write), so a later placeholder can never send a stale range.
        struct Disarm<'a>(&'a ZeroCopy);
        impl Drop for Disarm<'_> {
            fn drop(&mut self) {
                *self.0 .0.lock().unwrap() = None;
            }
        }
        let armed = Disarm(self);
        let mut left = len;
        while left > 0 {
            let n = left.min(PLACEHOLDER.len() as u64);
            left -= n;
            session
                .write_response_body(Bytes::from_static(&PLACEHOLDER[..n as usize]), left == 0)
                .await?;
        }
        let unsent = armed
            .0
             .0
            .lock()
            .unwrap()
            .as_ref()
            .map_or(0, |r| r.remaining);
        if unsent != 0 {
            return Error::e_explain(
                ErrorType::WriteError,
                format!("{unsent} bytes of a file body were not sent"),
            );
        }
        Ok(())
    }
}

/// A client's TCP connection: buffered writes, and `sendfile` for armed
/// placeholder writes when the connection has a [`ZeroCopy`].
#[derive(Debug)]
pub struct Transport {
    io: BufWriter<Tcp>,
    zero_copy: Option<Arc<ZeroCopy>>,
}

impl Transport {
    /// `zero_copy` only for plain HTTP: under TLS every byte is encrypted
    /// in user space anyway.
    pub fn new(tcp: TcpStream, zero_copy: Option<Arc<ZeroCopy>>) -> Self {
        // Lets sessions report the client address (X-Forwarded-For on proxy
        // rewrites); the peer address is looked up only when asked for.
        let digest = Some(Arc::new(SocketDigest::from_raw_fd(tcp.as_raw_fd())));
        Transport {
            io: BufWriter::with_capacity(
                WRITE_BUFFER,
                Tcp {
                    tcp,
                    digest,
                    more: false,
                },
            ),
            zero_copy,
        }
    }

    fn poll_write_file(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<usize>> {
        let Some(zero_copy) = self.zero_copy.clone() else {
            return Poll::Ready(Err(io::Error::other(
                "placeholder body bytes on a connection without zero-copy",
            )));
        };
        // The response head (and anything before it) goes first, marked
        // as having more to follow: the kernel holds it and sends it in one
        // segment with the file's first bytes (nginx's `tcp_nopush`), where
        // on its own it would cost a packet and, on loopback, the client's
        // whole receive path. The file's last bytes push everything out.
        self.io.get_mut().more = true;
        let flushed = Pin::new(&mut self.io).poll_flush(cx);
        self.io.get_mut().more = false;
        ready!(flushed)?;
        let mut armed = zero_copy.0.lock().unwrap();
        let Some(range) = armed.as_mut().filter(|r| r.remaining > 0) else {
            return Poll::Ready(Err(io::Error::other(
                "placeholder body bytes beyond the armed file range",
            )));
        };
        let want = (max as u64).min(range.remaining) as usize;
        let n = ready!(self
            .io
            .get_ref()
            .poll_sendfile(cx, &range.file, range.offset, want))?;
        range.offset += n as u64;
        range.remaining -= n as u64;
        Poll::Ready(Ok(n))
    }
}

#[derive(Debug)]
struct Tcp {
    tcp: TcpStream,
    digest: Option<Arc<SocketDigest>>,
    /// Writes carry `MSG_MORE` (set only while the head before a file
    /// body is flushed).
    more: bool,
}

impl Tcp {
    /// One `send` with `MSG_MORE`: the bytes wait in the kernel for the
    /// write that follows.
    fn poll_send_more(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, || {
            // SAFETY: `buf` is valid for `buf.len()` bytes for the call.
            unsafe {
                libc::send(
                    self.tcp.as_raw_fd(),
                    buf.as_ptr().cast(),
                    buf.len(),
                    libc::MSG_MORE | libc::MSG_NOSIGNAL,
                )
            }
        })
    }

    /// One `sendfile` of up to `len` bytes at `offset` (the file's own
    /// cursor is not used: the descriptor is shared between requests).
    /// Reads come from the page cache; a blob not in it blocks this thread
    /// on the disk, as nginx's `sendfile` does without `aio threads`.
    fn poll_sendfile(
        &self,
        cx: &mut Context<'_>,
        file: &File,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        let mut off = libc::off_t::try_from(offset).map_err(io::Error::other)?;
        match ready!(self.poll_write_with(cx, || {
            // SAFETY: both descriptors are open for the duration of the
            // call and `off` is a valid, exclusively borrowed offset.
            unsafe { libc::sendfile(self.tcp.as_raw_fd(), file.as_raw_fd(), &mut off, len) }
        })) {
            Ok(0) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "blob file ended before its verified length",
            ))),
            other => Poll::Ready(other),
        }
    }

    /// A write system call (`-1` and `errno` on failure) once the socket is
    /// writable, waiting again whenever it would block.
    fn poll_write_with(
        &self,
        cx: &mut Context<'_>,
        mut call: impl FnMut() -> isize,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            let written = self.tcp.try_io(Interest::WRITABLE, || {
                let n = call();
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            return match written {
                // Readiness was cleared by `try_io`: wait for it again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => Poll::Ready(other),
            };
        }
    }
}

impl AsyncRead for Tcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.more {
            return self.poll_send_more(cx, buf);
        }
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if is_placeholder(buf) {
            return self.poll_write_file(cx, buf.len());
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for Transport {
    async fn shutdown(&mut self) {
        let _ = AsyncWriteExt::shutdown(&mut self.io).await;
    }
}

impl UniqueID for Transport {
    fn id(&self) -> UniqueIDType {
        self.io.get_ref().tcp.as_raw_fd()
    }
}

impl Ssl for Transport {}

#[async_trait]
impl Peek for Transport {}

impl GetTimingDigest for Transport {
    /// None: pingora asks for it for every request (`HttpSession::new`),
    /// which made a `Vec` each time, and nothing here reads it.
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        Vec::new()
    }
}

impl GetProxyDigest for Transport {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        None
    }
}

impl GetSocketDigest for Transport {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.io.get_ref().digest.clone()
    }

    fn set_socket_digest(&mut self, d: SocketDigest) {
        self.io.get_mut().digest = Some(Arc::new(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn pair() -> (TcpStream, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap());
        let (server, client) = tokio::join!(l.accept(), client);
        (server.unwrap().0, client.unwrap())
    }

    #[test]
    fn only_the_placeholder_buffer_is_a_placeholder() {
        assert!(is_placeholder(&PLACEHOLDER[..10]));
        assert!(is_placeholder(&PLACEHOLDER[100..]));
        assert!(!is_placeholder(&PLACEHOLDER[..0]));
        let zeros = vec![0u8; 1 << 20];
        assert!(!is_placeholder(&zeros));
        assert!(!is_placeholder(b"a response head"));
    }

    /// Placeholder bytes on a connection that cannot send a file, or
    /// without an armed range, fail the write: none reaches the client.
    #[tokio::test]
    async fn placeholders_never_reach_the_wire() {
        for zero_copy in [None, Some(Arc::new(ZeroCopy::default()))] {
            let (server, mut client) = pair().await;
            let mut t = Transport::new(server, zero_copy);
            t.write_all(b"head").await.unwrap();
            let err = t.write_all(&PLACEHOLDER[..4096]).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::Other, "{err}");
            drop(t);
            let mut got = vec![];
            client.read_to_end(&mut got).await.unwrap();
            // At most the head went out; not one placeholder byte.
            assert!(got.is_empty() || got == b"head", "{got:?}");
        }
    }

    /// An armed range is sent from the file, at its offset, after the
    /// buffered head; more placeholder bytes than armed are refused.
    #[tokio::test]
    async fn an_armed_range_is_sent_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        let (server, mut client) = pair().await;
        let zc = Arc::new(ZeroCopy::default());
        let mut t = Transport::new(server, Some(zc.clone()));
        let reader = tokio::spawn(async move {
            let mut got = vec![];
            client.read_to_end(&mut got).await.unwrap();
            got
        });
        t.write_all(b"HEAD").await.unwrap();
        *zc.0.lock().unwrap() = Some(FileRange {
            file,
            offset: 10,
            remaining: 2_500_000,
        });
        // As pingora writes a body: several placeholder slices.
        let mut left = 2_500_000usize;
        while left > 0 {
            let n = left.min(PLACEHOLDER.len());
            t.write_all(&PLACEHOLDER[..n]).await.unwrap();
            left -= n;
        }
        assert!(t.write_all(&PLACEHOLDER[..1]).await.is_err());
        drop(t);
        let got = reader.await.unwrap();
        assert_eq!(&got[..4], b"HEAD");
        assert_eq!(&got[4..], &data[10..2_500_010]);
    }
}
