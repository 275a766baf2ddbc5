// imagegate's console: live import progress over server-sent events, partial refreshes, and a banner
// when the server cannot be reached. The pages work without it.
(function () {
  "use strict";
  var banner = document.getElementById("offline");

  function unreachable(down) {
    if (banner) banner.hidden = !down;
  }

  function ping() {
    fetch("/healthz", { cache: "no-store", credentials: "same-origin" }).then(
      function (r) { unreachable(!r.ok); },
      function () { unreachable(true); }
    );
  }
  setInterval(ping, 10000);
  window.addEventListener("offline", function () { unreachable(true); });
  window.addEventListener("online", ping);

  function field(box, name) {
    return box.querySelector('[data-field="' + name + '"]');
  }

  function setText(el, text) {
    if (el && el.textContent !== text) el.textContent = text;
  }

  function percent(done, size) {
    return size > 0 ? Math.floor((Math.min(done, size) * 100) / size) : 0;
  }

  function layerRow(list, digest) {
    var rows = list.querySelectorAll("li[data-digest]");
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].getAttribute("data-digest") === digest) return rows[i];
    }
    var empty = list.querySelector("[data-empty]");
    if (empty) empty.remove();
    var li = document.createElement("li");
    li.setAttribute("data-digest", digest);
    var code = document.createElement("code");
    code.className = "digest";
    code.textContent = digest;
    var state = document.createElement("span");
    state.setAttribute("data-part", "state");
    var bar = document.createElement("progress");
    bar.max = 100;
    bar.setAttribute("aria-label", "layer " + digest);
    var pct = document.createElement("span");
    pct.setAttribute("data-part", "percent");
    li.append(code, " ", state, " ", bar, " ", pct);
    list.appendChild(li);
    return li;
  }

  function render(box, p) {
    var overall = p.state === "succeeded" ? 100 : percent(p.done, p.size);
    var bar = box.querySelector("#overall");
    if (bar) bar.value = overall;
    setText(field(box, "percent"), overall + "%");
    var state = field(box, "state");
    if (state) {
      setText(state, p.state);
      state.className = "status status-" + p.state;
    }
    setText(field(box, "attempts"), p.attempts + " of " + p.max_attempts);
    setText(field(box, "message"), p.message || "");
    setText(field(box, "digest"), p.digest || "");
    var list = field(box, "layers");
    if (list) {
      p.layers.forEach(function (l) {
        var li = layerRow(list, l.digest);
        var pct = l.state === "completed" ? 100 : percent(l.done, l.size);
        li.querySelector("progress").value = pct;
        setText(li.querySelector('[data-part="state"]'), l.state);
        setText(li.querySelector('[data-part="percent"]'), pct + "%");
      });
    }
    if (p.status !== "importing") {
      document.querySelectorAll("[data-while-active]").forEach(function (el) { el.hidden = true; });
    }
  }

  document.querySelectorAll("[data-progress]").forEach(function (box) {
    var source = new EventSource(box.getAttribute("data-progress"));
    source.addEventListener("progress", function (e) {
      unreachable(false);
      var p = JSON.parse(e.data);
      render(box, p);
      if (p.status !== "importing") source.close();
    });
    source.addEventListener("error", function (e) {
      if (e.data) {
        setText(field(box, "message"), e.data);
        source.close();
      } else if (source.readyState !== EventSource.OPEN) {
        // The browser retries on its own; until then the page may be stale.
        unreachable(true);
        ping();
      }
    });
  });

  // Regions marked data-refresh="SECONDS" are fetched again and replaced in place.
  document.querySelectorAll("[data-refresh][id]").forEach(function (region) {
    var every = Math.max(2, parseInt(region.getAttribute("data-refresh"), 10) || 10) * 1000;
    setInterval(function () {
      fetch(location.href, { cache: "no-store", credentials: "same-origin" }).then(function (r) {
        unreachable(false);
        if (!r.ok) return null;
        return r.text();
      }, function () {
        unreachable(true);
        return null;
      }).then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(region.id);
        if (fresh && fresh.innerHTML !== region.innerHTML) region.innerHTML = fresh.innerHTML;
      });
    }, every);
  });
})();
