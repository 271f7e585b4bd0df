// The page holds no token: the session cookie is HttpOnly, and every call
// goes through the BFF. State-changing calls carry X-BFF-CSRF, which a page
// of another origin cannot add without a CORS preflight the BFF refuses.
const $ = (id) => document.getElementById(id);

async function refresh() {
  const me = await fetch("/auth/me", { credentials: "same-origin" });
  if (me.ok) {
    const { user } = await me.json();
    $("status").textContent = "Signed in as " + user;
    $("call").hidden = $("logout").hidden = false;
    $("login").hidden = true;
  } else {
    $("status").textContent = "Not signed in";
    $("login").hidden = false;
    $("call").hidden = $("logout").hidden = true;
  }
}

$("call").onclick = async () => {
  const r = await fetch("/api/invoices", { credentials: "same-origin" });
  $("result").textContent = r.status + " " + (await r.text());
};

$("logout").onclick = async () => {
  await fetch("/auth/logout", { method: "POST", credentials: "same-origin", headers: { "X-BFF-CSRF": "1" } });
  $("result").textContent = "";
  refresh();
};

refresh();
