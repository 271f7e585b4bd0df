// openid-client 6's device authorization grant (RFC 8628) as its README
// shows it, for a public client (client.None(), as a CLI or a TV app is):
// discovery(), initiateDeviceAuthorization, then
// pollDeviceAuthorizationGrant, which polls until the person approves. The
// Go test (node_test.go) plays the person: this script prints the device
// authorization answer as a JSON line, waits for a line on stdin (the
// approval is done), polls, and prints what it validated.
//
//   node device-flow.mjs ISSUER CLIENT_ID
import * as client from "openid-client";
import * as readline from "node:readline";

const [issuer, clientId] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

try {
  const server = new URL(issuer);
  const config = await client.discovery(server, clientId, undefined, client.None(),
    // The test issuer is plain http on localhost; the documented option.
    server.protocol === "http:" ? { execute: [client.allowInsecureRequests] } : undefined);
  const response = await client.initiateDeviceAuthorization(config, { scope: "openid profile offline_access" });
  out({
    user_code: response.user_code, verification_uri: response.verification_uri,
    verification_uri_complete: response.verification_uri_complete, interval: response.interval, expires_in: response.expires_in,
  });

  const lines = readline.createInterface({ input: process.stdin });
  await lines[Symbol.asyncIterator]().next();
  lines.close();

  const tokens = await client.pollDeviceAuthorizationGrant(config, response);
  const claims = tokens.claims();
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  out({
    sub: claims.sub, name: claims.name, sid: claims.sid, scope: tokens.scope,
    refreshed_sub: refreshed.claims()?.sub,
  });
} catch (e) {
  out({ error: `${e.name}: ${e.message}${e.code ? ` [${e.code}]` : ""}${e.cause ? ` cause: ${e.cause.message ?? JSON.stringify(e.cause)}` : ""}` });
  process.exitCode = 1;
}
