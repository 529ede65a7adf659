"""Helpers shared by bench/compare and bench/wrap-loss: child processes that cannot outlive the
benchmark, loopback ports, per-process CPU time and memory from /proc, a keep-alive scraper that
sends what Prometheus sends, and a description of the machine.

Nothing here reads outside the repository, /proc and the temporary folders the scripts create.
"""
import atexit
import ctypes
import glob
import http.client
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")
EXPORTER = os.path.join(ROOT, "target", "release", "joulebook-exporter")
NODE_EXPORTER = "prometheus-node-exporter"

# What Prometheus 2.42 sends on every scrape: it prefers OpenMetrics and accepts gzip, so an
# exporter that compresses spends CPU on it, and one that does not sends more bytes.
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
    "User-Agent": "Prometheus/2.42.0",
    "X-Prometheus-Scrape-Timeout-Seconds": "10",
}

_children = []
_tmpdirs = []


def _die_with_parent():
    # PR_SET_PDEATHSIG: the kernel sends SIGTERM to the child when this script dies, even by
    # SIGKILL, so no exporter or Prometheus is left behind.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def spawn(argv, log_path):
    """Starts a child process, output to `log_path`; it is stopped at exit."""
    with open(log_path, "ab") as log:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             preexec_fn=_die_with_parent)
    _children.append(p)
    return p


def stop(p, grace=5.0):
    """SIGTERM, then SIGKILL after `grace` seconds: only our own child, by its pid."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _cleanup():
    for p in reversed(_children):
        stop(p)
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)


def setup(keep_tmp=False):
    """Installs the clean-up (children stopped, temporary folder removed) on normal exit and on
    SIGINT/SIGTERM/SIGHUP; returns a fresh temporary folder."""
    atexit.register(_cleanup)

    def on_signal(signum, _frame):
        raise SystemExit(f"stopped by signal {signum}: children stopped, temporary files removed")

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    d = tempfile.mkdtemp(prefix="joulebook-bench-")
    if not keep_tmp:
        _tmpdirs.append(d)
    return d


def deadline(limit_s):
    """Ends the run (with the clean-up) if it is still going `limit_s` seconds from now. Set after
    the build, whose duration says nothing about the benchmark's."""
    def on_alarm(_signum, _frame):
        raise SystemExit(f"time limit of {limit_s:.0f} s reached: children stopped")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(limit_s))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_exporter():
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "joulebook-exporter"], cwd=ROOT,
                   check=True)


def cpu_seconds(pid):
    """(user+system from /proc/PID/stat in seconds, 1/CLK_TCK resolution, all threads including
    exited ones; sum of the live threads' run time from /proc/PID/task/*/schedstat, ns resolution).
    """
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)
    ns = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                ns += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that ended between the listing and the read
    return ticks / CLK_TCK, ns / 1e9


def memory_kib(pid):
    """VmRSS and VmHWM (peak resident set) in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    return out["VmRSS"], out["VmHWM"]


class Scraper:
    """GETs /metrics over one keep-alive connection, with Prometheus's headers (or none, `plain`).
    A connection the server closed is reopened and the request sent again; `reconnects` counts it.
    """

    def __init__(self, port, plain=False):
        self.port = port
        self.headers = {} if plain else dict(PROMETHEUS_HEADERS)
        self.conn = None
        self.reconnects = 0

    def get(self, path="/metrics"):
        """Returns (status, body bytes, seconds from sending the request to the last byte)."""
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                t0 = time.perf_counter()
                self.conn.request("GET", path, headers=self.headers)
                r = self.conn.getresponse()
                body = r.read()
                dt = time.perf_counter() - t0
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return r.status, body, dt
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest):
                self.close()
                if attempt:
                    raise
                self.reconnects += 1
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def wait_http(port, path, proc, timeout=60.0, want=None):
    """Waits until GET path answers 200 (and its body contains `want`); fails if `proc` exits."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{proc.args[0]} exited with status {proc.returncode} before answering on "
                     f"port {port}; see its log")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", path)
            r = c.getresponse()
            body = r.read()
            c.close()
            if r.status == 200 and (want is None or want.encode() in body):
                return body
            last = f"status {r.status}"
        except OSError as e:
            last = str(e)
        time.sleep(0.2)
    sys.exit(f"127.0.0.1:{port}{path} not ready after {timeout:.0f} s ({last})")


def metric_value(body, prefix):
    """The value of the first sample line starting with `prefix` in an exposition text."""
    for line in body.decode().splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    raise KeyError(prefix)


def percentile(values, q):
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]


def median(values):
    return statistics.median(values)


def run_text(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "(unavailable)"


def machine():
    """What the numbers were measured on."""
    lscpu = dict(line.split(":", 1) for line in run_text(["lscpu"]).splitlines() if ":" in line)
    return {
        "cpu": lscpu.get("Model name", "?").strip(),
        "nproc": run_text(["nproc"]),
        "hypervisor": lscpu.get("Hypervisor vendor", "none").strip(),
        "kernel": run_text(["uname", "-r"]),
        "uptime": run_text(["uptime"]),
        "commit": run_text(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]),
        "exporter_commit": run_text(["git", "-C", ROOT, "log", "-1", "--format=%h %s", "--",
                                     "exporter"]),
        "exporter_dirty": bool(run_text(["git", "-C", ROOT, "status", "--porcelain", "--",
                                         "exporter"])),
        "node_exporter": run_text([NODE_EXPORTER, "--version"]).splitlines()[0:1],
    }


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])
