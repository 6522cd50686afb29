"""The HTTP API client (/api/v1, docs/openapi.yaml): a service token from
`stepmark service add NAME --course C`, sent as `Authorization: Bearer TOKEN`."""
import json
import os
from urllib.parse import quote

import requests

from ._base import ClientBase, Page, Submitted
from .errors import Timeout, Unreachable, error_for


def _seg(s):
    return quote(str(s), safe="")


class HttpClient(ClientBase):
    """base_url: the stepmarkd HTTP server, e.g. "https://grader.example.edu" (the /api/v1
    prefix is added here). token: the service token (default $STEPMARK_SERVICE_TOKEN).
    verify: as in requests (False, or a CA bundle path for a private CA)."""

    def __init__(self, base_url, token=None, timeout=30.0, verify=True, session=None):
        self.base = base_url.rstrip("/") + "/api/v1"
        self.token = token or os.environ.get("STEPMARK_SERVICE_TOKEN")
        if not self.token:
            raise ValueError("a service token is needed (token= or $STEPMARK_SERVICE_TOKEN)")
        self.timeout = timeout
        self._s = session or requests.Session()
        self._s.headers["Authorization"] = "Bearer " + self.token
        self._s.verify = verify

    def close(self):
        self._s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, method, path, params=None, body=None, headers=None):
        """One request; returns (HTTP status, parsed JSON body). Raises the ServiceError of
        an error reply, Timeout or Unreachable."""
        try:
            r = self._s.request(method, self.base + path, params=params,
                                json=body if body is not None else None, headers=headers,
                                timeout=self.timeout)
        except requests.Timeout as e:
            raise Timeout(f"{method} {self.base}{path}: no answer in {self.timeout} s") from e
        except requests.ConnectionError as e:
            raise Unreachable(f"{method} {self.base}{path}: {e}") from e
        try:
            doc = r.json() if r.content else None
        except (ValueError, json.JSONDecodeError):
            doc = None
        if r.status_code >= 400:
            err = (doc or {}).get("error") if isinstance(doc, dict) else None
            err = err if isinstance(err, dict) else {}
            raise error_for(err.get("code"), err.get("message") or r.reason,
                            err.get("retryable", r.status_code == 503), r.status_code)
        return r.status_code, doc

    def get(self, path, params=None):
        return self.request("GET", path, params=params)[1]

    # ---- the routes
    def submit(self, course, assignment, student_ref, idempotency_key, content, language=None,
               priority=None, kind=None):
        body = {"course": course, "assignment": assignment, "student_ref": student_ref,
                "content": content}
        for k, v in (("language", language), ("priority", priority), ("kind", kind)):
            if v is not None:
                body[k] = v
        status, doc = self.request("POST", "/submissions", body=body,
                                   headers={"Idempotency-Key": idempotency_key})
        return Submitted(int(doc["submission_id"]), status == 200 or bool(doc.get("duplicate")))

    def status(self, submission_id):
        return self.get(f"/submissions/{int(submission_id)}")

    def result(self, submission_id, reasoning=False):
        return self.get(f"/submissions/{int(submission_id)}/result",
                        {"reasoning": "true"} if reasoning else None)

    def final(self, submission_id):
        return self.get(f"/submissions/{int(submission_id)}/final").get("final")

    def list(self, course, assignment, cursor=None, updated_since=None, limit=None):
        params = {}
        if cursor:
            params["cursor"] = cursor
        elif updated_since:
            params["updated_since"] = updated_since
        if limit:
            params["limit"] = int(limit)
        return Page.from_json(self.get(
            f"/courses/{_seg(course)}/assignments/{_seg(assignment)}/submissions", params))

    def student_link(self, course, student_ref, days=None):
        """A signed, expiring link for one student to their released feedback in a course
        (docs/student-feedback.md): {"course", "student_ref", "url", "expires_at"}. Hand
        "url" to that student only. days: 1-400 (default: the server's, 30). HTTP only: the
        ZeroMQ protocol has no such command."""
        body = {"student_ref": student_ref}
        if days is not None:
            body["days"] = int(days)
        return self.request("POST", f"/courses/{_seg(course)}/feedback-links", body=body)[1]

    def courses(self):
        return self.get("/courses")

    def assignments(self, course):
        return self.get(f"/courses/{_seg(course)}/assignments")

    def assignment(self, course, code):
        return self.get(f"/courses/{_seg(course)}/assignments/{_seg(code)}")
