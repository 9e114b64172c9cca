//! The link's controls as one command language: what `link_proxy` reads on stdin, one command
//! per line, and what [`super::Link::apply`] carries out.
//!
//! ```text
//! latency MS               one-way latency added in each direction (round trip: 2 × MS)
//! latency up|down MS       ... in one direction (up: client to upstream)
//! rate BYTES|off           a cap per direction, in bytes per second ("256kbit" and
//! rate up|down BYTES|off     "2mbit" are understood too; "off": no cap)
//! cut                      no byte moves, in either direction, on any connection
//! restore                  bytes move again; what was buffered continues
//! reset                    close every open connection with a TCP RST
//! accept                   new connections are forwarded (the default)
//! refuse                   new connections are refused (ECONNREFUSED: the server is down)
//! drop                     connection attempts are never answered (the host is gone)
//! unanswered               new connections open, are read, and never answered
//! stats                    the counters
//! ```
//!
//! Each command is answered with one line once it is in effect: `ok`, `ok` and the counters
//! (`ok up=BYTES down=BYTES accepted=N open=N unanswered=BYTES`), or `error` and why.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::state::Stats;

/// A direction of the link, seen from the client (the phone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client to upstream.
    Up,
    /// From upstream to the client.
    Down,
}

impl Direction {
    pub const BOTH: [Direction; 2] = [Direction::Up, Direction::Down];

    pub(super) fn index(self) -> usize {
        match self {
            Direction::Up => 0,
            Direction::Down => 1,
        }
    }
}

/// How the link meets new connections. Connections already open are not affected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Accepted and forwarded to upstream.
    Accept,
    /// Refused: the client's `connect()` fails at once with "connection refused", as when
    /// the server's machine answers but no server runs on it.
    Refuse,
    /// Dropped: connection attempts are never answered, so the client's `connect()` waits
    /// for its own timeout, as when the server's machine is gone or a firewall drops packets.
    Drop,
    /// Unanswered: the connection opens and what the client sends is read and dropped, but
    /// nothing ever comes back and upstream is never contacted: a server that hangs. Such
    /// connections stay open until [`super::Link::reset`] or the link stops.
    Unanswered,
}

impl Admission {
    /// Whether the link's socket listens (accepts connections) in this mode.
    pub(super) fn listens(self) -> bool {
        matches!(self, Admission::Accept | Admission::Unanswered)
    }
}

/// One control of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// One-way latency, in one direction or (`None`) in each.
    Latency {
        direction: Option<Direction>,
        one_way: Duration,
    },
    /// A rate cap in bytes per second (`None`: none), in one direction or in each.
    Rate {
        direction: Option<Direction>,
        bytes_per_second: Option<u64>,
    },
    Cut,
    Restore,
    Reset,
    Admit(Admission),
    Stats,
}

/// A line that is not a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("empty command")]
    Empty,
    #[error(
        "unknown command `{0}` (latency, rate, cut, restore, reset, accept, refuse, drop, unanswered, stats)"
    )]
    Unknown(String),
    #[error("`{0}` needs {1}")]
    Missing(&'static str, &'static str),
    #[error("`{0}` is not {1}")]
    Malformed(String, &'static str),
    #[error("`{0}` takes no more than {1}")]
    TooLong(&'static str, &'static str),
}

/// What a command answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Done,
    Stats(Stats),
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Done => write!(f, "ok"),
            Answer::Stats(s) => write!(
                f,
                "ok up={} down={} accepted={} open={} unanswered={}",
                s.bytes_up, s.bytes_down, s.connections_accepted, s.connections_open, s.bytes_unanswered
            ),
        }
    }
}

impl FromStr for Command {
    type Err = CommandError;

    fn from_str(line: &str) -> Result<Command, CommandError> {
        let mut words = line.split_whitespace();
        let name = words.next().ok_or(CommandError::Empty)?;
        let command = match name {
            "latency" => {
                let (direction, value) = direction_and_value(&mut words, "latency", "milliseconds")?;
                let ms = value.parse().map_err(|_| malformed(value, "a number of milliseconds"))?;
                Command::Latency { direction, one_way: Duration::from_millis(ms) }
            }
            "rate" => {
                let (direction, value) = direction_and_value(&mut words, "rate", "bytes per second or off")?;
                Command::Rate { direction, bytes_per_second: rate(value)? }
            }
            "cut" => Command::Cut,
            "restore" => Command::Restore,
            "reset" => Command::Reset,
            "accept" => Command::Admit(Admission::Accept),
            "refuse" => Command::Admit(Admission::Refuse),
            "drop" => Command::Admit(Admission::Drop),
            "unanswered" => Command::Admit(Admission::Unanswered),
            "stats" => Command::Stats,
            other => return Err(CommandError::Unknown(other.to_owned())),
        };
        match words.next() {
            None => Ok(command),
            Some(_) => Err(CommandError::TooLong(
                command_name(&command),
                "its arguments (a direction, up or down, and a value)",
            )),
        }
    }
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Latency { .. } => "latency",
        Command::Rate { .. } => "rate",
        Command::Cut => "cut",
        Command::Restore => "restore",
        Command::Reset => "reset",
        Command::Admit(Admission::Accept) => "accept",
        Command::Admit(Admission::Refuse) => "refuse",
        Command::Admit(Admission::Drop) => "drop",
        Command::Admit(Admission::Unanswered) => "unanswered",
        Command::Stats => "stats",
    }
}

/// `[up|down] VALUE`.
fn direction_and_value<'a>(
    words: &mut impl Iterator<Item = &'a str>,
    command: &'static str,
    what: &'static str,
) -> Result<(Option<Direction>, &'a str), CommandError> {
    let first = words.next().ok_or(CommandError::Missing(command, what))?;
    let direction = match first {
        "up" => Some(Direction::Up),
        "down" => Some(Direction::Down),
        value => return Ok((None, value)),
    };
    Ok((direction, words.next().ok_or(CommandError::Missing(command, what))?))
}

/// `off`, a number of bytes per second, or a number of kbit or mbit per second.
fn rate(value: &str) -> Result<Option<u64>, CommandError> {
    if value == "off" {
        return Ok(None);
    }
    let (digits, bytes_per_unit) = if let Some(kbit) = value.strip_suffix("kbit") {
        (kbit, 1_000 / 8)
    } else if let Some(mbit) = value.strip_suffix("mbit") {
        (mbit, 1_000_000 / 8)
    } else {
        (value, 1)
    };
    let n: u64 = digits.parse().map_err(|_| malformed(value, "a rate (bytes per second, 256kbit, off)"))?;
    match n.checked_mul(bytes_per_unit) {
        Some(rate) if rate > 0 => Ok(Some(rate)),
        _ => Err(malformed(value, "a positive rate that fits (use `off` for no cap)")),
    }
}

fn malformed(value: &str, what: &'static str) -> CommandError {
    CommandError::Malformed(value.to_owned(), what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_and_without_a_direction() {
        assert_eq!(
            "latency 200".parse(),
            Ok(Command::Latency { direction: None, one_way: Duration::from_millis(200) })
        );
        assert_eq!(
            "latency down 50".parse(),
            Ok(Command::Latency { direction: Some(Direction::Down), one_way: Duration::from_millis(50) })
        );
        assert_eq!(
            "rate 256kbit".parse(),
            Ok(Command::Rate { direction: None, bytes_per_second: Some(32_000) })
        );
        assert_eq!(
            "rate up off".parse(),
            Ok(Command::Rate { direction: Some(Direction::Up), bytes_per_second: None })
        );
        assert_eq!(
            "rate 2mbit".parse(),
            Ok(Command::Rate { direction: None, bytes_per_second: Some(250_000) })
        );
        assert_eq!("  drop ".parse(), Ok(Command::Admit(Admission::Drop)));
    }

    #[test]
    fn malformed_commands_are_typed_errors() {
        assert_eq!("".parse::<Command>(), Err(CommandError::Empty));
        assert!(matches!("latency".parse::<Command>(), Err(CommandError::Missing("latency", _))));
        assert!(matches!("latency up".parse::<Command>(), Err(CommandError::Missing("latency", _))));
        assert!(matches!("latency -5".parse::<Command>(), Err(CommandError::Malformed(..))));
        assert!(matches!("rate 0".parse::<Command>(), Err(CommandError::Malformed(..))));
        assert!(matches!(
            "rate 99999999999999999999kbit".parse::<Command>(),
            Err(CommandError::Malformed(..))
        ));
        assert!(matches!("cut now".parse::<Command>(), Err(CommandError::TooLong("cut", _))));
        assert!(matches!("netem".parse::<Command>(), Err(CommandError::Unknown(_))));
    }
}
