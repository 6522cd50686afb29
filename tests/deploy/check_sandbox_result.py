"""check_sandbox_result.py RESULT_JSON: the `stepmark result --json` of a sum-lines submission
(scripts/demo-data/code/erin.py, a right answer) holds the results of its three tests, run in
the worker's sandbox: every test ran (no sandbox error) and passed (Python ran in bubblewrap). Used by
test_containers.sh and test_systemd_boot.sh; exit 1 with the reason otherwise."""
import json
import sys


def checks_in(o, found):
    """every sandbox check ({"kind": "compile"|"test", "passed": ...}) anywhere in o"""
    if isinstance(o, dict):
        if o.get("kind") in ("compile", "test") and "passed" in o:
            found.append(o)
        for v in o.values():
            checks_in(v, found)
    elif isinstance(o, list):
        for v in o:
            checks_in(v, found)
    return found


r = json.load(open(sys.argv[1]))
checks = checks_in(r, [])
tests = [c for c in checks if c["kind"] == "test"]
print("sandbox checks:", [(c.get("name"), c.get("passed"), c.get("output_excerpt")) for c in checks])
if len(tests) != 3:
    sys.exit("expected the 3 tests of sum-lines-tests.json in the grading, found %d" % len(tests))
if any(c.get("error") for c in checks):
    sys.exit("the sandbox failed to run a check")
if not all(c.get("passed") is True for c in checks):
    sys.exit("a test of a right answer failed: Python did not run right in the sandbox")
