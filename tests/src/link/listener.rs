//! The link's listening socket and how it meets new connections.
//!
//! Refusing and dropping are done by the kernel, so that a client sees exactly what it would
//! see on a real network: to refuse, the listening socket is shut down (Linux then answers a
//! SYN with RST, "connection refused", while the socket keeps its port); to drop, it listens
//! again with a backlog of one that the link fills with a connection of its own, so the
//! kernel drops every other SYN. Accepting is a blocking `accept()` on a thread of its own,
//! which a shutdown wakes.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::runtime::Handle;

use super::command::Admission;
use super::relay;
use super::state::Shared;

const BACKLOG: i32 = 1024;
/// How long the link waits for its own filler connection while it starts dropping SYNs.
const FILLER_CONNECT: Duration = Duration::from_secs(1);
/// A pause before retrying an `accept()` that failed while listening (a full file table, a
/// connection aborted before it was accepted), so that a lasting error does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

/// A listening socket on `address`, its port bound by number. Linux gives a port it picked
/// itself back to the pool when the socket is shut down (`refuse`), so for port 0 a
/// placeholder socket first takes a free port, and the listener binds that port by number.
pub(super) fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = || -> io::Result<Socket> {
        let socket = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        Ok(socket)
    };
    let placeholder = match address.port() {
        0 => {
            let placeholder = socket()?;
            placeholder.bind(&address.into())?;
            Some(placeholder)
        }
        _ => None,
    };
    let address = match &placeholder {
        Some(p) => p.local_addr()?.as_socket().ok_or_else(|| io::Error::other("not an IP socket"))?,
        None => address,
    };
    let listener = socket()?;
    listener.bind(&address.into())?;
    drop(placeholder);
    listener.listen(BACKLOG)?;
    Ok(listener.into())
}

/// Accepts connections until the link stops, meeting each as the admission says.
pub(super) fn accept_loop(
    shared: &Arc<Shared>,
    listener: &TcpListener,
    runtime: &Handle,
    upstream: SocketAddr,
) {
    loop {
        // Not listening (refusing, or dropping with a full backlog that must stay full):
        // wait for the admission to change.
        let mut state = shared.lock();
        while !state.stopping && !state.admission.listens() {
            state = shared.wait_for_admission(state, None);
        }
        if state.stopping {
            return;
        }
        drop(state);
        let accepted = listener.accept();
        let mut state = shared.lock();
        if state.stopping {
            return;
        }
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            // Woken by a change of admission, or a passing error (a full file table, a
            // connection aborted before it was accepted): look again, after a pause if the
            // admission is unchanged, so that a lasting error does not spin.
            Err(_) => {
                let timeout = state.admission.listens().then_some(ACCEPT_RETRY);
                drop(shared.wait_for_admission(state, timeout));
                continue;
            }
        };
        let admission = state.admission;
        if state.filler.as_ref().and_then(|f| f.local_addr().ok()) == Some(peer) {
            // The link's own filler: done with, unless SYNs are to be dropped still (this
            // thread raced a change to `drop`), when the backlog must be filled again.
            state.filler = None;
            drop(state);
            if admission == Admission::Drop {
                let filler =
                    listener.local_addr().and_then(|a| TcpStream::connect_timeout(&a, FILLER_CONNECT)).ok();
                shared.change(|s| s.filler = filler);
            }
            continue;
        }
        if !admission.listens() {
            // Accepted just before the admission changed: met as it says now.
            drop(state);
            abort(&stream);
            continue;
        }
        let (id, on_reset) = state.open_connection();
        drop(state);
        shared.counted();
        let shared = Arc::clone(shared);
        let opened = Instant::now();
        runtime.spawn(async move {
            let connection = relay::Connection { shared: &shared, id, opened, on_reset };
            match admission {
                Admission::Unanswered => connection.hold(stream).await,
                _ => connection.forward(stream, upstream).await,
            }
        });
    }
}

/// Changes how new connections are met; returns once the kernel does so.
pub(super) fn set_admission(shared: &Shared, listener: &TcpListener, admission: Admission) -> io::Result<()> {
    let socket = SockRef::from(listener);
    let before = shared.lock().admission;
    if before == admission {
        return Ok(());
    }
    match admission {
        Admission::Accept | Admission::Unanswered => {
            if !before.listens() {
                socket.listen(BACKLOG)?;
            }
            shared.change(|s| s.admission = admission);
        }
        Admission::Refuse => {
            // First the mode, so that the accept thread, woken by the shutdown, waits.
            let filler = shared.change(|s| {
                s.admission = admission;
                s.filler.take()
            });
            socket.shutdown(Shutdown::Both)?;
            drop(filler);
        }
        Admission::Drop => {
            let filler = shared.change(|s| {
                s.admission = admission;
                s.filler.take()
            });
            if before != Admission::Refuse {
                socket.shutdown(Shutdown::Both)?;
            }
            drop(filler);
            socket.listen(0)?;
            // If a client's SYN took the one place first, that client waits in the backlog
            // and every later SYN is dropped all the same.
            let filler = TcpStream::connect_timeout(&listener.local_addr()?, FILLER_CONNECT).ok();
            shared.change(|s| s.filler = filler);
        }
    }
    Ok(())
}

/// Stops accepting for good: the accept thread wakes and ends.
pub(super) fn stop(shared: &Shared, listener: &TcpListener) {
    shared.change(|s| {
        s.stopping = true;
        s.filler = None;
    });
    let _ = SockRef::from(listener).shutdown(Shutdown::Both);
}

/// Closes a connection with a RST instead of a FIN.
pub(super) fn abort(stream: &impl std::os::fd::AsFd) {
    let _ = SockRef::from(stream).set_linger(Some(Duration::ZERO));
}
