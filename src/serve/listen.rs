//! The accept loop: HTTP/1.1 over TCP, or over TLS, with the limits that keep
//! a junk or silent client from holding the server: a bounded number of
//! connections, a TLS handshake and request headers due within a timeout.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Serves `app` on every connection `listener` accepts, until it fails.
pub async fn accept(listener: TcpListener, tls: Option<TlsAcceptor>, app: Router, max_connections: usize, timeout: Duration) -> Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors, a connection reset before accept: keep serving.
            Err(error) => {
                tracing::warn!("accept: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!("{peer}: {max_connections} connections open already; closed");
            continue;
        };
        let (tls, app) = (tls.clone(), app.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let _ = stream.set_nodelay(true);
            match tls {
                Some(acceptor) => match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => serve_connection(TokioIo::new(stream), app, timeout).await,
                    Ok(Err(error)) => tracing::debug!("{peer}: TLS handshake failed: {error}"),
                    Err(_) => tracing::debug!("{peer}: no TLS handshake within {timeout:?}"),
                },
                None => serve_connection(TokioIo::new(stream), app, timeout).await,
            }
        });
    }
}

async fn serve_connection<I>(io: I, app: Router, timeout: Duration)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app);
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .serve_connection(io, service);
    if let Err(error) = connection.await {
        tracing::debug!("connection: {error}");
    }
}
