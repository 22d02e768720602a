//! Issue 8 item 12, slow and greedy clients, over real TLS on 127.0.0.1 against the
//! webhook served in-process (`serve::Server`) with small limits: a slowloris
//! connection is closed within the header timeout, reviews beyond the cap get 429 at
//! once, connections beyond the cap are closed, HTTP/2 advertises the stream limit.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use imagegate::engine::EngineConfig;
use imagegate::registry::RegistryConfig;
use imagegate::serve::{Config, Limits, Server, State, TlsConfig};
use imagegate_testkit::CosignKey;
use rustls_pki_types::pem::PemObject as _;

use crate::serve::{pod, policy, review_of, write};

/// `imagegate serve` in-process on 127.0.0.1 with a self-signed certificate; stopped
/// when dropped.
struct Running {
    runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
    ca_pem: Vec<u8>,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Running {
    fn start(limits: Limits, policy_text: &str) -> Running {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let policy_file = dir.path().join("policy.yaml");
        write(&policy_file, policy_text);
        let docker_config = dir.path().join("config.json");
        std::fs::write(&docker_config, "{}").unwrap();
        let ca_bundle_out: PathBuf = dir.path().join("ca.pem");
        let config = Config {
            policies: vec![policy_file],
            exceptions: Vec::new(),
            listen: "127.0.0.1:0".parse().unwrap(),
            metrics_listen: "127.0.0.1:0".parse().unwrap(),
            tls: TlsConfig::SelfSigned {
                service_name: "imagegate".into(),
                service_namespace: "test".into(),
                extra_names: Vec::new(),
                ca_bundle_out: ca_bundle_out.clone(),
            },
            reload_interval: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(1),
            engine: EngineConfig {
                registry: RegistryConfig {
                    docker_config: Some(docker_config),
                    ..RegistryConfig::default()
                },
                ..EngineConfig::default()
            },
            limits,
            kubernetes: imagegate::serve::Kubernetes::Off,
            outputs: imagegate::serve::ClusterOutputs::default(),
            background_scan: None,
            exception_namespace: None,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime.block_on(async { Server::bind(config) }).unwrap();
        let addr = server.webhook_addr().unwrap();
        let state = Arc::clone(server.state());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(server.serve(async move {
            let _ = stopped.await;
            "test over"
        }));
        Running {
            runtime,
            addr,
            ca_pem: std::fs::read(ca_bundle_out).unwrap(),
            state,
            stop: Some(stop),
            _dir: dir,
        }
    }

    fn tls_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&self.ca_pem) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// A blocking HTTP/1.1-over-TLS connection whose handshake is done.
    fn connect(&self) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
        let mut tcp = TcpStream::connect(self.addr)?;
        tcp.set_read_timeout(Some(Duration::from_millis(200)))?;
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut conn = rustls::ClientConnection::new(self.tls_config(&[b"http/1.1"]), name)
            .map_err(std::io::Error::other)?;
        let started = Instant::now();
        while conn.is_handshaking() {
            match conn.complete_io(&mut tcp) {
                Ok(_) => {}
                Err(e) if is_timeout(&e) && started.elapsed() < Duration::from_secs(5) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(rustls::StreamOwned::new(conn, tcp))
    }

    fn client(&self) -> reqwest::Client {
        let _guard = self.runtime.enter();
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&self.ca_pem).unwrap()])
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

fn simple_policy() -> String {
    policy(
        "check-image",
        "127.0.0.1:*",
        &CosignKey::generate(),
        "Fail",
        10,
        "",
    )
}

/// Reads until the peer closes (or `limit` passes); returns when it closed.
fn closed_within<S: std::io::Read + std::io::Write>(
    stream: &mut S,
    limit: Duration,
    mut dribble: impl FnMut(&mut S) -> std::io::Result<()>,
) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        if dribble(stream).is_err() {
            return Some(started.elapsed());
        }
        match stream.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

#[test]
fn slowloris_connection_is_closed_within_the_header_timeout() {
    let header_timeout = Duration::from_secs(2);
    let server = Running::start(
        Limits {
            header_read_timeout: header_timeout,
            ..Limits::default()
        },
        &simple_policy(),
    );
    let mut tls = server.connect().unwrap();
    tls.write_all(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\n")
        .unwrap();
    // One more header line every 300 ms, never the blank line that ends them.
    let mut sent = 0;
    let closed = closed_within(&mut tls, Duration::from_secs(15), |tls| {
        sent += 1;
        tls.write_all(format!("X-Slow-{sent}: 1\r\n").as_bytes())?;
        tls.flush()
    });
    let closed = closed.expect("the slowloris connection was still open after 15 s");
    assert!(
        closed <= header_timeout + Duration::from_secs(2),
        "closed after {closed:?}"
    );

    // An idle connection that never sends a request is closed too.
    let mut idle = server.connect().unwrap();
    let closed = closed_within(&mut idle, Duration::from_secs(15), |_| Ok(()))
        .expect("an idle connection was still open after 15 s");
    assert!(
        closed <= header_timeout + Duration::from_secs(2),
        "closed after {closed:?}"
    );
}

#[test]
fn a_body_that_never_arrives_is_answered_408() {
    let server = Running::start(
        Limits {
            body_read_timeout: Duration::from_secs(1),
            ..Limits::default()
        },
        &simple_policy(),
    );
    let mut tls = server.connect().unwrap();
    tls.write_all(
        b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"apiVersion\":",
    )
    .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < Duration::from_secs(10) && !answer.ends_with(b"\n") {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if is_timeout(&e) => {}
            Err(_) => break,
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn reviews_beyond_the_cap_get_429_at_once() {
    // A "registry" that accepts connections and never answers: reviews of its images
    // last until their deadline (3 s - 1 s).
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_host = silent.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().take(64) {
            held.push(stream);
        }
    });
    let server = Running::start(
        Limits {
            max_concurrent_reviews: 2,
            ..Limits::default()
        },
        &policy(
            "hang",
            &format!("{silent_host}/*"),
            &CosignKey::generate(),
            "Fail",
            3,
            "",
        ),
    );
    let client = server.client();
    let url = format!("https://localhost:{}/mutate", server.addr.port());
    let slow = |uid: &str, image: &str| {
        let body =
            serde_json::to_vec(&review_of("admission.k8s.io/v1", uid, &pod("p", image))).unwrap();
        let request = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        async move {
            let started = Instant::now();
            let response = request.send().await.unwrap();
            (response.status().as_u16(), started.elapsed())
        }
    };
    let hanging = format!("{silent_host}/app:v1");
    let first = server.runtime.spawn(slow("uid-1", &hanging));
    let second = server.runtime.spawn(slow("uid-2", &hanging));
    let started = Instant::now();
    while server.state.reviews.available_permits() > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "reviews never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (status, elapsed) = server.runtime.block_on(slow("uid-3", "nginx:1.27"));
    assert_eq!(status, 429);
    assert!(elapsed < Duration::from_millis(500), "{elapsed:?}");
    for held in [first, second] {
        let (status, elapsed) = server.runtime.block_on(held).unwrap();
        assert_eq!(status, 200);
        assert!(elapsed >= Duration::from_millis(1500), "{elapsed:?}");
    }
    // Permits come back: the next review is answered.
    let (status, _) = server.runtime.block_on(slow("uid-4", "nginx:1.27"));
    assert_eq!(status, 200);
}

#[test]
fn connections_beyond_the_cap_are_closed() {
    let server = Running::start(
        Limits {
            max_connections: 2,
            ..Limits::default()
        },
        &simple_policy(),
    );
    let healthz = |tls: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>| {
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
        let mut buf = [0u8; 1024];
        let started = Instant::now();
        loop {
            match tls.read(&mut buf) {
                Ok(n) if n > 0 => return Ok(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Ok(_) => return Err(std::io::Error::other("closed")),
                Err(e) if is_timeout(&e) && started.elapsed() < Duration::from_secs(5) => {}
                Err(e) => return Err(e),
            }
        }
    };
    let mut one = server.connect().unwrap();
    let mut two = server.connect().unwrap();
    assert!(healthz(&mut one).unwrap().starts_with("HTTP/1.1 200"));
    assert!(healthz(&mut two).unwrap().starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    let third = server.connect().and_then(|mut tls| healthz(&mut tls));
    assert!(third.is_err(), "a third connection was served: {third:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Closing one frees its place.
    drop(one);
    let started = Instant::now();
    loop {
        if let Ok(answer) = server.connect().and_then(|mut tls| healthz(&mut tls)) {
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never freed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(healthz(&mut two).unwrap().starts_with("HTTP/1.1 200"));
}

#[test]
fn http2_concurrent_streams_are_bounded() {
    let server = Running::start(
        Limits {
            http2_max_concurrent_streams: 8,
            ..Limits::default()
        },
        &simple_policy(),
    );
    let connector = tokio_rustls::TlsConnector::from(server.tls_config(&[b"h2"]));
    let addr = server.addr;
    let advertised = server.runtime.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = connector.connect(name, tcp).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (client, connection) = h2::client::handshake(tls).await.unwrap();
        tokio::spawn(connection);
        let mut client = client.ready().await.unwrap();
        let request = axum::http::Request::get("https://localhost/healthz")
            .body(())
            .unwrap();
        let (response, _) = client.send_request(request, true).unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), 200);
        client.current_max_send_streams()
    });
    assert_eq!(advertised, 8);
}
