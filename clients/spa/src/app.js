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
import * as oauth from "oauth4webapi";

const $ = (id) => document.getElementById(id);
const tokens = { access: null, refresh: null, idToken: null, rotations: 0 };
let person = null; // the validated ID token's claims
let as, client, cfg, options;
const clientAuth = oauth.None();

function show(status) {
  $("status").textContent = status;
  const signedIn = tokens.access !== null;
  $("login").hidden = signedIn;
  $("call").hidden = $("refresh").hidden = $("logout").hidden = !signedIn;
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
  const response = await oauth.authorizationCodeGrantRequest(as, client, clientAuth, params, cfg.redirect_uri, pending.verifier, options);
  // With expectedNonce the ID token is required and validated, its nonce
  // included (OpenID Connect Core §3.1.3.7).
  const result = await oauth.processAuthorizationCodeResponse(as, client, response, { expectedNonce: pending.nonce });
  keep(result);
  person = oauth.getValidatedIdTokenClaims(result);
  show(signedInAs());
}

async function refresh() {
  const response = await oauth.refreshTokenGrantRequest(as, client, clientAuth, tokens.refresh, options);
  const result = await oauth.processRefreshTokenResponse(as, client, response);
  const claims = oauth.getValidatedIdTokenClaims(result);
  // A refreshed ID token must name the same person (Core §12.2).
  if (claims && claims.sub !== person.sub) throw new Error("the refreshed ID token names someone else");
  keep(result);
  if (claims) person = claims;
  tokens.rotations++;
  show(signedInAs());
}

async function callAPI() {
  let r = await fetch(cfg.api, { headers: { Authorization: `Bearer ${tokens.access}` } });
  if (r.status === 401 && tokens.refresh) {
    await refresh(); // the access token expired or was revoked: rotate and retry once
    r = await fetch(cfg.api, { headers: { Authorization: `Bearer ${tokens.access}` } });
  }
  $("result").textContent = `${r.status} ${await r.text()}`;
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
  tokens.access = tokens.refresh = tokens.idToken = person = null;
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
  $("login").onclick = () => authorize();
  $("call").onclick = () => callAPI().catch((e) => ($("result").textContent = e.message));
  $("refresh").onclick = () => refresh().catch((e) => show(`Refresh failed: ${e.message}`));
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
