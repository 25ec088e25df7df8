// pigp portal scripts: upload progress and live password strength. The
// pages work without them (plain form posts).
(function () {
  "use strict";
  var token = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function alertBox(kind, title, text) {
    var div = document.createElement("div");
    div.className = "fr-alert fr-alert--" + kind;
    div.setAttribute("role", kind === "error" ? "alert" : "status");
    var h = document.createElement("h3");
    h.className = "fr-alert__title";
    h.textContent = title;
    var p = document.createElement("p");
    p.textContent = text;
    div.appendChild(h);
    div.appendChild(p);
    return div;
  }

  // Upload with a live progress bar.
  var form = document.getElementById("form-depot");
  if (form && window.XMLHttpRequest && window.FormData) {
    var input = document.getElementById("fichier");
    var bar = document.getElementById("depot-progression");
    var pct = document.getElementById("depot-pourcentage");
    var label = document.getElementById("depot-libelle");
    var live = document.getElementById("depot-annonce");
    var result = document.getElementById("depot-resultat");
    var button = document.getElementById("depot-envoyer");
    // The bar and the percentage move continuously; screen readers hear
    // the progress at most every 25 % (a live region announced at each
    // step would talk over the whole upload) and once at the end.
    var announced = 0;
    var show = function (n) {
      bar.value = n;
      pct.textContent = n + "%";
      var step = Math.floor(n / 25) * 25;
      if (step > announced && step < 100) {
        announced = step;
        live.textContent = "Envoi en cours : " + step + " %";
      }
    };
    var finish = function (text) {
      announced = 100;
      live.textContent = text;
    };
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      result.textContent = "";
      var file = input.files && input.files[0];
      if (!file) {
        result.appendChild(alertBox("error", "Dépôt impossible", "Sélectionnez sur votre poste le fichier à transmettre."));
        return;
      }
      var maxSize = parseInt(form.getAttribute("data-max"), 10);
      if (maxSize && file.size > maxSize) {
        result.appendChild(alertBox("error", "Dépôt refusé",
          "dépôt refusé : le fichier dépasse la taille maximale autorisée (" + form.getAttribute("data-max-label") + ")"));
        return;
      }
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
      xhr.setRequestHeader("X-CSRF-Token", token);
      xhr.responseType = "json";
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) {
          show(Math.min(99, Math.floor((e.loaded / e.total) * 100)));
        }
      });
      xhr.addEventListener("load", function () {
        button.disabled = false;
        var r = xhr.response || {};
        if (xhr.status === 200 && r.ok) {
          show(100);
          finish("Envoi terminé : 100 %.");
          result.appendChild(alertBox("success", "Dépôt enregistré", r.message));
          form.reset();
        } else {
          show(0);
          finish("Envoi refusé.");
          result.appendChild(alertBox("error", "Dépôt refusé", r.message || "Le dépôt n'a pas abouti. Réessayez."));
        }
      });
      xhr.addEventListener("error", function () {
        button.disabled = false;
        show(0);
        finish("Envoi interrompu.");
        result.appendChild(alertBox("error", "Dépôt interrompu",
          "La connexion a été interrompue : aucun dépôt n'a été enregistré. Recommencez."));
      });
      button.disabled = true;
      announced = 0;
      live.textContent = "";
      label.textContent = "Envoi du fichier " + file.name;
      show(0);
      xhr.send(new FormData(form));
    });
  }

  // Live password strength, computed by the server.
  var pwd = document.getElementById("nouveau");
  if (pwd && window.fetch) {
    var label = document.getElementById("niveau-libelle");
    var meter = document.getElementById("niveau-barre");
    var msg = document.getElementById("niveau-message");
    var confirm = document.getElementById("confirmation");
    var confirmMsg = document.getElementById("confirmation-message");
    var timer = null;
    var seq = 0;
    var check = function () {
      var mine = ++seq;
      fetch("/mot-de-passe/niveau", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": token, "X-Requested-With": "XMLHttpRequest" },
        body: JSON.stringify({ motdepasse: pwd.value })
      }).then(function (r) { return r.json(); }).then(function (r) {
        if (mine !== seq) { return; }
        if (!pwd.value) {
          label.textContent = "…";
          meter.setAttribute("data-score", "-1");
          msg.textContent = "";
          return;
        }
        label.textContent = r.niveau;
        meter.setAttribute("data-score", String(r.score));
        msg.textContent = r.accepte ? "Ce mot de passe respecte les règles." : r.message;
        msg.className = "fr-text--sm fr-mt-1v fr-mb-0 " + (r.accepte ? "fr-message--valid" : "fr-message--error");
      }).catch(function () {});
    };
    pwd.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(check, 200);
    });
    var same = function () {
      if (!confirm.value) { confirmMsg.textContent = ""; return; }
      var ok = confirm.value === pwd.value;
      confirmMsg.textContent = ok ? "Les deux saisies sont identiques." : "La confirmation ne correspond pas au nouveau mot de passe.";
      confirmMsg.className = "fr-message " + (ok ? "fr-message--valid" : "fr-message--error");
    };
    confirm.addEventListener("input", same);
    pwd.addEventListener("input", same);
  }

  var print = document.getElementById("imprimer-guide");
  if (print) {
    print.addEventListener("click", function (ev) {
      ev.preventDefault();
      window.print();
    });
  }
})();
