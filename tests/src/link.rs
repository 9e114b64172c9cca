//! A shaping TCP proxy for tests: a phone's bad link, on loopback.
//!
//! This machine's kernel has no `sch_netem`, so `tc netem` cannot shape traffic. Instead a
//! test points a device at a [`Link`], which listens on loopback and forwards every
//! connection to one upstream address (the server), shaped by settings the test changes at
//! any time; a change applies to open connections too.
//!
//! - **Latency**, one way, per direction (a 400 ms round trip is 200 ms each way). Every piece
//!   of data waits in a delay line until its due time, in order, so latency does not cap
//!   throughput. A new connection's first bytes leave one round trip after it was accepted,
//!   as if the client had waited for the TCP handshake (its `connect()` itself returns at
//!   once).
//! - **Rate**, bytes per second, per direction, shared by all connections (one radio link):
//!   data leaves as the serialisation of a link of that rate allows, then travels for the
//!   latency. A link that was idle starts afresh (no saved-up burst). A change applies from
//!   the next piece, at most 20 ms of link time later.
//! - **Cut** and **restore**: while cut, no byte moves in either direction on any
//!   connection; connections stay open and new ones are accepted but carry nothing (a phone
//!   that lost its signal). After a restore, what was buffered continues, in order.
//! - **Reset**: every open connection is closed at once with a TCP RST, both sides.
//! - **Admission** of new connections ([`Admission`]): accept and forward, refuse (the
//!   client's `connect()` fails with "connection refused": a server that is down), drop
//!   (connection attempts are never answered: a host that is gone), or unanswered (the
//!   connection opens, what the client sends is read and dropped, nothing comes back: a
//!   server that hangs).
//! - **Counters** of the payload bytes delivered each way ([`Stats`]).
//!
//! Every control returns once the change is in effect: after [`Link::cut`] returns, the
//! counters are frozen and no further byte is delivered. Tests synchronise on that and on
//! [`Link::wait_until`], never on sleeps.
//!
//! The `link_proxy` binary offers the same through stdin, for the Python and Kotlin stories
//! ([`Command`] is its command language).

mod command;
mod listener;
mod relay;
mod state;

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

pub use command::{Admission, Answer, Command, CommandError, Direction};
pub use state::Stats;

use state::Shared;

/// A shaping proxy on loopback, forwarding to one upstream address. Stops when dropped: the
/// listener closes and every connection with it.
#[derive(Debug)]
pub struct Link {
    address: SocketAddr,
    shared: Arc<Shared>,
    listener: Arc<TcpListener>,
    /// Serialises changes of admission, which reconfigure the listening socket.
    admission: Mutex<()>,
    acceptor: Option<JoinHandle<()>>,
    runtime: Option<JoinHandle<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Link {
    /// Starts a link on a free loopback port, forwarding to `upstream`, unshaped.
    pub fn start(upstream: impl ToSocketAddrs) -> io::Result<Link> {
        Link::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), upstream)
    }

    /// Starts a link listening on `listen` (port 0: a free port), forwarding to `upstream`.
    pub fn start_on(listen: SocketAddr, upstream: impl ToSocketAddrs) -> io::Result<Link> {
        let upstream = upstream.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "the upstream address resolves to nothing")
        })?;
        let listener = Arc::new(listener::bind(listen)?);
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared::new());
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = std::thread::Builder::new().name("link-relay".into()).spawn(move || {
            // Returns when the link is dropped; dropping the runtime then closes every socket.
            let _ = runtime.block_on(stopped);
        })?;
        let acceptor = {
            let (shared, listener) = (Arc::clone(&shared), Arc::clone(&listener));
            std::thread::Builder::new()
                .name("link-accept".into())
                .spawn(move || listener::accept_loop(&shared, &listener, &handle, upstream))?
        };
        Ok(Link {
            address,
            shared,
            listener,
            admission: Mutex::new(()),
            acceptor: Some(acceptor),
            runtime: Some(runtime),
            stop: Some(stop),
        })
    }

    /// The address clients connect to.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://` and the address: the server URL a device behind this link enrols with.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Adds `one_way` of latency in each direction (the round trip grows by twice that).
    pub fn set_latency(&self, one_way: Duration) {
        self.shared.set_latency(None, one_way);
    }

    /// Adds `one_way` of latency in one direction.
    pub fn set_latency_in(&self, direction: Direction, one_way: Duration) {
        self.shared.set_latency(Some(direction), one_way);
    }

    /// Caps both directions at `bytes_per_second` each (`None`: no cap).
    pub fn set_rate(&self, bytes_per_second: Option<u64>) {
        self.shared.set_rate(None, bytes_per_second);
    }

    /// Caps one direction at `bytes_per_second` (`None`: no cap).
    pub fn set_rate_in(&self, direction: Direction, bytes_per_second: Option<u64>) {
        self.shared.set_rate(Some(direction), bytes_per_second);
    }

    /// Latency and rate for a phone link: `round_trip` split evenly, `bits_per_second` in
    /// each direction (256 kbit/s is 32,000 bytes of payload per second).
    pub fn shape(&self, round_trip: Duration, bits_per_second: u64) {
        self.set_latency(round_trip / 2);
        self.set_rate(Some(bits_per_second / 8));
    }

    /// The link goes dead: from the return of this call no byte moves on any connection,
    /// open or new, until [`Link::restore`].
    pub fn cut(&self) {
        self.shared.set_cut(true);
    }

    /// Bytes move again; what was buffered during the cut continues, in order.
    pub fn restore(&self) {
        self.shared.set_cut(false);
    }

    /// Closes every open connection with a TCP RST, both to the client and to upstream, and
    /// returns when they are closed.
    pub fn reset(&self) {
        self.shared.reset_all();
    }

    /// How new connections are met from now on; open connections are not affected.
    pub fn admit(&self, admission: Admission) -> io::Result<()> {
        let _serial = self.admission.lock().unwrap_or_else(PoisonError::into_inner);
        listener::set_admission(&self.shared, &self.listener, admission)
    }

    /// Bytes delivered each way and connections seen, so far.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Waits until `condition` holds for the counters, at most `timeout`; the counters that
    /// satisfied it, or `None` on timeout.
    pub fn wait_until(&self, timeout: Duration, condition: impl FnMut(&Stats) -> bool) -> Option<Stats> {
        self.shared.wait_for_stats(timeout, condition)
    }

    /// Carries out one command of the `link_proxy` language.
    pub fn apply(&self, command: Command) -> io::Result<Answer> {
        match command {
            Command::Latency { direction, one_way } => self.shared.set_latency(direction, one_way),
            Command::Rate { direction, bytes_per_second } => {
                self.shared.set_rate(direction, bytes_per_second)
            }
            Command::Cut => self.cut(),
            Command::Restore => self.restore(),
            Command::Reset => self.reset(),
            Command::Admit(admission) => self.admit(admission)?,
            Command::Stats => return Ok(Answer::Stats(self.stats())),
        }
        Ok(Answer::Done)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        listener::stop(&self.shared, &self.listener);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            let _ = runtime.join();
        }
    }
}
