/* Leerbot dashboard: a live flag queue, print buttons and confirmations. No libraries. */
(function () {
  "use strict";

  function clock() {
    var d = new Date();
    return ("0" + d.getHours()).slice(-2) + ":" + ("0" + d.getMinutes()).slice(-2) + ":" +
      ("0" + d.getSeconds()).slice(-2);
  }

  // The flag queue asks the server every few seconds; 204 means nothing changed.
  var box = document.querySelector("[data-poll-url]");
  if (box) {
    var url = box.getAttribute("data-poll-url");
    var every = parseInt(box.getAttribute("data-poll-ms"), 10) || 4000;
    var stamp = box.getAttribute("data-stamp") || "";
    var status = document.getElementById("queue-status");
    var baseTitle = document.title;
    var stopped = false;
    var tick = function () {
      fetch(url + "?stamp=" + encodeURIComponent(stamp), {
        credentials: "same-origin", cache: "no-store",
        headers: { "X-Requested-With": "fetch" }
      }).then(function (response) {
        if (response.redirected) {
          stopped = true;
          if (status) { status.textContent = "Je bent afgemeld. Laad de pagina opnieuw."; }
          return null;
        }
        if (response.status === 204) {
          if (status) { status.textContent = "Bijgewerkt om " + clock(); }
          return null;
        }
        if (!response.ok) { throw new Error("status " + response.status); }
        stamp = response.headers.get("X-Queue-Stamp") || "";
        var crisis = parseInt(response.headers.get("X-Queue-Crisis") || "0", 10);
        return response.text().then(function (html) {
          box.innerHTML = html;
          box.setAttribute("data-stamp", stamp);
          document.title = (crisis > 0 ? "(" + crisis + " crisis) " : "") + baseTitle;
          if (status) { status.textContent = "Nieuwe stand om " + clock(); }
        });
      }).catch(function () {
        if (status) { status.textContent = "Geen verbinding met de server. We proberen het zo opnieuw."; }
      }).then(function () {
        if (!stopped) { window.setTimeout(tick, every); }
      });
    };
    window.setTimeout(tick, every);
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-print]"), function (button) {
    button.addEventListener("click", function () { window.print(); });
  });

  Array.prototype.forEach.call(document.querySelectorAll("form[data-confirm]"), function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
})();
