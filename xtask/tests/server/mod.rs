//! A tiny HTTP/1.1 server on 127.0.0.1 for the download tests: serves byte strings by path,
//! honours `Range: bytes=N-` / `bytes=N-M`, can cut the first response of a path short (an
//! interrupted download), answers like the Hub's file endpoint (ETag, X-Repo-Commit,
//! Content-Range), and logs every request line with its Range header.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct Routes {
    pub files: HashMap<String, Vec<u8>>,
    /// Paths whose first full (non-range) response stops after this many bytes.
    pub cut_first: HashMap<String, usize>,
}

#[allow(dead_code)] // `log` is read by some of the test binaries that include this module.
pub struct Server {
    pub base: String,
    pub log: Arc<Mutex<Vec<String>>>,
}

fn handle(mut s: TcpStream, routes: &Mutex<Routes>, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("range:") {
            range = Some(v.trim().to_string());
        }
    }
    log.lock().unwrap().push(format!(
        "{path} range={}",
        range.clone().unwrap_or_default()
    ));
    let mut r = routes.lock().unwrap();
    let key = path.split('?').next().unwrap_or("").to_string();
    let Some(body) = r.files.get(&key).cloned() else {
        let _ = s
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let hub = "ETag: \"deadbeef\"\r\nX-Repo-Commit: 0123456789abcdef0123456789abcdef01234567\r\n";
    let total = body.len();
    match range.as_deref().and_then(|v| v.strip_prefix("bytes=")) {
        Some(spec) => {
            let (a, b) = spec.split_once('-').unwrap();
            let start: usize = a.parse().unwrap();
            let end: usize = if b.is_empty() {
                total - 1
            } else {
                b.parse::<usize>().unwrap().min(total - 1)
            };
            if start >= total {
                let _ = write!(s, "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{total}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                return;
            }
            let part = &body[start..=end];
            let _ = write!(
                s,
                "HTTP/1.1 206 Partial Content\r\n{hub}Content-Range: bytes {start}-{end}/{total}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                part.len()
            );
            let _ = s.write_all(part);
        }
        None => {
            let cut = r.cut_first.remove(&key);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\n{hub}Content-Length: {total}\r\nConnection: close\r\n\r\n"
            );
            let _ = s.write_all(&body[..cut.unwrap_or(total).min(total)]);
        }
    }
    let _ = s.flush();
}

pub fn start(routes: Routes) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let routes = Arc::new(Mutex::new(routes));
    let (l2, r2) = (Arc::clone(&log), Arc::clone(&routes));
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let (l3, r3) = (Arc::clone(&l2), Arc::clone(&r2));
            std::thread::spawn(move || handle(s, &r3, &l3));
        }
    });
    Server { base, log }
}
