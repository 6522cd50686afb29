# stepmark_runner: the harness of Python unit tests (kinds "call" and "pytest"), run by the
# worker inside the sandbox as /work/_stepmark_runner.py (embedded at build time, see
# cmake/embed_runners.cmake). It reads the test as JSON on stdin, imports the student's module
# /work/solution.py, runs the test and prints one line "@@SM-RESULT <nonce> <json>" on the
# original stdout. The student's own prints stay on stdout before that line.
# Value rules (docs/teacher-guide.md): values are compared as Python values after a strict
# conversion to JSON-like types: 1 == 1.0, but True is not 1; tuples are lists; dict keys must be
# strings; "tolerance" compares floats with math.isclose (rel_tol = abs_tol = tolerance);
# "unordered" compares a top-level list (or a returned set) without order.
import io
import json
import math
import os
import sys
import traceback

MAX_TEXT = 1500


class Unplain(Exception):
    pass


def plain(v, depth=0):
    if depth > 64:
        raise Unplain("nested more than 64 levels")
    t = type(v)
    if v is None or t in (bool, int, str):
        return v
    if t is float:
        if math.isnan(v) or math.isinf(v):
            raise Unplain("NaN or infinity")
        return v
    if t in (list, tuple, set, frozenset):
        return [plain(x, depth + 1) for x in v]
    if t is dict:
        out = {}
        for k, x in v.items():
            if type(k) is not str:
                raise Unplain("a dict key of type %s (only str keys compare)" % type(k).__name__)
            out[k] = plain(x, depth + 1)
        return out
    raise Unplain("a value of type %s" % t.__name__)


def same(got, exp, tol):
    if type(exp) is bool or type(got) is bool:
        return type(exp) is bool and type(got) is bool and exp == got
    if type(exp) in (int, float) and type(got) in (int, float):
        if tol and (type(exp) is float or type(got) is float):
            return math.isclose(got, exp, rel_tol=tol, abs_tol=tol)
        return got == exp
    if type(exp) is list:
        return type(got) is list and len(got) == len(exp) and \
            all(same(g, e, tol) for g, e in zip(got, exp))
    if type(exp) is dict:
        return type(got) is dict and got.keys() == exp.keys() and \
            all(same(got[k], exp[k], tol) for k in exp)
    return type(got) is type(exp) and got == exp


def same_unordered(got, exp, tol):
    if type(got) is not list or type(exp) is not list or len(got) != len(exp):
        return False
    left = list(got)
    for e in exp:
        for i, g in enumerate(left):
            if same(g, e, tol):
                del left[i]
                break
        else:
            return False
    return True


def cut(s):
    return s if len(s) <= MAX_TEXT else s[:MAX_TEXT] + " [...]"


def show(v):
    try:
        return cut(json.dumps(v, ensure_ascii=False))
    except Exception:
        return cut(repr(v))


def exc_info(e):
    return {"type": type(e).__name__, "message": cut(str(e))}


def tb_text():
    return cut("".join(traceback.format_exc(limit=-6)))


def load_solution():
    sys.path.insert(0, "/work")
    import solution
    return solution


def run_call(spec):
    try:
        mod = load_solution()
    except BaseException as e:
        return {"passed": False, "error": "importing the solution raised %s: %s" %
                (type(e).__name__, cut(str(e))), "exception": exc_info(e), "traceback": tb_text()}
    fn = getattr(mod, spec["function"], None)
    if not callable(fn):
        return {"passed": False, "error": "the solution defines no function %s" % spec["function"]}
    want_exc = spec.get("expected_exception")
    try:
        got = fn(*spec.get("args", []), **spec.get("kwargs", {}))
    except BaseException as e:
        names = [c.__name__ for c in type(e).__mro__]
        if want_exc and want_exc in names:
            return {"passed": True, "exception": exc_info(e), "expected": want_exc}
        return {"passed": False, "error": "raised %s: %s" % (type(e).__name__, cut(str(e))),
                "exception": exc_info(e), "traceback": tb_text(),
                "expected": want_exc or show(spec.get("expected"))}
    if want_exc:
        return {"passed": False, "error": "returned instead of raising %s" % want_exc,
                "got": cut(repr(got)), "expected": want_exc}
    exp = spec.get("expected")
    try:
        val = plain(got)
    except Unplain as why:
        return {"passed": False, "got": cut(repr(got)), "expected": show(exp),
                "error": "returned %s, which cannot be compared" % why}
    tol = spec.get("tolerance") or 0
    if spec.get("unordered"):
        ok = same_unordered(val, exp, tol)
    else:
        ok = same(val, exp, tol) and not (type(got) in (set, frozenset) and type(exp) is list)
    res = {"passed": ok, "got": show(val), "expected": show(exp)}
    if not ok:
        res["error"] = "returned %s, expected %s" % (show(val), show(exp))
    return res


class Collect:
    def __init__(self):
        self.tests = {}
        self.order = []
        self.errors = []

    def pytest_runtest_logreport(self, report):
        nid = report.nodeid.split("::", 1)[-1]
        if nid not in self.tests:
            self.tests[nid] = {"name": nid, "outcome": "passed", "message": ""}
            self.order.append(nid)
        t = self.tests[nid]
        if report.outcome == "failed":
            t["outcome"] = "failed"
            t["message"] = cut(report.longreprtext or "failed")
        elif report.outcome == "skipped" and t["outcome"] == "passed":
            t["outcome"] = "skipped"
            t["message"] = cut(str(report.longrepr[-1]) if isinstance(report.longrepr, tuple)
                               else "skipped")

    def pytest_collectreport(self, report):
        if report.failed:
            self.errors.append(cut(report.longreprtext or "collection failed"))


def run_pytest(spec):
    try:
        mod = load_solution()
    except BaseException as e:
        return {"passed": False, "error": "importing the solution raised %s: %s" %
                (type(e).__name__, cut(str(e))), "exception": exc_info(e), "traceback": tb_text()}
    if spec.get("module"):
        sys.modules[spec["module"]] = mod
    import pytest
    c = Collect()
    code = pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:stepwise", "--rootdir=/tmp",
                        "-o", "python_files=*.py", "--tb=short", spec["path"]], plugins=[c])
    cases = [c.tests[n] for n in c.order]
    res = {"passed": not c.errors and bool(cases) and all(t["outcome"] == "passed" for t in cases),
           "cases": cases, "exit_code": int(code)}
    if c.errors:
        res["error"] = "the test file could not be collected: " + c.errors[0]
    elif not cases:
        res["error"] = "the test file holds no tests"
    return res


def main():
    spec = json.loads(sys.stdin.read())
    nonce = spec["nonce"]
    real = os.fdopen(os.dup(1), "w", encoding="utf-8", errors="replace")
    sys.stdin = io.StringIO("")
    try:
        res = run_call(spec) if spec["kind"] == "call" else run_pytest(spec)
    except BaseException as e:  # the harness itself failed, e.g. SystemExit from the test
        res = {"passed": False, "error": "the test run raised %s: %s" %
               (type(e).__name__, cut(str(e))), "exception": exc_info(e)}
    try:
        sys.stdout.flush()
    except Exception:
        pass
    real.write("\n@@SM-RESULT " + nonce + " " + json.dumps(res) + "\n")
    real.flush()
    os._exit(0)


main()
