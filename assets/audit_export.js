/* Report DataTable CSV exports to the server's audit log (the export itself is client-side).
   Dash loads every .js file in assets/ on each page. */
(function () {
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button.export");
    if (!button) { return; }
    var table = button.closest(".dash-table-container");
    fetch("/audit/export", {
      method: "POST",
      credentials: "same-origin",
      keepalive: true,
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({table: (table && table.id) || "unknown"})
    }).catch(function () { /* auditing must never break the export */ });
  }, true);
})();
