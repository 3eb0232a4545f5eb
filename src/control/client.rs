//! The one control client, shared by the CLI and the TUI (blocking; the TUI reads events on
//! a thread of its own).

use super::{Event, PROTOCOL_VERSION, Request, Response};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no daemon is running for this node (no answer on {0})")]
    NotRunning(PathBuf),
    #[error("control socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("the daemon sent something unexpected: {0}")]
    Protocol(String),
    #[error("{message}")]
    Daemon {
        kind: super::ErrorKind,
        message: String,
    },
}

/// How long a client waits for the daemon's answer to a request whose work does not grow
/// with the chain.
pub const ANSWER_WAIT: Duration = Duration::from_secs(120);

pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connects and shakes hands; `NotRunning` when nothing answers on the socket.
    pub fn connect(socket: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                ClientError::NotRunning(socket.to_path_buf())
            }
            _ => ClientError::Io(e),
        })?;
        stream.set_read_timeout(Some(ANSWER_WAIT))?;
        let writer = stream.try_clone()?;
        let mut c = Self {
            reader: BufReader::new(stream),
            writer,
        };
        c.call(&Request::Hello(super::ask::Hello {
            version: PROTOCOL_VERSION,
        }))?;
        Ok(c)
    }

    fn send(&mut self, req: &Request) -> Result<(), ClientError> {
        let mut line = serde_json::to_vec(req).expect("requests serialize");
        line.push(b'\n');
        self.writer.write_all(&line)?;
        Ok(())
    }

    fn read_line(&mut self) -> Result<String, ClientError> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(ClientError::Protocol(
                "the daemon closed the connection".into(),
            ));
        }
        Ok(line)
    }

    /// Asks the daemon `a` and reads the answer as the type the daemon built it from.
    #[cfg(feature = "node")]
    pub fn ask<A: super::Ask>(&mut self, a: A) -> Result<A::Answer, ClientError> {
        let req = a.into();
        let v = self.call(&req)?;
        serde_json::from_value(v).map_err(|e| ClientError::Protocol(format!("{req:?}: {e}")))
    }

    /// The node's status ([`super::ask::Status`]).
    #[cfg(feature = "node")]
    pub fn status(&mut self) -> Result<crate::views::Status, ClientError> {
        self.ask(super::ask::Status {})
    }

    /// Sends a request and returns the daemon's answer: within [`ANSWER_WAIT`], or — for a
    /// request whose work grows with the chain ([`Request::grows_with_chain`]: a full verify
    /// of a million records takes minutes) — whenever it comes (a daemon that dies closes
    /// the connection, which ends the wait).
    pub fn call(&mut self, req: &Request) -> Result<serde_json::Value, ClientError> {
        let long = req.grows_with_chain();
        if long {
            self.reader.get_ref().set_read_timeout(None)?;
        }
        self.send(req)?;
        let line = self.read_line();
        if long {
            self.reader.get_ref().set_read_timeout(Some(ANSWER_WAIT))?;
        }
        let line = line?;
        match serde_json::from_str::<Response>(&line)
            .map_err(|e| ClientError::Protocol(e.to_string()))?
        {
            Response::Ok { data } => Ok(data),
            Response::Error { kind, message } => Err(ClientError::Daemon { kind, message }),
        }
    }

    /// Turns this connection into a stream of events.
    pub fn subscribe(
        mut self,
    ) -> Result<impl Iterator<Item = Result<Event, ClientError>>, ClientError> {
        self.call(&Request::Subscribe(super::ask::Subscribe {}))?;
        self.reader.get_ref().set_read_timeout(None)?;
        Ok(std::iter::from_fn(move || match self.read_line() {
            Ok(line) => {
                Some(serde_json::from_str(&line).map_err(|e| ClientError::Protocol(e.to_string())))
            }
            Err(_) => None,
        }))
    }
}
