package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// TestWebPortalBrowser drives the portal in headless Chromium as a
// département agent would: log in, applications, upload with the progress
// bar, deposit history, download of a response, password change, logout;
// then the same screens on a phone. Each screen is saved as a PNG.
func TestWebPortalBrowser(t *testing.T) {
	chrome := chromiumPath(t)
	e, base := startWebEnv(t, "sqlite")
	shots := screenshotDir(t)
	downloads := t.TempDir()

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chrome), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("lang", "fr-FR"),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil { // start the browser
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
			if png, serr := chromedp.Run(fctx, chromedp.FullScreenshot(100)); serr == nil {
				os.WriteFile(filepath.Join(shots, "echec.png"), png, 0o644)
			}
			loc, _ := chromedp.Run(fctx, chromedp.Location())
			t.Fatalf("%s: %v (page %s; screenshot echec.png)", what, err, loc)
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

	// 1. Connexion.
	step("login page", chromedp.Navigate(base+"/connexion"), chromedp.WaitVisible("#identifiant"))
	if h := text("h1"); h != "Bienvenue sur le Portail de la Gestion Publique" {
		t.Fatalf("login page title %q", h)
	}
	shot("01-connexion")
	// 2. Applications.
	login(e.alice)
	if got := text("#expiration"); !strings.HasPrefix(got, "Expiration de votre mot de passe le ") {
		t.Fatalf("expiry line %q", got)
	}
	if got := text("main"); !strings.Contains(got, "Liste des applications disponibles pour") || !strings.Contains(got, "AGENT ALICE-XT") {
		t.Fatalf("applications page: %q", got)
	}
	shot("02-applications")

	// 3. Dépôt, with the progress bar.
	name := callName(siretA, 1)
	file := filepath.Join(t.TempDir(), name)
	content := bytes.Repeat([]byte("<DemandeAPA>0123456789</DemandeAPA>\n"), 250_000) // 9 MB
	if err := os.WriteFile(file, content, 0o600); err != nil {
		t.Fatal(err)
	}
	step("upload",
		chromedp.Click(`a[href="/apa/depot"]`, chromedp.NodeVisible),
		chromedp.WaitVisible("#fichier"),
		chromedp.SetUploadFiles("#fichier", []string{file}),
		chromedp.Evaluate[chromedp.Void](`window.pcts = []; new MutationObserver(function () {
			window.pcts.push(document.getElementById("depot-pourcentage").textContent);
		}).observe(document.getElementById("depot-pourcentage"), {childList: true, characterData: true, subtree: true})`),
		chromedp.Click("#depot-envoyer"),
		chromedp.WaitVisible("#depot-resultat .fr-alert--success"),
	)
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
	today := time.Now().In(apa.Paris).Format("02-01-2006")
	row := text(fmt.Sprintf(`//tr[td[normalize-space()="%s"]]`, resp.Name))
	if !strings.Contains(row, today) || strings.Count(row, today) < 2 {
		t.Fatalf("response row after download: %q, want the first-download date %s", row, today)
	}
	shot("06-retrait-apres")
	step("download history", chromedp.Click(`a[href="/apa/historique-retraits"]`, chromedp.NodeVisible), chromedp.WaitVisible("#table-retraits"))
	if got := text("#table-retraits"); !strings.Contains(got, resp.Name) || !strings.Contains(got, "HTTPS") {
		t.Fatalf("download history: %q", got)
	}
	shot("07-historique-retraits")

	// 6. Changement de mot de passe, with the live strength indicator.
	const newPassword = "Velo-Rouge-Pluie-42"
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
	shot("01-connexion")
	login(newPassword)
	shot("02-applications")
	for i, p := range []string{"/apa/depot", "/apa/retrait", "/apa/historique-depots", "/apa/historique-retraits", "/mot-de-passe", "/aide/faq"} {
		step("phone "+p, chromedp.Navigate(base+p), chromedp.WaitVisible("main"))
		shot(fmt.Sprintf("%02d-%s", i+3, strings.ReplaceAll(strings.Trim(p, "/"), "/", "-")))
	}
	// The page fits the phone: no horizontal scrolling of the document.
	overflow, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
	if overflow {
		t.Error("the page scrolls horizontally on a 390 px wide screen")
	}
	t.Logf("screenshots in %s", shots)
}
