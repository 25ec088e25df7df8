package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestClients is the clients suite of issue 7: each real client makes a
// valid deposit (its SHA-256 must equal the client's file), has an invalid
// one refused, downloads a response and reads /historique/depots.csv.
// A missing client skips its test locally and fails it in CI
// (.ci/clients.sh installs them all).
func TestClients(t *testing.T) {
	if testing.Short() {
		t.Skip("clients suite skipped in -short mode")
	}
	e := startEnv(t, "sqlite", nil)
	for i, c := range []struct {
		name string
		run  func(t *testing.T, e *env, n int)
	}{
		{"OpenSSH-sftp-password", testSFTPPassword},
		{"OpenSSH-sftp-key", testSFTPKey},
		{"OpenSSH-scp", testSCP},
		{"lftp", testLftp},
		{"curl", testCurl},
		{"rclone", testRclone},
		{"paramiko", testParamiko},
		{"ssh2-sftp-client", testSSH2},
		{"JSch", testJSch},
		{"PuTTY-psftp", testPsftp},
		{"WinSCP-replay", testWinSCPReplay},
	} {
		n := 100 + 20*i // spaced call-file timestamps: names never collide
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, e, n)
		})
	}
}

// wantRefused checks that a client's output reports the refusal; French
// is checked where the client shows the server's message.
func wantRefused(t *testing.T, out string, french bool) {
	t.Helper()
	switch {
	case french && !strings.Contains(out, "n'est pas habilité pour le SIRET "+siretB):
		t.Errorf("the client does not show the French refusal:\n%s", out)
	case !french && !strings.Contains(strings.ToLower(out), "permission denied"):
		t.Errorf("the client does not report the refusal:\n%s", out)
	}
}

func (e *env) sshpass(password string) []string { return []string{"SSHPASS=" + password} }

func testSFTPPassword(t *testing.T, e *env, n int) {
	needTool(t, "sftp", "sshpass")
	r := newRound(t, e, n, 1<<20+17)
	out, err := e.sftpBatch("alice-xt", e.alice, strings.Join([]string{
		"put " + r.ok + " /depot/",
		"-put " + r.bad + " /depot/",
		"get /retrait/" + r.resp + " got.xml",
		"get /historique/depots.csv depots.csv",
		"ls -l /",
		"df /depot",
	}, "\n")+"\n", r.dir)
	if err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	wantRefused(t, out, false)
	d := r.checkDeposit(r.ok, r.data)
	r.checkRefused(r.bad)
	r.checkDownload("got.xml")
	r.checkHistory("depots.csv", d)
	for _, dir := range []string{"depot", "retrait", "historique"} {
		if !strings.Contains(out, "drwx") || !strings.Contains(out, " "+dir+"\n") {
			t.Errorf("ls -l does not show %s as a directory:\n%s", dir, out)
		}
	}
	if !strings.Contains(out, "Avail") {
		t.Errorf("df (statvfs@openssh.com) failed:\n%s", out)
	}
}

func testSFTPKey(t *testing.T, e *env, n int) {
	needTool(t, "sftp")
	r := newRound(t, e, n, 64<<10)
	out, err := e.sftpBatch("alice-xt", "", strings.Join([]string{
		"put -p " + r.ok + " /depot/" + r.ok,
		"-put " + r.bad + " /depot/" + r.bad,
		"get /retrait/" + r.resp + " got.xml",
		"get /historique/depots.csv depots.csv",
	}, "\n")+"\n", r.dir)
	if err != nil {
		t.Fatalf("sftp with key: %v\n%s", err, out)
	}
	wantRefused(t, out, false)
	d := r.checkDeposit(r.ok, r.data)
	r.checkRefused(r.bad)
	r.checkDownload("got.xml")
	r.checkHistory("depots.csv", d)
}

// testSCP: scp 9.x speaks SFTP, opens without TRUNC and truncates with
// FSETSTAT(size).
func testSCP(t *testing.T, e *env, n int) {
	needTool(t, "scp", "sshpass")
	r := newRound(t, e, n, 700<<10+3)
	base := append([]string{"-e", "scp"}, e.opensshArgs()...)
	base = append(base, "-oPubkeyAuthentication=no", "-P", e.port)
	target := "alice-xt@" + e.host + ":"
	if out, err := run(t, r.dir, e.sshpass(e.alice), "sshpass", append(base, "-p", r.ok, target+"/depot/")...); err != nil {
		t.Fatalf("scp put: %v\n%s", err, out)
	}
	out, err := run(t, r.dir, e.sshpass(e.alice), "sshpass", append(base, r.bad, target+"/depot/")...)
	if err == nil {
		t.Fatalf("scp of a refused name succeeded:\n%s", out)
	}
	wantRefused(t, out, false)
	key := append(e.opensshArgs(), "-oIdentitiesOnly=yes", "-oPasswordAuthentication=no", "-i", e.keyFile, "-P", e.port)
	if out, err := run(t, r.dir, nil, "scp", append(key, target+"/retrait/"+r.resp, "got.xml")...); err != nil {
		t.Fatalf("scp get: %v\n%s", err, out)
	}
	if out, err := run(t, r.dir, nil, "scp", append(key, target+"/historique/depots.csv", "depots.csv")...); err != nil {
		t.Fatalf("scp get history: %v\n%s", err, out)
	}
	d := r.checkDeposit(r.ok, r.data)
	r.checkRefused(r.bad)
	r.checkDownload("got.xml")
	r.checkHistory("depots.csv", d)
}

// testLftp: lftp runs ssh itself; the second upload uses its temporary
// names (.in.NAME, xfer:use-temp-file).
func testLftp(t *testing.T, e *env, n int) {
	needTool(t, "lftp")
	r := newRound(t, e, n, 900<<10+5)
	ok2, data2 := r.extra(1, 300<<10)
	lftp := func(cmds ...string) (string, error) {
		settings := []string{"set cmd:fail-exit yes", "set net:max-retries 1", "set net:timeout 15",
			"set net:reconnect-interval-base 1", "set sftp:auto-confirm yes",
			"set sftp:connect-program 'ssh -a -x " + strings.Join(e.opensshArgs(), " ") + " -oPubkeyAuthentication=no'"}
		script := strings.Join(append(settings, cmds...), "; ") + "; bye"
		return run(t, r.dir, nil, "lftp", "-u", "alice-xt,"+e.alice, "-p", e.port, "-e", script, "sftp://"+e.host)
	}
	out, err := lftp("put "+r.ok+" -o /depot/"+r.ok,
		"get /retrait/"+r.resp+" -o got.xml",
		"get /historique/depots.csv -o depots.csv",
		"set xfer:use-temp-file yes", "put "+ok2+" -o /depot/"+ok2,
		"cls -l /")
	if err != nil {
		t.Fatalf("lftp: %v\n%s", err, out)
	}
	if !strings.Contains(out, "drwx") {
		t.Errorf("cls -l does not show directories:\n%s", out)
	}
	out, err = lftp("put " + r.bad + " -o /depot/" + r.bad)
	if err == nil {
		t.Fatalf("lftp put of a refused name succeeded:\n%s", out)
	}
	wantRefused(t, out, true)
	d := r.checkDeposit(r.ok, r.data)
	r.checkDeposit(ok2, data2)
	r.checkRefused(r.bad)
	r.checkDownload("got.xml")
	r.checkHistory("depots.csv", d)
}

// testCurl: curl on libssh2 1.10 (AES-CTR, HMAC-SHA2). It only logs close
// errors, so the refusal at open is what it reports.
func testCurl(t *testing.T, e *env, n int) {
	needTool(t, "curl")
	r := newRound(t, e, n, 500<<10+9)
	url := "sftp://" + e.addr
	curl := func(args ...string) (string, error) {
		return run(t, r.dir, nil, "curl", append([]string{"-sS", "-k", "--connect-timeout", "10", "-m", "60",
			"-u", "alice-xt:" + e.alice}, args...)...)
	}
	if out, err := curl("-T", r.ok, url+"/depot/"+r.ok); err != nil {
		t.Fatalf("curl upload: %v\n%s", err, out)
	}
	out, err := curl("-T", r.bad, url+"/depot/"+r.bad)
	if err == nil {
		t.Fatalf("curl upload of a refused name succeeded:\n%s", out)
	}
	wantRefused(t, out, false)
	if out, err := curl("-o", "got.xml", url+"/retrait/"+r.resp); err != nil {
		t.Fatalf("curl download: %v\n%s", err, out)
	}
	if out, err := curl("-o", "depots.csv", url+"/historique/depots.csv"); err != nil {
		t.Fatalf("curl history: %v\n%s", err, out)
	}
	d := r.checkDeposit(r.ok, r.data)
	r.checkRefused(r.bad)
	r.checkDownload("got.xml")
	r.checkHistory("depots.csv", d)
}

// testRclone: Debian's rclone 1.60 with shell auto-detection left on (its
// exec probes are refused at once), several connections, about (statvfs).
func testRclone(t *testing.T, e *env, n int) {
	needTool(t, "rclone")
	r := newRound(t, e, n, 2<<20+11)
	obscured, err := run(t, r.dir, nil, "rclone", "obscure", "--", e.alice) // "--": a generated password may begin with "-"
	if err != nil {
		t.Fatalf("rclone obscure: %v", err)
	}
	remote := ":sftp,host=" + e.host + ",port=" + e.port + ",user=alice-xt,pass=" + strings.TrimSpace(obscured) + ":"
	rclone := func(args ...string) (string, error) {
		return run(t, r.dir, []string{"RCLONE_CONFIG=" + filepath.Join(r.dir, "rclone.conf")}, "rclone",
			append(args, "--retries", "1", "--low-level-retries", "1", "--contimeout", "10s", "--timeout", "30s")...)
	}
	if out, err := rclone("copyto", r.ok, remote+"/depot/"+r.ok); err != nil {
		t.Fatalf("rclone copyto: %v\n%s", err, out)
	}
	// Several files at once: rclone opens a connection per transfer.
	batch := filepath.Join(r.dir, "batch")
	os.Mkdir(batch, 0o755)
	var more []string
	for k := 1; k <= 6; k++ {
		name, data := r.extra(k, 200<<10+k)
		os.WriteFile(filepath.Join(batch, name), data, 0o644)
		more = append(more, name)
	}
	if out, err := rclone("copy", batch, remote+"/depot", "--transfers", "4", "--checkers", "8"); err != nil {
		t.Fatalf("rclone copy: %v\n%s", err, out)
	}
	out, err := rclone("copyto", r.bad, remote+"/depot/"+r.bad)
	if err == nil {
		t.Fatalf("rclone copyto of a refused name succeeded:\n%s", out)
	}
	wantRefused(t, out, false) // pkg/sftp's client (rclone) drops the status text
	if out, err := rclone("copyto", remote+"/retrait/"+r.resp, "got.xml"); err != nil {
		t.Fatalf("rclone download: %v\n%s", err, out)
	}
	if out, err := rclone("copyto", remote+"/historique/depots.csv", "depots.csv"); err != nil {
		t.Fatalf("rclone history: %v\n%s", err, out)
	}
	if out, err := rclone("about", remote+"/depot"); err != nil || !strings.Contains(out, "Free:") {
		t.Errorf("rclone about: %v\n%s", err, out)
	}
	d := r.checkDeposit(r.ok, r.data)
	for k, name := range more {
		b, _ := os.ReadFile(filepath.Join(batch, name))
		if len(b) != 200<<10+k+1 {
			t.Fatalf("batch file %s", name)
		}
		r.checkDeposit(name, b)
	}
	r.checkRefused(r.bad)
	r.checkDownload("got.xml")
	r.checkHistory("depots.csv", d)
}

// runParamiko runs paramikoScript with spec and decodes its output.
func runParamiko(t *testing.T, dir string, spec map[string]any) map[string]any {
	t.Helper()
	script := filepath.Join(dir, "client.py")
	os.WriteFile(script, []byte(paramikoScript), 0o644)
	b, _ := json.Marshal(spec)
	out, err := run(t, dir, nil, "/usr/bin/python3", "-W", "ignore", script, string(b))
	if err != nil {
		t.Fatalf("paramiko: %v\n%s", err, out)
	}
	var res map[string]any
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("paramiko output: %v\n%s", err, out)
	}
	t.Logf("paramiko: %s", lines[len(lines)-1])
	return res
}

// testParamiko: paramiko ignores close errors and STATs the final name
// after put to compare its size.
func testParamiko(t *testing.T, e *env, n int) {
	needPython(t)
	r := newRound(t, e, n, 800<<10+1)
	res := runParamiko(t, r.dir, map[string]any{"mode": "client", "host": e.host, "port": mustAtoi(e.port),
		"user": "alice-xt", "key": e.keyFile, "dir": r.dir, "ok": r.ok, "bad": r.bad, "resp": r.resp})
	wantRefused(t, res["bad"].(string), true)
	if res["put_size"].(float64) != float64(len(r.data)) {
		t.Errorf("STAT after put: size %v", res["put_size"])
	}
	d := r.checkDeposit(r.ok, r.data)
	r.checkRefused(r.bad)
	r.checkDownload("got.xml")
	r.checkHistory("depots.csv", d)
}

// testWinSCPReplay replays WinSCP's sequences with paramiko: small file
// with SETSTAT, .filepart + REMOVE + RENAME + SETSTAT over an existing
// deposit, resume after a dropped connection, FileZilla's and APPEND
// resumes, removal of a staging file, refusals.
func testWinSCPReplay(t *testing.T, e *env, n int) {
	needPython(t)
	r := newRound(t, e, n, 40<<10)
	large, largeData := r.extra(1, 300<<10+7)
	r.write(large+".old", []byte("<AppelAPA version=\"ancienne\"/>"))
	resume, resumeData := r.extra(2, 1<<20+333)
	fz, fzData := r.extra(3, 400<<10+1)
	ap, apData := r.extra(4, 300<<10+2)
	dropped, _ := r.extra(5, 10)
	res := runParamiko(t, r.dir, map[string]any{"mode": "winscp", "host": e.host, "port": mustAtoi(e.port),
		"user": "alice-xt", "password": e.alice, "dir": r.dir, "small": r.ok, "large": large, "resume": resume,
		"filezilla": fz, "append": ap, "dropped": dropped, "bad": r.bad, "resp": r.resp})

	if small := res["small"].([]any); small[0].(float64) != float64(len(r.data)) || small[1].(float64) != 1700000000 {
		t.Errorf("STAT after SETSTAT: %v", small)
	}
	r.checkDeposit(r.ok, r.data)
	// The REMOVE of the target answered OK without cancelling the earlier deposit.
	var versions []string
	for _, d := range e.deposits(siretA) {
		if d.ExternalName == large {
			versions = append(versions, d.SHA256)
		}
	}
	if len(versions) != 2 || versions[0] != sha(largeData) || versions[1] != sha([]byte("<AppelAPA version=\"ancienne\"/>")) {
		t.Errorf("deposits of %s: %v; want the new one, then the old one", large, versions)
	}
	if listed := res["listed_while_staged"].([]any); len(listed) != 0 {
		t.Errorf("staging files listed in /depot: %v", listed)
	}
	if found := res["resume_found"].(float64); found <= 0 || found >= float64(len(resumeData)) {
		t.Errorf("staged size after the drop: %v", found)
	}
	r.checkDeposit(resume, resumeData)
	r.checkDeposit(fz, fzData)
	d := r.checkDeposit(ap, apData)
	if res["dropped_gone"] != true {
		t.Error("removed staging file still STAT-able")
	}
	if r.deposit(dropped) != nil {
		t.Error("a removed staging file was deposited")
	}
	wantRefused(t, res["bad"].(string), true)
	if msg := res["bad_rename"].(string); !strings.Contains(msg, "ne peut être renommé qu'en "+dropped) {
		t.Errorf("rename to another name: %q", msg)
	}
	r.checkRefused(r.bad)
	r.checkDownload("got.xml")
	r.checkHistory("depots.csv", d)
	if tmp := e.tmpFiles(); len(tmp) > 0 {
		t.Logf("temporary files (other clients may be uploading): %v", tmp)
	}
}

func mustAtoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// testSSH2: ssh2-sftp-client's list() reads the long name for the type;
// fastPut and fastGet run 64 requests at once.
func testSSH2(t *testing.T, e *env, n int) {
	needTool(t, "node")
	module := filepath.Join(clientsDir(), "node_modules", "ssh2-sftp-client")
	needFile(t, filepath.Join(module, "package.json"), "ssh2-sftp-client (npm)")
	r := newRound(t, e, n, 100<<10+3)
	ok2, data2 := r.extra(1, 3<<20+5)
	script := filepath.Join(r.dir, "client.js")
	os.WriteFile(script, []byte(nodeScript), 0o644)
	b, _ := json.Marshal(map[string]any{"host": e.host, "port": mustAtoi(e.port), "user": "alice-xt",
		"password": e.alice, "dir": r.dir, "ok": r.ok, "ok2": ok2, "bad": r.bad, "resp": r.resp})
	out, err := run(t, r.dir, []string{"SSH2_SFTP_CLIENT=" + module}, "node", script, string(b))
	if err != nil {
		t.Fatalf("ssh2-sftp-client: %v\n%s", err, out)
	}
	var res struct {
		Bad   string
		Root  []string
		Depot []string
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &res); err != nil {
		t.Fatalf("output: %v\n%s", err, out)
	}
	wantRefused(t, res.Bad, true)
	for _, want := range []string{"depot:d:rwx", "retrait:d:r", "historique:d:r"} {
		if !strings.Contains(strings.Join(res.Root, " "), want) {
			t.Errorf("list('/') = %v; want %s", res.Root, want)
		}
	}
	if !strings.Contains(strings.Join(res.Depot, " "), ok2+":-:"+strconv.Itoa(len(data2))) {
		t.Errorf("list('/depot') = %v", res.Depot)
	}
	d := r.checkDeposit(r.ok, r.data)
	r.checkDeposit(ok2, data2)
	r.checkRefused(r.bad)
	r.checkDownload("got.xml")
	r.checkHistory("depots.csv", d)
}

// testJSch: JSch 0.1.55 has no ed25519: it negotiates the ECDSA P-256 host
// key, ecdh-sha2-nistp256, AES-CTR and HMAC-SHA2.
func testJSch(t *testing.T, e *env, n int) {
	needTool(t, "java")
	jar := "/usr/share/java/jsch.jar"
	needFile(t, jar, "libjsch-java")
	r := newRound(t, e, n, 600<<10+7)
	src := filepath.Join(r.dir, "T.java")
	os.WriteFile(src, []byte(jschProgram), 0o644)
	out, err := run(t, r.dir, nil, "java", "-cp", jar, src, e.host, e.port, "alice-xt", e.alice, r.dir, r.ok, r.bad, r.resp)
	if err != nil {
		t.Fatalf("JSch: %v\n%s", err, out)
	}
	t.Logf("JSch:\n%s", out)
	if !strings.Contains(out, "HOSTKEY ecdsa-sha2-nistp256") {
		t.Errorf("host key not ECDSA P-256:\n%s", out)
	}
	bad := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "BAD ") {
			bad = l
		}
	}
	if !strings.HasPrefix(bad, "BAD 3 ") {
		t.Errorf("refusal %q, want SSH_FX_PERMISSION_DENIED", bad)
	}
	wantRefused(t, bad, true)
	if !strings.Contains(out, "LS drwx") {
		t.Errorf("ls does not show directories:\n%s", out)
	}
	d := r.checkDeposit(r.ok, r.data)
	r.checkRefused(r.bad)
	r.checkDownload("got.xml")
	r.checkHistory("depots.csv", d)
}

// testPsftp: PuTTY's psftp, the SSH stack of WinSCP; it shows the
// server's status message.
func testPsftp(t *testing.T, e *env, n int) {
	needTool(t, "psftp")
	r := newRound(t, e, n, 400<<10+9)
	psftp := func(batch string) (string, error) {
		bf := filepath.Join(r.dir, "batch")
		os.WriteFile(bf, []byte(batch), 0o644)
		args := []string{"-batch", "-P", e.port, "-l", "alice-xt", "-pw", e.alice, "-b", bf}
		for _, fp := range e.hostKeyFingerprints() {
			args = append(args, "-hostkey", fp)
		}
		return run(t, r.dir, nil, "psftp", append(args, e.host)...)
	}
	out, err := psftp("put " + r.ok + " /depot/" + r.ok + "\nget /retrait/" + r.resp + " got.xml\n" +
		"get /historique/depots.csv depots.csv\nls /\n")
	if err != nil {
		t.Fatalf("psftp: %v\n%s", err, out)
	}
	if !strings.Contains(out, "drwx") {
		t.Errorf("ls does not show directories:\n%s", out)
	}
	out, err = psftp("put " + r.bad + " /depot/" + r.bad + "\n")
	if err == nil {
		t.Fatalf("psftp put of a refused name succeeded:\n%s", out)
	}
	wantRefused(t, out, false) // psftp shows its own text for the status code
	d := r.checkDeposit(r.ok, r.data)
	r.checkRefused(r.bad)
	r.checkDownload("got.xml")
	r.checkHistory("depots.csv", d)
}
