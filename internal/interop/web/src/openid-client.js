// openid-client 6 in a browser (it is built on oauth4webapi and runs in any
// runtime with fetch and WebCrypto), configured as its README shows for a
// public client: discovery() from the issuer, PKCE and no state (the
// library's own advice when the server supports PKCE), the ID token checked
// by authorizationCodeGrant, fetchUserInfo, buildEndSessionUrl.
import * as client from "openid-client";
import { $, config, run, show } from "./page.js";

run(async () => {
  const cfg = await config();
  const issuer = new URL(cfg.issuer);
  // The test's issuer is plain http on localhost; the documented option
  // allows that, and nothing else changes.
  const options = issuer.protocol === "http:" ? { execute: [client.allowInsecureRequests] } : undefined;
  const oidc = await client.discovery(issuer, cfg.client_id, undefined, client.None(), options);

  $("login").onclick = async () => {
    const verifier = client.randomPKCECodeVerifier();
    const params = {
      redirect_uri: cfg.redirect_uri,
      scope: "openid profile email",
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
    };
    const pending = { verifier };
    if (!oidc.serverMetadata().supportsPKCE()) {
      // Only for servers that do not advertise PKCE; Latchkey does.
      pending.state = params.state = client.randomState();
    }
    sessionStorage.setItem("pending", JSON.stringify(pending));
    location.assign(client.buildAuthorizationUrl(oidc, params).href);
  };

  const here = new URL(location.href);
  if (here.searchParams.has("code") || here.searchParams.has("error")) {
    const pending = JSON.parse(sessionStorage.getItem("pending"));
    sessionStorage.removeItem("pending");
    const tokens = await client.authorizationCodeGrant(oidc, here, {
      pkceCodeVerifier: pending.verifier,
      expectedState: pending.state,
      idTokenExpected: true,
    });
    history.replaceState(null, "", cfg.redirect_uri);
    const claims = tokens.claims();
    const userinfo = await client.fetchUserInfo(oidc, tokens.access_token, claims.sub);
    $("logout").onclick = () => {
      const state = client.randomState();
      sessionStorage.setItem("logout", state);
      location.assign(client.buildEndSessionUrl(oidc, {
        id_token_hint: tokens.id_token,
        post_logout_redirect_uri: cfg.redirect_uri,
        state,
      }).href);
    };
    $("logout").hidden = false;
    return show("signed in", { sub: claims.sub, name: claims.name, email: claims.email, userinfo_email: userinfo.email,
      userinfo_name: userinfo.name, state_sent: pending.state !== undefined, iss_in_response: here.searchParams.get("iss") });
  }
  const loggedOut = sessionStorage.getItem("logout");
  if (loggedOut !== null) {
    sessionStorage.removeItem("logout");
    history.replaceState(null, "", cfg.redirect_uri);
    return show(here.searchParams.get("state") === loggedOut ? "signed out" : "signed out with a wrong state");
  }
  show("ready");
});
