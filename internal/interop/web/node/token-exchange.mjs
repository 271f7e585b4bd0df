// openid-client 6 as a backend that calls the next service on a person's
// behalf: it trades the person's access token for a delegated one with
// token exchange (RFC 8693), through genericGrantRequest, the function its
// documentation names for that grant; then introspectToken (RFC 7662) on
// the new token, and an exchange asking for a scope the person's token
// lacks, which must fail with invalid_scope. discovery() with the client
// secret: its default client authentication, client_secret_post.
//
//   node token-exchange.mjs ISSUER CLIENT_ID CLIENT_SECRET SUBJECT_TOKEN AUDIENCE
import * as client from "openid-client";

const [issuer, clientId, clientSecret, subjectToken, audience] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token";

try {
  const server = new URL(issuer);
  const config = await client.discovery(server, clientId, clientSecret, undefined,
    server.protocol === "http:" ? { execute: [client.allowInsecureRequests] } : undefined);
  const supported = config.serverMetadata().grant_types_supported?.includes(TOKEN_EXCHANGE) ?? false;

  const exchanged = await client.genericGrantRequest(config, TOKEN_EXCHANGE, {
    subject_token: subjectToken, subject_token_type: ACCESS_TOKEN,
    requested_token_type: ACCESS_TOKEN, scope: "read", audience,
  });
  const introspected = await client.tokenIntrospection(config, exchanged.access_token);

  const wider = await client.genericGrantRequest(config, TOKEN_EXCHANGE, {
    subject_token: subjectToken, subject_token_type: ACCESS_TOKEN, scope: "read write",
  }).then(() => "accepted", (e) => e.error ?? e.cause?.error ?? `${e.name}: ${e.message}`);

  out({
    supported, token_type: exchanged.token_type, issued_token_type: exchanged.issued_token_type,
    scope: exchanged.scope, refresh_token: exchanged.refresh_token ?? null, expires_in: exchanged.expires_in,
    active: introspected.active, sub: introspected.sub, client_id: introspected.client_id, act: introspected.act,
    aud: introspected.aud, wider,
  });
} catch (e) {
  out({ error: `${e.name}: ${e.message}${e.code ? ` [${e.code}]` : ""}${e.error ? ` ${e.error}` : ""}` });
  process.exitCode = 1;
}
