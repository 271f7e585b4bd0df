// openid-client 6 where it usually runs, on a server (Node), as a
// confidential client in the configuration its README shows: discovery()
// from the issuer with the client secret (so its default client
// authentication, client_secret_post), PKCE and no state,
// authorizationCodeGrant, fetchUserInfo, refreshTokenGrant,
// buildEndSessionUrl. When the issuer offers DPoP (RFC 9449), with a
// handle from getDPoPHandle on a key from randomDPoPKeyPair (ES256): the
// code grant, UserInfo and the refresh carry proofs, and the tokens come
// back token_type DPoP. The Go test (node_test.go) plays the browser: this
// script prints the authorization URL as a JSON line, reads the URL the
// browser came back to on stdin, and prints what it validated.
//
// With MODE "par" it pushes the request first, as its README shows for
// pushed authorization requests (RFC 9126): buildAuthorizationUrlWithPAR,
// with a nonce (and the DPoP proof, when DPoP is on), and prints the short URL it gets.
//
//   node openid-client.mjs ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI [MODE]
import * as client from "openid-client";
import * as readline from "node:readline";

const [issuer, clientId, clientSecret, redirectUri, mode] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

try {
  const server = new URL(issuer);
  const config = await client.discovery(server, clientId, clientSecret, undefined,
    // The test issuer is plain http on localhost; the documented option.
    server.protocol === "http:" ? { execute: [client.allowInsecureRequests] } : undefined);

  // openid-client retries once by itself when a server answers use_dpop_nonce.
  const dpopOffered = config.serverMetadata().dpop_signing_alg_values_supported?.includes("ES256") ?? false;
  const DPoP = dpopOffered ? client.getDPoPHandle(config, await client.randomDPoPKeyPair("ES256")) : undefined;

  const verifier = client.randomPKCECodeVerifier();
  const params = {
    redirect_uri: redirectUri,
    scope: "openid profile email offline_access",
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
  };
  let state, nonce;
  if (!config.serverMetadata().supportsPKCE()) state = params.state = client.randomState();
  let authorize;
  if (mode === "par") {
    nonce = params.nonce = client.randomNonce();
    authorize = (await client.buildAuthorizationUrlWithPAR(config, params, { DPoP })).href;
  } else {
    authorize = client.buildAuthorizationUrl(config, params).href;
  }
  out({ authorize, state_sent: state !== undefined });

  const lines = readline.createInterface({ input: process.stdin });
  const callback = (await lines[Symbol.asyncIterator]().next()).value;
  lines.close();

  const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
  }, undefined, { DPoP });
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub, { DPoP });
  // The bound access token without a proof, as someone who copied it would
  // send it: UserInfo must refuse it.
  let copied = "not tried";
  if (DPoP) {
    copied = await client.fetchUserInfo(config, tokens.access_token, claims.sub).then(
      () => "accepted",
      (e) => `${e.status ?? e.response?.status ?? ""} ${e.cause?.[0]?.parameters?.error ?? e.error ?? e.code}`.trim(),
    );
  }
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP });
  const again = refreshed.claims();
  const refreshedInfo = await client.fetchUserInfo(config, refreshed.access_token, claims.sub, { DPoP });
  out({
    dpop: dpopOffered, token_type: tokens.token_type, refreshed_token_type: refreshed.token_type,
    userinfo_without_proof: copied, refreshed_userinfo_sub: refreshedInfo.sub,
    sub: claims.sub, name: claims.name, email: claims.email, userinfo_email: userinfo.email,
    refreshed_sub: again?.sub, refreshed_sid: again?.sid, sid: claims.sid, nonce: claims.nonce,
    end_session: client.buildEndSessionUrl(config, {
      id_token_hint: refreshed.id_token ?? tokens.id_token, post_logout_redirect_uri: redirectUri, state: "bye",
    }).href,
  });
} catch (e) {
  out({ error: `${e.name}: ${e.message}${e.code ? ` [${e.code}]` : ""}${e.cause ? ` cause: ${e.cause.message ?? JSON.stringify(e.cause)}` : ""}` });
  process.exitCode = 1;
}
