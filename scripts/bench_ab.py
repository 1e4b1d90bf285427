"""Table of scripts/bench_ab.sh's runs: per row the median of each side's runs and after/before."""
import json, glob, statistics, sys, collections
out = sys.argv[1]
rows = collections.defaultdict(lambda: collections.defaultdict(list))
for f in glob.glob(out + "/*.json"):
    side = f.split("/")[-1].split("-")[0]
    try:
        r = json.load(open(f))
    except Exception as e:
        print("bad", f, e); continue
    for m in r.get("paper1", []):
        rows[f"paper1 {m['scheme']} (224², b1) end to end"][side].append(m["latency"]["median"])
        s = sum(l["seconds"] for l in m.get("layers", []) if l["op"] == "conv2d")
        rows[f"paper1 {m['scheme']} conv layers' sum"][side].append(s)
    for m in r.get("paper2", []):
        rows[f"paper2 {m['model']} (64², GPU time)"][side].append(m["total"])
    for s in r.get("sweep", []):
        L = s["layer"]
        rows[f"sweep {L['channels']}ch {L['size']}² {L['kernel']}×{L['kernel']} G={s['groups']}"][side].append(s["time"]["median"])
print("| row | before ms (runs) | after ms (runs) | after / before |")
print("|---|---:|---:|---:|")
ratios = []
for k in sorted(rows, key=lambda k: (k.split()[0], k)):
    b, a = rows[k].get("before", []), rows[k].get("after", [])
    if not b or not a:
        continue
    mb, ma = statistics.median(b), statistics.median(a)
    ratios.append(ma / mb)
    print(f"| {k} | {1e3*mb:.2f} ({', '.join(f'{1e3*x:.2f}' for x in b)}) | {1e3*ma:.2f} ({', '.join(f'{1e3*x:.2f}' for x in a)}) | {ma/mb:.2f} |")
if ratios:
    print(f"\nmedian after/before over {len(ratios)} rows: {statistics.median(ratios):.3f} (min {min(ratios):.2f}, max {max(ratios):.2f})")
