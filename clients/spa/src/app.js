// A public client in the browser: authorization code + PKCE with
// oauth4webapi. Tokens live in this module's memory only, never in
// localStorage or sessionStorage: a reload loses them, and the app gets new
// ones silently with prompt=none while the Latchkey login session lasts.
// Only the PKCE verifier and state wait in sessionStorage during the
// redirect, and are removed as soon as the code is exchanged.
import * as oauth from "oauth4webapi";

const $ = (id) => document.getElementById(id);
const tokens = { access: null, refresh: null, rotations: 0 };
let as, client, cfg, options;
const clientAuth = oauth.None();

function show(status) {
  $("status").textContent = status;
  const signedIn = tokens.access !== null;
  $("login").hidden = signedIn;
  $("call").hidden = $("refresh").hidden = $("logout").hidden = !signedIn;
  $("rotations").textContent = signedIn ? `refresh token rotations: ${tokens.rotations}` : "";
}

function subjectOf(jwt) {
  try {
    return JSON.parse(atob(jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).sub;
  } catch {
    return "?";
  }
}

async function authorize(prompt) {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  sessionStorage.setItem("pkce", JSON.stringify({ verifier, state }));
  const url = new URL(as.authorization_endpoint);
  url.searchParams.set("client_id", client.client_id);
  url.searchParams.set("redirect_uri", cfg.redirect_uri);
  url.searchParams.set("response_type", "code");
  url.searchParams.set("scope", cfg.scope);
  url.searchParams.set("state", state);
  url.searchParams.set("code_challenge", await oauth.calculatePKCECodeChallenge(verifier));
  url.searchParams.set("code_challenge_method", "S256");
  if (prompt) url.searchParams.set("prompt", prompt);
  location.assign(url.href);
}

function keep(result) {
  tokens.access = result.access_token;
  if (result.refresh_token) tokens.refresh = result.refresh_token;
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
  keep(await oauth.processAuthorizationCodeResponse(as, client, response));
  show(`Signed in as ${subjectOf(tokens.access)}`);
}

async function refresh() {
  const response = await oauth.refreshTokenGrantRequest(as, client, clientAuth, tokens.refresh, options);
  keep(await oauth.processRefreshTokenResponse(as, client, response));
  tokens.rotations++;
  show(`Signed in as ${subjectOf(tokens.access)}`);
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
// the Latchkey login session on its own page, which returns here.
async function logout() {
  if (tokens.refresh) {
    await oauth.revocationRequest(as, client, clientAuth, tokens.refresh, options);
  }
  tokens.access = tokens.refresh = null;
  const url = new URL(cfg.issuer.replace(/\/$/, "") + "/logout");
  url.searchParams.set("client_id", client.client_id);
  url.searchParams.set("post_logout_redirect_uri", cfg.redirect_uri);
  location.assign(url.href);
}

async function main() {
  cfg = await (await fetch("/config.json")).json();
  const issuer = new URL(cfg.issuer);
  // Plain http is for a local Latchkey only; oauth4webapi refuses it otherwise.
  options = issuer.protocol === "http:" ? { [oauth.allowInsecureRequests]: true } : {};
  as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { ...options, algorithm: "oauth2" }));
  client = { client_id: cfg.client_id };
  $("login").onclick = () => authorize();
  $("call").onclick = () => callAPI().catch((e) => ($("result").textContent = e.message));
  $("refresh").onclick = () => refresh().catch((e) => show(`Refresh failed: ${e.message}`));
  $("logout").onclick = () => logout().catch((e) => show(`Sign-out failed: ${e.message}`));

  const current = new URL(location.href);
  if (current.searchParams.has("code") || current.searchParams.has("error")) {
    return callback(current);
  }
  // No token in memory (a fresh load): try to sign in silently.
  show("Signing in silently…");
  return authorize("none");
}

main().catch((e) => show(`Error: ${e.message}`));
