// Sign-up: preselect the browser's time zone and the currency of its locale's region in the
// selects marked data-detect (the server marks them only on a fresh form), unless the person has
// already chosen. Both stay editable; without JavaScript the defaults are there to change by hand.
(function () {
  "use strict";
  function choose(select, value) {
    var initial = select.querySelector("option[selected]") || select.options[0];
    if (!value || !initial || select.value !== initial.value) return; // already chosen by hand
    var known = Array.prototype.some.call(select.options, function (option) {
      return option.value === value;
    });
    if (known) select.value = value;
  }
  var zone = document.querySelector("select[data-detect=timezone]");
  if (zone) {
    try {
      choose(zone, Intl.DateTimeFormat().resolvedOptions().timeZone);
    } catch (error) {
      // An old browser without Intl: the default stays.
    }
  }
  var currency = document.querySelector("select[data-detect=currency]");
  if (currency) {
    var byRegion = JSON.parse(currency.dataset.currencyByRegion || "{}");
    var languages = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
    for (var i = 0; i < languages.length; i++) {
      var region = (languages[i] || "").split("-").slice(1).filter(function (part) {
        return /^[A-Za-z]{2}$/.test(part);
      })[0];
      if (region && byRegion[region.toUpperCase()]) {
        choose(currency, byRegion[region.toUpperCase()]);
        break;
      }
    }
  }
})();
