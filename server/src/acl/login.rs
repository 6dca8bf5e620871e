//! The web UI's token login: a form that keeps the token in the `nomos-token` cookie
//! (`SameSite=Strict`, for `/ui` only), which the ACL middleware reads on the UI's `GET`s.
//! A UI request that its cookie does not allow answers 403 with this form.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Nomos: sign in</title>
<link rel="stylesheet" href="/ui/assets/style.css"></head>
<body><main class="login">
<h1>Nomos</h1>
<p>ACLs are enabled. Paste an ACL token's secret ID (<code>nctl acl token self</code> shows yours);
it is kept in this browser's cookie for <code>/ui</code> until the browser closes.</p>
<form id="login">
<label>Secret ID <input id="secret" type="password" autocomplete="off" size="40" required></label>
<button type="submit">Sign in</button>
<button type="button" id="logout">Sign out</button>
</form>
<script>
document.getElementById("login").addEventListener("submit", function (e) {
  e.preventDefault();
  var v = document.getElementById("secret").value.trim();
  document.cookie = "nomos-token=" + encodeURIComponent(v) + "; path=/ui; SameSite=Strict";
  location.href = "/ui";
});
document.getElementById("logout").addEventListener("click", function () {
  document.cookie = "nomos-token=; path=/ui; SameSite=Strict; max-age=0";
  location.reload();
});
</script>
</main></body></html>
"#;

/// `GET /ui/login`.
pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// A refused UI request: 403 with the login form.
pub fn refused() -> Response {
    (StatusCode::FORBIDDEN, Html(PAGE)).into_response()
}
