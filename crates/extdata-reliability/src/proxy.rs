//! [`FaultProxy`]: a loopback TCP proxy that delays, blackholes, resets or refuses
//! connections on command, placed between a client and a real server.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What the proxy does to the traffic of every connection, open or new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward both ways unchanged.
    Pass,
    /// Forward, holding each chunk back for this long first (latency).
    Delay(Duration),
    /// Accept and keep connections open but forward nothing either way: the peer of a
    /// dead network path, which neither answers nor closes.
    Blackhole,
}

/// A TCP proxy on `127.0.0.1` in front of one upstream server.
///
/// Bounded in time: every connection ends after [`FaultProxy::MAX_CONNECTION_LIFETIME`]
/// and all tasks stop when the proxy is dropped, so a test that fails half-way leaves
/// nothing running.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use extdata_reliability::{Fault, FaultProxy};
/// let proxy = FaultProxy::start("127.0.0.1:5432".parse().unwrap()).await?;
/// let port = proxy.port(); // point the connector here
/// proxy.set(Fault::Blackhole); // open connections go silent
/// proxy.reset_all(); // every open connection gets a TCP RST
/// proxy.refuse().await; // new connections are refused by the kernel
/// proxy.accept().await?; // and accepted again, on the same port
/// # let _ = port; Ok(()) }
/// ```
#[derive(Debug)]
pub struct FaultProxy {
    upstream: SocketAddr,
    address: SocketAddr,
    fault: watch::Sender<Fault>,
    /// Bumped by [`reset_all`](FaultProxy::reset_all); every pump watches it.
    reset: watch::Sender<u64>,
    listener: Mutex<Option<tokio::task::AbortHandle>>,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl FaultProxy {
    /// No connection through a proxy lives longer than this.
    pub const MAX_CONNECTION_LIFETIME: Duration = Duration::from_secs(180);

    /// Listens on a free loopback port and forwards to `upstream` (which must be a
    /// loopback address: tests send traffic nowhere else).
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        if !upstream.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("the fault proxy forwards to loopback only, not {upstream}"),
            ));
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?;
        let (fault, _) = watch::channel(Fault::Pass);
        let (reset, _) = watch::channel(0);
        let proxy = FaultProxy {
            upstream,
            address,
            fault,
            reset,
            listener: Mutex::new(None),
            tasks: Arc::new(Mutex::new(JoinSet::new())),
        };
        proxy.serve(listener);
        Ok(proxy)
    }

    /// The proxy's address (`127.0.0.1:<port>`).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Changes what happens to the traffic of open and new connections.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    /// Ends every open connection with a TCP RST on both sides (client and server).
    pub fn reset_all(&self) {
        self.reset.send_modify(|n| *n += 1);
    }

    /// Stops listening: new connections are refused (`ECONNREFUSED`), as by a server
    /// that is down. Open connections are reset.
    pub async fn refuse(&self) {
        if let Some(handle) = lock(&self.listener).take() {
            handle.abort();
        }
        self.reset_all();
        // The aborted accept loop drops the listening socket on its next poll.
        for _ in 0..100 {
            if TcpStream::connect(self.address).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Listens again on the same port after [`refuse`](FaultProxy::refuse).
    pub async fn accept(&self) -> std::io::Result<()> {
        if lock(&self.listener).is_some() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.address).await?;
        self.serve(listener);
        Ok(())
    }

    /// Connections currently open through the proxy.
    pub fn open_connections(&self) -> usize {
        let mut set = lock(&self.tasks);
        while set.try_join_next().is_some() {}
        // The accept loop is one of the tasks.
        let tasks = set.len();
        drop(set);
        let listening = usize::from(lock(&self.listener).is_some());
        tasks.saturating_sub(listening)
    }

    fn serve(&self, listener: TcpListener) {
        let upstream = self.upstream;
        let fault = self.fault.subscribe();
        let reset = self.reset.subscribe();
        let tasks = Arc::clone(&self.tasks);
        let handle = lock(&self.tasks).spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    // Out of file descriptors or similar: do not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let connection = connection(client, upstream, fault.clone(), reset.clone());
                let mut set = lock(&tasks);
                // Finished connections are reaped here so the set does not grow.
                while set.try_join_next().is_some() {}
                set.spawn(async move {
                    let _ =
                        tokio::time::timeout(FaultProxy::MAX_CONNECTION_LIFETIME, connection).await;
                });
            }
        });
        *lock(&self.listener) = Some(handle);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        lock(&self.tasks).abort_all();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One proxied connection: two pumps until both sides are done or a reset is asked for.
async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    fault: watch::Receiver<Fault>,
    mut reset: watch::Receiver<u64>,
) {
    reset.mark_unchanged();
    // SO_LINGER = 0 on both sockets: whenever the proxy drops them they close with a
    // RST, which is what a reset must look like to either peer.
    let _ = client.set_zero_linger();
    let server =
        match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(upstream)).await {
            Ok(Ok(server)) => server,
            // The upstream is down: the client sees its connection reset, as it would
            // through a real load balancer.
            _ => return,
        };
    let _ = server.set_zero_linger();
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    // `io::split`, not `into_split`: an owned write half sends FIN when dropped, and
    // a reset must reach the peers as a RST only.
    let (client_read, client_write) = tokio::io::split(client);
    let (server_read, server_write) = tokio::io::split(server);
    let both = async {
        tokio::join!(
            pump(client_read, server_write, fault.clone()),
            pump(server_read, client_write, fault),
        )
    };
    tokio::select! {
        _ = both => {}
        // Dropping the pumps drops both sockets: RST to client and server.
        _ = reset.changed() => {}
    }
}

/// Copies one direction, obeying the current [`Fault`]; returns when the source closes.
async fn pump(
    mut from: tokio::io::ReadHalf<TcpStream>,
    mut to: tokio::io::WriteHalf<TcpStream>,
    mut fault: watch::Receiver<Fault>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        loop {
            let current = *fault.borrow_and_update();
            match current {
                Fault::Pass => break,
                Fault::Delay(delay) => {
                    tokio::time::sleep(delay).await;
                    break;
                }
                // Hold the chunk until the fault changes (or for the connection's life).
                Fault::Blackhole => {
                    if fault.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
