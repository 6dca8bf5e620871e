// Nomos web UI: the action buttons. Hand-written, no build step.
//
// A button with `data-action` describes one /v1 request: data-method, data-url, data-body (JSON
// whose strings "$name" stand for the dialog's input `name`, converted by its data-type), and
// data-form (the id of a <template> with the inputs, or a diff to read). A click opens one
// confirmation dialog, kept outside the live fragments so a refresh never closes it, that says
// what will happen; "Confirm" sends the request with the signed-in token in X-Nomad-Token (the
// cookie only authorises the UI's GETs). The server's answer decides: an error, such as
// "Permission denied", shows in the dialog and nothing changes.
(function () {
  "use strict";

  var dialog, pending;

  function token() {
    var found = document.cookie.split(";").map(function (c) { return c.trim(); })
      .filter(function (c) { return c.indexOf("nomos-token=") === 0; })[0];
    return found ? decodeURIComponent(found.slice("nomos-token=".length)) : "";
  }

  function build() {
    dialog = document.createElement("dialog");
    dialog.id = "action-dialog";
    dialog.innerHTML =
      '<form method="dialog" novalidate><h2 class="action-title"></h2><p class="action-confirm"></p>' +
      '<div class="action-inputs"></div><p class="action-error" role="alert"></p>' +
      '<menu><button type="button" class="action-cancel">Cancel</button> ' +
      '<button type="submit" class="action-go">Confirm</button></menu></form>';
    document.body.appendChild(dialog);
    dialog.querySelector(".action-cancel").addEventListener("click", function () { dialog.close(); });
    dialog.querySelector("form").addEventListener("submit", function (e) {
      e.preventDefault();
      send();
    });
    var flash = document.createElement("p");
    flash.id = "action-flash";
    flash.setAttribute("role", "status");
    var main = document.querySelector("main");
    if (main) main.insertBefore(flash, main.firstChild);
  }

  function open(button) {
    if (!dialog) build();
    pending = button;
    dialog.querySelector(".action-title").textContent = button.getAttribute("data-title");
    dialog.querySelector(".action-confirm").textContent = button.getAttribute("data-confirm");
    dialog.querySelector(".action-error").textContent = "";
    var inputs = dialog.querySelector(".action-inputs");
    inputs.textContent = "";
    var form = button.getAttribute("data-form");
    var tpl = form && document.getElementById(form);
    if (tpl) inputs.appendChild(tpl.content.cloneNode(true));
    dialog.querySelector(".action-go").disabled = false;
    dialog.showModal();
  }

  // "1h30m", "90s", "2.5h" to nanoseconds; "" is 0 (no deadline).
  function nanos(text) {
    var units = { ns: 1, us: 1e3, "µs": 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
    var s = text.trim();
    if (s === "" || s === "0") return 0;
    var re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/y, total = 0, m;
    while (re.lastIndex < s.length && (m = re.exec(s))) total += Number(m[1]) * units[m[2]];
    if (re.lastIndex !== s.length || !m) throw new Error("expected a duration such as 30m or 1h, found " + JSON.stringify(text));
    return Math.round(total);
  }

  function b64(text) {
    var bytes = new TextEncoder().encode(text), bin = "";
    bytes.forEach(function (b) { bin += String.fromCharCode(b); });
    return btoa(bin);
  }

  // key=value lines to an object.
  function pairs(text) {
    var out = {};
    text.split("\n").forEach(function (line) {
      if (!line.trim()) return;
      var at = line.indexOf("=");
      if (at < 1) throw new Error("metadata: expected key=value, found " + JSON.stringify(line));
      out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    });
    return out;
  }

  function input(name) {
    var el = dialog.querySelector(".action-inputs [name='" + name + "']");
    if (!el) throw new Error("the form has no input " + name);
    switch (el.getAttribute("data-type")) {
      case "int": return /^-?\d+$/.test(el.value.trim()) ? Number(el.value) : el.value;
      case "bool": return el.checked;
      case "duration": return nanos(el.value);
      case "kv": return pairs(el.value);
      case "b64": return b64(el.value);
      default: return el.value;
    }
  }

  function fill(v) {
    if (typeof v === "string" && v.charAt(0) === "$") return input(v.slice(1));
    if (Array.isArray(v)) return v.map(fill);
    if (v && typeof v === "object") {
      var out = {};
      Object.keys(v).forEach(function (k) { out[k] = fill(v[k]); });
      return out;
    }
    return v;
  }

  function fail(text) {
    dialog.querySelector(".action-error").textContent = text;
    dialog.querySelector(".action-go").disabled = false;
  }

  function send() {
    var b = pending, body = b.getAttribute("data-body"), init;
    try {
      init = { method: b.getAttribute("data-method"), headers: {} };
      if (body) {
        init.body = JSON.stringify(fill(JSON.parse(body)));
        init.headers["Content-Type"] = "application/json";
      }
    } catch (e) {
      return fail(e.message);
    }
    var secret = token();
    if (secret) init.headers["X-Nomad-Token"] = secret;
    dialog.querySelector(".action-go").disabled = true;
    fetch(b.getAttribute("data-url"), init)
      .then(function (r) {
        return r.text().then(function (text) {
          if (!r.ok) {
            var said = text.trim();
            var why = r.status === 403 ? "Permission denied" : r.status + " " + r.statusText;
            if (said.toLowerCase() === why.toLowerCase()) said = "";
            return fail(why + (said ? ": " + said : ""));
          }
          dialog.close();
          var flash = document.getElementById("action-flash");
          if (flash) flash.textContent = "Done: " + b.getAttribute("data-title") + ".";
          var after = b.getAttribute("data-after");
          if (after) location.href = after;
        });
      })
      .catch(function (e) { fail("The server did not answer: " + e.message); });
  }

  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("button[data-action]");
    if (button) open(button);
  });
})();
