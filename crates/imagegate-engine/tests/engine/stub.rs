//! A minimal in-process registry stub serving canned answers by path, for the OCI 1.1
//! referrers API: the test registry (docker-registry 2.8, distribution v2) has no
//! `/v2/<repo>/referrers/<digest>` endpoint, so the API path cannot be exercised
//! against it. It runs on the test's tokio runtime (it dies with the test) on loopback,
//! answers a TLS `ClientHello` with `400` like a plain-HTTP Go server (so the client's
//! HTTPS-first probe falls back to HTTP), `404` for unknown paths, and logs each
//! request target.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// One canned answer.
#[derive(Clone)]
pub struct Answer {
    pub content_type: String,
    pub body: Vec<u8>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
}

pub struct Stub {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stub {
    /// Serves `answers` (keyed by path, query excluded).
    pub async fn start(answers: HashMap<String, Answer>) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(answers);
        let task_log = log.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, answers.clone(), task_log.clone()));
            }
        });
        Stub { addr, log, task }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Every request target (`METHOD /path?query`) served so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

async fn serve(
    mut stream: TcpStream,
    answers: Arc<HashMap<String, Answer>>,
    log: Arc<Mutex<Vec<String>>>,
) {
    let mut buffer = Vec::new();
    loop {
        let head_end = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if buffer.first() == Some(&0x16) {
                // A TLS ClientHello: answer as a plain-HTTP server does.
                let _ = stream
                    .write_all(b"HTTP/1.0 400 Bad Request\r\nConnection: close\r\n\r\n")
                    .await;
                return;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
            if buffer.len() > 64 * 1024 {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        buffer.drain(..head_end);
        let mut words = head.split_whitespace();
        let method = words.next().unwrap_or_default().to_owned();
        let target = words.next().unwrap_or_default().to_owned();
        log.lock().unwrap().push(format!("{method} {target}"));
        let path = target.split('?').next().unwrap_or_default();
        let response = match answers.get(path) {
            Some(answer) => {
                let mut head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
                    answer.content_type,
                    answer.body.len()
                );
                for (name, value) in &answer.headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str("\r\n");
                let mut bytes = head.into_bytes();
                if method != "HEAD" {
                    bytes.extend_from_slice(&answer.body);
                }
                bytes
            }
            None => b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
        };
        if stream.write_all(&response).await.is_err() {
            return;
        }
    }
}
