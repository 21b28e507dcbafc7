//! A WebSocket chat room: every text message a member sends goes to every
//! member. Open http://127.0.0.1:8080 in two browser tabs to try it.
//!
//! ```text
//! cargo run --example websocket_chat              # serves until Ctrl-C
//! cargo run --example websocket_chat -- --check   # two clients chat, then it exits
//! ```
//!
//! The handler is an ordinary `Request -> Response` function: the same code
//! serves WebSockets over HTTP/1.1, TLS and HTTP/2.

use std::convert::Infallible;

use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use kite::websocket::{Message, WebSocket, WebSocketUpgrade};
use kite::{service_fn, RequestBody, Server};
use tokio::sync::broadcast;

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8"><title>Kite chat</title>
<ul id="log"></ul>
<form id="form"><input id="text" autocomplete="off" autofocus><button>Send</button></form>
<script>
const socket = new WebSocket(`ws://${location.host}/chat`);
socket.onmessage = (e) => { const li = document.createElement("li"); li.textContent = e.data; log.append(li); };
form.onsubmit = (e) => { e.preventDefault(); socket.send(text.value); text.value = ""; };
</script>
"#;

/// Routes `/` to the page and `/chat` to the room.
fn route(mut req: Request<RequestBody>, room: broadcast::Sender<String>) -> Response<Full<bytes::Bytes>> {
    match req.uri().path() {
        "/" => Response::new(Full::from(PAGE)),
        "/chat" => match WebSocketUpgrade::from_request(&mut req) {
            Ok(upgrade) => {
                // Subscribed before the 101 leaves: a member hears everything
                // said after their handshake completes.
                let heard = room.subscribe();
                upgrade.on_upgrade(move |socket| member(socket, room, heard))
            }
            Err(rejection) => rejection.into_response(),
        },
        _ => {
            let mut response = Response::new(Full::from("not found"));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    }
}

/// One member: what they send goes to the room, what the room hears goes
/// to them, until either side closes.
async fn member(socket: WebSocket, room: broadcast::Sender<String>, mut heard: broadcast::Receiver<String>) {
    let (mut outgoing, mut incoming) = socket.split();
    let forward = tokio::spawn(async move {
        while let Ok(line) = heard.recv().await {
            if outgoing.send(Message::text(line)).await.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(message)) = incoming.next().await {
        if let Message::Text(text) = message {
            let _ = room.send(text.to_string());
        }
    }
    forward.abort();
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let check = std::env::args().any(|a| a == "--check");
    let (room, _) = broadcast::channel::<String>(64);
    let server =
        Server::builder().listen(([127, 0, 0, 1], if check { 0 } else { 8080 })).handle_signals(!check).bind().await?;
    let addr = server.local_endpoints()[0].as_tcp().expect("a TCP endpoint");
    let shutdown = server.shutdown_handle();
    let running = tokio::spawn(server.serve(service_fn(move |req| {
        let room = room.clone();
        async move { Ok::<_, Infallible>(route(req, room)) }
    })));
    if !check {
        println!("chat on http://{addr}");
        running.await??;
        return Ok(());
    }

    // Two members join; one speaks, both hear it.
    let url = format!("ws://{addr}/chat");
    let join = || async {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let (socket, _) = tokio_tungstenite::client_async(url.as_str(), tcp).await?;
        Ok::<_, Box<dyn std::error::Error>>(socket)
    };
    let mut alice = join().await?;
    let mut bob = join().await?;
    alice.send(Message::text("hello from alice")).await?;
    let heard = bob.next().await.expect("bob hears the room")?;
    assert_eq!(heard, Message::text("hello from alice"));
    println!("bob heard: {heard}");
    alice.close(None).await?;
    bob.close(None).await?;
    shutdown.shutdown();
    running.await??;
    Ok(())
}
