#!/usr/bin/env python3
"""k8s_check: checks deploy/kubernetes (run by test_kubernetes.sh).

1. Renders the kustomization (the `resources:` it lists; with kubectl on PATH, `kubectl
   kustomize` too, which must give the same objects).
2. Validates every object, and the Secret templates, against the Kubernetes JSON schemas
   (kubernetes-validate, offline, strict: unknown fields are errors) for the oldest and the
   newest version we claim; the KEDA ScaledObject against keda_scaledobject.schema.json.
3. Cross-references: selectors and labels, named ports, ConfigMap/Secret/PVC names and keys,
   files named in the configuration that must lie under a mount, the worker's endpoint and
   metrics port, threads = CPU limit, the scaler's target = worker.slots, non-root and
   read-only root file systems, requests and limits everywhere; create-secrets.sh makes the
   Secrets (names and keys) the manifests use.
4. Runs what the pods run, with the pods' file layout under a temporary folder: the Secrets'
   files from create-secrets.sh (real `stepmark keygen` keys), the init containers' commands,
   the migration Job's command, stepmarkd with the ConfigMap's stepmarkd.yaml (CURVE on) and
   a worker with worker.yaml; then probes every probe path and port of the manifests, reads
   every KEDA trigger's series from the live /metrics as KEDA's metrics-api scaler does (one
   series per label selector), and sees the worker connect over CURVE.

Prints "N passed, M failed"; exit 1 on any failure.
"""
import argparse
import copy
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import jsonschema
import kubernetes_validate
import yaml

K8S_VERSIONS = ("1.33.0", "1.37.0")  # the oldest we document (user namespaces) and the newest
CRD_KINDS = {("keda.sh/v1alpha1", "ScaledObject")}
UID = 10001  # the images' user stepmark
SRC = "."


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=None):
        if ok:
            self.passed += 1
            print(f"ok   {name}")
        else:
            self.failed += 1
            print(f"FAIL {name}" + (f": {detail}" if detail is not None else ""))
        return ok


# ---- rendering ---------------------------------------------------------------------------


def render(kdir):
    """The objects of kustomization.yaml: the files under resources:, in order."""
    with open(os.path.join(kdir, "kustomization.yaml")) as f:
        k = yaml.safe_load(f)
    unsupported = set(k) - {"apiVersion", "kind", "resources"}
    if unsupported:
        raise SystemExit(f"k8s_check renders resources: only; found {sorted(unsupported)}")
    objs = []
    for res in k["resources"]:
        with open(os.path.join(kdir, res)) as f:
            objs += [d for d in yaml.safe_load_all(f) if d]
    return objs


def key(o):
    return (o["kind"], o["metadata"]["name"])


def kubectl_render(kdir):
    kubectl = shutil.which("kubectl")
    if not kubectl:
        return None
    r = subprocess.run([kubectl, "kustomize", kdir], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        return r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


# ---- schemas -----------------------------------------------------------------------------


def validate_all(t, objs, keda_schema):
    for o in objs:
        name = "/".join(key(o))
        if (o["apiVersion"], o["kind"]) in CRD_KINDS:
            errs = sorted(jsonschema.Draft202012Validator(keda_schema).iter_errors(o), key=str)
            t.check(f"schema {name} (KEDA)", not errs, [e.message for e in errs][:3])
            continue
        for v in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(o, v, strict=True)
                t.check(f"schema {name} (Kubernetes {v}, strict)", True)
            except Exception as e:  # ValidationError, SchemaNotFoundError
                t.check(f"schema {name} (Kubernetes {v}, strict)", False,
                        f"{type(e).__name__}: {str(e)[:300]}")


def keda_schema_rejects(t, keda_schema, so):
    """The KEDA schema must be able to fail: broken copies are refused."""
    broken = []
    b = copy.deepcopy(so)
    b["spec"]["triggers"][0]["metadata"].pop("valueLocation")
    broken.append(("trigger without valueLocation", b))
    b = copy.deepcopy(so)
    b["spec"]["scaleTargetRef"] = {}
    broken.append(("scaleTargetRef without name", b))
    b = copy.deepcopy(so)
    b["spec"]["minReplicas"] = 1
    broken.append(("misspelled field", b))
    b = copy.deepcopy(so)
    b["spec"]["triggers"][0]["metadata"]["format"] = "openmetrics"
    broken.append(("unknown metrics-api format", b))
    for what, doc in broken:
        ok = not jsonschema.Draft202012Validator(keda_schema).is_valid(doc)
        t.check(f"KEDA schema refuses a {what}", ok)


# ---- cross-references --------------------------------------------------------------------


def pod_specs(objs):
    """(object, pod template spec, pod labels) of every Deployment and Job."""
    for o in objs:
        if o["kind"] in ("Deployment", "Job"):
            tpl = o["spec"]["template"]
            yield o, tpl["spec"], tpl["metadata"].get("labels", {})


def containers(spec):
    return spec.get("initContainers", []) + spec["containers"]


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def cross_refs(t, objs, secrets):
    by = {key(o): o for o in objs}
    cms = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ConfigMap"}
    pvcs = {o["metadata"]["name"] for o in objs if o["kind"] == "PersistentVolumeClaim"}
    t.check("no Secret in the kustomization (applying it would overwrite the real keys)",
            not any(o["kind"] == "Secret" for o in objs))
    t.check("namespace-agnostic: no object names a namespace",
            not any("namespace" in o["metadata"] for o in objs))
    dockerfile = os.path.join(SRC, "deploy/container/Dockerfile")
    if os.path.exists(dockerfile):
        with open(dockerfile) as f:
            m = re.search(r"^ARG STEPMARK_UID=(\d+)", f.read(), re.M)
        t.check(f"uid {UID} is the images' user (deploy/container/Dockerfile)",
                m is not None and int(m.group(1)) == UID, m and m.group(1))

    for o, spec, labels in pod_specs(objs):
        n = "/".join(key(o))
        if o["kind"] == "Deployment":
            t.check(f"{n}: selector matches its pod labels",
                    matches(o["spec"]["selector"]["matchLabels"], labels))
        psc = spec.get("securityContext", {})
        t.check(f"{n}: runs as non-root uid {UID}",
                psc.get("runAsNonRoot") is True and psc.get("runAsUser") == UID, psc)
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        for c in containers(spec):
            cn = f"{n}/{c['name']}"
            sc = c.get("securityContext", {})
            t.check(f"{cn}: read-only root, no privilege escalation, no capabilities",
                    sc.get("readOnlyRootFilesystem") is True
                    and sc.get("allowPrivilegeEscalation") is False
                    and sc.get("capabilities", {}).get("drop") == ["ALL"]
                    and not sc.get("privileged"), sc)
            res = c.get("resources", {})
            t.check(f"{cn}: cpu and memory requests and limits",
                    all(r in res.get(k, {}) for k in ("requests", "limits")
                        for r in ("cpu", "memory")), res)
            for m in c.get("volumeMounts", []):
                t.check(f"{cn}: volume {m['name']} exists", m["name"] in vols)
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    s = secrets.get(ref["name"])
                    t.check(f"{cn}: env {e['name']} from Secret {ref['name']}/{ref['key']}",
                            s is not None and ref["key"] in s, sorted(secrets))
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                p = c.get(probe, {}).get("httpGet")
                if p:
                    t.check(f"{cn}: {probe} port {p['port']} is a port of the container",
                            p["port"] in ports or p["port"] in ports.values(), ports)
        for v in vols.values():
            if "configMap" in v:
                t.check(f"{n}: ConfigMap {v['configMap']['name']} exists",
                        v["configMap"]["name"] in cms)
            if "secret" in v:
                t.check(f"{n}: Secret {v['secret']['secretName']} has a template",
                        v["secret"]["secretName"] in secrets)
            if "persistentVolumeClaim" in v:
                pv = v["persistentVolumeClaim"]
                t.check(f"{n}: PVC {pv['claimName']} exists", pv["claimName"] in pvcs)

    for o in objs:
        if o["kind"] != "Service":
            continue
        n = "/".join(key(o))
        pods = [(spec, labels) for _, spec, labels in pod_specs(objs)
                if matches(o["spec"]["selector"], labels)]
        t.check(f"{n}: selector picks the pods of exactly one Deployment", len(pods) == 1,
                o["spec"]["selector"])
        for spec, _ in pods:
            names = {p["name"]: p["containerPort"] for c in spec["containers"]
                     for p in c.get("ports", [])}
            for p in o["spec"]["ports"]:
                tp = p.get("targetPort", p["port"])
                t.check(f"{n}: port {p['name']} targets a container port ({tp})",
                        tp in names or tp in names.values())
    return by


def config_of(objs, container):
    """The ConfigMap file a container's --config names, parsed, and the container's mounts."""
    cfg_path = container["command"][container["command"].index("--config") + 1]
    for o in objs:
        if o["kind"] != "ConfigMap":
            continue
        for m in container.get("volumeMounts", []):
            for k, text in o["data"].items():
                if os.path.join(m["mountPath"], k) == cfg_path:
                    return k, text
    return None, None


def under_mount(path, container, vols, secrets):
    """Whether a file path lies under one of the container's mounts (and, for a Secret
    mount, is one of the Secret's keys)."""
    for m in container.get("volumeMounts", []):
        mp = m["mountPath"].rstrip("/") + "/"
        if path.startswith(mp):
            v = vols[m["name"]]
            if "secret" in v:
                return path[len(mp):] in secrets.get(v["secret"]["secretName"], {})
            return True
    return False


def config_refs(t, by, secrets):
    dep = {n: by[("Deployment", n)] for n in ("stepmarkd", "stepmark-worker")}
    svc = by[("Service", "stepmarkd")]
    svc_ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
    files = {}
    for n, d in dep.items():
        spec = d["spec"]["template"]["spec"]
        vols = {v["name"]: v for v in spec["volumes"]}
        c = spec["containers"][0]
        k, text = config_of(by.values(), c)
        t.check(f"{n}: --config names a file of a mounted ConfigMap", k is not None)
        cfg = yaml.safe_load(text)
        files[n] = text
        curve = cfg["broker" if n == "stepmarkd" else "worker"]["curve"]
        for f in ("secret_key_file", "client_keys_file", "worker_keys_file",
                  "server_public_key"):
            if curve.get(f):
                t.check(f"{n}: {f} {curve[f]} lies under a mount (Secret key or emptyDir)",
                        under_mount(curve[f], c, vols, secrets))
        # the init container writes the secret key where the config reads it
        init = spec["initContainers"][0]["command"]
        t.check(f"{n}: the init container copies the secret key 0600 to {curve['secret_key_file']}",
                init[:3] == ["install", "-m", "0600"] and init[-1] == curve["secret_key_file"])
        if n == "stepmarkd":
            cports = {p["name"]: p["containerPort"] for p in c["ports"]}
            for ep, port in (("client_endpoint", "client"), ("worker_endpoint", "worker"),
                             ("event_endpoint", "events")):
                t.check(f"stepmarkd: broker.{ep} binds the container port {port}",
                        cfg["broker"][ep].endswith(f":{cports[port]}"))
            t.check("stepmarkd: http.port is the container port http",
                    cfg["http"]["port"] == cports["http"])
        else:
            w = cfg["worker"]
            t.check("worker: broker_endpoint is the Service's worker port",
                    w["broker_endpoint"] == f"tcp://stepmarkd:{svc_ports['worker']}",
                    w["broker_endpoint"])
            mports = {p["name"]: p["containerPort"] for p in c["ports"]}
            t.check("worker: metrics_port is the container port metrics",
                    w["metrics_port"] == mports.get("metrics"))
            lim = c["resources"]["limits"]["cpu"]
            t.check("worker: threads equals the CPU limit", str(w["threads"]) == str(lim),
                    (w["threads"], lim))
            t.check("worker: model lies on the models volume",
                    under_mount(w["model"], c, vols, secrets))
    return files


def keda_refs(t, by, worker_cfg):
    so = by[("ScaledObject", "stepmark-worker")]
    spec = so["spec"]
    t.check("ScaledObject scales the worker Deployment",
            ("Deployment", spec["scaleTargetRef"]["name"]) in by)
    names = [tr["name"] for tr in spec["triggers"]]
    formula = spec["advanced"]["scalingModifiers"]["formula"]
    t.check("ScaledObject formula uses exactly the triggers' names",
            set(re.findall(r"[A-Za-z_]\w*", formula)) == set(names), (formula, names))
    slots = yaml.safe_load(worker_cfg)["worker"]["slots"]
    t.check("ScaledObject target is worker.slots",
            spec["advanced"]["scalingModifiers"]["target"] == str(slots))
    svc = by[("Service", "stepmarkd")]
    http = [p["port"] for p in svc["spec"]["ports"] if p["name"] == "http"][0]
    for tr in spec["triggers"]:
        url = tr["metadata"]["url"]
        m = re.fullmatch(r"http://([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?:(\d+)(/.*)",
                         url)
        t.check(f"trigger {tr['name']}: url is the stepmarkd Service's http port, with a namespace",
                m is not None and m.group(1) == "stepmarkd" and int(m.group(3)) == http, url)


# ---- create-secrets.sh -------------------------------------------------------------------


def run_create_secrets(t, script, stepmark, keys, dburl_file):
    env = dict(os.environ, STEPMARK=stepmark)
    r = subprocess.run([script, "--keys-dir", keys, "--database-url-file", dburl_file],
                       capture_output=True, text=True, env=env, timeout=60)
    t.check("create-secrets.sh runs", r.returncode == 0, r.stderr)
    made = {}
    for line in r.stdout.splitlines():
        m = re.match(r"kubectl create secret generic (\S+) (.*)$", line)
        if m:
            made[m.group(1)] = dict(a[len("--from-file="):].split("=", 1)
                                    for a in m.group(2).split())
    for f, name in (("clients.keys", "lms"), ("workers.keys", "workers")):
        with open(os.path.join(keys, f)) as fh:
            lines = [x for x in fh.read().splitlines() if x.strip() and not x.startswith("#")]
        t.check(f"create-secrets.sh: {f} lists one key named {name}",
                len(lines) == 1 and re.fullmatch(r"\S{40} " + name, lines[0]) is not None, lines)
    before = {f: open(os.path.join(keys, f)).read() for f in ("broker.secret", "worker.secret")}
    r2 = subprocess.run([script, "--keys-dir", keys], capture_output=True, text=True, env=env,
                        timeout=60)
    t.check("create-secrets.sh run again keeps the keys", r2.returncode == 0 and all(
        open(os.path.join(keys, f)).read() == v for f, v in before.items()))
    return made


# ---- live run ------------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, OSError) as e:
        return None, str(e)


def wait_for(what, fn, proc, deadline_s=120):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        if proc is not None and proc.poll() is not None:
            return None
        time.sleep(0.2)
    print(f"gave up waiting for {what}")
    return None


def lay_out_pod(root, dep, secret_files, configmap_files):
    """Makes the files of a pod's volumes under root/<mountPath>; returns the path mapper."""
    spec = dep["spec"]["template"]["spec"]
    vols = {v["name"]: v for v in spec["volumes"]}
    mounts = {}
    for c in containers(spec):
        for m in c.get("volumeMounts", []):
            mounts[m["mountPath"]] = m["name"]
    for mp, vname in mounts.items():
        d = os.path.join(root, mp.lstrip("/"))
        v = vols[vname]
        if "secret" in v:
            os.makedirs(d, exist_ok=True)
            for k, src in secret_files.get(v["secret"]["secretName"], {}).items():
                shutil.copy(src, os.path.join(d, k))
                os.chmod(os.path.join(d, k), v["secret"].get("defaultMode", 0o644))
        elif "configMap" in v:
            os.makedirs(d, exist_ok=True)
            for k, text in configmap_files.items():
                with open(os.path.join(d, k), "w") as f:
                    f.write(text)
        else:
            os.makedirs(d, exist_ok=True)
    prefixes = sorted(mounts, key=len, reverse=True)

    def mapped(path):
        for mp in prefixes:
            if path == mp or path.startswith(mp.rstrip("/") + "/"):
                return os.path.join(root, path.lstrip("/"))
        return path
    return mapped, prefixes


def localize(text, mapped, prefixes, subst):
    """The config text with every path under a mount moved under the pod's folder (one pass, so
    that a moved path is not moved again) and the substitutions made."""
    alts = "|".join(re.escape(mp) for mp in prefixes)
    text = re.sub(r"(?<![\w/])(" + alts + r")(?=/)", lambda m: mapped(m.group(1)), text)
    for a, b in subst:
        text = text.replace(a, b)
    return text


def prom_series(text):
    """Prometheus text format: [(name, {labels}, value)]."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)', line)
        if m:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            out.append((m.group(1), labels, float(m.group(3))))
    return out


def keda_value(series, selector):
    """KEDA metrics-api, format prometheus: the series matching name{label="v",...}."""
    m = re.fullmatch(r'([a-zA-Z_:][\w:]*)(?:\{(.*)\})?', selector)
    want = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
    return [v for n, lab, v in series if n == m.group(1) and all(lab.get(k) == x
                                                                   for k, x in want.items())]


def psql(url, sql):
    subprocess.run(["psql", "-qAt", "-d", url, "-c", sql], check=True, capture_output=True,
                   timeout=60)


def run_pods(t, a, by, made, keys, tmp):
    """Runs the pods' commands; the database URL comes from the Secret's file."""
    secret_files = {name: {k: v for k, v in m.items()} for name, m in made.items()}
    ports = {p: free_port() for p in ("client", "worker", "events", "http", "metrics")}
    procs = []
    try:
        # the broker pod
        dep = by[("Deployment", "stepmarkd")]
        root = os.path.join(tmp, "stepmarkd-pod")
        mapped, prefixes = lay_out_pod(root, dep, secret_files, {k: v for k, v in
                                       by[("ConfigMap", "stepmark-config")]["data"].items()})
        cm = by[("ConfigMap", "stepmark-config")]["data"]
        text = localize(cm["stepmarkd.yaml"], mapped, prefixes, [
            ("tcp://0.0.0.0:5555", f"tcp://127.0.0.1:{ports['client']}"),
            ("tcp://0.0.0.0:5556", f"tcp://127.0.0.1:{ports['worker']}"),
            ("tcp://0.0.0.0:5557", f"tcp://127.0.0.1:{ports['events']}"),
            ("address: 0.0.0.0", "address: 127.0.0.1"),
            ("port: 8080", f"port: {ports['http']}")])
        bcfg = mapped("/etc/stepmark/config/stepmarkd.yaml")
        with open(bcfg, "w") as f:
            f.write(text)
        spec = dep["spec"]["template"]["spec"]
        init = [mapped(x) for x in spec["initContainers"][0]["command"]]
        r = subprocess.run(init, capture_output=True, text=True, timeout=30)
        t.check("stepmarkd init container command copies the key", r.returncode == 0, r.stderr)
        env = {k: v for k, v in os.environ.items() if not k.startswith("STEPMARK_")}
        for c in spec["containers"]:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    with open(secret_files[ref["name"]][ref["key"]]) as f:
                        env[e["name"]] = f.read()  # as the kubelet passes it
        # the migration Job's command, with the ConfigMap's stepmarkd.yaml
        job = by[("Job", "stepmark-migrate")]["spec"]["template"]["spec"]["containers"][0]
        cmd = [a.stepmark if x == "stepmark" else mapped(x) for x in job["command"]]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        t.check("the migration Job's command succeeds", r.returncode == 0, r.stderr)
        cmd = [a.stepmarkd if x == "stepmarkd" else mapped(x)
               for x in spec["containers"][0]["command"]]
        blog = open(os.path.join(tmp, "stepmarkd.log"), "w")
        procs.append(subprocess.Popen(cmd, env=env, stdout=blog, stderr=subprocess.STDOUT,
                                      start_new_session=True))
        base = f"http://127.0.0.1:{ports['http']}"
        ok = wait_for("/healthz", lambda: get(base + "/healthz")[0] == 200, procs[0])
        t.check("stepmarkd starts with the ConfigMap's configuration and CURVE keys", bool(ok),
                open(os.path.join(tmp, "stepmarkd.log")).read()[-2000:])
        c = spec["containers"][0]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            p = c[probe]["httpGet"]
            st, body = get(base + p["path"])
            t.check(f"stepmarkd {probe} {p['path']} answers 200", st == 200, (st, body))

        # an LMS (the client key create-secrets.sh made) queues 2 batch and 1 interactive
        # submission before any worker runs: the triggers must then add up to 3
        cli = [a.stepmark]
        conn = ["--endpoint", f"tcp://127.0.0.1:{ports['client']}", "--server-key",
                os.path.join(keys, "broker.public"), "--key-file", os.path.join(keys, "lms.secret")]
        sub = os.path.join(tmp, "work")
        os.makedirs(os.path.join(sub, "batch"))
        for student, answer in (("s1", "4"), ("s2", "5"), ("s3", "4")):
            with open(os.path.join(sub, "batch" if student != "s3" else "", student + ".txt"),
                      "w") as f:
                f.write(f"2 + 2 = {answer}\n")
        steps = [["course", "create", "--code", "K8S"],
                 ["assignment", "create", "--course", "K8S", "--code", "sum", "--kind", "math",
                  "--statement", "2 + 2 = ?", "--answer-key", "4", "--max-score", "1"],
                 ["submit", "--course", "K8S", "--assignment", "sum", os.path.join(sub, "batch")],
                 ["submit", "--course", "K8S", "--assignment", "sum", os.path.join(sub, "s3.txt")]]
        cenv = {k: v for k, v in os.environ.items() if not k.startswith("STEPMARK_")}
        for st in steps:
            r = subprocess.run(cli + st + conn, capture_output=True, text=True, env=cenv,
                               timeout=60)
            t.check(f"LMS over CURVE: stepmark {' '.join(st[:2])}", r.returncode == 0,
                    r.stdout + r.stderr)
        queued = 3

        # KEDA's triggers against the live /metrics
        st, body = get(base + "/metrics")
        series = prom_series(body)
        so = by[("ScaledObject", "stepmark-worker")]
        values = {}
        for tr in so["spec"]["triggers"]:
            path = re.sub(r"^http://[^/]+", "", tr["metadata"]["url"])
            t.check(f"trigger {tr['name']}: path {path} is the metrics page", path == "/metrics")
            v = keda_value(series, tr["metadata"]["valueLocation"])
            t.check(f"trigger {tr['name']}: {tr['metadata']['valueLocation']} picks exactly one "
                    "series of the live /metrics", len(v) == 1, v)
            values[tr["name"]] = v[0] if v else None
        want = sum(v for n, lab, v in series if n == "stepmark_queue_depth"
                   and lab.get("state") in ("queued", "leased"))
        formula = so["spec"]["advanced"]["scalingModifiers"]["formula"]
        got = eval(formula, {"__builtins__": {}}, values) if None not in values.values() else None
        t.check("the formula is the queued + leased jobs of both priorities", got == want == queued,
                (got, want, queued))

        # the worker pod
        wdep = by[("Deployment", "stepmark-worker")]
        wroot = os.path.join(tmp, "worker-pod")
        wmapped, wprefixes = lay_out_pod(wroot, wdep, secret_files, cm)
        wcfg_text = yaml.safe_load(cm["worker.yaml"])
        os.symlink(os.path.abspath(a.model), wmapped(wcfg_text["worker"]["model"]))
        text = localize(cm["worker.yaml"], wmapped, wprefixes, [
            ("tcp://stepmarkd:5556", f"tcp://127.0.0.1:{ports['worker']}"),
            ("metrics_address: 0.0.0.0", "metrics_address: 127.0.0.1"),
            ("metrics_port: 9101", f"metrics_port: {ports['metrics']}")])
        wcfg = wmapped("/etc/stepmark/config/worker.yaml")
        with open(wcfg, "w") as f:
            f.write(text)
        wspec = wdep["spec"]["template"]["spec"]
        r = subprocess.run([wmapped(x) for x in wspec["initContainers"][0]["command"]],
                           capture_output=True, text=True, timeout=30)
        t.check("worker init container command copies the key", r.returncode == 0, r.stderr)
        wc = wspec["containers"][0]
        cmd = [a.worker if x == "stepmark-worker" else wmapped(x) for x in wc["command"]]
        wlog = open(os.path.join(tmp, "worker.log"), "w")
        wenv = dict(os.environ)
        wenv.pop("STEPMARK_DATABASE_URL", None)  # a worker needs no database
        for e in wc.get("env", []):
            wenv[e["name"]] = wmapped(e["value"])
        procs.append(subprocess.Popen(cmd, env=wenv, stdout=wlog, stderr=subprocess.STDOUT,
                                      start_new_session=True))

        def connected():
            st, body = get(base + "/metrics")
            return st == 200 and keda_value(prom_series(body), "stepmark_workers_connected") == [1]
        ok = wait_for("the worker to connect", connected, procs[1], 180)
        t.check("the worker connects to the broker over CURVE with worker.yaml", bool(ok),
                open(os.path.join(tmp, "worker.log")).read()[-2000:])
        p = wc["livenessProbe"]["httpGet"]
        st, body = get(f"http://127.0.0.1:{ports['metrics']}{p['path']}")
        t.check(f"worker livenessProbe {p['path']} answers 200 with its slots", st == 200 and
                keda_value(prom_series(body), "stepmark_worker_slots")
                == [float(wcfg_text["worker"]["slots"])], (st, body[:300]))

    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", required=True)
    ap.add_argument("--stepmark", required=True)
    ap.add_argument("--stepmarkd", required=True)
    ap.add_argument("--worker", required=True)
    ap.add_argument("--model", required=True)
    a = ap.parse_args()
    global SRC
    SRC = a.src
    t = Checks()
    kdir = os.path.join(a.src, "deploy/kubernetes")
    objs = render(kdir)
    t.check("rendered", len(objs) > 0)
    kc = kubectl_render(kdir)
    if kc is None:
        print("note: kubectl not on PATH, `kubectl kustomize` comparison not run")
    else:
        canon = lambda docs: sorted(json.dumps(d, sort_keys=True) for d in docs)
        t.check("kubectl kustomize renders the same objects",
                isinstance(kc, list) and canon(kc) == canon(objs),
                kc if isinstance(kc, str) else None)
    with open(os.path.join(kdir, "secrets/secrets.example.yaml")) as f:
        templates = [d for d in yaml.safe_load_all(f) if d]
    secrets = {s["metadata"]["name"]: dict(s.get("stringData", {}), **s.get("data", {}))
               for s in templates}
    with open(os.path.join(kdir, "model-loader.yaml")) as f:
        loader = yaml.safe_load(f)
    claims = {o["metadata"]["name"] for o in objs if o["kind"] == "PersistentVolumeClaim"}
    t.check("model-loader.yaml mounts the models claim writable",
            any(v.get("persistentVolumeClaim", {}).get("claimName") in claims
                and not v["persistentVolumeClaim"].get("readOnly")
                for v in loader["spec"]["volumes"]))
    with open(os.path.join(a.src, "tests/deploy/keda_scaledobject.schema.json")) as f:
        keda_schema = json.load(f)

    validate_all(t, objs + templates + [loader], keda_schema)
    keda_schema_rejects(t, keda_schema, [o for o in objs if o["kind"] == "ScaledObject"][0])
    by = cross_refs(t, objs, secrets)
    files = config_refs(t, by, secrets)
    keda_refs(t, by, files["stepmark-worker"])

    with tempfile.TemporaryDirectory(prefix="sm-k8s-") as tmp:
        for n, text in files.items():
            p = os.path.join(tmp, f"{n}.yaml")
            with open(p, "w") as f:
                f.write(text)
            r = subprocess.run([a.stepmark, "config", "check", p], capture_output=True,
                               text=True, timeout=30)
            t.check(f"stepmark config check accepts the ConfigMap's {n} file", r.returncode == 0,
                    r.stdout + r.stderr)
        keys = os.path.join(tmp, "keys")
        dburl_file = os.path.join(tmp, "dburl")
        # a database of this run's own in the fixture's cluster (the queue counts must be ours)
        base_url = os.environ["STEPMARK_DATABASE_URL"]
        db = f"stepmark_k8s_{os.getpid()}"
        psql(base_url, f"CREATE DATABASE {db}")
        with open(dburl_file, "w") as f:
            f.write(re.sub(r"dbname=\S+", f"dbname={db}", base_url) + "\n")
        made = run_create_secrets(t, os.path.join(kdir, "secrets/create-secrets.sh"),
                                  a.stepmark, keys, dburl_file)
        for name, tmpl in secrets.items():
            t.check(f"create-secrets.sh makes Secret {name} with the keys of the template",
                    set(made.get(name, {})) == set(tmpl), (made.get(name), sorted(tmpl)))
        try:
            run_pods(t, a, by, made, keys, tmp)
        finally:
            psql(base_url, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    print(f"{t.passed} passed, {t.failed} failed")
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main())
