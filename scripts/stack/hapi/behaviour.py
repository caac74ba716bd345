#!/usr/bin/env python3
"""Probe a running FHIR R4 server for the behaviours cht-fhir-mediator's write
strategies rely on, and print one line per check (markdown table rows).

  behaviour.py BASE_URL [--profile default|no-client-ids|validate] [--json] [--writes N] [--trials N]

BASE_URL e.g. http://127.0.0.1:8191/fhir. Uses only the Python standard
library. Every identifier system it writes is unique to the run, so it can be
run twice against the same server. Exits 0 unless the server is unreachable.
"""
import argparse
import re
import concurrent.futures
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

FHIR_JSON = "application/fhir+json"
CHT_PATIENT = "http://cht-fhir-mediator.org/fhir/StructureDefinition/cht-patient"


def call(base, method, path, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Accept", FHIR_JSON)
    if body is not None:
        req.add_header("Content-Type", FHIR_JSON)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            raw, status, hdrs = r.read(), r.status, r.headers
    except urllib.error.HTTPError as e:
        raw, status, hdrs = e.read(), e.code, e.headers
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = {"raw": raw[:200].decode(errors="replace")}
    return status, doc, hdrs


def diag(doc):
    """The first OperationOutcome issue, shortened: severity/code: diagnostics."""
    if not isinstance(doc, dict) or doc.get("resourceType") != "OperationOutcome":
        return ""
    parts = []
    for i in doc.get("issue", [])[:2]:
        text = i.get("diagnostics") or (i.get("details") or {}).get("text") or ""
        loc = ",".join(i.get("location", []) or i.get("expression", []))
        parts.append(f"{i.get('severity')}/{i.get('code')}: {text}" + (f" @ {loc}" if loc else ""))
    return " | ".join(parts)


def q(s):
    return urllib.parse.quote(s, safe="")


def patient(system, value, pid=None, **extra):
    p = {"resourceType": "Patient", "identifier": [{"system": system, "value": value}],
         "name": [{"text": "Test " + value}]}
    if pid:
        p["id"] = pid
    p.update(extra)
    return p


def count(base, system, value):
    s, doc, _ = call(base, "GET", f"/Patient?identifier={q(system + '|' + value)}&_total=accurate")
    return len(doc.get("entry", [])) if s == 200 else f"search {s}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("--profile", default="default", choices=["default", "no-client-ids", "validate"])
    ap.add_argument("--json", action="store_true", help="one JSON object per check instead of table rows")
    ap.add_argument("--writes", type=int, default=0, help="then POST this many Patients (4 in flight)")
    ap.add_argument("--trials", type=int, default=1, help="repeat each concurrency check this many times")
    a = ap.parse_args()
    base = a.base.rstrip("/")
    run = uuid.uuid4().hex[:8]
    sysid = f"https://behaviour.test/{run}/id"
    rows = []

    def row(check, status, note=""):
        rows.append((check, status, note))
        if a.json:
            print(json.dumps({"check": check, "status": status, "note": note}), flush=True)
        else:
            print(f"| {check} | {status} | {note} |", flush=True)

    s, doc, h = call(base, "GET", "/metadata")
    if s != 200:
        print(f"metadata: {s}", file=sys.stderr)
        return 1
    pat = next(r for r in doc["rest"][0]["resource"] if r["type"] == "Patient")
    row("GET /metadata", s,
        f"fhirVersion {doc.get('fhirVersion')}, {doc.get('software', {}).get('name')} {doc.get('software', {}).get('version')}; "
        f"Content-Type {h.get('Content-Type')}; Patient updateCreate={pat.get('updateCreate')} "
        f"conditionalCreate={pat.get('conditionalCreate')} conditionalUpdate={pat.get('conditionalUpdate')} "
        f"conditionalDelete={pat.get('conditionalDelete')}")

    if a.profile == "validate":
        bad = patient(sysid, "v1")
        del bad["identifier"]
        bad["meta"] = {"profile": [CHT_PATIENT]}
        s, doc, _ = call(base, "POST", "/Patient", bad)
        row("POST Patient declaring cht-patient, no identifier", s, diag(doc))
        good = patient(sysid, "v2")
        good["identifier"][0]["type"] = {"text": "CHT Document ID"}
        good["meta"] = {"profile": [CHT_PATIENT]}
        s, doc, _ = call(base, "POST", "/Patient", good)
        row("POST Patient declaring cht-patient, conforming", s, diag(doc))
        s, doc, _ = call(base, "POST", "/Patient", dict(patient(sysid, "v3"), gender="woman"))
        row("POST Patient gender 'woman' (no profile)", s, diag(doc))
        s, doc, _ = call(base, "POST", "/Encounter", {"resourceType": "Encounter", "status": "finished", "class": "HH"})
        row("POST Encounter with class as a string", s, diag(doc))
        s, doc, _ = call(base, "POST", "/Patient", dict(patient(sysid, "v4"), birthDate="21/07/1994"))
        row("POST Patient birthDate 21/07/1994", s, diag(doc))
        return 0

    pid = f"p1-{run}"
    s, doc, _ = call(base, "PUT", f"/Patient/{pid}", patient(sysid, "a", pid))
    row(f"PUT Patient/{{new alphanumeric id}} (update-as-create)", s, diag(doc) or f"versionId {doc.get('meta', {}).get('versionId')}")
    if s in (200, 201):
        s, doc, _ = call(base, "PUT", f"/Patient/{pid}", patient(sysid, "a", pid, gender="female"))
        row("PUT same id again", s, f"versionId {doc.get('meta', {}).get('versionId')}")
    num = str(int(time.time() * 1000))
    s, doc, _ = call(base, "PUT", f"/Patient/{num}", patient(sysid, "n", num))
    row("PUT Patient/{new purely numeric id}", s, diag(doc))
    s, doc, h = call(base, "POST", "/Patient", patient(sysid, "b"))
    row("POST Patient (server-assigned id)", s, f"Location {h.get('Location')}")
    s, doc, _ = call(base, "PUT", f"/Patient/{pid}", patient(sysid, "a", "other-id"))
    row("PUT Patient/X with body id Y", s, diag(doc))

    # conditional update
    sys_cu = sysid + "/cu"
    cu = f"/Patient?identifier={q(sys_cu + '|v')}"
    s1, d1, _ = call(base, "PUT", cu, patient(sys_cu, "v"))
    s2, d2, _ = call(base, "PUT", cu, patient(sys_cu, "v", gender="male"))
    row("PUT Patient?identifier=sys|val (nothing matches, then one match)", f"{s1} then {s2}",
        f"ids {d1.get('id')} / {d2.get('id')}, versions {d1.get('meta', {}).get('versionId')} / "
        f"{d2.get('meta', {}).get('versionId')}; resources matching: {count(base, sys_cu, 'v')} "
        + (diag(d1) or diag(d2)))
    s3, d3, _ = call(base, "PUT", cu, patient(sys_cu, "v", pid="some-other-id"))
    row("conditional PUT (1 match) whose body id differs from the match's", s3,
        diag(d3) or f"answered id {d3.get('id')} (match {d1.get('id')}), versionId {d3.get('meta', {}).get('versionId')}")
    call(base, "POST", "/Patient", patient(sys_cu, "v"))
    s4, d4, _ = call(base, "PUT", cu, patient(sys_cu, "v"))
    row("conditional PUT with 2 matches", s4, diag(d4))

    # conditional create
    sys_cc = sysid + "/cc"
    h_ine = {"If-None-Exist": f"identifier={q(sys_cc + '|v')}"}
    s1, d1, h1 = call(base, "POST", "/Patient", patient(sys_cc, "v"), h_ine)
    s2, d2, h2 = call(base, "POST", "/Patient", patient(sys_cc, "v"), h_ine)
    row("POST Patient If-None-Exist (new, then existing)", f"{s1} then {s2}",
        f"2nd returns {'the existing resource' if (d2 or {}).get('resourceType') == 'Patient' else diag(d2) or 'empty body'}"
        f" (Location {h2.get('Location')}); matching: {count(base, sys_cc, 'v')}")
    call(base, "POST", "/Patient", patient(sys_cc, "v"))
    s3, d3, _ = call(base, "POST", "/Patient", patient(sys_cc, "v"), h_ine)
    row("If-None-Exist with 2 matches", s3, diag(d3))

    # transaction with urn:uuid and a conditional entry
    sys_tx = sysid + "/tx"
    pu, eu = "urn:uuid:" + str(uuid.uuid4()), "urn:uuid:" + str(uuid.uuid4())
    tx = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": pu, "resource": patient(sys_tx, "p"),
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={q(sys_tx + '|p')}"}},
        {"fullUrl": eu, "resource": {"resourceType": "Encounter", "status": "finished",
                                     "identifier": [{"system": sys_tx, "value": "e"}],
                                     "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HH"},
                                     "subject": {"reference": pu}},
         "request": {"method": "PUT", "url": f"Encounter?identifier={q(sys_tx + '|e')}"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "t"},
                      "subject": {"reference": pu}, "encounter": {"reference": eu}, "valueBoolean": True},
         "request": {"method": "POST", "url": "Observation"}}]}
    s, doc, _ = call(base, "POST", "", tx)
    ent = [e.get("response", {}).get("status") for e in (doc or {}).get("entry", [])]
    locs = [e.get("response", {}).get("location") for e in (doc or {}).get("entry", [])]
    row("transaction: POST Patient ifNoneExist + PUT Encounter?identifier + POST Observation (urn:uuid refs)",
        s, f"entry statuses {ent}; locations {locs} " + diag(doc))
    s, doc, _ = call(base, "POST", "", tx)
    ent = [e.get("response", {}).get("status") for e in (doc or {}).get("entry", [])]
    row("same transaction again", s, f"entry statuses {ent} " + diag(doc))
    bad_tx = json.loads(json.dumps(tx))
    bad_tx["entry"][0]["resource"] = patient(sys_tx, "p-bad")
    bad_tx["entry"][0]["request"]["ifNoneExist"] = f"identifier={q(sys_tx + '|p-bad')}"
    bad_tx["entry"][1]["request"]["url"] = f"Encounter?identifier={q(sys_tx + '|e-bad')}"
    bad_tx["entry"][1]["resource"]["identifier"][0]["value"] = "e-bad"
    bad_tx["entry"][2]["resource"]["subject"] = {"reference": "Patient/does-not-exist-" + run}
    s, doc, _ = call(base, "POST", "", bad_tx)
    row("transaction (new Patient + Encounter) with one entry referencing a missing Patient", s,
        diag(doc) + f"; new Patient stored: {count(base, sys_tx, 'p-bad')} (atomic if 0)")

    # search with total
    s, doc, _ = call(base, "GET", f"/Patient?identifier={q(sys_cc + '|v')}")
    row("GET Patient?identifier=sys|val", s, f"total={doc.get('total')} entries={len(doc.get('entry', []))}")
    s, doc, _ = call(base, "GET", f"/Patient?identifier={q(sysid + '|nothing')}")
    row("search with no match", s, f"total={doc.get('total')} entries={len(doc.get('entry', []))}")

    # invalid content, lenient parser
    s, doc, _ = call(base, "POST", "/Encounter", {"resourceType": "Encounter", "status": "finished", "class": "HH"})
    row("POST Encounter with class as a string (lenient parser)", s,
        diag(doc) or f"stored class={doc.get('class') if isinstance(doc, dict) else None}")
    s, doc, _ = call(base, "POST", "/Patient", dict(patient(sysid, "g"), gender="woman"))
    row("POST Patient gender 'woman'", s, diag(doc))
    s, doc, _ = call(base, "POST", "/Patient", dict(patient(sysid, "u"), foo="bar"))
    row("POST Patient with an unknown element", s, diag(doc) or "stored, element dropped" if s == 201 else "")

    # concurrency
    cid = f"same-{run}"

    # concurrency: each check runs --trials times on fresh ids/identifiers
    retry = {"X-Retry-On-Version-Conflict": "retry; max-retries=20"}
    for suffix, hdr in (("", {}), (" + X-Retry-On-Version-Conflict: retry; max-retries=20", retry)):
        kinds = ["put", "ine", "cput"] if a.profile != "no-client-ids" else ["ine", "cput"]
        for kind in kinds:
            statuses, codes, outcomes = {}, set(), []
            for t in range(a.trials):
                tag = f"{kind}-{'r' if hdr else 'n'}-{t}"
                rid, rsys = f"{cid}-{tag}", f"{sysid}/race-{tag}"

                def fn(i, kind=kind, rid=rid, rsys=rsys):
                    if kind == "put":
                        return call(base, "PUT", f"/Patient/{rid}", patient(sysid, f"c{i}", rid), hdr)
                    if kind == "ine":
                        return call(base, "POST", "/Patient", patient(rsys, "r"),
                                    dict(hdr, **{"If-None-Exist": f"identifier={q(rsys + '|r')}"}))
                    return call(base, "PUT", f"/Patient?identifier={q(rsys + '|r')}", patient(rsys, "r"), hdr)

                with concurrent.futures.ThreadPoolExecutor(20) as ex:
                    res = list(ex.map(fn, range(20)))
                for st, doc, _ in res:
                    statuses[st] = statuses.get(st, 0) + 1
                    codes.update(re.findall(r"HAPI-\d+", diag(doc)))
                if kind == "put":
                    _, d, _ = call(base, "GET", f"/Patient/{rid}")
                    outcomes.append(f"v{d.get('meta', {}).get('versionId')}")
                else:
                    outcomes.append(str(count(base, rsys, "r")))
            name = {"put": "20 concurrent PUT Patient/same-id",
                    "ine": "20 concurrent POST If-None-Exist, one identifier",
                    "cput": "20 concurrent conditional PUT Patient?identifier, one identifier"}[kind]
            what = "final versionId per trial" if kind == "put" else "resources per trial"
            row(name + suffix + (f" (×{a.trials} trials)" if a.trials > 1 else ""),
                ", ".join(f"{v}×{k}" for k, v in sorted(statuses.items())),
                f"{what}: {' '.join(outcomes)}; codes {' '.join(sorted(codes)) or '-'}")

    if a.writes:
        t0 = time.time()

        def write(i):
            return call(base, "POST", "/Patient", patient(sysid + "/load", str(i)))[0]

        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            st = list(ex.map(write, range(a.writes)))
        dt = time.time() - t0
        row(f"{a.writes} POST Patient, 4 in flight", ", ".join(f"{st.count(k)}×{k}" for k in sorted(set(st))),
            f"{dt:.1f} s, {a.writes / dt:.0f}/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
