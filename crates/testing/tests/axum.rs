//! An axum app on the TestServer: no socket anywhere.

use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use kite_http_core::ConnectionInfo;
use kite_testing::TestServer;

#[tokio::test]
async fn an_axum_router_runs_without_a_socket() {
    let router = Router::new()
        .route("/users/{id}", get(|Path(id): Path<u32>| async move { Json(serde_json::json!({ "id": id })) }))
        .route("/upper", post(|body: String| async move { body.to_uppercase() }))
        .route(
            "/transport",
            get(|request: axum::extract::Request| async move {
                request.extensions().get::<ConnectionInfo>().map(|c| c.transport()).unwrap_or("none").to_string()
            }),
        );
    let server = TestServer::start(router).await;

    let response = server.get("/users/7").await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.body(), r#"{"id":7}"#);

    let mut client = server.client().await.unwrap();
    let request =
        Request::post("/upper").header("content-type", "text/plain").body(Full::new(Bytes::from("quiet"))).unwrap();
    assert_eq!(client.send(request).await.unwrap().body(), "QUIET");
    // The same connection serves a second request.
    let again = client.send(Request::get("/transport").body(Full::new(Bytes::new())).unwrap()).await.unwrap();
    assert_eq!(again.body(), "memory");

    assert_eq!(server.get("/missing").await.unwrap().status(), 404);
}

#[tokio::test]
async fn kites_limits_apply_in_memory_too() {
    let router = Router::new().route("/", get(|| async { "ok" }));
    let server = TestServer::start(router).await;
    let long = format!("/{}", "a".repeat(9000));
    let response = server.get(&long).await.unwrap();
    assert_eq!(response.status(), 414);
}
