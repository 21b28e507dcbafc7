//! An axum Router served by Kite unchanged.

mod common;

use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use common::{builder_on, transports, WAIT};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[tokio::test]
async fn axum_router_runs_unchanged() {
    for transport in transports() {
        let router = Router::new()
            .route("/", get(|| async { "axum on kite" }))
            .route("/users/{id}", get(|Path(id): Path<u32>| async move { Json(serde_json::json!({ "id": id })) }))
            .route("/upper", post(|body: String| async move { body.to_uppercase() }));

        let server = builder_on(transport).urls(["http://127.0.0.1:0"]).handle_signals(false).bind().await.unwrap();
        let addr = server.local_endpoints()[0].as_tcp().unwrap();
        let shutdown = server.shutdown_handle();
        let done = tokio::spawn(server.serve(router));

        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let get_text = |path: &str| {
            let client = client.clone();
            let uri = format!("http://{addr}{path}");
            async move {
                let response = client.get(uri.parse().unwrap()).await.unwrap();
                (response.status(), response.into_body().collect().await.unwrap().to_bytes())
            }
        };
        assert_eq!(get_text("/").await.1, "axum on kite", "{transport}");
        assert_eq!(get_text("/users/42").await.1, r#"{"id":42}"#);
        assert_eq!(get_text("/missing").await.0, 404);

        let request = http::Request::post(format!("http://{addr}/upper"))
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from_static(b"shout")))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "SHOUT");

        shutdown.shutdown();
        tokio::time::timeout(WAIT, done).await.unwrap().unwrap().unwrap();
    }
}
