// Latchkey's one script: passkeys (WebAuthn). A form marked data-passkey
// is shown only where the browser has WebAuthn; its button fetches options
// from data-options (with the form's CSRF token), asks the browser for a
// credential, and submits the form with the credential as JSON in its
// "credential" field. The login form's username field also offers passkeys
// in the browser's autofill (conditional mediation) where it can.
(() => {
  'use strict';
  if (!window.PublicKeyCredential || !navigator.credentials) return;

  const fromB64 = (s) => {
    s = s.replace(/-/g, '+').replace(/_/g, '/');
    s += '='.repeat((4 - (s.length % 4)) % 4);
    return Uint8Array.from(atob(s), (c) => c.charCodeAt(0)).buffer;
  };
  const toB64 = (buf) => {
    let s = '';
    for (const b of new Uint8Array(buf)) s += String.fromCharCode(b);
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  };

  const fetchOptions = async (form) => {
    const body = new URLSearchParams();
    body.set('csrf_token', form.elements.csrf_token.value);
    body.set('purpose', form.dataset.passkey);
    const r = await fetch(form.dataset.options, { method: 'POST', body, credentials: 'same-origin' });
    if (!r.ok) throw new Error('options: ' + r.status);
    return (await r.json()).publicKey;
  };

  const requestOptions = (pk) => {
    pk.challenge = fromB64(pk.challenge);
    for (const c of pk.allowCredentials || []) c.id = fromB64(c.id);
    return pk;
  };
  const creationOptions = (pk) => {
    pk.challenge = fromB64(pk.challenge);
    pk.user.id = fromB64(pk.user.id);
    for (const c of pk.excludeCredentials || []) c.id = fromB64(c.id);
    return pk;
  };

  const assertionJSON = (c) => {
    const response = {
      clientDataJSON: toB64(c.response.clientDataJSON),
      authenticatorData: toB64(c.response.authenticatorData),
      signature: toB64(c.response.signature),
    };
    if (c.response.userHandle) response.userHandle = toB64(c.response.userHandle);
    return { id: c.id, rawId: toB64(c.rawId), type: c.type, response,
      clientExtensionResults: c.getClientExtensionResults() };
  };
  const attestationJSON = (c) => ({
    id: c.id, rawId: toB64(c.rawId), type: c.type,
    clientExtensionResults: c.getClientExtensionResults(),
    response: {
      clientDataJSON: toB64(c.response.clientDataJSON),
      attestationObject: toB64(c.response.attestationObject),
      transports: c.response.getTransports ? c.response.getTransports() : [],
    },
  });

  const send = (form, json) => {
    form.elements.credential.value = JSON.stringify(json);
    form.submit();
  };
  const showError = (form) => {
    const e = form.querySelector('[data-passkey-error]');
    if (e) e.hidden = false;
  };

  // The pending autofill request: the button aborts it, and waits for it
  // to end, since a browser runs one WebAuthn request at a time.
  let conditional = null;

  const run = async (form) => {
    if (conditional) {
      conditional.ctl.abort();
      await conditional.done.catch(() => {});
      conditional = null;
    }
    const pk = await fetchOptions(form);
    if (form.dataset.passkey === 'enrol') {
      send(form, attestationJSON(await navigator.credentials.create({ publicKey: creationOptions(pk) })));
    } else {
      send(form, assertionJSON(await navigator.credentials.get({ publicKey: requestOptions(pk) })));
    }
  };

  const autofill = (form) => {
    const ctl = new AbortController();
    const done = (async () => {
      if (!PublicKeyCredential.isConditionalMediationAvailable ||
          !(await PublicKeyCredential.isConditionalMediationAvailable())) return;
      const pk = await fetchOptions(form);
      if (ctl.signal.aborted) return;
      const c = await navigator.credentials.get({ publicKey: requestOptions(pk), mediation: 'conditional', signal: ctl.signal });
      if (!ctl.signal.aborted) send(form, assertionJSON(c));
    })();
    conditional = { ctl, done };
    done.catch(() => {});
  };

  const start = () => {
    for (const form of document.querySelectorAll('form[data-passkey]')) {
      form.hidden = false;
      const button = form.querySelector('[data-passkey-start]');
      button.addEventListener('click', () => {
        run(form).catch(() => showError(form));
      });
      if (form.dataset.passkey === 'login' && document.querySelector('input[autocomplete~="webauthn"]')) {
        autofill(form);
      }
    }
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
