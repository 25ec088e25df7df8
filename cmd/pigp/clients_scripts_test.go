package main

// Client programs of the clients suite, written to a temporary directory
// and run by Debian's interpreters. Each takes a JSON spec (or plain
// arguments for Java) and prints what the server answered.

// paramikoScript drives paramiko 2.12 (/usr/bin/python3). Mode "client"
// is a plain round (put, refused put, get, history); mode "winscp"
// replays WinSCP's request sequences (SftpFileSystem.cpp), including a
// resume after a dropped connection.
const paramikoScript = `
import json, sys, time
import paramiko
from paramiko.sftp import CMD_OPEN, CMD_HANDLE, SFTP_FLAG_WRITE, SFTP_FLAG_CREATE, SFTP_FLAG_TRUNC, SFTP_FLAG_APPEND
from paramiko.sftp_attr import SFTPAttributes
from paramiko.sftp_file import SFTPFile

spec = json.loads(sys.argv[1])
out = {}

def connect():
    t = paramiko.Transport((spec["host"], spec["port"]))
    t.banner_timeout = 10
    t.auth_timeout = 10
    if spec.get("key"):
        t.connect(username=spec["user"], pkey=paramiko.Ed25519Key.from_private_key_file(spec["key"]))
    else:
        t.connect(username=spec["user"], password=spec["password"])
    s = paramiko.SFTPClient.from_transport(t)
    s.get_channel().settimeout(30)
    return t, s

def raw_open(s, path, flags):
    # SSH_FXP_OPEN with exactly these pflags (paramiko's modes cannot say WRITE|CREAT).
    t, msg = s._request(CMD_OPEN, path, flags, SFTPAttributes())
    if t != CMD_HANDLE:
        raise IOError("expected a handle")
    return SFTPFile(s, msg.get_binary(), "w")

def missing(s, path):
    try:
        s.stat(path)
        return False
    except IOError:
        return True

def write_chunks(f, data, start=0, chunk=32768):
    for i in range(start, len(data), chunk):
        f.seek(i)
        f.write(data[i:i + chunk])

def read(p):
    with open(p, "rb") as fh:
        return fh.read()

def common(s):
    s.get("/retrait/" + spec["resp"], spec["dir"] + "/got.xml")
    s.get("/historique/depots.csv", spec["dir"] + "/depots.csv")

if spec["mode"] == "client":
    t, s = connect()
    out["cipher"], out["mac"], out["hostkey"] = t.remote_cipher, t.remote_mac, t.host_key_type
    attrs = s.put(spec["dir"] + "/" + spec["ok"], "/depot/" + spec["ok"])  # STATs and compares the size
    out["put_size"] = attrs.st_size
    try:
        s.put(spec["dir"] + "/" + spec["bad"], "/depot/" + spec["bad"])
        out["bad"] = "accepted"
    except IOError as e:
        out["bad"] = str(e)
    common(s)
    out["depot"] = s.listdir("/depot")
    t.close()

elif spec["mode"] == "winscp":
    t, s = connect()
    d = spec["dir"] + "/"
    mtime = 1700000000
    # 1. Small file (< 100 KiB): WRITE|CREAT|TRUNC, CLOSE, SETSTAT(mtime).
    small = spec["small"]
    if not missing(s, "/depot/" + small):
        raise SystemExit("small file exists before upload")
    f = s.open("/depot/" + small, "wb")
    f.write(read(d + small))
    f.close()
    s.utime("/depot/" + small, (mtime, mtime))
    st = s.stat("/depot/" + small)
    out["small"] = [st.st_size, st.st_mtime]

    # 2. Large file over an existing one: STAT NAME, STAT NAME.filepart,
    # upload NAME.filepart, REMOVE NAME, RENAME, SETSTAT.
    large = spec["large"]
    with s.open("/depot/" + large, "wb") as f:
        f.write(read(d + large + ".old"))
    s.stat("/depot/" + large)
    if not missing(s, "/depot/" + large + ".filepart"):
        raise SystemExit("filepart exists before upload")
    f = s.open("/depot/" + large + ".filepart", "wb")
    f.set_pipelined(True)
    f.write(read(d + large))
    f.close()
    out["listed_while_staged"] = [n for n in s.listdir("/depot") if n.endswith(".filepart")]
    s.remove("/depot/" + large)
    s.rename("/depot/" + large + ".filepart", "/depot/" + large)
    s.utime("/depot/" + large, (mtime, mtime))
    out["large"] = s.stat("/depot/" + large).st_size

    # 3. Resume after a dropped connection: the .filepart stays; a new
    # connection STATs it and reopens it WRITE|CREAT without TRUNC.
    resume = spec["resume"]
    data = read(d + resume)
    half = len(data) // 2 // 32768 * 32768
    f = s.open("/depot/" + resume + ".filepart", "wb")
    f.set_pipelined(False)
    write_chunks(f, data[:half])
    t.close()  # the network goes away, the handle still open
    t, s = connect()
    size = -1
    for _ in range(100):
        try:
            size = s.stat("/depot/" + resume + ".filepart").st_size
            break
        except IOError:
            time.sleep(0.05)
    out["resume_found"] = size
    if not missing(s, "/depot/" + resume):
        raise SystemExit("resumed file exists under its final name")
    f = raw_open(s, "/depot/" + resume + ".filepart", SFTP_FLAG_WRITE | SFTP_FLAG_CREATE)
    write_chunks(f, data, size)
    f.close()
    s.rename("/depot/" + resume + ".filepart", "/depot/" + resume)
    s.utime("/depot/" + resume, (mtime, mtime))

    # 4. FileZilla's resume: WRITE only (no CREAT), FSTAT for the offset.
    fz = spec["filezilla"]
    data = read(d + fz)
    with s.open("/depot/" + fz + ".filepart", "wb") as f:
        f.write(data[:len(data) // 3])
    f = raw_open(s, "/depot/" + fz + ".filepart", SFTP_FLAG_WRITE)
    size = f.stat().st_size
    write_chunks(f, data, size)
    f.close()
    s.rename("/depot/" + fz + ".filepart", "/depot/" + fz)

    # 5. Resume with APPEND (OpenSSH reput, curl -C -), then posix-rename.
    ap = spec["append"]
    data = read(d + ap)
    with s.open("/depot/" + ap + ".filepart", "wb") as f:
        f.write(data[:len(data) // 4])
    size = s.stat("/depot/" + ap + ".filepart").st_size
    f = raw_open(s, "/depot/" + ap + ".filepart", SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_APPEND)
    write_chunks(f, data, size)
    f.close()
    s.posix_rename("/depot/" + ap + ".filepart", "/depot/" + ap)

    # 6. A staging file that is given up is removed.
    with s.open("/depot/" + spec["dropped"] + ".filepart", "wb") as f:
        f.write(b"x" * 1000)
    s.remove("/depot/" + spec["dropped"] + ".filepart")
    out["dropped_gone"] = missing(s, "/depot/" + spec["dropped"] + ".filepart")

    # 7. Refusals, at open of the .filepart and at a rename to another name.
    try:
        s.open("/depot/" + spec["bad"] + ".filepart", "wb")
        out["bad"] = "accepted"
    except IOError as e:
        out["bad"] = str(e)
    with s.open("/depot/" + spec["dropped"] + ".filepart", "wb") as f:
        f.write(b"y" * 1000)
    try:
        s.rename("/depot/" + spec["dropped"] + ".filepart", "/depot/" + spec["bad"])
        out["bad_rename"] = "accepted"
    except IOError as e:
        out["bad_rename"] = str(e)
    common(s)
    t.close()

print(json.dumps(out))
`

// nodeScript drives ssh2-sftp-client 12.1.1: put, fastPut, a refused put,
// list, fastGet of a response and of the history.
const nodeScript = `
const Client = require(process.env.SSH2_SFTP_CLIENT);
const spec = JSON.parse(process.argv[2]);
(async () => {
  const c = new Client();
  const out = {};
  await c.connect({host: spec.host, port: spec.port, username: spec.user, password: spec.password, readyTimeout: 10000});
  await c.put(spec.dir + '/' + spec.ok, '/depot/' + spec.ok);
  await c.fastPut(spec.dir + '/' + spec.ok2, '/depot/' + spec.ok2);
  try {
    await c.put(spec.dir + '/' + spec.bad, '/depot/' + spec.bad);
    out.bad = 'accepted';
  } catch (e) {
    out.bad = e.message;
  }
  out.root = (await c.list('/')).map(f => f.name + ':' + f.type + ':' + f.rights.user);
  out.depot = (await c.list('/depot')).map(f => f.name + ':' + f.type + ':' + f.size);
  await c.fastGet('/retrait/' + spec.resp, spec.dir + '/got.xml');
  await c.fastGet('/historique/depots.csv', spec.dir + '/depots.csv');
  await c.end();
  console.log(JSON.stringify(out));
})().catch(e => { console.error('ERROR ' + e.message); process.exit(1); });
`

// jschProgram drives JSch 0.1.55 (Debian's libjsch-java), launched as a
// single-file Java program.
const jschProgram = `
import com.jcraft.jsch.*;

public class T {
  public static void main(String[] a) throws Exception {
    String host = a[0], user = a[2], pw = a[3], dir = a[4], ok = a[5], bad = a[6], resp = a[7];
    int port = Integer.parseInt(a[1]);
    JSch.setLogger(new Logger() {
      public boolean isEnabled(int level) { return true; }
      public void log(int level, String m) { if (m.startsWith("kex:")) System.out.println("LOG " + m); }
    });
    Session s = new JSch().getSession(user, host, port);
    s.setPassword(pw);
    s.setConfig("StrictHostKeyChecking", "no");
    s.setTimeout(30000);
    s.connect(10000);
    System.out.println("HOSTKEY " + s.getHostKey().getType());
    ChannelSftp c = (ChannelSftp) s.openChannel("sftp");
    c.connect(10000);
    c.put(dir + "/" + ok, "/depot/" + ok);
    try {
      c.put(dir + "/" + bad, "/depot/" + bad);
      System.out.println("BAD accepted");
    } catch (SftpException e) {
      System.out.println("BAD " + e.id + " " + e.getMessage());
    }
    c.get("/retrait/" + resp, dir + "/got.xml");
    c.get("/historique/depots.csv", dir + "/depots.csv");
    for (Object o : c.ls("/")) System.out.println("LS " + ((ChannelSftp.LsEntry) o).getLongname());
    c.disconnect();
    s.disconnect();
  }
}
`
