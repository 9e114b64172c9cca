//! The shaping proxy (`eenplan_tests::link`) checked against real sockets: an echo server, a
//! data source and sink, and the real `eenplan-server`. Rates and latencies are measured on
//! the wall clock; everything else synchronises on the link's answers and on data.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use eenplan_tests::link::{Admission, Direction, Link};
use eenplan_tests::network::Server;

/// How long a check that nothing arrives watches (a bounded observation, not a synchronisation).
const QUIET: Duration = Duration::from_millis(300);
/// Sockets in these tests give up after this, so that a broken link fails a test, never hangs it.
const PATIENCE: Duration = Duration::from_secs(10);
/// Timers on a shared two-core machine wake late; a latency may come out this much longer.
const LATE: Duration = Duration::from_millis(60);

// --- upstream servers ----------------------------------------------------------------------

/// A test upstream: accepts connections on a thread each, counts them, and records how each
/// ended (`None`: a clean end of stream; `Some(kind)`: an error).
struct Upstream {
    address: SocketAddr,
    connections: Arc<AtomicUsize>,
    endings: mpsc::Receiver<Option<ErrorKind>>,
}

impl Upstream {
    fn start(serve: impl Fn(TcpStream) -> std::io::Result<()> + Send + Sync + 'static) -> Upstream {
        let serve = Arc::new(serve);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let (ended, endings) = mpsc::channel();
        let count = Arc::clone(&connections);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let (ended, serve) = (ended.clone(), Arc::clone(&serve));
                std::thread::spawn(move || {
                    let _ = ended.send(serve(stream).err().map(|e| e.kind()));
                });
            }
        });
        Upstream { address, connections, endings }
    }

    fn echo() -> Upstream {
        Upstream::start(|mut stream| {
            let mut reader = stream.try_clone()?;
            std::io::copy(&mut reader, &mut stream)?;
            stream.shutdown(Shutdown::Write)
        })
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn connect(link: &Link) -> TcpStream {
    let stream = TcpStream::connect(link.address()).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.set_write_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Sends one byte and waits for its echo; the time it took.
fn ping(stream: &mut TcpStream) -> Duration {
    let start = Instant::now();
    stream.write_all(b"p").unwrap();
    let mut byte = [0];
    stream.read_exact(&mut byte).unwrap();
    assert_eq!(&byte, b"p");
    start.elapsed()
}

/// Whether nothing at all arrives on `stream` for [`QUIET`].
fn stays_quiet(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(QUIET)).unwrap();
    let mut byte = [0];
    let quiet = matches!(stream.read(&mut byte), Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut));
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    quiet
}

/// Byte `i` of a stream whose order a reader can check.
fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

fn patterned(len: usize) -> Vec<u8> {
    (0..len).map(pattern).collect()
}

/// Writes `data` to `stream` on a thread, then closes the writing side.
fn write_in_background(stream: &TcpStream, data: Vec<u8>) -> std::thread::JoinHandle<()> {
    let mut writer = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        for chunk in data.chunks(4096) {
            writer.write_all(chunk).unwrap();
        }
        writer.shutdown(Shutdown::Write).unwrap();
    })
}

fn assert_within(measured: f64, expected: f64, tolerance: f64, what: &str) {
    let ratio = measured / expected;
    assert!(
        (1.0 - tolerance..=1.0 + tolerance).contains(&ratio),
        "{what}: measured {measured:.0}, expected {expected:.0} (±{:.0} %)",
        tolerance * 100.0
    );
}

// --- pass-through and ordering ---------------------------------------------------------------

#[test]
fn an_unshaped_link_carries_every_byte_both_ways_and_passes_a_close_on() {
    let upstream = Upstream::echo();
    let link = Link::start(upstream.address).unwrap();
    let mut stream = connect(&link);
    let data = patterned(1 << 20);
    let writer = write_in_background(&stream, data.clone());
    let mut echoed = Vec::new();
    stream.read_to_end(&mut echoed).unwrap();
    writer.join().unwrap();
    assert!(echoed == data, "the echo differs from what was sent");
    let stats = link.wait_until(PATIENCE, |s| s.connections_open == 0).expect("the connection closes");
    assert_eq!((stats.bytes_up, stats.bytes_down), (1 << 20, 1 << 20));
    assert_eq!(stats.connections_accepted, 1);
    assert_eq!(upstream.endings.recv_timeout(PATIENCE).unwrap(), None, "upstream saw a clean close");
}

#[test]
fn changing_the_latency_mid_stream_keeps_every_byte_in_order() {
    let upstream = Upstream::echo();
    let link = Link::start(upstream.address).unwrap();
    link.set_rate(Some(400_000));
    let mut stream = connect(&link);
    let data = patterned(300_000);
    let writer = write_in_background(&stream, data.clone());
    let mut echoed = vec![0; data.len()];
    let mut got = 0;
    for (step, latency) in [80, 0, 120, 5, 0].into_iter().enumerate() {
        // Each change comes when a further fifth of the data has come back.
        let until = data.len() * (step + 1) / 6;
        while got < until {
            got += stream.read(&mut echoed[got..until]).unwrap();
        }
        link.set_latency(Duration::from_millis(latency));
    }
    stream.read_exact(&mut echoed[got..]).unwrap();
    writer.join().unwrap();
    let first_wrong = echoed.iter().zip(&data).position(|(a, b)| a != b);
    assert_eq!(first_wrong, None, "bytes were lost or reordered");
}

// --- rate -------------------------------------------------------------------------------------

/// Bytes per second at which `len` bytes arrived, from the first byte to the last.
fn arrival_rate(stream: &mut TcpStream, len: usize) -> f64 {
    let mut buffer = vec![0; len];
    let mut got = stream.read(&mut buffer).unwrap();
    let (first, start) = (got, Instant::now());
    while got < len {
        let n = stream.read(&mut buffer[got..]).unwrap();
        assert!(n > 0, "the stream ended after {got} of {len} bytes");
        got += n;
    }
    (len - first) as f64 / start.elapsed().as_secs_f64()
}

#[test]
fn a_rate_cap_of_256_kbit_per_second_carries_32_kb_per_second_downstream() {
    let upstream = Upstream::start(|mut stream| {
        stream.write_all(&patterned(40_000))?;
        stream.shutdown(Shutdown::Write)
    });
    let link = Link::start(upstream.address).unwrap();
    link.shape(Duration::ZERO, 256_000);
    let mut stream = connect(&link);
    let rate = arrival_rate(&mut stream, 40_000);
    assert_within(rate, 32_000.0, 0.15, "bytes per second downstream");
}

#[test]
fn a_rate_cap_upstream_holds_within_fifteen_percent_while_downstream_is_free() {
    // The sink answers, once it has everything, the rate it received at.
    let upstream = Upstream::start(|mut stream| {
        let mut first = [0; 1];
        stream.read_exact(&mut first)?;
        let start = Instant::now();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest)?;
        let rate = rest.len() as f64 / start.elapsed().as_secs_f64();
        stream.write_all(format!("{rate:.0}").as_bytes())?;
        stream.shutdown(Shutdown::Write)
    });
    let link = Link::start(upstream.address).unwrap();
    link.set_rate_in(Direction::Up, Some(48_000));
    let mut stream = connect(&link);
    stream.write_all(&patterned(60_000)).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert_within(answer.parse().unwrap(), 48_000.0, 0.15, "bytes per second upstream");
}

// --- latency ----------------------------------------------------------------------------------

#[test]
fn latency_delays_each_direction_by_its_own_amount_and_a_new_connection_by_a_handshake() {
    // The upstream notes when each byte arrives and echoes it at once.
    let (arrived, arrivals) = mpsc::channel::<Instant>();
    let upstream = Upstream::start(move |mut stream| {
        let mut byte = [0];
        while stream.read(&mut byte)? == 1 {
            let _ = arrived.send(Instant::now());
            stream.write_all(&byte)?;
        }
        Ok(())
    });
    let link = Link::start(upstream.address).unwrap();
    let (up, down) = (Duration::from_millis(120), Duration::from_millis(40));
    link.set_latency_in(Direction::Up, up);
    link.set_latency_in(Direction::Down, down);

    let opened = Instant::now();
    let mut stream = connect(&link);
    ping(&mut stream);
    let first = arrivals.recv().unwrap() - opened;
    let handshake_and_up = up + down + up;
    assert!(
        first >= handshake_and_up && first < handshake_and_up + LATE,
        "the first byte of a new connection arrived after {first:?}, not {handshake_and_up:?}"
    );
    for _ in 0..3 {
        let sent = Instant::now();
        let round_trip = ping(&mut stream);
        let one_way = arrivals.recv().unwrap() - sent;
        assert!(one_way >= up && one_way < up + LATE, "upstream after {one_way:?}, not {up:?}");
        let back = round_trip - one_way;
        assert!(back >= down && back < down + LATE, "back after {back:?}, not {down:?}");
    }
}

#[test]
fn latency_is_a_delay_line_that_does_not_cap_throughput() {
    const LEN: usize = 4 << 20;
    let upstream = Upstream::start(|mut stream| {
        stream.write_all(&vec![7; LEN])?;
        stream.shutdown(Shutdown::Write)
    });
    let link = Link::start(upstream.address).unwrap();
    link.set_latency(Duration::from_millis(100));
    let start = Instant::now();
    let mut stream = connect(&link);
    let mut got = Vec::new();
    stream.read_to_end(&mut got).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(got.len(), LEN);
    // A handshake (200 ms) and one way (100 ms) at least; a sleep of 100 ms per 16 KiB read
    // would take 26 s. (Unloaded it takes about 0.5 s; the bound leaves room for a busy machine.)
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "4 MiB took {elapsed:?} behind 100 ms of latency");
}

// --- cut and restore --------------------------------------------------------------------------

#[test]
fn a_cut_stops_every_byte_and_a_restore_delivers_the_rest_without_loss_or_reordering() {
    let upstream = Upstream::echo();
    let link = Link::start(upstream.address).unwrap();
    link.set_rate(Some(200_000));
    let mut stream = connect(&link);
    let data = patterned(400_000);
    let writer = write_in_background(&stream, data.clone());
    let mut echoed = vec![0; data.len()];
    let mut got = 0;
    while got < 30_000 {
        got += stream.read(&mut echoed[got..]).unwrap();
    }

    link.cut();
    let frozen = link.stats();
    // What was delivered before the cut arrives; not a byte more, for a while.
    let delivered = frozen.bytes_down as usize;
    stream.read_exact(&mut echoed[got..delivered]).unwrap();
    got = delivered;
    assert!(stays_quiet(&mut stream), "bytes arrived through a cut link");
    // A new connection opens but carries nothing either.
    let mut late = connect(&link);
    late.write_all(b"hallo").unwrap();
    assert!(stays_quiet(&mut late), "a connection made during the cut carried bytes");
    let after = link.stats();
    assert_eq!((after.bytes_up, after.bytes_down), (frozen.bytes_up, frozen.bytes_down));
    assert_eq!(upstream.connections(), 1, "the connection made during the cut reached upstream");

    link.restore();
    link.set_rate(None);
    stream.read_exact(&mut echoed[got..]).unwrap();
    writer.join().unwrap();
    let first_wrong = echoed.iter().zip(&data).position(|(a, b)| a != b);
    assert_eq!(first_wrong, None, "bytes were lost or reordered across the cut");
    let mut hallo = [0; 5];
    late.read_exact(&mut hallo).unwrap();
    assert_eq!(&hallo, b"hallo");
}

// --- reset ------------------------------------------------------------------------------------

#[test]
fn a_reset_closes_every_open_connection_with_a_rst_on_both_sides() {
    let upstream = Upstream::echo();
    let link = Link::start(upstream.address).unwrap();
    let mut a = connect(&link);
    let mut b = connect(&link);
    ping(&mut a);
    ping(&mut b);
    link.reset();
    assert_eq!(link.stats().connections_open, 0);
    for stream in [&mut a, &mut b] {
        let mut byte = [0];
        let read = stream.read(&mut byte);
        assert!(
            matches!(&read, Err(e) if e.kind() == ErrorKind::ConnectionReset),
            "the client saw {read:?}, not a reset"
        );
    }
    for _ in 0..2 {
        let ending = upstream.endings.recv_timeout(PATIENCE).unwrap();
        assert_eq!(ending, Some(ErrorKind::ConnectionReset), "upstream saw no reset");
    }
    // The link itself carries on.
    ping(&mut connect(&link));
}

// --- admission --------------------------------------------------------------------------------

#[test]
fn refuse_makes_connects_fail_as_refused_and_accept_admits_them_again() {
    let upstream = Upstream::echo();
    let link = Link::start(upstream.address).unwrap();
    let mut open = connect(&link);
    ping(&mut open);
    link.admit(Admission::Refuse).unwrap();
    let refused = TcpStream::connect(link.address()).map(drop);
    assert!(
        matches!(&refused, Err(e) if e.kind() == ErrorKind::ConnectionRefused),
        "a connect got {refused:?}"
    );
    ping(&mut open);
    link.admit(Admission::Accept).unwrap();
    ping(&mut connect(&link));
    assert_eq!(link.stats().connections_accepted, 2);
}

#[test]
fn drop_leaves_connection_attempts_unanswered_until_accept() {
    let upstream = Upstream::echo();
    let link = Link::start(upstream.address).unwrap();
    link.admit(Admission::Drop).unwrap();
    let attempt = TcpStream::connect_timeout(&link.address(), QUIET).map(drop);
    assert!(
        matches!(&attempt, Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock)),
        "a connect got {attempt:?}, not a timeout"
    );
    link.admit(Admission::Refuse).unwrap();
    let refused = TcpStream::connect(link.address()).map(drop);
    assert!(matches!(&refused, Err(e) if e.kind() == ErrorKind::ConnectionRefused), "{refused:?}");
    link.admit(Admission::Drop).unwrap();
    assert!(TcpStream::connect_timeout(&link.address(), QUIET).is_err());
    link.admit(Admission::Accept).unwrap();
    ping(&mut connect(&link));
    assert_eq!(link.stats().connections_accepted, 1, "the link's own filler counted as a connection");
    assert_eq!(upstream.connections(), 1);
}

#[test]
fn unanswered_connections_are_read_but_never_answered_nor_forwarded() {
    let upstream = Upstream::echo();
    let link = Link::start(upstream.address).unwrap();
    link.admit(Admission::Unanswered).unwrap();
    let mut stream = connect(&link);
    stream.write_all(&[1; 100]).unwrap();
    link.wait_until(PATIENCE, |s| s.bytes_unanswered == 100).expect("the link read what was sent");
    assert!(stays_quiet(&mut stream), "an unanswered connection was answered");
    assert_eq!(upstream.connections(), 0, "upstream was contacted");
    link.reset();
    let mut byte = [0];
    assert!(matches!(stream.read(&mut byte), Err(e) if e.kind() == ErrorKind::ConnectionReset));
    link.admit(Admission::Accept).unwrap();
    ping(&mut connect(&link));
}

// --- peers that fail ---------------------------------------------------------------------------

#[test]
fn an_upstream_that_is_down_or_resets_is_passed_on_as_a_reset_and_the_link_carries_on() {
    // Upstream down: a port nobody listens on.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let link = Link::start(dead).unwrap();
    let mut stream = connect(&link);
    let mut byte = [0];
    assert!(matches!(stream.read(&mut byte), Err(e) if e.kind() == ErrorKind::ConnectionReset));
    link.wait_until(PATIENCE, |s| s.connections_open == 0).expect("the connection is closed");
    drop(link);

    // Upstream resets mid-stream.
    let upstream = Upstream::start(|stream| {
        let mut byte = [0];
        (&stream).read_exact(&mut byte)?;
        socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
        Ok(())
    });
    let link = Link::start(upstream.address).unwrap();
    let mut stream = connect(&link);
    stream.write_all(b"x").unwrap();
    assert!(matches!(stream.read(&mut byte), Err(e) if e.kind() == ErrorKind::ConnectionReset));
    // A client that resets its side: the link closes the upstream side too.
    let client = connect(&link);
    socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO)).unwrap();
    drop(client);
    // Accepted first (the reset may reach the link before it accepts), then closed.
    link.wait_until(PATIENCE, |s| s.connections_accepted == 2 && s.connections_open == 0)
        .expect("both connections are accepted and closed");
}

#[test]
fn dropping_the_link_closes_its_connections() {
    let upstream = Upstream::echo();
    let link = Link::start(upstream.address).unwrap();
    let mut stream = connect(&link);
    ping(&mut stream);
    drop(link);
    let mut byte = [0];
    assert!(matches!(stream.read(&mut byte), Ok(0) | Err(_)));
    assert!(TcpStream::connect(stream.peer_addr().unwrap()).is_err(), "the link still listens");
}

// --- a real HTTP server -------------------------------------------------------------------------

#[test]
fn a_request_to_the_real_server_pays_the_links_round_trips_and_waits_out_a_cut() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"));
    let link = Link::start(server.address()).unwrap();
    link.set_latency(Duration::from_millis(100));
    let request = format!("GET /healthz HTTP/1.0\r\nHost: {}\r\n\r\n", server.address());

    let start = Instant::now();
    let mut stream = connect(&link);
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let elapsed = start.elapsed();
    assert!(answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Handshake, request, answer: two round trips of 200 ms.
    assert!(elapsed >= Duration::from_millis(400) && elapsed < Duration::from_millis(400) + 3 * LATE);

    // Unshaped from here, so that only the cut can keep the answer away.
    link.set_latency(Duration::ZERO);
    link.cut();
    let mut stream = connect(&link);
    stream.write_all(request.as_bytes()).unwrap();
    assert!(stays_quiet(&mut stream), "the server answered through a cut link");
    link.restore();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.contains(" 200 "), "{answer}");
}

// --- the binary ---------------------------------------------------------------------------------

#[test]
fn the_link_proxy_binary_answers_each_command_once_it_is_in_effect() {
    let upstream = Upstream::echo();
    let mut child = Command::new(env!("CARGO_BIN_EXE_link_proxy"))
        .args(["--upstream", &upstream.address.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let address: SocketAddr = line.trim().strip_prefix("listening on ").expect(&line).parse().unwrap();
    let mut command = |text: &str| -> String {
        writeln!(stdin, "{text}").unwrap();
        let mut answer = String::new();
        stdout.read_line(&mut answer).unwrap();
        answer.trim().to_owned()
    };
    let connect = || {
        let stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream
    };

    assert_eq!(command("latency 50"), "ok");
    let mut stream = connect();
    ping(&mut stream);
    let round_trip = ping(&mut stream);
    assert!(round_trip >= Duration::from_millis(100) && round_trip < Duration::from_millis(100) + LATE);
    assert_eq!(command("latency 0"), "ok");
    assert_eq!(command("rate 256kbit"), "ok");
    assert_eq!(command("rate off"), "ok");
    assert_eq!(command("stats"), "ok up=2 down=2 accepted=1 open=1 unanswered=0");
    assert!(command("latency sideways 5").starts_with("error "));
    assert!(command("netem delay 100ms").starts_with("error unknown command"));

    assert_eq!(command("cut"), "ok");
    stream.write_all(b"c").unwrap();
    assert!(stays_quiet(&mut stream));
    assert_eq!(command("restore"), "ok");
    let mut byte = [0];
    stream.read_exact(&mut byte).unwrap();
    assert_eq!(&byte, b"c");

    assert_eq!(command("refuse"), "ok");
    assert_eq!(
        TcpStream::connect(address).map(drop).map_err(|e| e.kind()),
        Err(ErrorKind::ConnectionRefused)
    );
    assert_eq!(command("accept"), "ok");
    assert_eq!(command("unanswered"), "ok");
    let mut hung = connect();
    hung.write_all(b"?").unwrap();
    assert!(stays_quiet(&mut hung));
    assert_eq!(command("reset"), "ok");
    assert!(matches!(stream.read(&mut byte), Err(e) if e.kind() == ErrorKind::ConnectionReset));
    assert!(matches!(hung.read(&mut byte), Err(e) if e.kind() == ErrorKind::ConnectionReset));
    assert_eq!(command("stats"), "ok up=3 down=3 accepted=2 open=0 unanswered=1");

    // The end of stdin stops it.
    drop(stdin);
    let (exited, exit) = mpsc::channel();
    std::thread::spawn(move || exited.send(child.wait()));
    let status = exit.recv_timeout(PATIENCE).expect("link_proxy exits at the end of stdin").unwrap();
    assert!(status.success());
    assert!(TcpStream::connect(address).is_err(), "it still listens");
}
