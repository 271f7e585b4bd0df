// A public client in the browser that signs people in with OpenID Connect:
// authorization code + PKCE + nonce with oauth4webapi. Endpoints come from
// the issuer's discovery document; the ID token is validated (iss, aud,
// exp, iat, nonce, azp) and its claims name the person. Tokens live in this
// module's memory only, never in localStorage or sessionStorage: a reload
// loses them, and the app gets new ones silently with prompt=none while the
// Latchkey login session lasts. Only the PKCE verifier, state and nonce wait
// in sessionStorage during the redirect, and are removed as soon as the code
// is exchanged. Sign-out goes through the end_session_endpoint with the ID
// token as id_token_hint (RP-Initiated Logout 1.0), which ends the Latchkey
// login session.
//
// DPoP (RFC 9449): when the issuer offers it, every token request, the
// UserInfo call and every API call carries a proof signed by a key pair
// made with WebCrypto as NON-EXTRACTABLE: script in this page (injected
// or not) can ask the browser to sign with it but can never read the
// private key out. The pair is kept in IndexedDB (CryptoKey objects are
// structured-cloneable, and stay non-extractable there), so a reload keeps
// the key while the tokens, in memory, are gone. Latchkey binds the access
// token (cnf.jkt) and this public client's refresh token to the key: a
// token copied out of this page is useless anywhere else.
import * as oauth from "oauth4webapi";

const $ = (id) => document.getElementById(id);
const tokens = { access: null, refresh: null, idToken: null, type: null, rotations: 0 };
let person = null; // the validated ID token's claims
let as, client, cfg, options;
let dpop = null; // oauth4webapi's DPoP handle: the key pair and the nonces servers sent
const clientAuth = oauth.None();

// idb runs one request on the "keys" store of this app's IndexedDB.
function idb(mode, request) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open("latchkey-spa", 1);
    open.onupgradeneeded = () => open.result.createObjectStore("keys");
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const tx = open.result.transaction("keys", mode);
      const req = request(tx.objectStore("keys"));
      tx.oncomplete = () => {
        open.result.close();
        resolve(req.result);
      };
      tx.onerror = tx.onabort = () => {
        open.result.close();
        reject(tx.error);
      };
    };
  });
}

// dpopKeyPair returns this browser's DPoP key pair, made on first use:
// ECDSA P-256 (ES256), the private key not extractable. add() rather than
// put(): when two tabs make a key at once, the second keeps the first's.
async function dpopKeyPair() {
  const stored = await idb("readonly", (s) => s.get("dpop"));
  if (stored) return stored;
  const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
  try {
    await idb("readwrite", (s) => s.add(pair, "dpop"));
    return pair;
  } catch {
    return idb("readonly", (s) => s.get("dpop"));
  }
}

// The token endpoint always gets a proof when DPoP is on; resources get the
// DPoP scheme only for a DPoP-bound token (an issuer that answered
// token_type bearer gets bearer calls).
const tokenOptions = () => (dpop ? { ...options, DPoP: dpop } : options);
const resourceOptions = () => (dpop && tokens.type === "dpop" ? { ...options, DPoP: dpop } : options);

// withNonce runs a request and, when the server refused it for want of a
// fresh DPoP nonce (RFC 9449 §8, §9: use_dpop_nonce, nothing done), runs it
// once more: oauth4webapi has kept the nonce from the DPoP-Nonce header.
async function withNonce(attempt) {
  try {
    return await attempt();
  } catch (e) {
    if (dpop && oauth.isDPoPNonceError(e)) return attempt();
    throw e;
  }
}

function show(status) {
  $("status").textContent = status;
  const signedIn = tokens.access !== null;
  $("login").hidden = signedIn;
  $("call").hidden = $("refresh").hidden = $("userinfo").hidden = $("logout").hidden = !signedIn;
  $("email").textContent = signedIn && person?.email ? person.email : "";
  $("rotations").textContent = signedIn ? `refresh token rotations: ${tokens.rotations}` : "";
}

const signedInAs = () => `Signed in as ${person.name || person.preferred_username || person.sub}`;

async function authorize(prompt) {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const nonce = oauth.generateRandomNonce();
  sessionStorage.setItem("pkce", JSON.stringify({ verifier, state, nonce }));
  const url = new URL(as.authorization_endpoint);
  url.searchParams.set("client_id", client.client_id);
  url.searchParams.set("redirect_uri", cfg.redirect_uri);
  url.searchParams.set("response_type", "code");
  url.searchParams.set("scope", cfg.scope);
  url.searchParams.set("state", state);
  url.searchParams.set("nonce", nonce);
  url.searchParams.set("code_challenge", await oauth.calculatePKCECodeChallenge(verifier));
  url.searchParams.set("code_challenge_method", "S256");
  if (prompt) url.searchParams.set("prompt", prompt);
  location.assign(url.href);
}

function keep(result) {
  tokens.access = result.access_token;
  tokens.type = result.token_type; // "dpop" when bound to our key
  if (result.refresh_token) tokens.refresh = result.refresh_token;
  if (result.id_token) tokens.idToken = result.id_token;
}

async function callback(current) {
  const pending = JSON.parse(sessionStorage.getItem("pkce") || "null");
  sessionStorage.removeItem("pkce");
  history.replaceState(null, "", cfg.redirect_uri);
  if (!pending) return show("Not signed in");
  let params;
  try {
    params = oauth.validateAuthResponse(as, client, current, pending.state);
  } catch (e) {
    // prompt=none found no login session: the user signs in themselves.
    return show(e instanceof oauth.AuthorizationResponseError ? `Not signed in (${e.error})` : `Sign-in failed: ${e.message}`);
  }
  // With expectedNonce the ID token is required and validated, its nonce
  // included (OpenID Connect Core §3.1.3.7).
  const result = await withNonce(async () =>
    oauth.processAuthorizationCodeResponse(
      as,
      client,
      await oauth.authorizationCodeGrantRequest(as, client, clientAuth, params, cfg.redirect_uri, pending.verifier, tokenOptions()),
      { expectedNonce: pending.nonce },
    ),
  );
  keep(result);
  person = oauth.getValidatedIdTokenClaims(result);
  show(signedInAs());
}

async function refresh() {
  const result = await withNonce(async () =>
    oauth.processRefreshTokenResponse(as, client, await oauth.refreshTokenGrantRequest(as, client, clientAuth, tokens.refresh, tokenOptions())),
  );
  const claims = oauth.getValidatedIdTokenClaims(result);
  // A refreshed ID token must name the same person (Core §12.2).
  if (claims && claims.sub !== person.sub) throw new Error("the refreshed ID token names someone else");
  keep(result);
  if (claims) person = claims;
  tokens.rotations++;
  show(signedInAs());
}

// apiRequest calls the API with the access token: with the DPoP scheme and
// a proof carrying ath when the token is bound, retried once when the API
// demands its nonce.
const apiRequest = () =>
  withNonce(() => oauth.protectedResourceRequest(tokens.access, "GET", new URL(cfg.api), new Headers(), null, resourceOptions()));

async function callAPI() {
  let r;
  try {
    r = await apiRequest();
  } catch (e) {
    // oauth4webapi rejects a 401 with a WWW-Authenticate challenge.
    if (!(e instanceof oauth.WWWAuthenticateChallengeError) || !tokens.refresh) throw e;
    await refresh(); // the access token expired or was revoked: rotate and retry once
    r = await apiRequest();
  }
  $("result").textContent = `${r.status} ${await r.text()}`;
}

// userInfo asks the issuer's UserInfo endpoint (with a proof, for a bound
// token) and checks that it names the signed-in person.
async function userInfo() {
  const claims = await withNonce(async () =>
    oauth.processUserInfoResponse(as, client, person.sub, await oauth.userInfoRequest(as, client, tokens.access, resourceOptions())),
  );
  $("result").textContent = `userinfo ${JSON.stringify(claims)}`;
}

// Sign out: revoke the refresh token (RFC 7009), forget everything, and end
// the Latchkey login session at the end_session_endpoint, which comes back
// to post_logout_redirect_uri with our state.
async function logout() {
  if (tokens.refresh) {
    await oauth.revocationRequest(as, client, clientAuth, tokens.refresh, options);
  }
  const url = new URL(as.end_session_endpoint);
  const state = oauth.generateRandomState();
  sessionStorage.setItem("logout", state);
  url.searchParams.set("client_id", client.client_id);
  if (tokens.idToken) url.searchParams.set("id_token_hint", tokens.idToken);
  url.searchParams.set("post_logout_redirect_uri", cfg.redirect_uri);
  url.searchParams.set("state", state);
  tokens.access = tokens.refresh = tokens.idToken = tokens.type = person = null;
  // The tokens bound to the key are revoked: the next sign-in gets a new key.
  if (dpop) await idb("readwrite", (s) => s.delete("dpop"));
  location.assign(url.href);
}

async function main() {
  cfg = await (await fetch("/config.json")).json();
  const issuer = new URL(cfg.issuer);
  // Plain http is for a local Latchkey only; oauth4webapi refuses it otherwise.
  options = issuer.protocol === "http:" ? { [oauth.allowInsecureRequests]: true } : {};
  // OpenID Connect discovery: /.well-known/openid-configuration of the issuer.
  as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, options));
  client = { client_id: cfg.client_id };
  if (as.dpop_signing_alg_values_supported?.includes("ES256")) {
    dpop = oauth.DPoP(client, await dpopKeyPair());
  }
  // Only for the Chromium test (spa_test.go), which copies the refresh
  // token out of the page as a script that got in could; never set in a
  // real config.json.
  if (cfg.expose_tokens_for_tests === true) window.__spa = { tokens };
  $("login").onclick = () => authorize();
  $("call").onclick = () => callAPI().catch((e) => ($("result").textContent = e.message));
  $("refresh").onclick = () => refresh().catch((e) => show(`Refresh failed: ${e.message}`));
  $("userinfo").onclick = () => userInfo().catch((e) => ($("result").textContent = e.message));
  $("logout").onclick = () => logout().catch((e) => show(`Sign-out failed: ${e.message}`));

  const current = new URL(location.href);
  if (current.searchParams.has("code") || current.searchParams.has("error")) {
    return callback(current);
  }
  const signedOut = sessionStorage.getItem("logout");
  if (signedOut !== null) {
    // Back from the end_session_endpoint: no silent attempt, the person
    // just signed out.
    sessionStorage.removeItem("logout");
    history.replaceState(null, "", cfg.redirect_uri);
    return show(current.searchParams.get("state") === signedOut ? "Signed out" : "Not signed in");
  }
  // No token in memory (a fresh load): try to sign in silently.
  show("Signing in silently…");
  return authorize("none");
}

main().catch((e) => show(`Error: ${e.message}`));
