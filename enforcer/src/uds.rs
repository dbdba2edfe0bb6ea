//! Unix-socket connections that wait for write readiness only after a write
//! would block.
//!
//! tokio registers every socket with epoll for both read and write readiness
//! (edge-triggered). On a Unix stream socket the kernel signals write space
//! each time the peer *reads* data we sent, whether or not we ever ran out of
//! buffer space (TCP signals it only after a write found the buffer full). For
//! the Check link that is one spurious wake-up of the enforcer thread per
//! Check, at the moment Envoy has just read the answer and needs the CPU to
//! forward the request upstream (measured: 2.0 context switches of the
//! enforcer per Check over the Unix socket, 1.0 over TCP; see
//! docs/enforcer.md). [`ReadInterestStream`] registers for read readiness only
//! and writes straight to the non-blocking socket; only when a write would
//! block (Envoy stopped reading and the socket buffer is full) does it
//! re-register for write readiness too, and keeps both from then on.

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// A non-blocking Unix stream registered with the runtime for read
/// readiness, and for write readiness only once a write has blocked.
#[derive(Debug)]
pub struct ReadInterestStream {
    /// `None` only if re-registering for write readiness failed.
    fd: Option<AsyncFd<UnixStream>>,
    /// Whether the registration includes write readiness.
    write_interest: bool,
}

/// Registers `stream` with the current runtime for `interest`.
///
/// tokio 1.54 deprecated the safe constructor in favour of an `unsafe` one
/// whose contract is that the object's descriptor stays open and the same
/// for the registration's lifetime, because an arbitrary `AsRawFd` type
/// could break it. A std `UnixStream` owns its descriptor and never changes
/// it, so the contract holds; the workspace forbids `unsafe` code.
#[allow(deprecated)]
fn register(stream: UnixStream, interest: Interest) -> io::Result<AsyncFd<UnixStream>> {
    AsyncFd::with_interest(stream, interest)
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "connection lost its registration",
    )
}

impl ReadInterestStream {
    /// Takes over a connected stream (made non-blocking here). Must be called
    /// within a tokio runtime.
    pub fn new(stream: UnixStream) -> io::Result<ReadInterestStream> {
        stream.set_nonblocking(true)?;
        Ok(ReadInterestStream {
            fd: Some(register(stream, Interest::READABLE)?),
            write_interest: false,
        })
    }

    /// Converts an accepted tokio stream.
    pub fn from_tokio(stream: tokio::net::UnixStream) -> io::Result<ReadInterestStream> {
        ReadInterestStream::new(stream.into_std()?)
    }

    fn fd(&self) -> io::Result<&AsyncFd<UnixStream>> {
        self.fd.as_ref().ok_or_else(gone)
    }

    /// Re-registers for read and write readiness.
    fn add_write_interest(&mut self) -> io::Result<()> {
        let fd = self.fd.take().ok_or_else(gone)?;
        let stream = fd.into_inner();
        self.fd = Some(register(stream, Interest::READABLE | Interest::WRITABLE)?);
        self.write_interest = true;
        Ok(())
    }

    /// One write attempt through `op`, waiting for write readiness only once
    /// a write has blocked.
    fn poll_write_with(
        &mut self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&UnixStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            if !self.write_interest {
                match op(self.fd()?.get_ref()) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.add_write_interest()?;
                        // The task's read waker was registered with the old
                        // registration: poll again so both are re-registered.
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    result => return Poll::Ready(result),
                }
            }
            let fd = self.fd.as_ref().ok_or_else(gone)?;
            let mut guard = ready!(fd.poll_write_ready(cx))?;
            match guard.try_io(|inner| op(inner.get_ref())) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncRead for ReadInterestStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let fd = self.fd.as_ref().ok_or_else(gone)?;
        loop {
            let mut guard = ready!(fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|inner| {
                let mut stream: &UnixStream = inner.get_ref();
                stream.read(unfilled)
            }) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for ReadInterestStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_with(cx, |mut s| s.write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(cx, |mut s| s.write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writes go straight to the socket.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.fd()?.get_ref().shutdown(Shutdown::Write) {
            Err(e) if e.kind() != io::ErrorKind::NotConnected => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_and_writes_both_ways() {
        let (a, b) = UnixStream::pair().expect("pair");
        let mut a = ReadInterestStream::new(a).expect("register");
        let mut b = tokio::net::UnixStream::from_std({
            b.set_nonblocking(true).expect("non-blocking");
            b
        })
        .expect("register");
        a.write_all(b"ping").await.expect("write");
        let mut got = [0u8; 4];
        b.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"ping");
        b.write_all(b"pong").await.expect("write");
        a.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"pong");
        assert!(
            !a.write_interest,
            "no write interest while writes never block"
        );
        a.shutdown().await.expect("shutdown");
        assert_eq!(b.read(&mut got).await.expect("eof"), 0);
    }

    #[tokio::test]
    async fn a_blocked_write_waits_for_the_peer_to_read() {
        let (a, b) = UnixStream::pair().expect("pair");
        let mut a = ReadInterestStream::new(a).expect("register");
        b.set_nonblocking(true).expect("non-blocking");
        let mut b = tokio::net::UnixStream::from_std(b).expect("register");
        // More than any socket buffer: the write must block part-way and
        // complete once the peer drains it.
        let payload: Vec<u8> = (0..8 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        let expected = payload.clone();
        let writer = tokio::spawn(async move {
            a.write_all(&payload).await.expect("write");
            let blocked = a.write_interest;
            // Reads still work after re-registration.
            let mut reply = [0u8; 2];
            a.read_exact(&mut reply).await.expect("read");
            (blocked, reply)
        });
        let mut received = vec![0u8; expected.len()];
        b.read_exact(&mut received).await.expect("drain");
        assert!(received == expected, "payload arrives intact");
        b.write_all(b"ok").await.expect("reply");
        let (blocked, reply) = writer.await.expect("writer");
        assert!(blocked, "an 8 MiB write blocks on a Unix socket buffer");
        assert_eq!(&reply, b"ok");
    }
}
