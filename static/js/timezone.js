// The booking page shows times in the contact's time zone. Until they have one saved, fill in the
// browser's and save it once (the form posts as if they had chosen it; the page comes back with the
// times in that zone). Without JavaScript the form is there to choose by hand.
(function () {
  "use strict";
  var form = document.getElementById("zone-form");
  if (!form || form.dataset.zoneSaved !== "false") return;
  var detected;
  try {
    detected = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (error) {
    return;
  }
  var select = form.querySelector("select[name=timezone]");
  if (!detected || !select) return;
  var known = Array.prototype.some.call(select.options, function (option) {
    return option.value === detected;
  });
  // Once per browser session: a refused save must not turn into a loop of reloads.
  var key = "retainers-zone-tried";
  if (!known || window.sessionStorage.getItem(key)) return;
  window.sessionStorage.setItem(key, detected);
  select.value = detected;
  form.querySelector("input[name=detected]").value = "1";
  form.submit();
})();
