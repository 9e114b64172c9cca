//! One connection through the link: two directions, each a reader that lets data onto the
//! link as fast as its rate allows and a writer that delivers it when its latency has passed.
//!
//! ```text
//! source ─► read (gated by cut) ─► book rate ─► delay line (FIFO) ─► due? ─► write (gated) ─► sink
//! ```
//!
//! Reads and writes are non-blocking calls made under the link's lock after checking that
//! the link is not cut, so a cut is complete when the controlling thread releases the lock.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::time::Instant;

use socket2::SockRef;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::command::Direction;
use super::listener::abort;
use super::state::{MAX_PIECE, Shared, State, Wait};

/// Pieces in one direction's delay line: with 16 KiB pieces, 4 MiB in flight, so that a
/// latency of 100 ms still carries 40 MB/s.
const DELAY_LINE: usize = 256;

/// A piece of data on the link, with the instant it was fully sent.
#[derive(Debug)]
enum Piece {
    Data {
        bytes: Vec<u8>,
        sent: Instant,
    },
    /// The source closed its side: pass the FIN on, in order.
    End {
        sent: Instant,
    },
}

impl Piece {
    fn sent(&self) -> Instant {
        match self {
            Piece::Data { sent, .. } | Piece::End { sent } => *sent,
        }
    }
}

/// An accepted connection, registered with the link until dropped (after its sockets are
/// closed: they are locals of the methods that consume it).
#[derive(Debug)]
pub(super) struct Connection<'a> {
    pub(super) shared: &'a Shared,
    pub(super) id: u64,
    pub(super) opened: Instant,
    pub(super) on_reset: oneshot::Receiver<()>,
}

impl Drop for Connection<'_> {
    fn drop(&mut self) {
        self.shared.close_connection(self.id);
    }
}

impl Connection<'_> {
    /// Forwards the client's connection to upstream, both ways, until both sides have closed,
    /// either fails, or the link resets it. A failure on one side is passed on as a RST.
    pub(super) async fn forward(mut self, client: std::net::TcpStream, upstream: SocketAddr) {
        let Some(client) = tokio_stream(client) else { return };
        let shared = self.shared;
        let opened = self.opened;
        let connect = async {
            // While cut, not even the SYN gets through.
            shared.wait_while_cut().await;
            let upstream = TcpStream::connect(upstream).await?;
            upstream.set_nodelay(true)?;
            Ok::<_, io::Error>(upstream)
        };
        let upstream = tokio::select! {
            connected = connect => connected.ok(),
            _ = &mut self.on_reset => None,
        };
        let Some(upstream) = upstream else {
            abort(&client);
            return;
        };
        let both_ways = async {
            tokio::try_join!(
                pipe(shared, Direction::Up, &client, &upstream, Some(opened)),
                pipe(shared, Direction::Down, &upstream, &client, None),
            )
        };
        let finished = tokio::select! {
            done = both_ways => done.is_ok(),
            _ = &mut self.on_reset => false,
        };
        if !finished {
            abort(&client);
            abort(&upstream);
        }
    }

    /// Holds the client's connection without ever answering: what it sends is read (while
    /// the link is not cut) and dropped, until the link resets it or stops.
    pub(super) async fn hold(mut self, client: std::net::TcpStream) {
        let Some(client) = tokio_stream(client) else { return };
        let shared = self.shared;
        let swallow = async {
            let mut buffer = vec![0; MAX_PIECE];
            while let Ok(n @ 1..) = read(shared, &client, &mut buffer).await {
                shared.lock().unanswered(n);
                shared.counted();
            }
            // The client closed its side or failed: a hung server still answers nothing.
            std::future::pending::<()>().await;
        };
        tokio::select! {
            () = swallow => {}
            _ = &mut self.on_reset => {}
        }
        abort(&client);
    }
}

fn tokio_stream(stream: std::net::TcpStream) -> Option<TcpStream> {
    stream.set_nonblocking(true).ok()?;
    stream.set_nodelay(true).ok()?;
    TcpStream::from_std(stream).ok()
}

/// One direction: the reader and the writer, joined by the delay line.
async fn pipe(
    shared: &Shared,
    direction: Direction,
    from: &TcpStream,
    to: &TcpStream,
    handshake_from: Option<Instant>,
) -> io::Result<()> {
    let (line, arrivals) = mpsc::channel(DELAY_LINE);
    tokio::try_join!(
        send(shared, direction, from, line, handshake_from),
        deliver(shared, direction, to, arrivals),
    )?;
    Ok(())
}

/// Reads from `from` and puts the data on the link as fast as its rate allows. Given the
/// instant the connection was accepted, it first waits a round trip, as the client would
/// have waited for the TCP handshake.
async fn send(
    shared: &Shared,
    direction: Direction,
    from: &TcpStream,
    line: mpsc::Sender<Piece>,
    handshake_from: Option<Instant>,
) -> io::Result<()> {
    if let Some(opened) = handshake_from {
        shared
            .wait(|s| {
                let done = opened + s.latency(Direction::Up) + s.latency(Direction::Down);
                if Instant::now() >= done { Wait::Ready(()) } else { Wait::Until(done) }
            })
            .await;
    }
    let mut buffer = vec![0; MAX_PIECE];
    loop {
        let size = shared.lock().piece_size(direction);
        let n = read(shared, from, &mut buffer[..size]).await?;
        if n == 0 {
            // Err only if the writer failed, and its error ends the connection.
            let _ = line.send(Piece::End { sent: Instant::now() }).await;
            return Ok(());
        }
        let sent = shared.lock().book(direction, n);
        tokio::time::sleep_until(sent.into()).await;
        if line.send(Piece::Data { bytes: buffer[..n].to_vec(), sent }).await.is_err() {
            return Ok(());
        }
    }
}

/// Delivers each piece to `to` once its latency has passed and the link is not cut.
async fn deliver(
    shared: &Shared,
    direction: Direction,
    to: &TcpStream,
    mut arrivals: mpsc::Receiver<Piece>,
) -> io::Result<()> {
    while let Some(piece) = arrivals.recv().await {
        let sent = piece.sent();
        shared
            .wait(|s| {
                let due = sent + s.latency(direction);
                match (s.cut, Instant::now() >= due) {
                    (true, _) => Wait::Change,
                    (false, true) => Wait::Ready(()),
                    (false, false) => Wait::Until(due),
                }
            })
            .await;
        match piece {
            Piece::Data { bytes, .. } => write_all(shared, direction, to, &bytes).await?,
            Piece::End { .. } => {
                shared.wait_while_cut().await;
                return SockRef::from(to).shutdown(Shutdown::Write);
            }
        }
    }
    Ok(())
}

/// What a gated call found.
enum Gate {
    Cut,
    Done(io::Result<usize>),
}

/// Reads what `from` has, once the link is not cut.
async fn read(shared: &Shared, from: &TcpStream, buffer: &mut [u8]) -> io::Result<usize> {
    loop {
        shared.wait_while_cut().await;
        from.readable().await?;
        match gated(shared, |_| from.try_read(buffer)) {
            Gate::Cut => continue,
            Gate::Done(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Gate::Done(result) => return result,
        }
    }
}

/// Writes all of `bytes` to `to`, each part only while the link is not cut, and counts them.
async fn write_all(
    shared: &Shared,
    direction: Direction,
    to: &TcpStream,
    mut bytes: &[u8],
) -> io::Result<()> {
    while !bytes.is_empty() {
        shared.wait_while_cut().await;
        to.writable().await?;
        // Counted under the same lock, so that the counters are exact the moment a cut is.
        let written = gated(shared, |state| {
            let n = to.try_write(bytes)?;
            state.delivered(direction, n);
            Ok(n)
        });
        match written {
            Gate::Cut => continue,
            Gate::Done(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Gate::Done(Err(e)) => return Err(e),
            Gate::Done(Ok(n)) => {
                shared.counted();
                bytes = &bytes[n..];
            }
        }
    }
    Ok(())
}

/// Runs a non-blocking socket call under the link's lock, unless the link is cut.
fn gated(shared: &Shared, call: impl FnOnce(&mut State) -> io::Result<usize>) -> Gate {
    let mut state = shared.lock();
    if state.cut { Gate::Cut } else { Gate::Done(call(&mut state)) }
}
