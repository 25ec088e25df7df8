package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/pigp/pigp/apa"
)

// chromiumPath returns Debian's chromium, skipping the test when it is
// missing (and failing it in CI, where .ci/run installs it).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	needTool(t, "chromium")
	return ""
}

// screenshotDir is where the browser test writes its screenshots:
// $PIGP_SCREENSHOTS, or testdata/screenshots at the root (git-ignored).
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("PIGP_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "testdata", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	return abs
}

// startBrowser starts headless Chromium (1280×800, French) for the test
// and returns its context, step (run actions, failing the test with the
// page's address and, when shots is set, a screenshot echec.png) and text
// (the text of an element).
func startBrowser(t *testing.T, shots string) (context.Context, func(string, ...chromedp.Action[chromedp.Void]), func(string) string) {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("lang", "fr-FR"),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil { // start the browser, for the whole test
		t.Fatalf("start chromium: %v", err)
	}
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, c := context.WithTimeout(ctx, 60*time.Second)
		defer c()
		if err := chromedp.Do(sctx, actions...); err != nil {
			// Keep what the browser showed, to diagnose the failure.
			fctx, fc := context.WithTimeout(ctx, 10*time.Second)
			defer fc()
			if png, serr := chromedp.Run(fctx, chromedp.FullScreenshot(100)); serr == nil && shots != "" {
				os.WriteFile(filepath.Join(shots, "echec.png"), png, 0o644)
			}
			loc, _ := chromedp.Run(fctx, chromedp.Location())
			t.Fatalf("%s: %v (page %s; screenshot echec.png when kept)", what, err, loc)
		}
	}
	text := func(sel string) string {
		t.Helper()
		sctx, c := context.WithTimeout(ctx, 30*time.Second)
		defer c()
		s, err := chromedp.Run(sctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	return ctx, step, text
}

// TestWebPortalBrowser drives the portal in headless Chromium as a
// département agent would: log in, applications, upload with the progress
// bar, deposit history, download of a response, password change, logout;
// then the same screens on a phone. Each screen is saved as a PNG.
func TestWebPortalBrowser(t *testing.T) {
	chromiumPath(t)
	e, base := startWebEnv(t, "sqlite")
	shots := screenshotDir(t)
	downloads := t.TempDir()

	ctx, step, text := startBrowser(t, shots)
	viewport := "1280x800"
	shot := func(name string) {
		t.Helper()
		sctx, c := context.WithTimeout(ctx, 30*time.Second)
		defer c()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, viewport+"-"+name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	login := func(password string) {
		t.Helper()
		step("log in",
			chromedp.Navigate(base+"/connexion"),
			chromedp.WaitVisible("#identifiant"),
			chromedp.SendKeys("#identifiant", "alice-xt"),
			chromedp.SendKeys("#motdepasse", password),
			chromedp.Click(`#form-connexion button[type="submit"]`),
			chromedp.WaitVisible("#expiration"),
		)
	}

	if err := e.app.DB.SetCivility(context.Background(), "alice-xt", "MME"); err != nil {
		t.Fatal(err)
	}
	// 1. Connexion: the form beside the introduction, pointer tips on its fields.
	step("login page", chromedp.Navigate(base+"/connexion"), chromedp.WaitVisible("#identifiant"))
	if h := text("h1"); h != "Bienvenue sur le Portail de la Gestion Publique" {
		t.Fatalf("login page title %q", h)
	}
	checkLoginLayout(t, ctx, false)
	shot("01-connexion")
	// 2. Applications: the civility before the name, APA and PIGP.
	login(e.alice)
	if got := text("#expiration"); !strings.HasPrefix(got, "Expiration de votre mot de passe le ") {
		t.Fatalf("expiry line %q", got)
	}
	if got := text("main"); !strings.Contains(got, "Liste des applications disponibles pour") {
		t.Fatalf("applications page: %q", got)
	}
	checkApplications(t, ctx, base, step, text)
	shot("02-applications")

	// 3. Dépôt, with the progress bar.
	name := callName(siretA, 1)
	file := filepath.Join(t.TempDir(), name)
	content := bytes.Repeat([]byte("<DemandeAPA>0123456789</DemandeAPA>\n"), 250_000) // 9 MB
	if err := os.WriteFile(file, content, 0o600); err != nil {
		t.Fatal(err)
	}
	step("upload",
		chromedp.Navigate(base+"/apa/depot"),
		chromedp.WaitVisible("#fichier"),
		chromedp.SetUploadFiles("#fichier", []string{file}),
		chromedp.Evaluate[chromedp.Void](`window.pcts = []; new MutationObserver(function () {
			window.pcts.push(document.getElementById("depot-pourcentage").textContent);
		}).observe(document.getElementById("depot-pourcentage"), {childList: true, characterData: true, subtree: true})`),
		chromedp.Evaluate[chromedp.Void](observeAnnouncements),
		chromedp.Click("#depot-envoyer"),
		chromedp.WaitVisible("#depot-resultat .fr-alert--success"),
	)
	checkAnnouncements(t, ctx, name)
	if got := text("#depot-pourcentage"); got != "100%" {
		t.Fatalf("progress ends at %q, want 100%%", got)
	}
	pcts, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.pcts`))
	if err != nil || len(pcts) == 0 || pcts[len(pcts)-1] != "100%" {
		t.Fatalf("progress went %v (%v), want to end at 100%%", pcts, err)
	}
	value, _ := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.getElementById("depot-progression").value`))
	confirmation := text("#depot-resultat")
	d := e.deposits(siretA)[0]
	if value != 100 || !strings.Contains(confirmation, d.ID) || d.ExternalName != name || d.Size != int64(len(content)) {
		t.Fatalf("after upload: bar %v, confirmation %q, deposit %+v", value, confirmation, d)
	}
	t.Logf("progress: %v", pcts)
	shot("03-depot")

	// 4. Historique des dépôts.
	step("deposit history", chromedp.Click(`a[href="/apa/historique-depots"]`, chromedp.NodeVisible), chromedp.WaitVisible("#table-depots"))
	if got := text("#table-depots"); !strings.Contains(got, name) || !strings.Contains(got, d.ID) || !strings.Contains(strings.ToLower(got), "reçu") {
		t.Fatalf("deposit history: %q", got)
	}
	shot("04-historique-depots")

	// 5. Retrait: download a response, and see the first-download date.
	resp := e.publish(siretA, "2026_"+siretA+"_20261128101500_REP.xml", []byte(strings.Repeat("<ReponseAPA/>\n", 40)))
	e.publish(siretA, "2026_"+siretA+"_20261127094032_REP.xml", bytes.Repeat([]byte("x"), 7*1024))
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads}); err != nil {
		t.Fatal(err)
	}
	step("responses", chromedp.Click(`a[href="/apa/retrait"]`, chromedp.NodeVisible), chromedp.WaitVisible("#table-retrait"))
	shot("05-retrait-avant")
	step("download", chromedp.Click(fmt.Sprintf(`a[href="/apa/retrait/%s"]`, resp.Name), chromedp.NodeVisible))
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(downloads, resp.Name)); err == nil && len(b) == int(resp.Size) {
			break
		}
		if time.Now().After(deadline) {
			entries, _ := os.ReadDir(downloads)
			t.Fatalf("the download did not arrive: %v", entries)
		}
		time.Sleep(100 * time.Millisecond)
	}
	step("reload responses", chromedp.Reload(), chromedp.WaitVisible("#table-retrait"))
	checkRetrievalTable(t, ctx, false)
	today := time.Now().In(apa.Paris).Format("02-01-2006")
	row := text(fmt.Sprintf(`//tr[td/span[normalize-space()="%s"]]`, resp.Name))
	if !strings.Contains(row, today) || strings.Count(row, today) < 2 {
		t.Fatalf("response row after download: %q, want the first-download date %s", row, today)
	}
	shot("06-retrait-apres")
	step("download history", chromedp.Click(`a[href="/apa/historique-retraits"]`, chromedp.NodeVisible), chromedp.WaitVisible("#table-retraits"))
	if got := text("#table-retraits"); !strings.Contains(got, resp.Name) || !strings.Contains(got, "HTTP") || strings.Contains(got, "HTTPS") {
		t.Fatalf("download history: %q", got)
	}
	shot("07-historique-retraits")

	// 6. Changement de mot de passe, with the live strength indicator.
	const newPassword = "Velo-Rouge-Pluie-42"
	step("password page hints", chromedp.Navigate(base+"/mot-de-passe"), chromedp.WaitVisible("#nouveau"))
	checkPasswordHints(t, ctx, text)
	step("password page", chromedp.Navigate(base+"/mot-de-passe"), chromedp.WaitVisible("#nouveau"),
		chromedp.SendKeys("#actuel", e.alice),
		chromedp.SendKeys("#nouveau", "soleil2024"),
		chromedp.Poll[chromedp.Void](`document.getElementById("niveau-libelle").textContent === "faible" || document.getElementById("niveau-libelle").textContent === "très faible"`),
	)
	if got := text("#niveau-message"); !strings.Contains(got, "mot de passe refusé") {
		t.Fatalf("weak password message %q", got)
	}
	shot("08-mot-de-passe-faible")
	step("strong password",
		chromedp.Evaluate[chromedp.Void](`document.getElementById("nouveau").value = ""`),
		chromedp.SendKeys("#nouveau", newPassword),
		chromedp.SendKeys("#confirmation", newPassword),
		chromedp.Poll[chromedp.Void](`document.getElementById("niveau-libelle").textContent === "très fort"`),
	)
	if got := text("#niveau-securite"); !strings.Contains(got, "Votre nouveau mot de passe a un niveau de sécurité : très fort") {
		t.Fatalf("strength indicator %q", got)
	}
	shot("09-mot-de-passe-fort")
	step("change password", chromedp.Click(`#form-mot-de-passe button[type="submit"]`), chromedp.WaitVisible("#expiration"))
	if got := text("main"); !strings.Contains(got, "Votre mot de passe a été modifié") {
		t.Fatalf("after change: %q", got)
	}
	shot("10-mot-de-passe-modifie")

	// 7. Déconnexion.
	step("logout", chromedp.Click(`main form[action="/deconnexion"] button`), chromedp.WaitVisible("#identifiant"))
	if got := text("main"); !strings.Contains(got, "Vous êtes déconnecté") {
		t.Fatalf("after logout: %q", got)
	}
	shot("11-deconnexion")
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.Contains(loc, "/connexion") {
		t.Fatalf("after logout at %s", loc)
	}

	// The same screens on a phone.
	viewport = "390x844"
	step("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	step("phone login page", chromedp.Navigate(base+"/connexion"), chromedp.WaitVisible("#identifiant"))
	checkLoginLayout(t, ctx, true)
	shot("01-connexion")
	login(newPassword)
	checkApplications(t, ctx, base, step, text)
	shot("02-applications")
	// An upload on the phone: the same announcements.
	name2 := callName(siretA, 2)
	file2 := filepath.Join(t.TempDir(), name2)
	if err := os.WriteFile(file2, content, 0o600); err != nil {
		t.Fatal(err)
	}
	step("phone upload", chromedp.Navigate(base+"/apa/depot"), chromedp.WaitVisible("#fichier"),
		chromedp.SetUploadFiles("#fichier", []string{file2}),
		chromedp.Evaluate[chromedp.Void](observeAnnouncements),
		chromedp.Click("#depot-envoyer"),
		chromedp.WaitVisible("#depot-resultat .fr-alert--success"),
	)
	checkAnnouncements(t, ctx, name2)
	for i, p := range []string{"/apa/depot", "/apa/retrait", "/apa/historique-depots", "/apa/historique-retraits", "/mot-de-passe", "/aide/faq", "/compte"} {
		step("phone "+p, chromedp.Navigate(base+p), chromedp.WaitVisible("main"))
		switch p {
		case "/apa/retrait":
			checkRetrievalTable(t, ctx, true)
		case "/apa/historique-depots":
			checkTable(t, ctx, "table-depots", true)
		case "/mot-de-passe":
			checkPasswordHints(t, ctx, text)
		}
		shot(fmt.Sprintf("%02d-%s", i+3, strings.ReplaceAll(strings.Trim(p, "/"), "/", "-")))
	}
	// The page fits the phone: no horizontal scrolling of the document.
	overflow, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
	if overflow {
		t.Error("the page scrolls horizontally on a 390 px wide screen")
	}
	t.Logf("screenshots in %s", shots)
}

// evaluate runs a script and decodes its result into T, failing the test
// on error.
func evaluate[T any](t *testing.T, ctx context.Context, script string) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(sctx, chromedp.Evaluate[T](script))
	if err != nil {
		t.Fatalf("evaluate: %v\n%s", err, script)
	}
	return v
}

// checkLoginLayout: on a phone the login form comes before the conditions
// and the scam alert, its button within the first screen; on a desktop it
// sits beside the introduction. Its fields carry pointer tips.
func checkLoginLayout(t *testing.T, ctx context.Context, phone bool) {
	t.Helper()
	type box struct {
		IDTop, SubmitBottom, AlertTop, FormLeft, TitleLeft, Height, Width float64
		Tips                                                              []string
	}
	b := evaluate[box](t, ctx, `(function () {
		var r = function (sel) { var x = document.querySelector(sel).getBoundingClientRect(); return {top: x.top + window.scrollY, bottom: x.bottom + window.scrollY, left: x.left}; };
		return {IDTop: r("#identifiant").top, SubmitBottom: r('#form-connexion button[type="submit"]').bottom,
			AlertTop: r(".fr-alert--warning").top, FormLeft: r("#form-connexion").left, TitleLeft: r("h1").left,
			Height: window.innerHeight, Width: window.innerWidth,
			Tips: [document.getElementById("identifiant").title, document.getElementById("motdepasse").title]};
	})()`)
	if b.Tips[0] == "" || b.Tips[1] == "" {
		t.Errorf("login fields without pointer tips: %q", b.Tips)
	}
	if phone {
		if b.SubmitBottom > b.Height || b.IDTop > b.AlertTop {
			t.Errorf("phone login: button bottom at %.0f px on a %.0f px screen, identifier at %.0f px, scam alert at %.0f px",
				b.SubmitBottom, b.Height, b.IDTop, b.AlertTop)
		}
	} else if b.FormLeft < b.Width/2 || b.IDTop > b.AlertTop {
		t.Errorf("desktop login: form at x=%.0f (title at %.0f) on %.0f px, identifier at %.0f px, alert at %.0f px",
			b.FormLeft, b.TitleLeft, b.Width, b.IDTop, b.AlertTop)
	}
}

// checkApplications: "MME AGENT ALICE-XT", the APA and PIGP applications,
// and the PIGP one opens the account page.
func checkApplications(t *testing.T, ctx context.Context, base string, step func(string, ...chromedp.Action[chromedp.Void]), text func(string) string) {
	t.Helper()
	if got := text("#titulaire"); got != "MME AGENT ALICE-XT" {
		t.Errorf("applications for %q, want MME AGENT ALICE-XT", got)
	}
	tiles := evaluate[[]string](t, ctx, `Array.from(document.querySelectorAll(".fr-tile__title a")).map(function (a) {
		var r = a.getBoundingClientRect(); return a.textContent.trim() + (r.width > 0 && r.height > 0 ? "" : " (invisible)"); })`)
	if len(tiles) < 2 || tiles[0] != "APA" || tiles[1] != "PIGP" {
		t.Errorf("applications %q, want APA then PIGP, visible", tiles)
	}
	step("PIGP application", chromedp.Click("#application-pigp a", chromedp.NodeVisible), chromedp.WaitVisible(".pigp-account"))
	if got := text("main"); !strings.Contains(got, "MME AGENT ALICE-XT") || !strings.Contains(got, "alice-xt") ||
		!strings.Contains(got, siretA) || !strings.Contains(got, "Accéder au changement de mot de passe") {
		t.Errorf("account page: %q", got)
	}
	step("back to applications", chromedp.Navigate(base+"/applications"), chromedp.WaitVisible("#expiration"))
}

// observeAnnouncements records what screen readers are told during an
// upload: the texts added to the progress announcement, and the changes of
// every other live region.
const observeAnnouncements = `(function () {
	window.annonces = []; window.otherLive = 0;
	var annonce = document.getElementById("depot-annonce");
	new MutationObserver(function (records) {
		records.forEach(function (r) { r.addedNodes.forEach(function (n) { if (n.textContent) { window.annonces.push(n.textContent); } }); });
	}).observe(annonce, {childList: true, characterData: true, subtree: true});
	document.querySelectorAll("[aria-live]").forEach(function (el) {
		if (el === annonce) { return; }
		new MutationObserver(function (records) {
			records.forEach(function (r) { if (r.addedNodes.length || r.type === "characterData") { window.otherLive++; } });
		}).observe(el, {childList: true, characterData: true, subtree: true});
	});
})()`

// checkAnnouncements: the progress is announced at most every 25 % and
// once at the end, and the bar is named after the file being sent.
func checkAnnouncements(t *testing.T, ctx context.Context, file string) {
	t.Helper()
	said := evaluate[[]string](t, ctx, `window.annonces`)
	other := evaluate[int](t, ctx, `window.otherLive`)
	if len(said) == 0 || len(said) > 4 || said[len(said)-1] != "Envoi terminé : 100 %." {
		t.Errorf("announced %q, want at most 25, 50, 75 %% then the end", said)
	}
	last := 0
	for _, a := range said[:max(0, len(said)-1)] {
		var pct int
		if _, err := fmt.Sscanf(a, "Envoi en cours : %d %%", &pct); err != nil || pct%25 != 0 || pct <= last || pct >= 100 {
			t.Errorf("announcement %q among %q", a, said)
		}
		last = pct
	}
	if other > 1 {
		t.Errorf("other live regions changed %d times during the upload, want at most once (the result)", other)
	}
	nodes, err := chromedp.Run(ctx, chromedp.Nodes("#depot-progression"))
	if err != nil || len(nodes) != 1 {
		t.Fatalf("progress bar: %v", err)
	}
	no := false
	ax, err := chromedp.Call(ctx, accessibility.GetPartialAXTree, accessibility.GetPartialAXTreeParams{
		BackendNodeID: nodes[0].BackendNodeID, FetchRelatives: &no})
	if err != nil || len(ax.Nodes) == 0 || ax.Nodes[0].Name == nil {
		t.Fatalf("accessibility tree of the progress bar: %v", err)
	}
	var name string
	json.Unmarshal(ax.Nodes[0].Name.Value, &name)
	if name != "Envoi du fichier "+file {
		t.Errorf("progress bar named %q, want %q", name, "Envoi du fichier "+file)
	}
	t.Logf("announced: %q; progress bar %q", said, name)
}

// checkRetrievalTable: file names break after "_" only; on a phone each
// row is a block of labelled lines that fits the screen, on a desktop a
// table row.
func checkRetrievalTable(t *testing.T, ctx context.Context, phone bool) {
	t.Helper()
	checkTable(t, ctx, "table-retrait", phone)
}

// checkTable: file names break after "_" only (or before the ".SIRET" of
// an internal name); on a phone each row is a block of labelled lines that
// fits the screen, on a desktop a table row.
func checkTable(t *testing.T, ctx context.Context, id string, phone bool) {
	t.Helper()
	type layout struct {
		Rows, Wrapped             int
		Bad                       []string
		Overflow, HeaderShown     bool
		CellDisplay, LabelDisplay string
	}
	l := evaluate[layout](t, ctx, strings.ReplaceAll(`(function () {
		var out = {Rows: 0, Wrapped: 0, Bad: [], Overflow: false, HeaderShown: false, CellDisplay: "", LabelDisplay: ""};
		var table = document.getElementById("TABLEID");
		// Where each name wraps: the character before every line break.
		table.querySelectorAll("td.pigp-name-cell > span:last-child").forEach(function (el) {
			var chars = [], walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT), n;
			while ((n = walker.nextNode())) {
				for (var i = 0; i < n.length; i++) {
					var r = document.createRange(); r.setStart(n, i); r.setEnd(n, i + 1);
					var rects = r.getClientRects();
					if (rects.length) { chars.push({c: n.data[i], top: rects[0].top}); }
				}
			}
			var lines = 1;
			for (var i = 1; i < chars.length; i++) {
				if (chars[i].top > chars[i - 1].top + 2) {
					lines++;
					if (chars[i - 1].c !== "_" && !(chars[i - 1].c === "l" && chars[i].c === ".")) {
						out.Bad.push(el.textContent + " breaks after " + JSON.stringify(chars[i - 1].c));
					}
				}
			}
			if (lines > 1) { out.Wrapped++; }
		});
		var rows = table.querySelectorAll("tbody tr");
		out.Rows = rows.length;
		rows.forEach(function (tr) {
			var w = tr.getBoundingClientRect().width, prev = -1e9, top0 = null;
			tr.querySelectorAll("td").forEach(function (td) {
				var r = td.getBoundingClientRect();
				out.CellDisplay = getComputedStyle(td).display;
				var label = td.querySelector(".pigp-label");
				out.LabelDisplay = getComputedStyle(label).display;
				if (out.CellDisplay !== "table-cell") {
					if (r.width < w - 2) { out.Bad.push("cell narrower than its row: " + td.textContent); }
					if (r.top < prev - 1) { out.Bad.push("cells side by side: " + td.textContent); }
					if (out.LabelDisplay === "none") { out.Bad.push("no column name in " + td.textContent); }
					prev = r.bottom;
				} else {
					if (top0 === null) { top0 = r.top; }
					if (Math.abs(r.top - top0) > 1) { out.Bad.push("cells not on one line: " + td.textContent); }
				}
			});
		});
		var c = table.querySelector(".fr-table__container");
		out.Overflow = c.scrollWidth > c.clientWidth + 1 || document.documentElement.scrollWidth > window.innerWidth + 1;
		out.HeaderShown = table.querySelector("thead").getBoundingClientRect().height > 2;
		return out;
	})()`, "TABLEID", id))
	if l.Rows < 2 || len(l.Bad) > 0 {
		t.Errorf("%s (%d rows): %q", id, l.Rows, l.Bad)
	}
	if phone {
		if l.CellDisplay == "table-cell" || l.LabelDisplay == "none" || l.HeaderShown || l.Overflow || l.Wrapped == 0 {
			t.Errorf("%s on a phone: cells %s, labels %s, header shown %v, overflow %v, %d names wrapped",
				id, l.CellDisplay, l.LabelDisplay, l.HeaderShown, l.Overflow, l.Wrapped)
		}
	} else if l.CellDisplay != "table-cell" || l.LabelDisplay != "none" || !l.HeaderShown {
		t.Errorf("%s on a desktop: cells %s, labels %s, header shown %v", id, l.CellDisplay, l.LabelDisplay, l.HeaderShown)
	}
}

// checkPasswordHints: the identifier hints of the change page and the
// pointer tips of its fields.
func checkPasswordHints(t *testing.T, ctx context.Context, text func(string) string) {
	t.Helper()
	got := text("#form-mot-de-passe")
	for _, want := range []string{"Placez quelques secondes le pointeur de votre souris sur le champ à remplir pour plus de renseignements",
		"Un seul choix possible : soit la partie gauche de votre adresse courriel soit votre identifiant",
		"Saisissez la partie gauche de votre adresse courriel", "OU saisissez votre identifiant externe (exemple : pmartin-xt)"} {
		if !strings.Contains(strings.Join(strings.Fields(got), " "), want) {
			t.Errorf("password page lacks %q:\n%s", want, got)
		}
	}
	tips := evaluate[[]string](t, ctx, `["identifiant", "actuel", "nouveau", "confirmation"].map(function (id) { return document.getElementById(id).title; })`)
	for i, tip := range tips {
		if len(tip) < 20 {
			t.Errorf("field %d of the password page: pointer tip %q", i, tip)
		}
	}
}
