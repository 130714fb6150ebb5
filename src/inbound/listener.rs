//! The TCP acceptor: poem's, plus `TCP_NODELAY` on every connection.
//!
//! Without it, a response written in several small pieces (SSE framing of legacy MCP sessions:
//! a priming event, then the message) waits for the client's delayed ACK under Nagle's
//! algorithm: about 40 ms added to every call (measured here: 44 ms per legacy `tools/call`).

use std::net::SocketAddr;

use poem::{
    http::uri::Scheme,
    listener::Acceptor,
    web::{LocalAddr, RemoteAddr},
};
use tokio::net::{TcpListener, TcpStream};

/// Accepts TCP connections with Nagle's algorithm off.
#[derive(Debug)]
pub struct NoDelayAcceptor {
    listener: TcpListener,
    local: LocalAddr,
}

impl NoDelayAcceptor {
    /// Binds `addr` (port 0 picks a free port).
    ///
    /// # Errors
    /// The bind error.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local = LocalAddr(listener.local_addr()?.into());
        Ok(Self { listener, local })
    }

    /// The bound address.
    ///
    /// # Errors
    /// When the socket has no address.
    pub fn socket_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl Acceptor for NoDelayAcceptor {
    type Io = TcpStream;

    fn local_addr(&self) -> Vec<LocalAddr> {
        vec![self.local.clone()]
    }

    async fn accept(&mut self) -> std::io::Result<(TcpStream, LocalAddr, RemoteAddr, Scheme)> {
        let (io, remote) = self.listener.accept().await?;
        // Best effort: a socket that refuses the option still serves, only slower.
        let _ = io.set_nodelay(true);
        Ok((
            io,
            self.local.clone(),
            RemoteAddr(remote.into()),
            Scheme::HTTP,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_have_nagle_off() {
        let mut acceptor = NoDelayAcceptor::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = acceptor.socket_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (io, _, remote, _) = acceptor.accept().await.unwrap();
        assert!(io.nodelay().unwrap());
        assert!(
            remote
                .as_socket_addr()
                .is_some_and(|a| a.ip().is_loopback())
        );
    }
}
