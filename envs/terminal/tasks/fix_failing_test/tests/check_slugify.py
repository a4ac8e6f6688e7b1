import hashlib
import sys
import unittest

sys.path.insert(0, "/app")
VISIBLE_TEST_SHA256 = "7f9703c696b99a137b24d29c9bfa72b74c224330969c4d8731e8eeb3b13a64ac"
with open("/app/test_textutils.py", "rb") as f:
    if hashlib.sha256(f.read()).hexdigest() != VISIBLE_TEST_SHA256:
        sys.exit("test_textutils.py was changed")
from textutils import slugify  # noqa: E402

cases = {"Hello World": "hello-world", "Hello, World!": "hello-world", "  a  b  ": "a-b",
         "Top 10 -- Tips": "top-10-tips", "ALL-CAPS": "all-caps", "": "", "!!!": ""}
suite = unittest.defaultTestLoader.loadTestsFromName("test_textutils")
result = unittest.TestResult()  # no runner: its report has timings, and the grader's output stays reproducible
suite.run(result)
if not result.wasSuccessful():
    sys.exit(f"the visible tests fail: {[test.id() for test, _ in result.failures + result.errors]}")
wrong = {text: slugify(text) for text, want in cases.items() if slugify(text) != want}
if wrong:
    sys.exit(f"wrong slugs: {wrong}")
print("slugify ok")
