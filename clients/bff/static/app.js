// The page holds no token: the session cookie is HttpOnly, and every call
// goes through the BFF. State-changing calls carry X-BFF-CSRF, which a page
// of another origin cannot add without a CORS preflight the BFF refuses.
const $ = (id) => document.getElementById(id);

async function refresh() {
  const me = await fetch("/auth/me", { credentials: "same-origin" });
  if (me.ok) {
    const { user, email } = await me.json();
    $("status").textContent = "Signed in as " + user;
    $("email").textContent = email || "";
    $("call").hidden = $("logout").hidden = false;
    $("login").hidden = true;
  } else {
    $("status").textContent = "Not signed in";
    $("email").textContent = "";
    $("login").hidden = false;
    $("call").hidden = $("logout").hidden = true;
  }
}

$("call").onclick = async () => {
  const r = await fetch("/api/invoices", { credentials: "same-origin" });
  $("result").textContent = r.status + " " + (await r.text());
};

// Sign-out: the BFF revokes the refresh token and forgets the session, then
// names Latchkey's end_session_endpoint, which ends the Latchkey login
// session and sends the browser back here.
$("logout").onclick = async () => {
  const r = await fetch("/auth/logout", { method: "POST", credentials: "same-origin", headers: { "X-BFF-CSRF": "1" } });
  $("result").textContent = "";
  const { next } = r.ok ? await r.json() : {};
  if (next && next !== "/") return location.assign(next);
  refresh();
};

refresh();
