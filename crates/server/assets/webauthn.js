// The portal's one script (served from the binary, docs/portal.md): it runs the WebAuthn
// ceremony a page describes in the data-* attributes of #webauthn-form, puts the browser's
// answer into the form's hidden fields (standard base64) and submits it. The server checks
// everything; this file only carries bytes.
"use strict";
(function () {
  var form = document.getElementById("webauthn-form");
  var status = document.getElementById("webauthn-status");
  var button = document.getElementById("use-key");
  if (!form || !status || !button) { return; }
  var d = form.dataset;
  var creating = d.ceremony === "create";

  function say(text, bad) {
    status.textContent = text;
    status.className = bad ? "status bad" : "status";
  }
  function fromB64url(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    var raw = atob(b64 + "===".slice((b64.length + 3) % 4));
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out;
  }
  function toB64(buffer) {
    var bytes = new Uint8Array(buffer), raw = "";
    for (var i = 0; i < bytes.length; i++) { raw += String.fromCharCode(bytes[i]); }
    return btoa(raw);
  }
  function set(name, value) { form.elements[name].value = value; }
  function credentials() {
    return (d.credentials || "").split(",").filter(Boolean).map(function (id) {
      return { type: "public-key", id: fromB64url(id) };
    });
  }
  function explain(error) {
    var name = error && error.name;
    if (name === "NotAllowedError") {
      return "The security key did not answer, or the request was cancelled. Press \u201c" +
        button.textContent + "\u201d to try again" +
        (creating ? "." : ", or use another method below.");
    }
    if (name === "InvalidStateError") {
      return "This security key is already registered for you. Use another key.";
    }
    if (name === "SecurityError") {
      return "The browser refused this site for security keys. Open " + d.origin +
        "/signin (not an IP address) and try again.";
    }
    return "The browser could not use the security key (" + (name || "error") +
      "). Try again, or use another method.";
  }

  function ceremony() {
    button.disabled = true;
    say(creating ? "Touch your security key to register it\u2026"
                 : "Touch your security key\u2026", false);
    var timeout = parseInt(d.timeout, 10) || 60000;
    var request = creating ? navigator.credentials.create({ publicKey: {
      rp: { id: d.rpId, name: "tokengate" },
      user: { id: fromB64url(d.userId), name: d.userName, displayName: d.userName },
      challenge: fromB64url(d.challenge),
      pubKeyCredParams: [{ type: "public-key", alg: -7 }],
      excludeCredentials: credentials(),
      authenticatorSelection: { residentKey: "discouraged", userVerification: "discouraged" },
      attestation: d.attestation,
      timeout: timeout
    } }) : navigator.credentials.get({ publicKey: {
      rpId: d.rpId,
      challenge: fromB64url(d.challenge),
      allowCredentials: credentials(),
      userVerification: "discouraged",
      timeout: timeout
    } });
    request.then(function (credential) {
      var r = credential.response;
      set("client_data_json", toB64(r.clientDataJSON));
      if (creating) {
        set("attestation_object", toB64(r.attestationObject));
      } else {
        set("credential_id", toB64(credential.rawId));
        set("authenticator_data", toB64(r.authenticatorData));
        set("signature", toB64(r.signature));
      }
      say("Checking\u2026", false);
      form.submit();
    }, function (error) {
      say(explain(error), true);
      button.disabled = false;
      button.textContent = "Try again";
      button.focus();
    });
  }

  if (!window.PublicKeyCredential || !navigator.credentials) {
    say("This browser cannot use security keys (it has no WebAuthn). Use a current " +
      "Chrome, Edge, Firefox or Safari" + (creating ? "." : ", or another method below."), true);
    button.disabled = true;
    return;
  }
  if (window.location.origin !== d.origin) {
    say("Security keys work only at " + d.origin + ": open " + d.origin +
      "/signin and sign in there.", true);
    button.disabled = true;
    return;
  }
  button.addEventListener("click", ceremony);
  if (d.autostart !== "false") { ceremony(); } else { button.focus(); }
})();
