#!/usr/bin/python3
"""Which of joulebook's alerts fire on a backfilled (simulated) period, for deploy/demo/run.

Prometheus evaluates rules only from the moment it runs, so a backfilled month has neither the
recording rules' series nor alerts. This script evaluates them over the period through the HTTP
API, as Prometheus would have every `--step` seconds:

  record --level N   prints, as OpenMetrics for `promtool tsdb create-blocks-from openmetrics`,
                     the series of the recording rules the alerts need (directly or through other
                     rules) whose expressions read rules of lower levels only; exit code 3 when
                     there is no level N. Backfill level by level, restarting Prometheus between.
  fire               prints each alert with the nodes (or clusters) on which its expression held
                     for the rule's `for`, and the alerts that never fired.

Reads the rule files with PyYAML (Debian python3-yaml) and the API with the standard library.
"""

import argparse
import json
import re
import sys
import time
import urllib.parse
import urllib.request

import yaml


def load_rules(files):
    records, alerts = {}, []
    for f in files:
        with open(f, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh) or {}
        for group in doc.get("groups", []):
            for rule in group.get("rules", []):
                if "record" in rule:
                    records[rule["record"]] = rule["expr"]
                elif "alert" in rule:
                    alerts.append((rule["alert"], rule["expr"], seconds(rule.get("for", "0s"))))
    return records, alerts


def seconds(d):
    m = re.fullmatch(r"(\d+)([smhd])", str(d).strip())
    if not m:
        raise SystemExit(f"alerts.py: cannot read the duration {d!r}")
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def reads(expr, records):
    """The recording rules an expression reads."""
    return {n for n in records if re.search(r"(?<![\w:])" + re.escape(n) + r"(?![\w:])", expr)}


def levels(records, alerts):
    """Level of each recording rule the alerts need: 0 reads raw series only."""
    need, todo = set(), [r for _, e, _ in alerts for r in reads(e, records)]
    while todo:
        r = todo.pop()
        if r not in need:
            need.add(r)
            todo.extend(reads(records[r], records))
    level = {}

    def of(r):
        if r not in level:
            level[r] = 1 + max((of(d) for d in reads(records[r], records)), default=-1)
        return level[r]

    for r in need:
        of(r)
    return level


def query_range(url, expr, start, end, step):
    """Series of `expr` every `step` seconds over `[start, end]`, in pieces of at most 10,000
    steps (Prometheus refuses more than 11,000 points a series), joined by labels."""
    series = {}
    piece = 10_000 * step
    t = start
    while t <= end:
        stop = min(end, t + piece - step)
        q = urllib.parse.urlencode({"query": expr, "start": t, "end": stop, "step": step})
        with urllib.request.urlopen(f"{url}/api/v1/query_range?{q}", timeout=600) as resp:
            body = json.load(resp)
        if body.get("status") != "success":
            raise SystemExit(f"alerts.py: {expr}: {body.get('error')}")
        for s in body["data"]["result"]:
            key = tuple(sorted(s["metric"].items()))
            series.setdefault(key, {"metric": s["metric"], "values": []})["values"] += s["values"]
        t = stop + step
    return list(series.values())


def record(args, records, alerts):
    wanted = [r for r, l in sorted(levels(records, alerts).items()) if l == args.level]
    if not wanted:
        sys.exit(3)
    out = sys.stdout
    for name in wanted:
        out.write(f"# TYPE {name} gauge\n")
        for s in query_range(args.prometheus, records[name], args.start, args.end, args.step):
            labels = ",".join(
                f"{k}={json.dumps(v)}" for k, v in sorted(s["metric"].items()) if k != "__name__"
            )
            for t, v in s["values"]:
                out.write(f"{name}{{{labels}}} {v} {int(float(t))}\n")
    out.write("# EOF\n")


def graph_url(base, expr, start, end):
    """Prometheus' graph page drawing `expr` over `[start, end]`."""
    hours = max(1, -(-(end - start) // 3600))
    q = urllib.parse.urlencode(
        {
            "g0.expr": expr.strip(),
            "g0.tab": "0",
            "g0.range_input": f"{hours}h",
            "g0.end_input": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(end)),
        }
    )
    return f"{base}/graph?{q}"


def fire(args, _records, alerts):
    pad = " " * args.indent
    quiet = []
    for name, expr, hold in alerts:
        where = set()
        for s in query_range(args.prometheus, expr, args.start, args.end, args.step):
            run, last = None, None
            for t, _ in s["values"]:
                t = int(float(t))
                if last is None or t != last + args.step:
                    run = t
                last = t
                if t - run >= hold:
                    m = s["metric"]
                    node = m.get("instance", "").rsplit(":", 1)[0]
                    where.add(node or f"cluster {m.get('cluster', '')}".strip())
                    break
        if where:
            print(f"{pad}{name} fires on {', '.join(sorted(where))}; its expression over the period:")
            print(f"{pad}  {graph_url(args.prometheus, expr, args.start, args.end)}")
        else:
            quiet.append(name)
    if quiet:
        print(f"{pad}never fired: {', '.join(quiet)}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=["record", "fire"])
    p.add_argument("rules", nargs="+", help="rule files")
    p.add_argument("--prometheus", required=True)
    p.add_argument("--start", type=int, required=True, help="Unix seconds")
    p.add_argument("--end", type=int, required=True, help="Unix seconds")
    p.add_argument("--step", type=int, default=300, help="evaluation interval, seconds")
    p.add_argument("--level", type=int, default=0)
    p.add_argument("--indent", type=int, default=0, help="spaces before each line of fire")
    args = p.parse_args()
    records, alerts = load_rules(args.rules)
    (record if args.command == "record" else fire)(args, records, alerts)


if __name__ == "__main__":
    main()
