#!/usr/bin/env python3
"""Every public function that returns pw_status says which codes it returns.

Usage: api_docs_check.py HEADER_OR_DIR...

Reads the headers (a directory: every *.h below it) and, for each declaration
at file scope of a function returning pw_status (PW_EXTERN, or static inline,
or a plain prototype as generated code writes them), finds the Doxygen comment
(/** ... */) right above it. The check fails when there is none, or when it
names no status code (PW_OK, PW_NOT_FOUND, ..., PW_ERRNO(...)). Prints one
line per offending function, "file:line: name", and exits 1 if there is any.
"""
import os
import re
import sys

CODES = ("OK CANCELLED UNKNOWN INVALID_ARGUMENT DEADLINE_EXCEEDED NOT_FOUND ALREADY_EXISTS "
         "PERMISSION_DENIED RESOURCE_EXHAUSTED FAILED_PRECONDITION ABORTED OUT_OF_RANGE "
         "UNIMPLEMENTED INTERNAL UNAVAILABLE DATA_LOSS UNAUTHENTICATED ERRNO").split()
CODE_RE = re.compile(r"\bPW_(%s)\b" % "|".join(CODES))
DECL_RE = re.compile(r"^(?:PW_EXTERN\s+)?(?:static\s+inline\s+)?pw_status\s+(\w+)\s*\(", re.M)


def headers(args):
    for a in args:
        if os.path.isdir(a):
            for root, _, files in os.walk(a):
                for f in sorted(files):
                    if f.endswith(".h"):
                        yield os.path.join(root, f)
        else:
            yield a


def doc_above(text, pos):
    """The /** */ comment that ends right before pos (only blank space between), or None."""
    before = text[:pos].rstrip()
    if not before.endswith("*/"):
        return None
    start = before.rfind("/*")
    if start < 0 or not before.startswith("/**", start):
        return None
    return before[start:]


def check(path):
    text = open(path, encoding="utf-8").read()
    bad = []
    for m in DECL_RE.finditer(text):
        doc = doc_above(text, m.start())
        if doc is None or not CODE_RE.search(doc):
            line = text.count("\n", 0, m.start()) + 1
            why = "no doc comment" if doc is None else "doc names no status code"
            bad.append("%s:%d: %s: %s" % (path, line, m.group(1), why))
    return bad


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    bad, seen = [], 0
    for h in headers(argv[1:]):
        seen += len(DECL_RE.findall(open(h, encoding="utf-8").read()))
        bad += check(h)
    for b in bad:
        print(b)
    if seen == 0:
        print("api_docs_check: no function returning pw_status found (wrong path?)")
        return 1
    print("api_docs_check: %d of %d functions returning pw_status list no codes" % (len(bad), seen))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
