//! A minimal HTTP/1.1 server for the admin endpoint: GET (or HEAD) `/metrics`, `/status`,
//! POST `/partitions/move?..` (parameters in the query; a body is ignored), one request
//! per connection (`Connection: close`). Bounds: request head size,
//! connections at once, a timeout on each socket read and write, and one on the whole
//! request head.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};

use super::{metrics, move_partition, snapshot, status};
use crate::broker::Broker;
use crate::limits::{ADMIN_CONNECTIONS_MAX, ADMIN_REQUEST_BYTES_MAX, ADMIN_SOCKET_TIMEOUT_MS};

#[derive(Debug, thiserror::Error)]
pub enum AdminHttpError {
    #[error("admin socket read failed")]
    Read {
        #[source]
        source: std::io::Error,
    },
    #[error("admin socket write failed")]
    Write {
        #[source]
        source: std::io::Error,
    },
    #[error("the request head did not arrive within {ADMIN_SOCKET_TIMEOUT_MS} ms")]
    HeadTimedOut,
    #[error("setting the admin socket timeout failed")]
    Timeout {
        #[source]
        source: glommio::GlommioError<()>,
    },
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Metrics,
    Status,
    /// POST, with the query string.
    MovePartition(String),
    Index,
    NotFound,
    MethodNotAllowed,
    BadRequest,
    HeadTooLarge,
}

/// A parsed request: the route and whether the body is wanted (GET) or not (HEAD).
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed {
    pub route: Route,
    pub head_only: bool,
}

/// Where partition moves are asked for.
pub const MOVE_PATH: &str = "/partitions/move";

/// Serves admin connections until the listener fails.
pub async fn serve(broker: Rc<Broker>, listener: TcpListener) {
    let started = Instant::now();
    let open = Rc::new(Cell::new(0usize));
    loop {
        match listener.accept().await {
            Ok(stream) => {
                if open.get() >= ADMIN_CONNECTIONS_MAX {
                    tracing::warn!(
                        limit = ADMIN_CONNECTIONS_MAX,
                        "admin connection limit reached; refusing a connection"
                    );
                    drop(stream);
                    continue;
                }
                open.set(open.get() + 1);
                let (broker, open) = (broker.clone(), open.clone());
                glommio::spawn_local(async move {
                    if let Err(e) = serve_one(&broker, stream, started).await {
                        tracing::debug!(error = %e, "admin connection failed");
                    }
                    open.set(open.get() - 1);
                })
                .detach();
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn serve_one(
    broker: &Rc<Broker>,
    mut stream: TcpStream,
    started: Instant,
) -> Result<(), AdminHttpError> {
    let timeout = Some(Duration::from_millis(ADMIN_SOCKET_TIMEOUT_MS));
    stream
        .set_read_timeout(timeout)
        .map_err(|source| AdminHttpError::Timeout { source })?;
    stream
        .set_write_timeout(timeout)
        .map_err(|source| AdminHttpError::Timeout { source })?;
    let head = read_head(&mut stream).await?;
    let parsed = match head {
        Some(head) => parse_head(&head),
        None => Parsed {
            route: Route::HeadTooLarge,
            head_only: false,
        },
    };
    let (code, content_type, body) = match parsed.route {
        Route::Metrics => {
            let snap = snapshot::gather(broker, started.elapsed().as_secs()).await;
            (200, metrics::CONTENT_TYPE, metrics::render(&snap))
        }
        Route::Status => {
            let snap = snapshot::gather(broker, started.elapsed().as_secs()).await;
            let mut report = status::StatusReport::from_snapshot(&snap);
            report.placement =
                status::PlacementStatus::from_overrides(&broker.shard.placement_overrides());
            match serde_json::to_string_pretty(&report) {
                Ok(json) => (200, "application/json", json + "\n"),
                Err(e) => (500, "text/plain", format!("encoding status: {e}\n")),
            }
        }
        Route::MovePartition(query) => {
            let (code, body) = move_partition::handle(broker, &query).await;
            let kind = if code == 200 {
                "application/json"
            } else {
                "text/plain"
            };
            (code, kind, body)
        }
        Route::Index => (
            200,
            "text/plain",
            "Sluice admin endpoint: /metrics (Prometheus), /status (JSON), POST /partitions/move?topic=T&partition=P&to_shard=S\n".to_string(),
        ),
        Route::NotFound => (404, "text/plain", "not found\n".to_string()),
        Route::MethodNotAllowed => (405, "text/plain", "only GET and HEAD\n".to_string()),
        Route::BadRequest => (400, "text/plain", "bad request\n".to_string()),
        Route::HeadTooLarge => (431, "text/plain", "request head too large\n".to_string()),
    };
    let response = response_bytes(code, content_type, &body, parsed.head_only);
    stream
        .write_all(&response)
        .await
        .map_err(|source| AdminHttpError::Write { source })?;
    stream
        .close()
        .await
        .map_err(|source| AdminHttpError::Write { source })
}

/// Reads up to the blank line ending the request head. `None`: the head is longer than
/// `ADMIN_REQUEST_BYTES_MAX`. A body, if any, is ignored (GET and HEAD have none).
async fn read_head(stream: &mut TcpStream) -> Result<Option<Vec<u8>>, AdminHttpError> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    // A client sending a byte at a time must not hold a connection slot for long either.
    let deadline = Instant::now() + Duration::from_millis(ADMIN_SOCKET_TIMEOUT_MS);
    loop {
        if let Some(end) = find_head_end(&head) {
            head.truncate(end);
            return Ok(Some(head));
        }
        if head.len() >= ADMIN_REQUEST_BYTES_MAX {
            return Ok(None);
        }
        if Instant::now() >= deadline {
            return Err(AdminHttpError::HeadTimedOut);
        }
        let want = chunk.len().min(ADMIN_REQUEST_BYTES_MAX + 4 - head.len());
        let n = stream
            .read(&mut chunk[..want])
            .await
            .map_err(|source| AdminHttpError::Read { source })?;
        if n == 0 {
            // Closed before the head ended: whatever arrived is all there is.
            return Ok(Some(head));
        }
        head.extend_from_slice(&chunk[..n]);
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Routes a request head (request line and headers, without the final blank line).
pub fn parse_head(head: &[u8]) -> Parsed {
    let bad = Parsed {
        route: Route::BadRequest,
        head_only: false,
    };
    let Ok(text) = std::str::from_utf8(head) else {
        return bad;
    };
    let line = text.split("\r\n").next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return bad;
    };
    if !version.starts_with("HTTP/1.") {
        return bad;
    }
    let not_allowed = Parsed {
        route: Route::MethodNotAllowed,
        head_only: false,
    };
    let target = target.split('#').next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path == MOVE_PATH {
        // Changes state: POST only, never a GET a crawler or a prefetch could send.
        if method != "POST" {
            return not_allowed;
        }
        return Parsed {
            route: Route::MovePartition(query.to_string()),
            head_only: false,
        };
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return not_allowed,
    };
    let route = match path {
        "/metrics" => Route::Metrics,
        "/status" => Route::Status,
        "/" => Route::Index,
        _ => Route::NotFound,
    };
    Parsed { route, head_only }
}

fn response_bytes(code: u16, content_type: &str, body: &str, head_only: bool) -> Vec<u8> {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        409 => "Conflict",
        503 => "Service Unavailable",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    };
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(head: &str) -> Route {
        parse_head(head.as_bytes()).route
    }

    #[test]
    fn known_paths_are_routed_and_queries_ignored() {
        assert_eq!(route("GET /metrics HTTP/1.1\r\nHost: x"), Route::Metrics);
        assert_eq!(route("GET /metrics?name[]=x HTTP/1.0"), Route::Metrics);
        assert_eq!(route("GET /status HTTP/1.1"), Route::Status);
        assert_eq!(route("GET / HTTP/1.1"), Route::Index);
        assert_eq!(route("GET /nope HTTP/1.1"), Route::NotFound);
        let head = parse_head(b"HEAD /metrics HTTP/1.1");
        assert_eq!(head.route, Route::Metrics);
        assert!(head.head_only);
    }

    #[test]
    fn malformed_or_other_methods_are_refused() {
        assert_eq!(route("POST /metrics HTTP/1.1"), Route::MethodNotAllowed);
        assert_eq!(
            route("GET /partitions/move?topic=t&partition=0&to_shard=1 HTTP/1.1"),
            Route::MethodNotAllowed
        );
        assert_eq!(
            route("POST /partitions/move?topic=t&partition=0&to_shard=1 HTTP/1.1"),
            Route::MovePartition("topic=t&partition=0&to_shard=1".into())
        );
        assert_eq!(route("GET /metrics"), Route::BadRequest);
        assert_eq!(route("GET /metrics SPDY/3"), Route::BadRequest);
        assert_eq!(route("GET  /metrics HTTP/1.1"), Route::BadRequest);
        assert_eq!(route(""), Route::BadRequest);
        assert_eq!(parse_head(&[0xff, 0xfe]).route, Route::BadRequest);
    }

    #[test]
    fn head_end_is_the_first_blank_line() {
        assert_eq!(
            find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody"),
            Some(20)
        );
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n"), None);
    }

    #[test]
    fn head_response_has_length_but_no_body() {
        let full = response_bytes(200, "text/plain", "hello", false);
        let head = response_bytes(200, "text/plain", "hello", true);
        assert!(full.ends_with(b"\r\n\r\nhello"));
        assert!(head.ends_with(b"Content-Length: 5\r\nConnection: close\r\n\r\n"));
    }
}
