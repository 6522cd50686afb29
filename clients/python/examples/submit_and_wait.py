#!/usr/bin/env python3
"""Submit one student's work and wait for its grade.

  submit_and_wait.py --course CS101 --assignment hw3 --student s-1234 --key lms-7f3a FILE
                     [--language python] [--until graded|reviewed|released] [--timeout S]
                     [--http URL]

The idempotency key makes a rerun safe: the same key returns the same submission. Prints the
status and, once graded, the score and the final grade; exits 1 when the job died or was
cancelled, 2 on an error reply, 3 on a timeout."""
import argparse
import json
import sys

import stepmark_client as sm
from _connect import add_arguments, connect


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--course', required=True)
    ap.add_argument('--assignment', required=True)
    ap.add_argument('--student', required=True, help="your reference for the student")
    ap.add_argument('--key', required=True, help='idempotency key, unique per submission')
    ap.add_argument('--language')
    ap.add_argument('--until', default='graded', choices=('graded', 'reviewed', 'released'))
    ap.add_argument('--timeout', type=float, default=900)
    ap.add_argument('file', help="the student's work")
    add_arguments(ap)
    args = ap.parse_args()
    with open(args.file, encoding='utf-8') as f:
        content = f.read()
    try:
        with connect(args) as c:
            r = c.submit(args.course, args.assignment, args.student, args.key, content,
                         language=args.language)
            print(f"submission {r.submission_id}" + (" (already submitted)" if r.duplicate
                                                     else ""))
            st = c.wait(r.submission_id, until=args.until, timeout=args.timeout)
            if st['state'] != 'done':
                print(f"not graded: {st['state']}: {st.get('last_error')}")
                return 1
            g = st['grading']
            print(f"{g['status']}: score {g['score']} / {g['max_score']}")
            if st.get('final'):
                print('final:', json.dumps(st['final']))
            return 0
    except sm.WaitTimeout as e:
        print(e, file=sys.stderr)
        return 3
    except sm.ServiceError as e:
        print(f"error {e.code}: {e.message}", file=sys.stderr)
        return 2
    except sm.TransportError as e:
        print(e, file=sys.stderr)
        return 3


if __name__ == '__main__':
    sys.exit(main())
