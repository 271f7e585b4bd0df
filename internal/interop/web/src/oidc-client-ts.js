// oidc-client-ts 3 as its README sets up a UserManager: authority = the
// issuer (metadata from /.well-known/openid-configuration), code flow with
// PKCE (its default), signinRedirect / signinRedirectCallback, the profile
// from the ID token (and userinfo, loadUserInfo), signoutRedirect with the
// ID token as id_token_hint / signoutRedirectCallback. Its other settings
// are left at their defaults.
import { UserManager } from "oidc-client-ts";
import { $, config, describe, run, show } from "./page.js";

run(async () => {
  const cfg = await config();
  const mgr = new UserManager({
    authority: cfg.issuer,
    client_id: cfg.client_id,
    redirect_uri: cfg.redirect_uri,
    post_logout_redirect_uri: cfg.redirect_uri,
    scope: "openid profile email",
    loadUserInfo: true,
  });
  $("login").onclick = () => mgr.signinRedirect().catch((e) => show(describe(e)));
  // With state data the library sends a state and checks it on return.
  $("logout").onclick = () => mgr.signoutRedirect({ state: "bye" }).catch((e) => show(describe(e)));

  const here = new URL(location.href);
  if (here.searchParams.has("code") || here.searchParams.has("error")) {
    const user = await mgr.signinRedirectCallback();
    history.replaceState(null, "", cfg.redirect_uri);
    $("logout").hidden = false;
    return show("signed in", { sub: user.profile.sub, name: user.profile.name, email: user.profile.email,
      has_id_token: !!user.id_token, has_refresh_token: !!user.refresh_token });
  }
  if (here.searchParams.has("state")) {
    // Back from the end_session_endpoint: the library checks the state
    // against the one it stored and hands back its data.
    const response = await mgr.signoutRedirectCallback();
    history.replaceState(null, "", cfg.redirect_uri);
    if (response.userState !== "bye") return show(`signed out with state data ${JSON.stringify(response.userState)}`);
    return show(((await mgr.getUser()) === null) ? "signed out" : "signed out, but a user is still stored");
  }
  show("ready");
});
