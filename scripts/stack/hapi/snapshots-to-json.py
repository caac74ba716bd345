#!/usr/bin/env python3
"""Extract the FHIR resources from insta snapshot files (tests/snapshots/*.snap:
a YAML-ish header between '---' lines, then a JSON body) into one JSON file
per resource, for validate.sh.

  snapshots-to-json.py SNAPSHOT_DIR OUT_DIR

A body that is itself a resource gives OUT_DIR/<snapshot>.json; resources nested
in a body (e.g. {"encounter": {...}, "observations": [...]}) give
OUT_DIR/<snapshot>.<json path>.json (e.g. ...observations.1.json). Bodies with
no resource (error reports) are listed on stderr and skipped.
"""
import json
import pathlib
import sys


def body(text):
    lines = text.split("\n")
    if lines[0] != "---":
        return text
    end = lines.index("---", 1)
    return "\n".join(lines[end + 1:])


def resources(node, path):
    if isinstance(node, dict):
        if isinstance(node.get("resourceType"), str):
            yield path, node
            return
        for k, v in node.items():
            yield from resources(v, path + [k])
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from resources(v, path + [str(i)])


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for snap in sorted(src.glob("*.snap")):
        doc = json.loads(body(snap.read_text()))
        found = list(resources(doc, []))
        if not found:
            print(f"skipped (no FHIR resource): {snap.name}", file=sys.stderr)
        stem = snap.name[: -len(".snap")].removesuffix(".json")
        for path, res in found:
            name = stem + ("." + ".".join(path) if path else "") + ".json"
            (out / name).write_text(json.dumps(res, indent=2) + "\n")
            n += 1
    print(f"{n} resources written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
