// Nomos web UI: the allocation page's console. Hand-written, no build step.
// - Logs: server-sent events from /ui/logs/{alloc}?task=&type=&lines= ("lines" events carry one
//   log line per data field; "end" says why the follow stopped). The page keeps at most
//   data-max-lines lines; the search box hides the lines without its text and marks the rest.
// - Terminal: xterm.js over Nomad's exec websocket with ws_handshake=true: the first frame
//   carries the token of the UI's nomos-token cookie, then the terminal's size, then keys.
(function () {
  "use strict";

  // ---- logs ---------------------------------------------------------------------------

  function startLogs(form) {
    var box = document.querySelector("#logs .log-lines");
    var status = form.querySelector(".log-status");
    var count = form.querySelector(".log-count");
    var max = Number(form.getAttribute("data-max-lines")) || 5000;
    var source = null;

    function value(name) { return form.elements[name].value; }
    function needle() { return value("search").trim().toLowerCase(); }

    // Shows `div`'s line with every match of `q` marked, or hides it when none.
    function paint(div, q) {
      var text = div.logText;
      div.textContent = "";
      var lower = text.toLowerCase();
      var i = q ? lower.indexOf(q) : -1;
      div.hidden = Boolean(q) && i < 0;
      if (i < 0) { div.textContent = text; return; }
      var at = 0;
      while (i >= 0) {
        div.appendChild(document.createTextNode(text.slice(at, i)));
        var mark = document.createElement("mark");
        mark.textContent = text.slice(i, i + q.length);
        div.appendChild(mark);
        at = i + q.length;
        i = lower.indexOf(q, at);
      }
      div.appendChild(document.createTextNode(text.slice(at)));
    }

    function recount() {
      var total = box.childElementCount;
      var q = needle();
      if (!q) { count.textContent = total + " lines"; return; }
      var shown = box.querySelectorAll(".line:not([hidden])").length;
      count.textContent = shown + " of " + total + " lines match";
    }

    function append(lines) {
      var atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
      var q = needle();
      var frag = document.createDocumentFragment();
      lines.forEach(function (text) {
        var div = document.createElement("div");
        div.className = "line";
        div.logText = text;
        paint(div, q);
        frag.appendChild(div);
      });
      box.appendChild(frag);
      while (box.childElementCount > max) box.removeChild(box.firstElementChild);
      if (atBottom) box.scrollTop = box.scrollHeight;
      recount();
    }

    function stop() {
      if (source) source.close();
      source = null;
    }

    function follow() {
      stop();
      box.textContent = "";
      recount();
      var url = form.getAttribute("data-src") +
        "?task=" + encodeURIComponent(value("task")) +
        "&type=" + encodeURIComponent(value("type")) +
        "&lines=" + encodeURIComponent(value("lines"));
      var es = new EventSource(url);
      source = es;
      status.textContent = "connecting…";
      es.onopen = function () { status.textContent = "following"; };
      es.addEventListener("lines", function (e) { append(e.data.split("\n")); });
      es.addEventListener("end", function (e) {
        status.textContent = "ended: " + e.data;
        if (source === es) stop();
      });
      es.onerror = function () {
        if (source !== es) return;
        // EventSource retries on its own (resuming at the last offset) unless refused.
        status.textContent = es.readyState === EventSource.CLOSED
          ? "could not follow the log (reload to retry)"
          : "reconnecting…";
      };
    }

    ["task", "type", "lines"].forEach(function (name) {
      form.elements[name].addEventListener("change", follow);
    });
    form.elements.search.addEventListener("input", function () {
      var q = needle();
      Array.prototype.forEach.call(box.children, function (div) { paint(div, q); });
      recount();
    });
    window.addEventListener("pagehide", stop);
    follow();
  }

  // ---- terminal -----------------------------------------------------------------------

  function cookieToken() {
    var found = document.cookie.split(";").map(function (c) { return c.trim(); })
      .filter(function (c) { return c.indexOf("nomos-token=") === 0; })[0];
    return found ? decodeURIComponent(found.slice("nomos-token=".length)) : "";
  }

  function toBase64(bytes) {
    var s = "";
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s);
  }

  function fromBase64(text) {
    var bin = atob(text);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function startTerminal(form) {
    var screen = document.querySelector("#terminal .term-screen");
    var status = form.querySelector(".term-status");
    var connectButton = form.elements.connect;
    var disconnectButton = form.elements.disconnect;
    var encoder = new TextEncoder();
    var term = null;
    var ws = null;

    function send(frame) {
      if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
    }

    function sendSize() {
      send({ tty_size: { height: term.rows, width: term.cols } });
    }

    function ensureTerminal() {
      if (term) return;
      term = new Terminal({ rendererType: "dom", cursorBlink: true, rows: 24, cols: 80 });
      term.open(screen);
      term.on("data", function (d) { send({ stdin: { data: toBase64(encoder.encode(d)) } }); });
      term.on("resize", sendSize);
      window.addEventListener("resize", function () { term.fit(); });
    }

    function url() {
      var command = value("command").trim().split(/\s+/).filter(Boolean);
      return (location.protocol === "https:" ? "wss://" : "ws://") + location.host +
        form.getAttribute("data-exec") +
        "?task=" + encodeURIComponent(value("task")) +
        "&command=" + encodeURIComponent(JSON.stringify(command)) +
        "&tty=true&ws_handshake=true";
    }
    function value(name) { return form.elements[name].value; }

    function connect() {
      ensureTerminal();
      if (ws) ws.close();
      term.reset();
      term.fit();
      var decoder = new TextDecoder();
      var exited = false;
      var socket = new WebSocket(url());
      ws = socket;
      status.textContent = "connecting…";
      connectButton.disabled = true;
      disconnectButton.disabled = false;
      socket.onopen = function () {
        send({ version: 1, auth_token: cookieToken() });
        sendSize();
        status.textContent = "connected";
        term.focus();
      };
      socket.onmessage = function (e) {
        var frame = JSON.parse(e.data);
        ["stdout", "stderr"].forEach(function (name) {
          if (frame[name] && frame[name].data) {
            term.write(decoder.decode(fromBase64(frame[name].data), { stream: true }));
          }
        });
        if (frame.exited) {
          exited = true;
          var code = frame.result ? frame.result.exit_code : "?";
          term.write("\r\n[exited with code " + code + "]\r\n");
          status.textContent = "exited with code " + code;
        }
      };
      socket.onclose = function (e) {
        if (ws === socket) ws = null;
        connectButton.disabled = false;
        disconnectButton.disabled = true;
        if (exited) return;
        status.textContent = e.reason ? "refused: " + e.reason : "disconnected";
      };
    }

    connectButton.addEventListener("click", connect);
    disconnectButton.addEventListener("click", function () { if (ws) ws.close(); });
    window.addEventListener("pagehide", function () { if (ws) ws.close(); });
  }

  function start() {
    var logs = document.querySelector("#logs form.log-controls");
    if (logs) startLogs(logs);
    var terminal = document.querySelector("#terminal form.term-controls");
    if (terminal && typeof Terminal !== "undefined") startTerminal(terminal);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
